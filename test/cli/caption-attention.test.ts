/**
 * `captioner caption --attention`: each JSON Lines record carries where the model looked for
 * each word (`attention: {grid, weights}`, the weights the model's decoding gives); without the
 * flag no record does; the flag with CSV, or with a model that has no attention, is a usage
 * error (exit 2) naming why, before any record is written.
 */
import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { CaptionRecord } from '../../batch/records.ts';
import { captionImages } from '../../model/decode/decode.ts';
import { imagesToTensor, loadImagePixels } from '../../model/data/image.ts';
import { loadModel } from '../../model/io/load.ts';
import { runCli } from '../helpers/cli.ts';
import { setupBackend } from '../helpers/tf.ts';
import { makeTinyDataset } from '../helpers/tiny-data.ts';
import { trainTinyModel } from '../helpers/tiny-model.ts';

await setupBackend(); // the backend the CLI chooses

let work = '';
let attending = '';
let plain = '';
let images = '';

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'captioner-attention-'));
  const { dir: data } = await makeTinyDataset({ dir: join(work, 'data') });
  const train = { valSamples: 0, learningRate: 0.01 };
  attending = await trainTinyModel(data, 20, {
    ...train,
    out: join(work, 'attending'),
    encoderPooling: 'grid',
    featureInput: 'attention',
  });
  plain = await trainTinyModel(data, 3, { ...train, out: join(work, 'plain') });
  images = join(work, 'images');
  await mkdir(images);
  for (let i = 0; i < 3; i++) await copyFile(join(data, 'images', `${i}.png`), join(images, `${i}.png`));
});

after(async () => {
  await rm(work, { recursive: true, force: true });
});

function records(stdout: string): CaptionRecord[] {
  return stdout
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as CaptionRecord);
}

test('--attention writes each word’s weights into its record; without it, none', async () => {
  const without = await runCli(['caption', images, '--model', attending]);
  assert.equal(without.code, 0, without.stderr);
  for (const r of records(without.stdout)) assert.ok(!('attention' in r), r.path);

  const run = await runCli(['caption', images, '--model', attending, '--beam', '2', '--attention']);
  assert.equal(run.code, 0, run.stderr);
  const recs = records(run.stdout);
  assert.equal(recs.length, 3);
  const { model, prior } = await loadModel(attending);
  try {
    for (const r of recs) {
      const size = model.config.imageSize;
      const tensor = imagesToTensor([await loadImagePixels(r.path, size)], size);
      const local = captionImages(model, tensor, { strategy: 'beam', beamWidth: 2, prior })[0]!;
      tensor.dispose();
      assert.equal(r.caption, local.caption, r.path);
      assert.ok(r.attention, `${r.path}: attention in the record`);
      assert.deepEqual(r.attention.grid, [4, 4]);
      assert.equal(r.attention.weights.length, r.caption!.split(' ').filter(Boolean).length, 'a row per word');
      r.attention.weights.forEach((row, i) => {
        const sum = row.reduce((s, w) => s + w, 0);
        assert.ok(Math.abs(sum - 1) < 1e-5, `${r.path}: word ${i} sums to ${sum}`);
        row.forEach((w, p) =>
          assert.ok(Math.abs(w - local.attention!.weights[i]![p]!) < 1e-5, `${r.path}: word ${i}, position ${p}`),
        );
      });
    }
  } finally {
    model.dispose();
  }
});

test('--attention with CSV, or with a model without attention, is a usage error and writes nothing', async () => {
  const csv = await runCli(['caption', images, '--model', attending, '--attention', '--format', 'csv']);
  assert.equal(csv.code, 2);
  assert.match(csv.stderr, /--attention .*only JSON Lines .*not csv/);
  assert.equal(csv.stdout, '');
  const none = await runCli(['caption', images, '--model', plain, '--attention']);
  assert.equal(none.code, 2);
  assert.match(none.stderr, /--attention: model .*plain has no attention \(featureInput "init"\)/);
  assert.equal(none.stdout, '');
});
