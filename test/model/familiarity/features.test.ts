/**
 * Familiarity's features: the chroma statistics the default recipe adds to the first block's
 * moments, computed here by hand on images made for it; the recipes' widths; and a calibration of
 * an earlier recipe (first-block-moments, written before the chroma was added) still scores with
 * its own features once read back, and a file of an unknown version or recipe fails clearly.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  DEFAULT_FEATURE_RECIPE,
  VIVID_CHROMA,
  chromaStatistics,
  familiarityDims,
  familiarityFeatures,
} from '../../../model/familiarity/features.ts';
import { FamiliarityModel } from '../../../model/familiarity/familiarity.ts';
import { FAMILIARITY_FILE, readFamiliarity, writeFamiliarity } from '../../../model/familiarity/store.ts';
import { Encoder } from '../../../model/nn/encoder.ts';
import { Rng } from '../../../model/util/rng.ts';
import { setupBackend } from '../../helpers/tf.ts';

const tf = await setupBackend();

/** A 16 × 16 image of `background` (RGB in [0, 1]) with a `side` × `side` square of `fill` at the top left. */
function picture(background: number[], fill: number[], side: number): Float32Array {
  const px = new Float32Array(16 * 16 * 3);
  for (let y = 0; y < 16; y++)
    for (let x = 0; x < 16; x++) px.set(x < side && y < side ? fill : background, (y * 16 + x) * 3);
  return px;
}

test('chromaStatistics: the mean chroma, the share of vivid pixels and the most vivid 4 × 4 patch', () => {
  const images = new Float32Array(3 * 16 * 16 * 3);
  images.set(picture([0.5, 0.5, 0.5], [0.5, 0.5, 0.5], 0), 0); // grey: no chroma at all
  images.set(picture([0.8, 0.75, 0.7], [0.9, 0.1, 0.1], 8), 16 * 16 * 3); // pale background, a red square
  images.set(picture([0.2, 0.2, 0.2], [0.2, 0.2, 0.2 + VIVID_CHROMA], 6), 2 * 16 * 16 * 3); // barely tinted: not vivid
  const t = tf.tensor4d(images, [3, 16, 16, 3]);
  const stats = chromaStatistics(t);
  t.dispose();
  const rows = [0, 1, 2].map((i) => Array.from(stats.subarray(i * 3, i * 3 + 3)));
  const close = (a: number[], b: number[], what: string) =>
    a.forEach((v, i) => assert.ok(Math.abs(v - b[i]!) < 1e-5, `${what}: ${a.join(', ')} vs ${b.join(', ')}`));
  close(rows[0]!, [0, 0, 0], 'grey');
  // 64 of 256 pixels of chroma 0.8, the rest 0.1; the top-left patches are all red.
  close(rows[1]!, [(64 * 0.8 + 192 * 0.1) / 256, 64 / 256, 0.8], 'a red square');
  // 36 pixels of chroma exactly VIVID_CHROMA: not above it; the 4 × 4 patch at the corner is all tinted.
  close(rows[2]!, [(36 * VIVID_CHROMA) / 256, 0, VIVID_CHROMA], 'a tint');
});

test('recipes: the default is the first block’s moments and the three chroma statistics', async () => {
  const encoder = await Encoder.create(
    {
      imageSize: 16,
      encoderChannels: [4, 6],
      featureSize: 8,
      encoderPooling: 'grid',
      encoderInput: 'rgb',
      colourStream: 0,
      colourStreamPool: 1,
      backbone: null,
      backboneTrainable: false,
    },
    new Rng(1),
  );
  try {
    assert.equal(DEFAULT_FEATURE_RECIPE, 'first-block-moments-chroma');
    assert.equal(familiarityDims(encoder, 'first-block-moments'), 2 * 4);
    assert.equal(familiarityDims(encoder, 'first-block-moments-chroma'), 2 * 4 + 3);
    assert.equal(familiarityDims(encoder, 'block-moments'), 2 * 4 + 2 * 6);
    const t = tf.tensor4d(picture([0.8, 0.75, 0.7], [0.9, 0.1, 0.1], 8), [1, 16, 16, 3]);
    const before = tf.memory().numTensors;
    const moments = familiarityFeatures(encoder, t, 'first-block-moments');
    const withChroma = familiarityFeatures(encoder, t, 'first-block-moments-chroma');
    assert.equal(tf.memory().numTensors, before, 'no tensor left behind');
    t.dispose();
    assert.deepEqual(Array.from(withChroma.subarray(0, 8)), Array.from(moments), 'the moments first, unchanged');
    assert.ok(Math.abs(withChroma[10]! - 0.8) < 1e-5, 'then the chroma: the red patch last');
  } finally {
    encoder.dispose();
  }
});

test('a calibration of the earlier recipe (first-block-moments) loads and scores with its own features', async () => {
  const encoder = await Encoder.create(
    {
      imageSize: 16,
      encoderChannels: [4],
      featureSize: 8,
      encoderPooling: 'average',
      encoderInput: 'rgb',
      colourStream: 0,
      colourStreamPool: 1,
      backbone: null,
      backboneTrainable: false,
    },
    new Rng(2),
  );
  const dir = await mkdtemp(join(tmpdir(), 'captioner-familiarity-'));
  try {
    const dims = 8;
    const identity = Float64Array.from({ length: dims * dims }, (_, k) => (k % (dims + 1) === 0 ? 1 : 0));
    await writeFamiliarity(dir, {
      features: 'first-block-moments',
      dims,
      means: new Float64Array(dims),
      whitening: identity,
      shrinkage: 0,
      threshold: 1e9,
      calibration: {
        data: 'old',
        fitSplit: 'train',
        fitImages: 2,
        valSplit: 'val',
        valImages: 1,
        targetFamiliar: 0.975,
        valFamiliar: 1,
      },
    });
    const params = await readFamiliarity(dir);
    assert.equal(params?.features, 'first-block-moments');
    const t = tf.tensor4d(picture([0.8, 0.75, 0.7], [0.9, 0.1, 0.1], 8), [1, 16, 16, 3]);
    const [judged] = new FamiliarityModel(params!).assess(encoder, t);
    // With the identity whitening about 0, the score is the length of the moments vector.
    const rows = familiarityFeatures(encoder, t, 'first-block-moments');
    t.dispose();
    assert.ok(Math.abs(judged!.score - Math.hypot(...rows)) < 1e-4);
    assert.equal(judged!.familiar, true);
    // A file of a version or a recipe this captioner does not know fails, naming the file and what to do.
    const file = join(dir, FAMILIARITY_FILE);
    const json = JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>;
    await writeFile(file, JSON.stringify({ ...json, version: 2 }));
    await assert.rejects(readFamiliarity(dir), (err: Error) => {
      assert.ok(err.message.startsWith(file));
      assert.match(err.message, /version 2, this captioner reads version 1: recalibrate/);
      return true;
    });
    await writeFile(file, JSON.stringify({ ...json, features: 'some-later-recipe' }));
    await assert.rejects(
      readFamiliarity(dir),
      /"features" must be one of .*recalibrate with captioner calibrate\), got "some-later-recipe"/,
    );
  } finally {
    encoder.dispose();
    await rm(dir, { recursive: true, force: true });
  }
});
