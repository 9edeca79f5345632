/**
 * Exposure-bias measurements (eval/exposure.ts): the bookkeeping, decoding after a forced prefix,
 * the per-position curves against the training loss, and recovery on a model that captions
 * exactly.
 */
import assert from 'node:assert/strict';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { makeExamples, orderedBatches } from '../../model/data/batch.ts';
import { ImageCache, readManifest, type DatasetImage } from '../../model/data/dataset.ts';
import { greedyDecode } from '../../model/decode/decode.ts';
import { loadModel } from '../../model/io/load.ts';
import { Captioner, MODEL_DEFAULTS } from '../../model/nn/captioner.ts';
import { END, START, Vocabulary } from '../../model/text/vocab.ts';
import { Trainer } from '../../model/train/step.ts';
import type { Scene } from '../../data-scripts/shapes/semantics.ts';
import { PositionTally, followedReference, measureExposure, recovered, runnerUp } from '../../eval/exposure.ts';
import { exposureCharts } from '../../eval/report.ts';
import { formatExposure } from '../../cli/commands/eval.ts';
import { runEvaluation } from '../../eval/evaluate.ts';
import { makeTinyDataset } from '../helpers/tiny-data.ts';
import { TINY_MODEL, tinyConfig, trainTinyModel } from '../helpers/tiny-model.ts';
import { setupBackend } from '../helpers/tf.ts';

const tf = await setupBackend();
let data: string;
let trained: string;
const cleanup: string[] = [];

before(async () => {
  data = (await makeTinyDataset()).dir;
  // Overfit as in test/model/train/trainer.test.ts: every training caption comes out exactly.
  trained = await trainTinyModel(data, 250, { featureInput: 'every-step', learningRate: 0.01, familiarityImages: 0 });
  cleanup.push(data, trained);
});
after(async () => {
  for (const dir of cleanup) await rm(dir, { recursive: true, force: true });
});

test('bookkeeping: per-position means, the reference a caption follows, the runner-up word, recovery', () => {
  const tally = new PositionTally();
  tally.add(1, 0.5, true);
  tally.add(1, 1.5, false);
  tally.add(3, 2, true);
  assert.deepEqual(tally.figures(), [
    { position: 1, tokens: 2, loss: 1, accuracy: 0.5 },
    { position: 3, tokens: 1, loss: 2, accuracy: 1 },
  ]);
  assert.deepEqual(tally.overall(), { loss: 4 / 3, accuracy: 2 / 3 });

  // The longest common prefix wins; then the most positions agreeing; then the first.
  assert.equal(
    followedReference(
      [5, 6, 7],
      [
        [5, 9, 7],
        [5, 6, 8],
        [4, 6, 7],
      ],
    ),
    1,
  );
  assert.equal(
    followedReference(
      [5, 6, 7],
      [
        [5, 9, 9],
        [5, 9, 7],
      ],
    ),
    1,
  );
  assert.equal(followedReference([5, 6], [[5], [5]]), 0);

  // Special tokens (0–3) and the word itself are never the wrong word.
  assert.equal(runnerUp([9, 9, 9, 9, 1, 3, 2], 5), 6);
  assert.equal(runnerUp([0, 0, 0, 0, 1, 3, 2], 4), 5);

  const truth: Scene = {
    objects: [
      { shape: 'circle', colour: 'red', size: 'medium' },
      { shape: 'square', colour: 'blue', size: 'small' },
    ],
    relations: [{ subject: 0, relation: 'left of', object: 1 }],
  };
  const words = (s: string) => s.split(' ');
  // A wrong colour, and every word after it right: recovered once the word is put back.
  assert.deepEqual(recovered(words('a green circle left of a small blue square'), 2, 'red', truth), {
    parsable: true,
    exact: true,
  });
  // A paraphrase forced in: exact as written.
  assert.deepEqual(recovered(words('one red circle left of a small blue square'), 1, 'a', truth), {
    parsable: true,
    exact: true,
  });
  // Thrown off: the rest goes wrong (a second error after the forced one) …
  assert.deepEqual(recovered(words('a green circle left of a small red square'), 2, 'red', truth), {
    parsable: true,
    exact: false,
  });
  // … or stops making sense.
  assert.deepEqual(recovered(words('a red left circle of a small blue square'), 3, 'circle', truth), {
    parsable: false,
    exact: false,
  });
});

test("greedy decoding after a forced prefix: the forced words first, then the best word at every step, log-probabilities the model's", async () => {
  const { model } = await loadModel(trained);
  const manifest = await readManifest(data);
  const images = manifest.images.filter((i) => i.split === 'train');
  const cache = await ImageCache.load(data, images, model.config.imageSize);
  const imgs = tf.tensor4d(cache.batch(images.map((i) => i.id)), [images.length, 16, 16, 3]);
  const plain = greedyDecode(model, imgs);
  // Forcing the model's own words changes nothing.
  assert.deepEqual(
    greedyDecode(
      model,
      imgs,
      undefined,
      plain.map((c) => c.ids.slice(0, 2)),
    ),
    plain,
  );
  // Forcing another word: the caption starts with it, and every later word is the argmax of a
  // teacher-forced pass over the caption itself.
  const wrong = model.vocab.id('green');
  const forced = images.map((_, b) => (b % 2 ? [plain[b]!.ids[0]!, wrong] : [wrong]));
  const tensors = tf.memory().numTensors;
  const decoded = greedyDecode(model, imgs, undefined, forced);
  assert.equal(tf.memory().numTensors, tensors, 'no tensor leaked');
  for (const [b, caption] of decoded.entries()) {
    assert.deepEqual(caption.ids.slice(0, forced[b]!.length), forced[b], `image ${b}`);
    const ids = [START, ...caption.ids, END];
    const toks = tf.tensor2d([ids], [1, ids.length], 'int32');
    const logits = model.forward(imgs.slice(b, 1), toks, { teacherProbability: 1, feed: 'argmax' }).logits;
    const logProbs = tf.logSoftmax(logits);
    const best = (tf.argMax(logits, 2).arraySync() as number[][])[0]!;
    const lp = (logProbs.arraySync() as number[][][])[0]!;
    for (let t = forced[b]!.length; t < ids.length - 1; t++)
      assert.equal(best[t], ids[t + 1], `image ${b}, step ${t + 1}: the greedy word`);
    const total = ids.slice(1).reduce((sum, id, t) => sum + lp[t]![id]!, 0);
    assert.ok(Math.abs(total - caption.logProb) < 1e-4, `log p ${caption.logProb} vs ${total}`);
    tf.dispose([toks, logits, logProbs]);
  }
  imgs.dispose();
  model.dispose();
});

test('per-position figures: teacher-forced and free-running agree at position 1, teacher-forced is the training loss, and without words fed they agree everywhere', async () => {
  const { model } = await loadModel(trained);
  const manifest = await readManifest(data);
  const images = manifest.images.filter((i) => i.split === 'train');
  const figures = await measureExposure(model, data, images, { batchSize: 4 });
  assert.equal(figures.images, 6);
  assert.equal(figures.recovery, null, 'no scenes: no recovery');
  assert.deepEqual(figures.teacherForced[0], figures.freeRunning[0]);
  // "a COLOUR SHAPE" <end>: four positions, one target each per image.
  assert.deepEqual(
    figures.teacherForced.map((p) => [p.position, p.tokens]),
    [
      [1, 6],
      [2, 6],
      [3, 6],
      [4, 6],
    ],
  );
  // The token-weighted mean of the teacher-forced curve is the validation loss per token
  // (maskedSequenceLoss, the training loss) over the same captions.
  const trainer = new Trainer(model, await tinyConfig(data));
  const cache = await ImageCache.load(data, images, model.config.imageSize);
  const val = trainer.evaluate(cache, orderedBatches(makeExamples(images, model.vocab, model.config.maxLength), 4));
  assert.ok(Math.abs(figures.overall.teacherForced.loss - val.lossPerToken) < 1e-4);
  // The overfit model says every caption right, so fed its own words it reads the true ones.
  assert.equal(figures.overall.freeRunning.accuracy, 1);
  model.dispose();

  // A decoder that reads no words cannot tell the two apart.
  const vocab = Vocabulary.build(
    images.flatMap((i) => i.captions),
    1,
  );
  const blind = await Captioner.create({ ...MODEL_DEFAULTS, ...TINY_MODEL, decoderInput: 'none' }, vocab, 3);
  const same = await measureExposure(blind, data, images, { batchSize: 6 });
  assert.deepEqual(same.freeRunning, same.teacherForced);
  blind.dispose();
});

test('recovery on images with scenes: every exact caption tried at each of its positions, figures into the report and the command line', async () => {
  const { model } = await loadModel(trained);
  const manifest = await readManifest(data);
  // The tiny captions are sentences of the shapes grammar: give the images their scenes.
  const images: DatasetImage[] = manifest.images
    .filter((i) => i.split === 'train')
    .map((img) => {
      const [, colour, shape] = img.captions[0]!.split(' ');
      return { ...img, scene: { objects: [{ shape, colour, size: 'medium' }], relations: [] } };
    });
  const figures = await measureExposure(model, data, images, { batchSize: 4 });
  const recovery = figures.recovery!;
  assert.equal(recovery.exactImages, 6);
  assert.deepEqual(
    recovery.positions.map((p) => [p.position, p.captions]),
    [
      [1, 6],
      [2, 6],
      [3, 6],
    ],
  );
  for (const p of recovery.positions) assert.ok(p.exact >= 0 && p.exact <= 1 && p.parsable >= 0 && p.parsable <= 1);
  const view = exposureCharts(figures);
  assert.deepEqual(
    view.charts.map((c) => c.title),
    [
      'Loss per position: teacher-forced vs free-running',
      'Accuracy per position: teacher-forced vs free-running',
      'Recovery after a wrong word at position k',
    ],
  );
  assert.match(
    formatExposure(figures),
    /^exposure bias: loss per token \d+\.\d{4} teacher-forced, .*\nrecovery after a wrong word at position k, of 6 exact captions: k=1 \d+\.\d% \(6\), k=2 .*, k=3 .*\n$/,
  );
  model.dispose();
});

test('runEvaluation with exposure: the figures in metrics.json and a section of the report; without it, neither', async () => {
  const outDir = join(trained, 'eval-exposure');
  const result = await runEvaluation({
    modelDir: trained,
    dataDir: data,
    split: 'val',
    beamWidth: 1,
    batchSize: 4,
    outDir,
    galleryCount: 1,
    exposure: true,
  });
  const metrics = JSON.parse(await readFile(result.metricsFile, 'utf8')) as {
    splits: Record<string, { exposure?: { images: number; teacherForced: unknown[]; recovery: unknown } }>;
  };
  const exposure = metrics.splits.val!.exposure!;
  assert.equal(exposure.images, 2);
  assert.equal(exposure.teacherForced.length, 4);
  assert.equal(exposure.recovery, null);
  const html = await readFile(result.reportFile, 'utf8');
  assert.match(html, /<h2 id="exposure">Exposure bias<\/h2>/);
  assert.match(html, /aria-label="Loss per position: teacher-forced vs free-running"/);

  const plain = await runEvaluation({
    modelDir: trained,
    dataDir: data,
    split: 'val',
    beamWidth: 1,
    batchSize: 4,
    outDir: outDir + '-plain',
    galleryCount: 1,
  });
  const none = JSON.parse(await readFile(plain.metricsFile, 'utf8')) as typeof metrics;
  assert.equal(none.splits.val!.exposure, undefined);
  assert.doesNotMatch(await readFile(plain.reportFile, 'utf8'), /Exposure bias/);
});
