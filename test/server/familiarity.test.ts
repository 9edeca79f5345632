/**
 * Familiarity through the web app: the JSON answer and the stream's `done` event carry
 * {"score", "threshold", "familiar"} for a calibrated model (the tiny model calibrates at the end
 * of training); the page without JavaScript says plainly when the image is unfamiliar and hatches
 * the caption, and so does the streaming page in Chromium; a model never calibrated answers
 * without the field and the page says nothing.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { chromiumMissing, launchChromium } from '../../scripts/chromium.ts';
import type { RunningServer } from '../../server/listen.ts';
import { readCheckpointConfig } from '../../model/io/checkpoint.ts';
import { FAMILIARITY_FILE, FAMILIARITY_WEIGHTS, readFamiliarity } from '../../model/familiarity/store.ts';
import { form, image, readSse, serve, trainServerModel, type TrainedModel } from './helpers.ts';

let model: TrainedModel;
let server: RunningServer | undefined;
let threshold: number;

/** Noise in every colour: nothing like the tiny data set's flat shapes on a light background. */
async function noisePng(): Promise<Buffer> {
  const raw = Buffer.from(Array.from({ length: 48 * 48 * 3 }, (_, i) => (i * 2654435761) % 251));
  return sharp(raw, { raw: { width: 48, height: 48, channels: 3 } })
    .png()
    .toBuffer();
}

before(async () => {
  model = await trainServerModel();
  const { dir } = await readCheckpointConfig(model.modelDir);
  threshold = (await readFamiliarity(dir))!.threshold;
  server = await serve(model.modelDir);
});

after(async () => {
  await server?.close();
  await model?.cleanup();
});

interface Judged {
  familiarity?: { score: number; threshold: number; familiar: boolean };
}

test('the JSON answer and the stream’s done event carry the image’s familiarity', async () => {
  const shapes = await image('png');
  const res = await fetch(`${server!.url}/api/captions`, { method: 'POST', body: form(shapes) });
  assert.equal(res.status, 200);
  const json = (await res.json()) as Judged;
  assert.ok(json.familiarity, 'a calibrated model reports familiarity');
  assert.equal(json.familiarity.threshold, threshold);
  assert.equal(json.familiarity.familiar, json.familiarity.score <= threshold);

  const noise = await fetch(`${server!.url}/api/captions/stream`, { method: 'POST', body: form(await noisePng()) });
  const records = await readSse(noise);
  const done = records.at(-1)!;
  assert.equal(done.event, 'done');
  const streamed = (done.data as Judged).familiarity!;
  assert.equal(streamed.threshold, threshold);
  assert.equal(streamed.familiar, false, `noise scores ${streamed.score}, threshold ${threshold}`);
  assert.ok(records.filter((r) => r.event === 'word').every((r) => !('familiarity' in r.data)));
});

test('the page without JavaScript says plainly that an unfamiliar image’s caption is probably wrong', async () => {
  const res = await fetch(`${server!.url}/`, { method: 'POST', body: form(await noisePng()) });
  assert.equal(res.status, 200);
  const html = await res.text();
  assert.match(html, /<p id="caption" class="caption unreliable">/);
  const notice = /<p id="unfamiliar" class="unfamiliar"( hidden)?>([^<]*)<\/p>/.exec(html);
  assert.ok(notice, 'the notice is on the page');
  assert.equal(notice[1], undefined, 'and shown');
  assert.match(
    notice[2]!,
    /^This image looks unlike the images this model was trained on.*; the caption is probably wrong\.$/,
  );
  const home = await (await fetch(`${server!.url}/`)).text();
  assert.match(home, /<p id="unfamiliar" class="unfamiliar" hidden>/, 'hidden until an image is unfamiliar');
  const modelPage = await (await fetch(`${server!.url}/model`)).text();
  assert.match(modelPage, /<dt>Familiarity<\/dt><dd>calibrated: /);
});

test(
  'the streaming page says so too, and shades the caption, once the caption is done',
  { skip: chromiumMissing() },
  async () => {
    const browser = await launchChromium();
    try {
      const page = await browser.newPage();
      await page.goto(`${server!.url}/`);
      assert.equal(await page.isVisible('#unfamiliar'), false, 'nothing said before an image');
      await page.setInputFiles('#image-input', { name: 'noise.png', mimeType: 'image/png', buffer: await noisePng() });
      await page.waitForSelector('#caption[data-state="done"]', { timeout: 30_000 });
      assert.equal(await page.isVisible('#unfamiliar'), true, 'the notice is shown for an unfamiliar image');
      assert.match(
        (await page.textContent('#unfamiliar')) ?? '',
        /^This image looks unlike the images this model was trained on.*; the caption is probably wrong\.$/,
      );
      assert.equal(await page.$eval('#caption', (el) => el.classList.contains('unreliable')), true);
    } finally {
      await browser.close();
    }
  },
);

test('a model never calibrated answers without familiarity', async () => {
  await server!.close();
  server = undefined;
  const { dir } = await readCheckpointConfig(model.modelDir);
  await rm(join(dir, FAMILIARITY_FILE));
  await rm(join(dir, FAMILIARITY_WEIGHTS));
  server = await serve(model.modelDir);
  const res = await fetch(`${server.url}/api/captions`, { method: 'POST', body: form(await noisePng()) });
  const json = (await res.json()) as Judged & { caption: string };
  assert.equal(typeof json.caption, 'string');
  assert.equal('familiarity' in json, false);
  const page = await (await fetch(`${server.url}/`, { method: 'POST', body: form(await noisePng()) })).text();
  assert.match(page, /<p id="caption" class="caption">/);
  assert.match(page, /<p id="unfamiliar" class="unfamiliar" hidden>/);
  assert.match(await (await fetch(`${server.url}/model`)).text(), /<dt>Familiarity<\/dt><dd>not calibrated/);
});
