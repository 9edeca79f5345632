/** The encoder's pooling: averaged features forget where things are, flattened ones keep it. */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { readCheckpointConfig } from '../../../model/io/checkpoint.ts';
import { Encoder, type EncoderConfig } from '../../../model/nn/encoder.ts';
import { checkModelConfig, MODEL_DEFAULTS } from '../../../model/nn/captioner.ts';
import { loadModel } from '../../../model/io/load.ts';
import { Rng } from '../../../model/util/rng.ts';
import { ConfigError } from '../../../model/util/config.ts';
import { makeTinyDataset } from '../../helpers/tiny-data.ts';
import { trainTinyModel } from '../../helpers/tiny-model.ts';
import { setupBackend } from '../../helpers/tf.ts';

const tf = await setupBackend();

const base: EncoderConfig = {
  imageSize: 10,
  encoderChannels: [3],
  featureSize: 4,
  encoderPooling: 'average',
  encoderInput: 'rgb',
  colourStream: 0,
  colourStreamPool: 1,
  backbone: null,
  backboneTrainable: false,
};

/** A 10×10 image, black but for one white pixel at (row, col). */
function dot(row: number, col: number) {
  const pixels = new Float32Array(10 * 10 * 3);
  pixels.fill(1, (row * 10 + col) * 3, (row * 10 + col) * 3 + 3);
  return tf.tensor4d(pixels, [1, 10, 10, 3]);
}

test('flatten keeps where a dot is; average pooling cannot tell two positions apart', async () => {
  for (const pooling of ['average', 'flatten'] as const) {
    const encoder = await Encoder.create({ ...base, encoderPooling: pooling }, new Rng(3));
    // One block of 10 → 5 positions: the flattened projection reads 5·5·3 = 75 numbers.
    const kernel = encoder.namedWeights()['encoder/project/kernel']!;
    assert.deepEqual(kernel.shape, pooling === 'flatten' ? [75, 4] : [3, 4]);
    // The same dot in two places far from the border: identical conv responses, moved.
    const [a, b] = [dot(2, 2), dot(6, 6)];
    const [fa, fb] = [encoder.apply(a), encoder.apply(b)];
    assert.deepEqual(fa.shape, [1, 4]);
    const diff = tf.max(tf.abs(tf.sub(fa, fb))).dataSync()[0]!;
    if (pooling === 'average') assert.ok(diff < 1e-6, `average pooling: features differ by ${diff}`);
    else assert.ok(diff > 1e-3, `flatten: features differ by only ${diff}`);
    tf.dispose([a, b, fa, fb]);
    encoder.dispose();
  }
});

test('a flattening model trains, saves and loads; a checkpoint written before encoderPooling existed loads as average pooling', async () => {
  const data = await makeTinyDataset();
  const work = await mkdtemp(join(tmpdir(), 'captioner-encoder-'));
  try {
    const flatDir = await trainTinyModel(data.dir, 3, { encoderPooling: 'flatten', out: join(work, 'flat') });
    const { model: flat } = await loadModel(flatDir);
    assert.equal(flat.config.encoderPooling, 'flatten');
    flat.dispose();

    // A checkpoint made to look old: its config.json without the key.
    const oldDir = await trainTinyModel(data.dir, 1, { out: join(work, 'old') });
    const { dir } = await readCheckpointConfig(oldDir);
    const file = join(dir, 'config.json');
    const saved = JSON.parse(await readFile(file, 'utf8'));
    delete saved.model.encoderPooling;
    await writeFile(file, JSON.stringify(saved));
    assert.equal((await readCheckpointConfig(oldDir)).config.model.encoderPooling, 'average');
    const { model: old } = await loadModel(oldDir);
    assert.equal(old.config.encoderPooling, 'average');
    old.dispose();
  } finally {
    await rm(work, { recursive: true, force: true });
  }
});

/** A 16×16 image of a 6×6 square of `rgb` on black, its corner at (row, col). */
function square(rgb: [number, number, number], row = 5, col = 5) {
  const pixels = new Float32Array(16 * 16 * 3);
  for (let r = row; r < row + 6; r++) for (let c = col; c < col + 6; c++) pixels.set(rgb, (r * 16 + c) * 3);
  return tf.tensor4d(pixels, [1, 16, 16, 3]);
}

const gridBase: EncoderConfig = {
  ...base,
  imageSize: 16,
  encoderChannels: [4, 4],
  encoderPooling: 'grid',
};

test('chroma input: the CNN sees a red square and a blue one alike; the colour stream tells them apart', async () => {
  const [red, blue] = [square([0.9, 0.1, 0.1]), square([0.1, 0.1, 0.9])];
  const differ = (encoder: Encoder) => {
    const [fr, fb] = [encoder.apply(red), encoder.apply(blue)];
    const diff = tf.max(tf.abs(tf.sub(fr, fb))).dataSync()[0]!;
    tf.dispose([fr, fb]);
    return diff;
  };
  const rgb = await Encoder.create(gridBase, new Rng(5));
  assert.ok(differ(rgb) > 1e-3, 'an RGB CNN should see the colour');
  const blind = await Encoder.create({ ...gridBase, encoderInput: 'chroma' }, new Rng(5));
  assert.ok(differ(blind) < 1e-6, `the chroma CNN saw the hue (features differ by ${differ(blind)})`);
  // The same square moved: the chroma CNN does see shapes and places.
  const moved = square([0.9, 0.1, 0.1], 1, 9);
  const [a, b] = [blind.apply(red), blind.apply(moved)];
  assert.ok(tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]! > 1e-3, 'the chroma CNN should see where the square is');

  const both = await Encoder.create({ ...gridBase, encoderInput: 'chroma', colourStream: 5 }, new Rng(5));
  // The projection reads the CNN's 4 channels and the stream's 5 at each of the 4×4 positions.
  assert.deepEqual(both.namedWeights()['encoder/project/kernel']!.shape, [9, 4]);
  assert.deepEqual(both.grid, [4, 4]);
  assert.ok(differ(both) > 1e-3, 'with the colour stream the features should tell red from blue');
  const [mapsRed, mapsBlue] = [both.convMaps(red), both.convMaps(blue)];
  assert.equal(mapsRed[0]!.shape[3], 4);
  assert.ok(
    tf.max(tf.abs(tf.sub(mapsRed.at(-1)!, mapsBlue.at(-1)!))).dataSync()[0]! < 1e-6,
    'the CNN maps stay hue-blind',
  );
  tf.dispose([red, blue, moved, a, b, ...mapsRed, ...mapsBlue]);
  for (const e of [rgb, blind, both]) e.dispose();
});

test('the colour stream sees one pixel at a time: within a cell of the grid, where a pixel is does not matter', async () => {
  // Only the stream's part of the projection is kept, so the features are the pooled stream's
  // (and the position embedding's, the same for every image).
  const encoder = await Encoder.create({ ...gridBase, encoderInput: 'chroma', colourStream: 6 }, new Rng(8));
  const weights = encoder.namedWeights();
  weights['encoder/project/kernel']!.assign(tf.concat([tf.zeros([4, 4]), tf.randomNormal([6, 4], 0, 1, 'float32', 1)]));
  // Positive stream weights, so that the colour's values stand above the black background's zeros.
  weights['encoder/colour0/kernel']!.assign(tf.randomUniform([3, 6], 0.1, 1, 'float32', 2));
  weights['encoder/colour1/kernel']!.assign(tf.randomUniform([6, 6], 0.1, 1, 'float32', 3));
  // A 2×2 dot and a 1×4 bar of the same colour inside the same 4×4 cell (rows 4–7, columns 8–11).
  const pixels = (cells: [number, number][]) => {
    const p = new Float32Array(16 * 16 * 3);
    for (const [r, c] of cells) p.set([0.2, 0.7, 0.3], (r * 16 + c) * 3);
    return tf.tensor4d(p, [1, 16, 16, 3]);
  };
  const dot = pixels([
    [4, 8],
    [4, 9],
    [5, 8],
    [5, 9],
  ]);
  const bar = pixels([
    [7, 8],
    [7, 9],
    [7, 10],
    [7, 11],
  ]);
  const elsewhere = pixels([[12, 1]]);
  const [fd, fb, fe] = [encoder.apply(dot), encoder.apply(bar), encoder.apply(elsewhere)];
  assert.ok(tf.max(tf.abs(tf.sub(fd, fb))).dataSync()[0]! < 1e-6, 'dot and bar in one cell should pool alike');
  assert.ok(tf.max(tf.abs(tf.sub(fd, fe))).dataSync()[0]! > 1e-4, 'another cell should differ');
  tf.dispose([dot, bar, elsewhere, fd, fb, fe]);
  encoder.dispose();
});

test('colourStreamPool 2: the stream reads each 2×2 square of pixels averaged, into the same grid; other sides are refused', async () => {
  const config = { ...gridBase, encoderInput: 'chroma' as const, colourStream: 5 };
  const [each, pooled] = [
    await Encoder.create(config, new Rng(4)),
    await Encoder.create({ ...config, colourStreamPool: 2 }, new Rng(4)),
  ];
  const rng = new Rng(6);
  const values = Float32Array.from({ length: 2 * 16 * 16 * 3 }, () => rng.next());
  // The same image with every 2×2 square replaced by its average: what the pooled stream reads.
  const blocky = values.slice();
  for (let b = 0; b < 2; b++)
    for (let y = 0; y < 16; y += 2)
      for (let x = 0; x < 16; x += 2)
        for (let ch = 0; ch < 3; ch++) {
          const at = (dy: number, dx: number) => ((b * 16 + y + dy) * 16 + x + dx) * 3 + ch;
          const mean = (values[at(0, 0)]! + values[at(0, 1)]! + values[at(1, 0)]! + values[at(1, 1)]!) / 4;
          for (const [dy, dx] of [
            [0, 0],
            [0, 1],
            [1, 0],
            [1, 1],
          ] as const)
            blocky[at(dy, dx)] = mean;
        }
  // Only the stream's part of the projection is kept, so the CNN (which reads the unaveraged image) drops out.
  for (const e of [each, pooled]) {
    const w = e.namedWeights();
    w['encoder/project/kernel']!.assign(tf.concat([tf.zeros([4, 4]), tf.randomNormal([5, 4], 0, 1, 'float32', 1)]));
  }
  const image = tf.tensor4d(values, [2, 16, 16, 3]);
  const averaged = tf.tensor4d(blocky, [2, 16, 16, 3]);
  const [fp, fe, fr] = [pooled.apply(image), each.apply(averaged), each.apply(image)];
  assert.deepEqual(fp.shape, [2, 16, 4], 'the same 4 × 4 grid');
  assert.ok(
    tf.max(tf.abs(tf.sub(fp, fe))).dataSync()[0]! < 1e-5,
    'pooled stream = the per-pixel stream on the averaged image',
  );
  assert.ok(tf.max(tf.abs(tf.sub(fp, fr))).dataSync()[0]! > 1e-4, 'and not the per-pixel stream on the image itself');
  tf.dispose([image, averaged, fp, fe, fr]);
  each.dispose();
  pooled.dispose();
  // Two blocks make 4-pixel cells: 1, 2 and 4 go; 3 (not a power of two) and 8 (beyond a cell) are refused.
  for (const colourStreamPool of [3, 8]) {
    await assert.rejects(
      Encoder.create({ ...config, colourStreamPool }, new Rng(1)),
      (e: Error) => e instanceof ConfigError && /colourStreamPool/.test(e.message),
    );
  }
});

test('a model with the chroma input and a colour stream trains, saves and loads; one saved before them loads as RGB without a stream', async () => {
  const data = await makeTinyDataset();
  const work = await mkdtemp(join(tmpdir(), 'captioner-encoder-'));
  try {
    const dir = await trainTinyModel(data.dir, 3, {
      encoderInput: 'chroma',
      colourStream: 4,
      encoderPooling: 'grid',
      featureInput: 'attention',
      out: join(work, 'chroma'),
    });
    const { model } = await loadModel(dir);
    assert.equal(model.config.encoderInput, 'chroma');
    assert.equal(model.config.colourStream, 4);
    assert.ok(model.encoder.namedWeights()['encoder/colour1/kernel'], 'the colour stream should be saved and loaded');
    model.dispose();

    const oldDir = await trainTinyModel(data.dir, 1, { out: join(work, 'old') });
    const { dir: ckpt } = await readCheckpointConfig(oldDir);
    const file = join(ckpt, 'config.json');
    const saved = JSON.parse(await readFile(file, 'utf8'));
    delete saved.model.encoderInput;
    delete saved.model.colourStream;
    delete saved.model.attentionQuery;
    delete saved.model.colourStreamPool;
    await writeFile(file, JSON.stringify(saved));
    const { model: old } = await loadModel(oldDir);
    assert.equal(old.config.encoderInput, 'rgb');
    assert.equal(old.config.colourStream, 0);
    assert.equal(old.config.colourStreamPool, 1);
    assert.equal(old.config.attentionQuery, 'previous-state', 'a model saved before attentionQuery asks as it did');
    old.dispose();
  } finally {
    await rm(work, { recursive: true, force: true });
  }
});

test('a backbone with the chroma input or a colour stream is refused, naming the keys', () => {
  for (const extra of [{ encoderInput: 'chroma' as const }, { colourStream: 4 }]) {
    assert.throws(
      () => checkModelConfig({ ...MODEL_DEFAULTS, backbone: 'some/model.json', ...extra }),
      /encoderInput "(chroma|rgb)" and colourStream \d+ with backbone some\/model\.json/,
    );
  }
});
