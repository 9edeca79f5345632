import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { Captioner, MODEL_DEFAULTS, type ModelConfig } from '../../../model/nn/captioner.ts';
import type { CellState } from '../../../model/nn/cells.ts';
import {
  DecodeOptionsError,
  beamSearch,
  captionImages,
  greedyDecode,
  type CaptionResult,
  type DecodeOptions,
  type StepModel,
  type StreamEvent,
} from '../../../model/decode/decode.ts';
import { hypothesisScore } from '../../../model/decode/beam.ts';
import { streamCaption } from '../../../model/decode/stream.ts';
import { LanguagePrior } from '../../../model/decode/prior.ts';
import { END, START, Vocabulary } from '../../../model/text/vocab.ts';

tf.env().set('PROD', true);

const CONFIG: ModelConfig = {
  ...MODEL_DEFAULTS,
  imageSize: 16,
  encoderChannels: [4, 8],
  featureSize: 16,
  embeddingSize: 8,
  hiddenSize: 16,
  maxLength: 6,
  minWordCount: 1,
};
const CAPTIONS = [
  'a red circle',
  'a blue square',
  'a green triangle',
  'two small yellow circles on grass',
  'the dog runs',
];

async function randomModel(seed = 3, config: Partial<ModelConfig> = {}): Promise<Captioner> {
  return Captioner.create({ ...CONFIG, ...config }, Vocabulary.build(CAPTIONS, 1), seed);
}

function randomImages(n: number, seed = 1): tf.Tensor4D {
  return tf.randomUniform([n, CONFIG.imageSize, CONFIG.imageSize, 3], 0, 1, 'float32', seed) as tf.Tensor4D;
}

/** A model without weights: p(next word | words so far) comes from a table; unlisted prefixes end at once. */
class ToyModel implements StepModel {
  readonly vocab = new Vocabulary(['<pad>', '<start>', '<end>', '<unk>', 'a', 'b', 'c']);
  readonly prefixes: number[][] = [];
  steps = 0;
  constructor(
    private readonly table: Record<string, Record<string, number>>,
    readonly config = { maxLength: 5 },
  ) {}
  private node(prefix: number[]): number {
    const key = prefix.join(',');
    const i = this.prefixes.findIndex((p) => p.join(',') === key);
    if (i >= 0) return i;
    this.prefixes.push(prefix);
    return this.prefixes.length - 1;
  }
  encode(images: tf.Tensor4D): tf.Tensor2D {
    return tf.zeros([images.shape[0], 1]);
  }
  initialState(features: tf.Tensor2D): CellState {
    return { h: tf.fill([features.shape[0], 1], -1) };
  }
  step(prevTokens: tf.Tensor1D, state: CellState, features: tf.Tensor2D): { logits: tf.Tensor2D; state: CellState } {
    this.steps += 1;
    assert.equal(features.shape[0], prevTokens.shape[0]);
    const prev = prevTokens.dataSync();
    const nodes = state.h.dataSync();
    const next: number[] = [];
    const logits: number[][] = [];
    prev.forEach((tok, r) => {
      const node = nodes[r]!;
      const prefix = tok === START ? [] : [...this.prefixes[node]!, tok];
      next.push(this.node(prefix));
      const spec = this.table[prefix.map((id) => this.vocab.words[id]).join(' ')] ?? { '<end>': 1 };
      const probs = this.vocab.words.map((w) => (spec[w] ?? 0) + 1e-6);
      const total = probs.reduce((x, y) => x + y, 0);
      logits.push(probs.map((p) => Math.log(p / total)));
    });
    return { logits: tf.tensor2d(logits), state: { h: tf.tensor2d(next, [next.length, 1]) } };
  }
}

/** Greedy takes "a" (0.5), then "c" (0.4), then <end> (0.5): p = 0.1. "b <end>" has p = 0.36. */
const PLANTED = {
  '': { a: 0.5, b: 0.4, '<end>': 0.1 },
  a: { c: 0.4, b: 0.3, '<end>': 0.3 },
  'a c': { '<end>': 0.5, a: 0.5 },
  'a c a': { '<end>': 1 },
  'a b': { '<end>': 1 },
  b: { '<end>': 0.9, c: 0.1 },
};

function near(a: number, b: number, tol = 1e-4): boolean {
  return Math.abs(a - b) <= tol;
}

function sameCaptions(a: CaptionResult[], b: CaptionResult[]): void {
  assert.deepEqual(
    a.map((r) => r.words),
    b.map((r) => r.words),
  );
  a.forEach((r, i) => assert.ok(near(r.logProb, b[i]!.logProb), `logProb ${r.logProb} vs ${b[i]!.logProb}`));
}

/** log p(words <end> | image) by feeding the words one step at a time: an independent check of the decoders' sums. */
function teacherForcedLogProb(model: StepModel, image: tf.Tensor4D, words: string[]): number {
  const ids = [...words.map((w) => model.vocab.words.indexOf(w)), END];
  return tf.tidy(() => {
    const features = model.encode(image);
    let state = model.initialState(features);
    let prev = START;
    let total = 0;
    for (const id of ids) {
      const out = model.step(tf.tensor1d([prev], 'int32'), state, features);
      total += tf.logSoftmax(out.logits).dataSync()[id]!;
      state = out.state;
      prev = id;
    }
    return total;
  });
}

async function collect(stream: AsyncGenerator<StreamEvent>): Promise<StreamEvent[]> {
  const events: StreamEvent[] = [];
  for await (const e of stream) events.push(e);
  return events;
}

test('beam search finds the planted better caption that greedy misses, with correct log-probabilities', () => {
  const model = new ToyModel(PLANTED);
  const image = tf.zeros([1, 1, 1, 3]) as tf.Tensor4D;
  const [greedy] = captionImages(model, image, { strategy: 'greedy' });
  assert.deepEqual(greedy!.words, ['a', 'c']);
  assert.ok(near(greedy!.logProb, Math.log(0.1)));
  assert.ok(near(greedy!.wordProbs[0]!, 0.5) && near(greedy!.wordProbs[1]!, 0.4));
  const [beam] = captionImages(model, image, { strategy: 'beam', beamWidth: 2, nBest: 2 });
  assert.deepEqual(beam!.words, ['b']);
  assert.ok(near(beam!.logProb, Math.log(0.36)));
  assert.equal(beam!.nbest!.length, 2);
  assert.equal(beam!.nbest![0]!.caption, 'b');
  assert.ok(beam!.nbest![1]!.logProb <= beam!.nbest![0]!.logProb);
  for (const h of beam!.nbest!) assert.ok(near(h.logProb, teacherForcedLogProb(model, image, h.caption.split(' '))));
  // Width 1 is greedy.
  const [one] = captionImages(model, image, { strategy: 'beam', beamWidth: 1 });
  assert.deepEqual(one!.words, greedy!.words);
  image.dispose();
});

test('the length limit forces <end> and counts its probability', () => {
  const model = new ToyModel({
    '': { a: 0.9, '<end>': 0.1 },
    a: { a: 0.8, '<end>': 0.2 },
    'a a': { a: 0.7, '<end>': 0.3 },
  });
  const image = tf.zeros([1, 1, 1, 3]) as tf.Tensor4D;
  for (const strategy of ['greedy', 'beam'] as const) {
    const [r] = captionImages(model, image, { strategy, beamWidth: 1, maxLength: 2 });
    assert.deepEqual(r!.words, ['a', 'a'], strategy);
    assert.ok(near(r!.logProb, Math.log(0.9 * 0.8 * 0.3), 1e-4), `${strategy}: ${r!.logProb}`);
  }
  image.dispose();
});

test('beam width 1 equals greedy on a real model, batched, for any length penalty', async () => {
  const model = await randomModel(5);
  const images = randomImages(4);
  const greedy = captionImages(model, images, { strategy: 'greedy' });
  sameCaptions(captionImages(model, images, { strategy: 'beam', beamWidth: 1 }), greedy);
  sameCaptions(captionImages(model, images, { strategy: 'beam', beamWidth: 1, lengthPenalty: 0.7 }), greedy);
  // greedyDecode (training's validation samples) agrees.
  const ids = greedyDecode(model, images);
  assert.deepEqual(
    ids.map((d) => d.words),
    greedy.map((g) => g.words),
  );
  tf.dispose(images);
  model.dispose();
});

test('beam search returns hypotheses sorted by score, best first, each scored right; batching does not change them', async () => {
  const model = await randomModel(7);
  const images = randomImages(3, 4);
  for (const alpha of [0, 0.7]) {
    const all = beamSearch(model, images, { beamWidth: 4, lengthPenalty: alpha });
    assert.equal(all.length, 3);
    for (const [b, ranked] of all.entries()) {
      assert.ok(ranked.length >= 1);
      for (let i = 1; i < ranked.length; i++)
        assert.ok(hypothesisScore(ranked[i - 1]!, alpha) >= hypothesisScore(ranked[i]!, alpha));
      const one = images.slice([b, 0, 0, 0], [1, -1, -1, -1]) as tf.Tensor4D;
      const words = (ids: number[]) => ids.map((id) => model.vocab.words[id]!);
      assert.ok(near(ranked[0]!.logProb, teacherForcedLogProb(model, one, words(ranked[0]!.tokens))));
      const alone = beamSearch(model, one, { beamWidth: 4, lengthPenalty: alpha })[0]!;
      assert.deepEqual(alone[0]!.tokens, ranked[0]!.tokens);
      one.dispose();
    }
    const results = captionImages(model, images, { strategy: 'beam', beamWidth: 4, lengthPenalty: alpha, nBest: 3 });
    results.forEach((r, b) => {
      assert.equal(r.nbest!.length, Math.min(3, all[b]!.length));
      assert.equal(r.nbest![0]!.caption, r.caption);
    });
  }
  images.dispose();
  model.dispose();
});

test('sampling at temperature → 0 and with top-k 1 equals greedy; a seed repeats a draw', async () => {
  const model = await randomModel(11);
  const images = randomImages(4, 2);
  const greedy = captionImages(model, images, { strategy: 'greedy' });
  sameCaptions(captionImages(model, images, { strategy: 'sample', temperature: 0 }), greedy);
  sameCaptions(captionImages(model, images, { strategy: 'sample', temperature: 1e-6, seed: 9 }), greedy);
  sameCaptions(captionImages(model, images, { strategy: 'sample', topK: 1, seed: 9 }), greedy);
  const hot: DecodeOptions = { strategy: 'sample', temperature: 3, seed: 5 };
  const a = captionImages(model, images, hot);
  sameCaptions(captionImages(model, images, hot), a);
  const others = [6, 7, 8].map((seed) =>
    captionImages(model, images, { ...hot, seed })
      .map((r) => r.caption)
      .join('|'),
  );
  assert.ok(
    others.some((o) => o !== a.map((r) => r.caption).join('|')),
    'different seeds should draw differently at temperature 3',
  );
  images.dispose();
  model.dispose();
});

test('sampling draws words with the model’s probabilities, filtered by top-k and top-p', () => {
  const model = new ToyModel({ '': { a: 0.5, b: 0.3, c: 0.2 } }, { maxLength: 1 });
  const n = 3000;
  const images = tf.zeros([n, 1, 1, 3]) as tf.Tensor4D;
  const freq = (options: DecodeOptions) => {
    const counts: Record<string, number> = {};
    for (const r of captionImages(model, images, options)) counts[r.words[0]!] = (counts[r.words[0]!] ?? 0) + 1 / n;
    return counts;
  };
  const plain = freq({ strategy: 'sample', seed: 1 });
  assert.ok(near(plain.a!, 0.5, 0.04) && near(plain.b!, 0.3, 0.04) && near(plain.c!, 0.2, 0.04), JSON.stringify(plain));
  const top2 = freq({ strategy: 'sample', seed: 2, topK: 2 });
  assert.equal(top2.c, undefined);
  assert.ok(near(top2.a!, 0.625, 0.04), JSON.stringify(top2));
  const nucleus = freq({ strategy: 'sample', seed: 3, topP: 0.45 });
  assert.deepEqual(Object.keys(nucleus), ['a']);
  const cold = freq({ strategy: 'sample', seed: 4, temperature: 0.5 }); // p ∝ p², i.e. 25 : 9 : 4
  assert.ok(near(cold.a!, 25 / 38, 0.04), JSON.stringify(cold));
  images.dispose();
});

test('streaming yields each word, then exactly the caption the batched call returns', async () => {
  const model = await randomModel(13);
  const image = randomImages(1, 7);
  for (const options of [
    { strategy: 'greedy' },
    { strategy: 'sample', temperature: 2, seed: 3 },
    { strategy: 'sample', temperature: 0.8, topK: 5, topP: 0.9, seed: 4 },
  ] as DecodeOptions[]) {
    const [expected] = captionImages(model, image, options);
    const events = await collect(streamCaption(model, image, options));
    const done = events.at(-1)!;
    assert.equal(done.type, 'done');
    assert.deepEqual(done.type === 'done' && done.result, expected);
    const words = events.filter((e) => e.type === 'word');
    assert.deepEqual(
      words.map((e) => e.type === 'word' && e.word),
      expected!.words,
    );
    assert.deepEqual(
      words.map((e) => e.type === 'word' && e.index),
      expected!.words.map((_, i) => i),
    );
    words.forEach((e, i) => assert.ok(e.type === 'word' && near(e.prob, expected!.wordProbs[i]!)));
  }
  // Image b of a batch samples from the stream seeded for b: image 0 alone draws what it drew in the batch.
  const batch = tf.concat([image, randomImages(2, 8)]) as tf.Tensor4D;
  const inBatch = captionImages(model, batch, { strategy: 'sample', temperature: 2, seed: 3 })[0]!;
  assert.deepEqual(inBatch, captionImages(model, image, { strategy: 'sample', temperature: 2, seed: 3 })[0]);
  // With seeds per image, an image draws the same words in any batch, at any position.
  const seeded = captionImages(model, batch, { strategy: 'sample', temperature: 2, imageSeeds: [11, 12, 13] });
  const last = batch.slice([2, 0, 0, 0], [1, -1, -1, -1]) as tf.Tensor4D;
  assert.deepEqual(captionImages(model, last, { strategy: 'sample', temperature: 2, imageSeeds: [13] })[0], seeded[2]);
  assert.notDeepEqual(
    captionImages(model, last, { strategy: 'sample', temperature: 2, imageSeeds: [14] })[0],
    seeded[2],
  );
  assert.throws(
    () => captionImages(model, last, { strategy: 'sample', imageSeeds: [1, 2] }),
    /2 seeds for a batch of 1/,
  );
  tf.dispose([batch, last]);
  const beamOptions: DecodeOptions = { strategy: 'beam', beamWidth: 3, nBest: 2 };
  const [expected] = captionImages(model, image, beamOptions);
  const events = await collect(streamCaption(model, image, beamOptions));
  assert.ok(events.slice(0, -1).every((e) => e.type === 'hypothesis'));
  assert.ok(events.length >= 2);
  const done = events.at(-1)!;
  assert.deepEqual(done.type === 'done' && done.result, expected);
  image.dispose();
  model.dispose();
});

test('a stream can be cancelled: by abort signal or by leaving the loop; the work stops', async () => {
  const toy = new ToyModel({ '': { a: 1 }, a: { a: 1 }, 'a a': { a: 1 }, 'a a a': { a: 1 } }, { maxLength: 5 });
  const image = tf.zeros([1, 1, 1, 3]) as tf.Tensor4D;
  for (const strategy of ['greedy', 'beam', 'sample'] as const) {
    const controller = new AbortController();
    toy.steps = 0;
    const seen: StreamEvent[] = [];
    await assert.rejects(
      async () => {
        for await (const e of streamCaption(toy, image, { strategy, beamWidth: 2 }, controller.signal)) {
          seen.push(e);
          controller.abort();
        }
      },
      { name: 'AbortError' },
    );
    assert.equal(seen.length, 1, strategy);
    assert.equal(toy.steps, 1, `${strategy}: one step ran before the abort was seen`);
    toy.steps = 0;
    for await (const e of streamCaption(toy, image, { strategy, beamWidth: 2 })) {
      assert.notEqual(e.type, 'done');
      break;
    }
    assert.equal(toy.steps, 1);
  }
  const aborted = AbortSignal.abort();
  await assert.rejects(collect(streamCaption(toy, image, { strategy: 'greedy' }, aborted)), { name: 'AbortError' });
  image.dispose();
});

test('no tensor outlives a decode, a beam search, a sample, a stream or a cancelled stream', async () => {
  const model = await randomModel(17, { cell: 'lstm' });
  const gru = await randomModel(17, { cell: 'gru', featureInput: 'every-step' });
  const images = randomImages(3, 9);
  const image = randomImages(1, 10);
  const before = tf.memory().numTensors;
  for (const m of [model, gru]) {
    captionImages(m, images, { strategy: 'greedy' });
    captionImages(m, images, { strategy: 'beam', beamWidth: 3, nBest: 3, lengthPenalty: 0.6 });
    captionImages(m, images, { strategy: 'sample', temperature: 1.5, topK: 4, topP: 0.9 });
    beamSearch(m, images, { beamWidth: 2 });
    greedyDecode(m, images);
    await collect(streamCaption(m, image, { strategy: 'beam' }));
    await collect(streamCaption(m, image, { strategy: 'sample' }));
    for await (const _ of streamCaption(m, image, { strategy: 'greedy' })) break;
    const controller = new AbortController();
    await assert.rejects(async () => {
      for await (const _ of streamCaption(m, image, { strategy: 'beam' }, controller.signal)) controller.abort();
    });
  }
  assert.equal(tf.memory().numTensors, before);
  tf.dispose([images, image]);
  model.dispose();
  gru.dispose();
});

test('bad options are refused with the option named', async () => {
  const model = new ToyModel(PLANTED);
  const image = tf.zeros([1, 1, 1, 3]) as tf.Tensor4D;
  const bad: [DecodeOptions, RegExp][] = [
    [{ strategy: 'beam', beamWidth: 0 }, /beamWidth/],
    [{ strategy: 'beam', beamWidth: 2, nBest: 3 }, /nBest 3 is more than beamWidth 2/],
    [{ strategy: 'greedy', nBest: 2 }, /nBest/],
    [{ strategy: 'sample', temperature: -1 }, /temperature/],
    [{ strategy: 'sample', topP: 1.5 }, /topP/],
    [{ strategy: 'greedy', maxLength: 0 }, /maxLength/],
    [{ strategy: 'nope' as 'greedy' }, /strategy/],
  ];
  for (const [options, message] of bad)
    assert.throws(
      () => captionImages(model, image, options),
      (e: Error) => e instanceof DecodeOptionsError && message.test(e.message),
    );
  const two = tf.zeros([2, 1, 1, 3]) as tf.Tensor4D;
  await assert.rejects(collect(streamCaption(model, two, { strategy: 'greedy' })), /batch of 1/);
  tf.dispose([image, two]);
});

/**
 * Anti-LM: the image model says "a" (0.5) over "b" (0.44); the training captions never start
 * with "b". Numbers: p_prior(a | <start>) = 91/107, p_prior(b | <start>) = 1/107 (90 "a", 10 "c",
 * add-one over 7 words), so q(b) / q(a) = 0.88·91^λ: 8.4 at λ = 0.5, 0.96 at λ = 0.02. An empty
 * caption (0.06) is below the plausibility cut (0.15 × 0.5).
 */
const ANTI = { '': { a: 0.5, b: 0.44, '<end>': 0.06 }, a: { '<end>': 1 }, b: { '<end>': 1 }, c: { '<end>': 1 } };

/** The toy model of ANTI and the prior of its training captions, decoded by default with anti-LM weight `weight`. */
function antiModel(weight = 0): { model: ToyModel; prior: LanguagePrior } {
  const model = new ToyModel(ANTI);
  const [a, c] = [model.vocab.words.indexOf('a'), model.vocab.words.indexOf('c')];
  const captions = [
    ...Array.from({ length: 90 }, () => [START, a, END]),
    ...Array.from({ length: 10 }, () => [START, c, END]),
  ];
  return { model, prior: LanguagePrior.fromCaptions(captions, model.vocab.size, 1, { weight }) };
}

test("anti-LM chooses the word the prior did not predict; reported log p stays the model's", async () => {
  const { model, prior } = antiModel();
  const image = tf.zeros([1, 1, 1, 3]) as tf.Tensor4D;
  assert.ok(near(prior.logProb(START, 4), Math.log(91 / 107)));
  for (const strategy of ['greedy', 'beam'] as const) {
    const [plain] = captionImages(model, image, { strategy, beamWidth: 2, prior });
    assert.deepEqual(plain!.words, ['a'], strategy);
    const [anti] = captionImages(model, image, {
      strategy,
      beamWidth: 2,
      nBest: strategy === 'beam' ? 2 : undefined,
      antiLm: 0.5,
      prior,
    });
    assert.deepEqual(anti!.words, ['b'], strategy);
    assert.ok(near(anti!.logProb, Math.log(0.44)), `${strategy}: ${anti!.logProb}`);
    assert.ok(near(anti!.wordProbs[0]!, 0.44));
    if (strategy === 'beam') {
      // Ranked by the anti-LM score, "b" first although "a" is the likelier caption; both report log p.
      assert.deepEqual(
        anti!.nbest!.map((n) => n.caption),
        ['b', 'a'],
      );
      assert.ok(near(anti!.nbest![1]!.logProb, Math.log(0.5)));
    }
    // Too weak a weight does not overturn 0.5 against 0.44.
    const [weak] = captionImages(model, image, { strategy, beamWidth: 2, antiLm: 0.02, prior });
    assert.deepEqual(weak!.words, ['a'], `${strategy}, λ 0.02`);
    // The plausibility cut: "b" (0.44) is below 0.9 × 0.5, so it cannot be chosen at any weight.
    const [cut] = captionImages(model, image, { strategy, beamWidth: 2, antiLm: 5, antiLmPlausibility: 0.9, prior });
    assert.deepEqual(cut!.words, ['a'], `${strategy}, β 0.9`);
  }
  // Sampling draws only plausible words: with β 0.9 every seed says "a".
  for (let seed = 0; seed < 10; seed++) {
    const [s] = captionImages(model, image, { strategy: 'sample', seed, antiLm: 5, antiLmPlausibility: 0.9, prior });
    assert.deepEqual(s!.words, ['a']);
  }
  // A stream under anti-LM ends in the caption the batched call gives.
  const events = await collect(streamCaption(model, image, { strategy: 'greedy', antiLm: 0.5, prior }));
  const done = events.at(-1);
  assert.ok(done?.type === 'done' && done.result.caption === 'b');
  image.dispose();
});

test("anti-LM defaults to the weight the model's prior carries; a caller can turn it off; no prior, no anti-LM", () => {
  const image = tf.zeros([1, 1, 1, 3]) as tf.Tensor4D;
  const withDefault = antiModel(0.5);
  assert.deepEqual(
    captionImages(withDefault.model, image, { strategy: 'greedy', prior: withDefault.prior })[0]!.words,
    ['b'],
  );
  assert.deepEqual(
    captionImages(withDefault.model, image, { strategy: 'greedy', antiLm: 0, prior: withDefault.prior })[0]!.words,
    ['a'],
  );
  const bare = new ToyModel(ANTI);
  assert.throws(
    () => captionImages(bare, image, { strategy: 'greedy', antiLm: 0.1 }),
    (e: Error) => e instanceof DecodeOptionsError && /language-prior\.json/.test(e.message),
  );
  for (const [options, message] of [
    [{ strategy: 'greedy', antiLm: -1 }, /antiLm must be ≥ 0/],
    [{ strategy: 'beam', antiLm: 0.1, antiLmPlausibility: 0 }, /antiLmPlausibility/],
    [{ strategy: 'beam', antiLm: 0.1, antiLmPlausibility: 1.5 }, /antiLmPlausibility/],
  ] as [DecodeOptions, RegExp][]) {
    assert.throws(
      () => captionImages(withDefault.model, image, { ...options, prior: withDefault.prior }),
      (e: Error) => e instanceof DecodeOptionsError && message.test(e.message),
    );
  }
  image.dispose();
});
