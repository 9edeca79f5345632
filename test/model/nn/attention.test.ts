/**
 * The attention decoder (featureInput 'attention' over an encoderPooling 'grid' map): the two
 * keys go together, it learns, it saves and loads, and it decodes like any other model.
 * (Its gradients are checked against finite differences in gradients.test.ts, and that it leaks
 * no tensor in train.test.ts.)
 */
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { after, before, test } from 'node:test';
import { Captioner, MODEL_DEFAULTS } from '../../../model/nn/captioner.ts';
import { ImageCache, readManifest } from '../../../model/data/dataset.ts';
import { beamSearch, greedyDecode } from '../../../model/decode/decode.ts';
import { loadModel } from '../../../model/io/load.ts';
import { ptbTokenize } from '../../../model/text/tokenize.ts';
import { train } from '../../../model/train/trainer.ts';
import { Vocabulary } from '../../../model/text/vocab.ts';
import { makeTinyDataset } from '../../helpers/tiny-data.ts';
import { TINY_MODEL, tinyConfig } from '../../helpers/tiny-model.ts';
import { setupBackend } from '../../helpers/tf.ts';

const tf = await setupBackend();
const ATTENTION = { encoderPooling: 'grid', featureInput: 'attention' } as const;
let data: string;
const cleanup: string[] = [];

before(async () => {
  data = (await makeTinyDataset()).dir;
  cleanup.push(data);
});
after(async () => {
  for (const dir of cleanup) await rm(dir, { recursive: true, force: true });
});

test('attention and a grid go together: either one alone is refused, naming both keys', async () => {
  await assert.rejects(
    tinyConfig(data, { featureInput: 'attention' }),
    /featureInput "attention" with encoderPooling "average": .*needs encoderPooling "grid"/,
  );
  await assert.rejects(
    tinyConfig(data, { encoderPooling: 'grid', featureInput: 'every-step' }),
    /"grid" needs "attention"/,
  );
  const vocab = Vocabulary.build(['a red circle'], 1);
  await assert.rejects(
    Captioner.create({ ...MODEL_DEFAULTS, ...TINY_MODEL, encoderPooling: 'grid' }, vocab, 1),
    /needs "attention"/,
  );
});

test('an attention model learns six tiny images exactly, and decodes the same after saving and loading', async () => {
  const config = await tinyConfig(data, { ...ATTENTION, epochs: 250, learningRate: 0.01 });
  cleanup.push(config.out);
  const result = await train(config);
  assert.ok(result.lastLoss !== null && result.lastLoss < 0.05, `final loss per token ${result.lastLoss}`);

  const { model } = await loadModel(config.out, 'latest');
  assert.equal(model.config.featureInput, 'attention');
  const manifest = await readManifest(data);
  const images = manifest.images.filter((i) => i.split === 'train');
  const cache = await ImageCache.load(data, images, model.config.imageSize);
  const batch = tf.tensor4d(cache.batch(images.map((i) => i.id)), [images.length, 16, 16, 3]);
  // 16 px through two blocks: a 4 × 4 grid of features, one per position.
  const features = model.encode(batch);
  assert.deepEqual(features.shape, [images.length, 16, TINY_MODEL.featureSize]);
  features.dispose();
  const greedy = greedyDecode(model, batch);
  images.forEach((img, i) =>
    assert.equal(greedy[i]!.words.join(' '), ptbTokenize(img.captions[0]!).join(' '), `image ${img.id}`),
  );
  // Beam search tiles the grid per hypothesis; width 1 follows greedy exactly.
  const beam1 = beamSearch(model, batch, { beamWidth: 1 });
  assert.deepEqual(
    beam1.map((h) => h[0]!.tokens),
    greedy.map((c) => c.ids),
  );
  const beam3 = beamSearch(model, batch, { beamWidth: 3 });
  assert.deepEqual(
    beam3.map((h) => h[0]!.tokens),
    greedy.map((c) => c.ids),
  );
  batch.dispose();
  model.dispose();
});
