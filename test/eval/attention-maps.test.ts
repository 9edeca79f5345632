/**
 * The eval report's attention maps: a word's picture is the image shaded by its weights, clear
 * where the largest weight is (as the page's overlay); an attention model's report draws one per
 * word for each of its best and worst images, from the weights its decoding gave.
 */
import assert from 'node:assert/strict';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import sharp from 'sharp';
import { shadePixels } from '../../eval/attention-maps.ts';
import { captionImagesOfSplit, runEvaluation } from '../../eval/evaluate.ts';
import { readManifest, splitImages } from '../../model/data/dataset.ts';
import { loadImagePixels } from '../../model/data/image.ts';
import { loadModel } from '../../model/io/load.ts';
import { setupBackend } from '../helpers/tf.ts';
import { makeTinyDataset } from '../helpers/tiny-data.ts';
import { trainTinyModel } from '../helpers/tiny-model.ts';

await setupBackend();

/** Mean of `values` (size × size, `channels` per pixel) over each cell of a 4 × 4 grid. */
function cellMeans(values: ArrayLike<number>, size: number, channels: number): number[] {
  const cell = size / 4;
  return Array.from({ length: 16 }, (_, k) => {
    const [r, c] = [Math.floor(k / 4), k % 4];
    let sum = 0;
    let n = 0;
    for (let y = r * cell + 1; y < (r + 1) * cell - 1; y++)
      for (let x = c * cell + 1; x < (c + 1) * cell - 1; x++)
        for (let ch = 0; ch < channels; ch++, n++) sum += values[(y * size + x) * channels + ch]!;
    return sum / n;
  });
}

test('a word’s picture: full brightness at the largest weight, darker where the weights are smaller', () => {
  const size = 44; // cells of 11 pixels: pixel 5 of a cell has its centre on the cell's
  const grey = new Uint8Array(size * size * 3).fill(200);
  const weights = Array.from({ length: 16 }, (_, k) => (k === 6 ? 0.55 : k === 9 ? 0.15 : 0.02));
  const shaded = shadePixels(grey, size, weights, [4, 4]);
  const means = cellMeans(shaded, size, 3);
  assert.equal(means.indexOf(Math.max(...means)), 6);
  // At the largest weight's centre nothing is taken; far from any weight, 0.75·(1 − 0.02/0.55).
  assert.equal(shaded[(16 * size + 27) * 3], 200);
  assert.equal(shaded[(38 * size + 38) * 3], Math.round(200 * (1 - 0.75 * (1 - 0.02 / 0.55))));
  assert.ok(means[9]! > means[0]!, 'a middling weight is brighter than a small one');
});

let data: string;
let model: string;
before(async () => {
  data = (await makeTinyDataset()).dir;
  model = await trainTinyModel(data, 20, {
    validateEvery: 20,
    learningRate: 0.01,
    encoderPooling: 'grid',
    featureInput: 'attention',
  });
});
after(async () => {
  await rm(data, { recursive: true, force: true });
  await rm(model, { recursive: true, force: true });
});

test("an attention model's report draws each gallery caption's words, shaded by the weights its decoding gave", async () => {
  const outDir = join(model, 'eval-out');
  await runEvaluation({
    modelDir: model,
    dataDir: data,
    split: 'val',
    beamWidth: 1,
    batchSize: 2,
    outDir,
    galleryCount: 1,
  });
  const html = await readFile(join(outDir, 'report.html'), 'utf8');
  const images = splitImages(await readManifest(data), 'val');
  const { model: loaded } = await loadModel(model);
  const captioned = await captionImagesOfSplit(loaded, data, images, { beamWidth: 1 });
  loaded.dispose();

  const items = html.split('<figure>\n').slice(1);
  assert.equal(items.length, 2, 'the best and the worst image');
  for (const item of items) {
    const id = /class="scores">([^ ]+) ·/.exec(item)![1]!;
    const c = captioned.find((x) => x.id === id)!;
    const words = c.caption.split(' ');
    const maps = [
      ...item.matchAll(
        /<figure class="map"><img src="data:image\/jpeg;base64,([^"]+)" alt="([^"]+)"><figcaption>([^<]*)<\/figcaption>/g,
      ),
    ];
    assert.deepEqual(
      maps.map((m) => m[3]),
      words,
      `${id}: one map per word`,
    );
    const original = await loadImagePixels(join(data, images.find((i) => i.id === id)!.file), 80);
    const plain = cellMeans(original, 80, 3);
    for (const [i, m] of maps.entries()) {
      assert.match(m[2]!, new RegExp(`where the model looked for “${words[i]}”: most at the `));
      const { data: pixels, info } = await sharp(Buffer.from(m[1]!, 'base64'))
        .raw()
        .toBuffer({ resolveWithObject: true });
      assert.deepEqual([info.width, info.height], [80, 80]);
      // How much of each cell's brightness is kept: most where the word's weight is largest.
      const kept = cellMeans(pixels, 80, 3).map((v, k) => v / Math.max(plain[k]!, 1));
      const weights = c.attention!.weights[i]!;
      assert.equal(kept.indexOf(Math.max(...kept)), weights.indexOf(Math.max(...weights)), `${id}: word ${i}`);
    }
  }
});
