/**
 * Attention maps through the web app, for a tiny model with attention (a 4 × 4 grid): the JSON
 * answer carries `attention: {grid, weights}`, the very weights the model's own decoding gives
 * for that image; the stream names the grid in `start` and each `word` event carries its row
 * (each beam `hypothesis` its rows); a model without attention carries none.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { captionImages } from '../../model/decode/decode.ts';
import { imagesToTensor, loadImagePixels } from '../../model/data/image.ts';
import { loadModel } from '../../model/io/load.ts';
import type { CaptionJson } from '../../server/captioning.ts';
import type { RunningServer } from '../../server/listen.ts';
import { setupBackend } from '../helpers/tf.ts';
import { form, image, readSse, serve, trainServerModel, type TrainedModel } from './helpers.ts';

await setupBackend(); // the backend the server's workers choose

const ATTENTION = { encoderPooling: 'grid', featureInput: 'attention' };

let attending: TrainedModel;
let plain: TrainedModel;
let server: RunningServer;
let plainServer: RunningServer;
let png: Buffer;

before(async () => {
  attending = await trainServerModel(20, ATTENTION);
  plain = await trainServerModel(20);
  [server, plainServer] = await Promise.all([serve(attending.modelDir), serve(plain.modelDir)]);
  png = await image('png', 40, 30);
});

after(async () => {
  await server?.close();
  await plainServer?.close();
  await attending?.cleanup();
  await plain?.cleanup();
});

async function caption(url: string, fields: Record<string, string>): Promise<CaptionJson> {
  const res = await fetch(`${url}/api/captions`, { method: 'POST', body: form(png, 'x.png', 'image/png', fields) });
  assert.equal(res.status, 200);
  return (await res.json()) as CaptionJson;
}

function assertRowsSumToOne(weights: number[][]): void {
  for (const [i, row] of weights.entries()) {
    assert.equal(row.length, 16, `word ${i}: a weight per grid position`);
    const sum = row.reduce((s, w) => s + w, 0);
    assert.ok(Math.abs(sum - 1) < 1e-5, `word ${i}'s weights sum to ${sum}`);
  }
}

test("the JSON answer carries each word's weights over the grid: those the model's decoding gives", async () => {
  const { model, prior } = await loadModel(attending.modelDir);
  const tensor = imagesToTensor([await loadImagePixels(png, model.config.imageSize)], model.config.imageSize);
  try {
    for (const fields of [{ strategy: 'greedy' }, { strategy: 'beam', beamWidth: '3' }] as Record<string, string>[]) {
      const json = await caption(server.url, fields);
      assert.ok(json.attention, `${fields.strategy}: attention in the answer`);
      assert.deepEqual(json.attention.grid, [4, 4]);
      assert.equal(json.attention.weights.length, json.words.length, 'one row per word');
      assertRowsSumToOne(json.attention.weights);
      const local = captionImages(model, tensor, {
        strategy: fields.strategy as 'greedy' | 'beam',
        beamWidth: fields.beamWidth ? 3 : undefined,
        prior,
      })[0]!;
      assert.equal(json.caption, local.caption);
      assert.deepEqual(json.attention.grid, local.attention!.grid);
      // The same weights, up to the float rounding of the worker's kernels and this process's.
      json.attention.weights.forEach((row, i) =>
        row.forEach((w, p) =>
          assert.ok(
            Math.abs(w - local.attention!.weights[i]![p]!) < 1e-5,
            `${fields.strategy}: word ${i}, position ${p}`,
          ),
        ),
      );
    }
  } finally {
    tensor.dispose();
    model.dispose();
  }
});

test('the stream: start names the grid, each word event carries its row, done the whole maps', async () => {
  const res = await fetch(`${server.url}/api/captions/stream`, {
    method: 'POST',
    body: form(png, 'x.png', 'image/png', { strategy: 'greedy' }),
  });
  const records = await readSse(res);
  assert.deepEqual(records[0]!.data.attention, { grid: [4, 4] });
  const done = records.at(-1)!.data as unknown as CaptionJson;
  const rows = records.filter((r) => r.event === 'word').map((r) => r.data.attention as number[]);
  assert.ok(rows.length >= 1);
  assert.deepEqual(rows, done.attention!.weights);

  const beam = await readSse(
    await fetch(`${server.url}/api/captions/stream`, {
      method: 'POST',
      body: form(png, 'x.png', 'image/png', { strategy: 'beam', beamWidth: '3' }),
    }),
  );
  const hyps = beam.filter((r) => r.event === 'hypothesis');
  assert.ok(hyps.length >= 1);
  for (const h of hyps) assert.equal((h.data.attention as number[][]).length, (h.data.words as string[]).length);
  assertRowsSumToOne((beam.at(-1)!.data as unknown as CaptionJson).attention!.weights);
});

test('a model without attention: no attention in the answer, the start event or the word events', async () => {
  const json = await caption(plainServer.url, { strategy: 'greedy' });
  assert.ok(json.words.length >= 1);
  assert.ok(!('attention' in json));
  const records = await readSse(
    await fetch(`${plainServer.url}/api/captions/stream`, {
      method: 'POST',
      body: form(png, 'x.png', 'image/png', { strategy: 'greedy' }),
    }),
  );
  for (const r of records) assert.ok(!('attention' in r.data), `${r.event} event`);
});
