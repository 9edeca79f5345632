/** The encoder's pooling: averaged features forget where things are, flattened ones keep it. */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { readCheckpointConfig } from '../../../model/io/checkpoint.ts';
import { Encoder, type EncoderConfig } from '../../../model/nn/encoder.ts';
import { loadModel } from '../../../model/io/load.ts';
import { Rng } from '../../../model/util/rng.ts';
import { makeTinyDataset } from '../../helpers/tiny-data.ts';
import { trainTinyModel } from '../../helpers/tiny-model.ts';
import { setupBackend } from '../../helpers/tf.ts';

const tf = await setupBackend();

const base: EncoderConfig = {
  imageSize: 10,
  encoderChannels: [3],
  featureSize: 4,
  encoderPooling: 'average',
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
