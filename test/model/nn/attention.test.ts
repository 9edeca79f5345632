/**
 * The attention decoder (featureInput 'attention' over an encoderPooling 'grid' map): the two
 * keys go together; each step exposes the weights it attended with, a softmax over the grid
 * that is what the step mixed; a model that can see the image only through attention learns
 * to look at the cell that decides the word; it learns, saves and loads, and decodes like any
 * other model. (Its gradients are checked against finite differences in gradients.test.ts, and
 * that it leaks no tensor in train/trainer.test.ts.)
 */
import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { after, before, test } from 'node:test';
import type * as TF from '@tensorflow/tfjs';
import { padBatch } from '../../../model/data/batch.ts';
import { Captioner, MODEL_DEFAULTS, type ModelConfig } from '../../../model/nn/captioner.ts';
import { ImageCache, readManifest } from '../../../model/data/dataset.ts';
import { beamSearch, captionImages, greedyDecode } from '../../../model/decode/decode.ts';
import { loadModel } from '../../../model/io/load.ts';
import { ptbTokenize } from '../../../model/text/tokenize.ts';
import { Trainer } from '../../../model/train/step.ts';
import { TRAIN_DEFAULTS, type TrainConfig } from '../../../model/train/config.ts';
import { train } from '../../../model/train/trainer.ts';
import { SPECIAL_TOKENS, START, Vocabulary } from '../../../model/text/vocab.ts';
import { Rng } from '../../../model/util/rng.ts';
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

/** The tiny attention model: 16-pixel images through two blocks, a 4 × 4 grid of 16 positions. */
const ATTENTION_MODEL: ModelConfig = { ...MODEL_DEFAULTS, ...TINY_MODEL, ...ATTENTION };
const COLOURS = { red: [1, 0, 0], green: [0, 1, 0], blue: [0, 0, 1], yellow: [1, 1, 0] } as const;
type Colour = keyof typeof COLOURS;
const COLOUR_WORDS = Object.keys(COLOURS) as Colour[];

/** Values of a tensor as nested arrays, disposing it. */
function read<T>(t: TF.Tensor): T {
  const values = t.arraySync() as T;
  t.dispose();
  return values;
}

const sum = (xs: readonly number[]) => xs.reduce((s, x) => s + x, 0);
const mean = (xs: readonly number[]) => sum(xs) / xs.length;

/** Three random images, and a new tiny attention model with colour words. */
async function randomSetup(): Promise<{ model: Captioner; images: TF.Tensor4D }> {
  const model = await Captioner.create(ATTENTION_MODEL, new Vocabulary([...SPECIAL_TOKENS, ...COLOUR_WORDS]), 5);
  const rng = new Rng(9);
  const images = tf.tensor4d(
    Float32Array.from({ length: 3 * 16 * 16 * 3 }, () => rng.next()),
    [3, 16, 16, 3],
  );
  return { model, images };
}

/**
 * Two decoder steps (<start>, then one word per image), as plain numbers: the grid [batch,
 * positions, F], the first step's query h·W_q [batch, F], attention weights and logits, its new
 * state's h, and the second step's attention weights. Leaves no tensor behind.
 */
function twoSteps(model: Captioner, images: TF.Tensor4D) {
  const batch = images.shape[0];
  const tensors = tf.tidy(() => {
    const features = model.encode(images) as TF.Tensor3D; // [batch, positions, F]
    const state = model.initialState(features);
    const out = model.step(tf.fill([batch], START, 'int32') as TF.Tensor1D, state, features);
    const second = model.step(tf.tensor1d([4, 5, 6], 'int32'), out.state, features);
    const query = tf.matMul(state.h, model.namedWeights()['decoder/attention/query']!);
    return [features, query, out.attention!, out.logits, out.state.h, second.attention!];
  });
  const [grid, query, weights, logits, nextH, secondWeights] = tensors.map((t) => read<number[][]>(t));
  return {
    grid: grid as unknown as number[][][],
    query: query!,
    weights: weights!,
    logits: logits!,
    nextH: nextH!,
    secondWeights: secondWeights!,
  };
}

test("each step's attention weights are the softmax over the grid's positions of q·feature / √F: rows sum to 1", async () => {
  const { model, images } = await randomSetup();
  const before = tf.memory().numTensors;
  const { grid, query, weights, secondWeights } = twoSteps(model, images);
  assert.equal(tf.memory().numTensors, before, 'the steps leave no tensor behind');
  assert.deepEqual([weights.length, weights[0]!.length], [3, 16], '[batch, positions]');
  const F = TINY_MODEL.featureSize;
  weights.forEach((row, b) => {
    assert.ok(Math.abs(sum(row) - 1) < 1e-5, `row ${b} sums to ${sum(row)}`);
    assert.ok(
      row.every((w) => w >= 0),
      `row ${b} has a negative weight`,
    );
    // The softmax worked out here in plain numbers, from the query the state asked.
    const scores = grid[b]!.map((f) => sum(f.map((v, i) => v * query[b]![i]!)) / Math.sqrt(F));
    const exps = scores.map((v) => Math.exp(v - Math.max(...scores)));
    exps.forEach((e, p) => assert.ok(Math.abs(e / sum(exps) - row[p]!) < 1e-5, `image ${b}, position ${p}`));
    // The next step asks with the new state, so it looks elsewhere.
    assert.ok(
      secondWeights[b]!.some((w, p) => Math.abs(w - row[p]!) > 1e-4),
      `image ${b}: the second step's weights equal the first's`,
    );
  });
  images.dispose();
  model.dispose();
});

test('the weights a step returns are the ones it read the word with: [h′, Σ_p w_p·feature_p]·W_out + b_out are its logits', async () => {
  const { model, images } = await randomSetup();
  const { grid, weights, logits, nextH } = twoSteps(model, images);
  const F = TINY_MODEL.featureSize;
  const recomputed = read<number[][]>(
    tf.tidy(() => {
      const w = model.namedWeights();
      const mix = tf.tensor3d(weights.map((row) => [row])); // [batch, 1, positions]
      const context = tf.matMul(mix, tf.tensor3d(grid)).reshape([weights.length, F]); // [batch, F]
      const readout = tf.concat([tf.tensor2d(nextH), context], 1); // [batch, H + F]
      return tf.add(tf.matMul(readout, w['decoder/output/kernel']!), w['decoder/output/bias']!);
    }),
  );
  recomputed.forEach((row, b) =>
    row.forEach((v, j) => assert.ok(Math.abs(v - logits[b]![j]!) < 1e-4, `logit ${b}, ${j}: ${v} vs ${logits[b]![j]}`)),
  );
  // Without attention there are no weights to return.
  const plain = await Captioner.create(
    { ...ATTENTION_MODEL, encoderPooling: 'average', featureInput: 'init' },
    model.vocab,
    5,
  );
  const none = tf.tidy(() => {
    const features = plain.encode(images);
    const step = plain.step(tf.fill([3], START, 'int32') as TF.Tensor1D, plain.initialState(features), features);
    return step.attention === undefined;
  });
  assert.ok(none, 'a model without attention returns no weights');
  images.dispose();
  plain.dispose();
  model.dispose();
});

test("attentionQuery 'new-state': the word a step reads steers where it looks, and the look it reads the word with goes on into the next step", async () => {
  const vocab = new Vocabulary([...SPECIAL_TOKENS, ...COLOUR_WORDS]);
  const rng = new Rng(9);
  const images = tf.tensor4d(
    Float32Array.from({ length: 3 * 16 * 16 * 3 }, () => rng.next()),
    [3, 16, 16, 3],
  );
  /** The first step's weights after <start>, then the second step's for two different words fed. */
  const looks = (model: Captioner) =>
    tf.tidy(() => {
      const features = model.encode(images) as TF.Tensor3D;
      const first = model.step(tf.fill([3], START, 'int32') as TF.Tensor1D, model.initialState(features), features);
      const fed = (word: number) => model.step(tf.fill([3], word, 'int32') as TF.Tensor1D, first.state, features);
      const [red, blue] = [fed(4), fed(6)];
      // the context the step carries on is the one its weights mix: Σ_p w_p·feature_p
      const mixed = tf.reshape(tf.matMul(tf.expandDims(red.attention!, 1), features), [3, -1]);
      const context = red.state.context;
      const carried = context ? (tf.max(tf.abs(tf.sub(mixed, context))).arraySync() as number) : -1;
      return {
        red: red.attention!.arraySync() as number[][],
        blue: blue.attention!.arraySync() as number[][],
        carried,
      };
    });
  const differ = (a: number[][], b: number[][]) =>
    Math.max(...a.flatMap((row, i) => row.map((w, p) => Math.abs(w - b[i]![p]!))));

  const before = await Captioner.create({ ...ATTENTION_MODEL, attentionQuery: 'previous-state' }, vocab, 5);
  const old = looks(before);
  assert.equal(
    differ(old.red, old.blue),
    0,
    "'previous-state' looks before it reads the word: the same look for either",
  );
  assert.equal(old.carried, -1, "'previous-state' carries no context");
  before.dispose();

  const after = await Captioner.create({ ...ATTENTION_MODEL, attentionQuery: 'new-state' }, vocab, 5);
  const counted = tf.memory().numTensors;
  const now = looks(after);
  assert.equal(tf.memory().numTensors, counted, 'the steps leave no tensor behind');
  assert.ok(differ(now.red, now.blue) > 1e-4, "'new-state' looks after reading the word: another word, another look");
  assert.ok(now.carried >= 0 && now.carried < 1e-5, `the carried context is the step's mix (off by ${now.carried})`);
  after.dispose();
  images.dispose();
});

/**
 * Scenes of 4 × 4 cells of 4 × 4 pixels, one per grid position: every cell a dim colour drawn
 * at random, one cell (the marked one, anywhere) bright and framed in white. The caption is
 * the marked cell's colour.
 */
function markedScenes(rng: Rng, n: number): { pixels: Float32Array; words: Colour[]; marked: number[] } {
  const pixels = new Float32Array(n * 16 * 16 * 3);
  const words: Colour[] = [];
  const marked: number[] = [];
  for (let i = 0; i < n; i++) {
    const key = rng.int(16);
    marked.push(key);
    for (let cell = 0; cell < 16; cell++) {
      const colour = COLOUR_WORDS[rng.int(COLOUR_WORDS.length)]!;
      if (cell === key) words.push(colour);
      const [cy, cx] = [Math.floor(cell / 4) * 4, (cell % 4) * 4];
      for (let y = 0; y < 4; y++) {
        for (let x = 0; x < 4; x++) {
          const frame = cell === key && (y === 0 || y === 3 || x === 0 || x === 3);
          const rgb = frame ? [1, 1, 1] : COLOURS[colour].map((v) => (cell === key ? v : 0.4 * v));
          pixels.set(rgb, ((i * 16 + cy + y) * 16 + cx + x) * 3);
        }
      }
    }
  }
  return { pixels, words, marked };
}

/** The first step's attention weights [n, positions] and words on `scenes`. */
function firstStep(model: Captioner, pixels: Float32Array, n: number): { weights: number[][]; words: string[] } {
  return tf.tidy(() => {
    const features = model.encode(tf.tensor4d(pixels, [n, 16, 16, 3]));
    const out = model.step(tf.fill([n], START, 'int32') as TF.Tensor1D, model.initialState(features), features);
    const ids = out.logits.argMax(1).arraySync() as number[];
    return { weights: out.attention!.arraySync() as number[][], words: ids.map((id) => model.vocab.words[id]!) };
  });
}

test('a model that sees the image only through attention learns to look at the cell that names the word', async () => {
  // The initial state reads the whole grid, so a model could name the colour from it and
  // attend anywhere. Its kernels are held at zero here: the decoder starts from the same
  // state for every image, and attention is its only way to the pixels.
  const vocab = new Vocabulary([...SPECIAL_TOKENS, ...COLOUR_WORDS]);
  const model = await Captioner.create({ ...ATTENTION_MODEL, maxLength: 1 }, vocab, 3);
  const weights = model.namedWeights();
  const cutInitialState = () => {
    for (const name of ['decoder/init_h/kernel', 'decoder/init_c/kernel'])
      weights[name]!.assign(tf.zeros(weights[name]!.shape));
  };
  cutInitialState();
  const config: TrainConfig = {
    ...TRAIN_DEFAULTS,
    ...ATTENTION_MODEL,
    data: '',
    out: '',
    seed: 3,
    learningRate: 0.01,
    samplingSchedule: 'constant',
    samplingK: 1,
  };
  const trainer = new Trainer(model, config);
  const rng = new Rng(103);
  const fresh = markedScenes(new Rng(7), 64);
  const untrained = firstStep(model, fresh.pixels, 64);
  assert.ok(
    untrained.weights.flat().every((w) => Math.abs(w - 1 / 16) < 1e-6),
    'untrained, the query is 0: every position weighs 1/16',
  );

  // 150 steps of 16 scenes: a few seconds with the native kernels.
  const steps = 150;
  for (let step = 0; step < steps; step++) {
    const scenes = markedScenes(rng, 16);
    const batch = padBatch(scenes.words.map((w, i) => ({ imageId: String(i), ids: vocab.encode(w, 1) })));
    trainer.step(scenes.pixels, batch, step, steps);
    cutInitialState();
  }
  const trained = firstStep(model, fresh.pixels, 64);
  const right = trained.words.filter((w, i) => w === fresh.words[i]).length;
  assert.ok(right >= 60, `${right} of 64 new scenes named right`);
  for (const [b, row] of trained.weights.entries())
    assert.ok(Math.abs(row.reduce((s, w) => s + w, 0) - 1) < 1e-5, `scene ${b}: the weights sum to 1`);
  // Focused: the largest weight of a scene averages over 0.8 (1/16 when attention is uniform).
  const focus = mean(trained.weights.map((row) => Math.max(...row)));
  assert.ok(focus > 0.8, `the largest weight averages ${focus}`);
  // … on the marked cell, wherever it is, or on a position next to it. Each position's features
  // come from a receptive field (two 3 × 3 convolutions and poolings: 10 pixels) that reaches 3
  // pixels into the neighbouring cells, so a neighbour sees the marked cell too, and a model is
  // free to read it there. Uniform attention would put 6.25/16 ≈ 0.39 here on average.
  const near = (p: number, cell: number) =>
    Math.abs(Math.floor(p / 4) - Math.floor(cell / 4)) <= 1 && Math.abs((p % 4) - (cell % 4)) <= 1;
  const around = mean(trained.weights.map((row, i) => sum(row.filter((_, p) => near(p, fresh.marked[i]!)))));
  assert.ok(around > 0.9, `${around} of the attention on the marked cell and its neighbours`);
  // Decoding hands back those same weights as the word's map (model/decode/, `attention`).
  const images = tf.tensor4d(fresh.pixels, [64, 16, 16, 3]);
  const decoded = captionImages(model, images, { strategy: 'greedy' });
  images.dispose();
  decoded.forEach((r, i) => {
    assert.deepEqual(r.words, [trained.words[i]]);
    r.attention!.weights[0]!.forEach((w, p) =>
      assert.ok(Math.abs(w - trained.weights[i]![p]!) < 1e-5, `scene ${i}, position ${p}: the decoded map`),
    );
  });
  trainer.optimizer.dispose();
  model.dispose();
});

for (const attentionQuery of ['previous-state', 'new-state'] as const)
  test(`an attention model (${attentionQuery}) learns six tiny images exactly, and decodes the same after saving and loading`, async () => {
    const config = await tinyConfig(data, { ...ATTENTION, attentionQuery, epochs: 250, learningRate: 0.01 });
    cleanup.push(config.out);
    const result = await train(config);
    assert.ok(result.lastLoss !== null && result.lastLoss < 0.05, `final loss per token ${result.lastLoss}`);

    const { model } = await loadModel(config.out, 'latest');
    assert.equal(model.config.featureInput, 'attention');
    assert.equal(model.config.attentionQuery, attentionQuery);
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
