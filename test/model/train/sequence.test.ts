/** Padding and masking, scheduled sampling and the schedules. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type * as TF from '@tensorflow/tfjs';
import { Captioner, MODEL_DEFAULTS, type ForwardOptions } from '../../../model/nn/captioner.ts';
import { maskedSequenceLoss } from '../../../model/train/loss.ts';
import { Rng } from '../../../model/util/rng.ts';
import { learningRateAt, scheduledSamplingProbability } from '../../../model/train/schedules.ts';
import { PAD, START, UNK, Vocabulary } from '../../../model/text/vocab.ts';
import { maxRelativeError, setupBackend } from '../../helpers/tf.ts';

const tf = await setupBackend();

const vocab = Vocabulary.build(['a red circle', 'a blue square', 'a green triangle above a red circle'], 1);
const config = {
  ...MODEL_DEFAULTS,
  imageSize: 8,
  encoderChannels: [4],
  featureSize: 8,
  embeddingSize: 6,
  hiddenSize: 8,
  maxLength: 8,
  minWordCount: 1,
};
const ids = (s: string) => vocab.encode(s, 8);

function batchTokens(rows: number[][], width: number): TF.Tensor2D {
  assert.ok(
    rows.every((r) => r.length <= width),
    'rows fit the width',
  );
  const flat = new Int32Array(rows.length * width).fill(PAD);
  rows.forEach((r, b) => flat.set(r, b * width));
  return tf.tensor2d(flat, [rows.length, width], 'int32');
}

function lossAndGrads(model: Captioner, images: TF.Tensor4D, tokens: TF.Tensor2D, options: ForwardOptions) {
  const [batch, width] = tokens.shape;
  const { value, grads } = tf.variableGrads(
    () =>
      tf.tidy(() =>
        maskedSequenceLoss(
          model.forward(images, tokens, options).logits,
          tokens.slice([0, 1], [batch, width - 1]) as TF.Tensor2D,
        ),
      ),
    model.trainableVariables(),
  );
  const out = {
    loss: value.dataSync()[0]!,
    grads: Object.fromEntries(Object.entries(grads).map(([k, g]) => [k, g.dataSync().slice()])),
  };
  tf.dispose([value, ...Object.values(grads)]);
  return out;
}

test('padding invariance: extra <pad> columns change neither the loss nor any gradient', async () => {
  const model = await Captioner.create(config, vocab, 3);
  const rows = [ids('a green triangle above a red circle'), ids('a red circle'), ids('a blue square')];
  const images = tf.randomUniform([3, 8, 8, 3], 0, 1, 'float32', 1) as TF.Tensor4D;
  const tight = batchTokens(rows, 9); // the longest row: <start> + 7 words + <end>
  const padded = batchTokens(rows, 14);
  for (const options of [
    { teacherProbability: 1, feed: 'argmax' },
    { teacherProbability: 0.5, feed: 'argmax', rng: new Rng(9) },
    { teacherProbability: 0.5, feed: 'sample', rng: new Rng(9) },
  ] as ForwardOptions[]) {
    const a = lossAndGrads(model, images, tight, { ...options, rng: options.rng && new Rng(9) });
    const b = lossAndGrads(model, images, padded, { ...options, rng: options.rng && new Rng(9) });
    assert.ok(
      Math.abs(a.loss - b.loss) <= 1e-6 * Math.abs(a.loss),
      `loss ${a.loss} vs ${b.loss} (ε ${options.teacherProbability}, ${options.feed})`,
    );
    for (const name of Object.keys(a.grads)) {
      assert.ok(maxRelativeError(b.grads[name]!, a.grads[name]!) < 1e-5, `gradient of ${name} changed with padding`);
    }
  }
  tf.dispose([images, tight, padded]);
  model.dispose();
});

test('the unmasked loss (--loss-on-padding) adds −log p(<pad>) at every pad position, so padding changes it', () => {
  const logits = tf.randomNormal([2, 4, 6], 0, 1, 'float32', 4) as TF.Tensor3D;
  const targets = tf.tensor2d(
    [
      [3, 4, 2, PAD],
      [5, 2, PAD, PAD],
    ],
    [2, 4],
    'int32',
  );
  const masked = maskedSequenceLoss(logits, targets).dataSync()[0]!;
  const unmasked = maskedSequenceLoss(logits, targets, 0, { maskPadding: false }).dataSync()[0]!;
  const logProbs = tf.logSoftmax(logits).arraySync() as number[][][];
  const padTerms = -(logProbs[0]![3]![PAD]! + logProbs[1]![2]![PAD]! + logProbs[1]![3]![PAD]!) / 2;
  assert.ok(Math.abs(unmasked - (masked + padTerms)) < 1e-5, `${unmasked} vs ${masked} + ${padTerms}`);
  assert.ok(unmasked > masked);
  tf.dispose([logits, targets]);
});

test('scheduled-sampling schedules: exact values at known steps (Bengio et al. 2015)', () => {
  const s = (kind: 'constant' | 'linear' | 'exponential' | 'inverse-sigmoid', k: number, c = 0, min = 0) => ({
    kind,
    k,
    c,
    min,
  });
  assert.equal(scheduledSamplingProbability(123, s('constant', 0.7)), 0.7);
  assert.equal(scheduledSamplingProbability(0, s('linear', 1, 0.01)), 1);
  assert.ok(Math.abs(scheduledSamplingProbability(10, s('linear', 1, 0.01)) - 0.9) < 1e-12);
  assert.equal(scheduledSamplingProbability(200, s('linear', 1, 0.01, 0.1)), 0.1);
  assert.ok(Math.abs(scheduledSamplingProbability(100, s('exponential', 0.99)) - 0.3660323412732295) < 1e-12);
  assert.ok(Math.abs(scheduledSamplingProbability(0, s('inverse-sigmoid', 10)) - 10 / 11) < 1e-12);
  assert.ok(Math.abs(scheduledSamplingProbability(50, s('inverse-sigmoid', 10)) - 10 / (10 + Math.exp(5))) < 1e-12);
  assert.equal(scheduledSamplingProbability(1e6, s('inverse-sigmoid', 10, 0, 0.25)), 0.25);
  // Monotone non-increasing, within [0, 1].
  let prev = 1;
  for (let i = 0; i < 5000; i += 50) {
    const e = scheduledSamplingProbability(i, s('inverse-sigmoid', 300));
    assert.ok(e <= prev && e >= 0 && e <= 1);
    prev = e;
  }
});

test('learning-rate schedules: warm-up, cosine and linear decay', () => {
  const base = { base: 1e-3, warmupSteps: 10, decaySteps: 110, min: 1e-5 };
  assert.ok(Math.abs(learningRateAt(0, { ...base, kind: 'constant' }) - 1e-4) < 1e-15);
  assert.equal(learningRateAt(50, { ...base, kind: 'constant' }), 1e-3);
  assert.equal(learningRateAt(10, { ...base, kind: 'cosine' }), 1e-3);
  assert.ok(Math.abs(learningRateAt(60, { ...base, kind: 'cosine' }) - (1e-5 + (1e-3 - 1e-5) * 0.5)) < 1e-15);
  assert.equal(learningRateAt(500, { ...base, kind: 'cosine' }), 1e-5);
  assert.ok(Math.abs(learningRateAt(85, { ...base, kind: 'linear' }) - (1e-5 + (1e-3 - 1e-5) * 0.25)) < 1e-15);
});

test('with ε = 1 the forward pass is teacher forcing; with ε = 0 every input after <start> is the previous argmax', async () => {
  const model = await Captioner.create(config, vocab, 4);
  const rows = [ids('a green triangle above a red circle'), ids('a red circle')];
  const tokens = batchTokens(rows, 9);
  const images = tf.randomUniform([2, 8, 8, 3], 0, 1, 'float32', 2) as TF.Tensor4D;

  const teacher = model.forward(images, tokens, { teacherProbability: 1, feed: 'argmax', rng: new Rng(1) });
  assert.deepEqual(Array.from(teacher.inputs.dataSync()), Array.from(tokens.slice([0, 0], [2, 8]).dataSync()));
  const plain = model.forward(images, tokens, { teacherProbability: 1, feed: 'argmax' });
  assert.deepEqual(Array.from(teacher.logits.dataSync()), Array.from(plain.logits.dataSync()));

  const own = model.forward(images, tokens, { teacherProbability: 0, feed: 'argmax', rng: new Rng(1) });
  const inputs = own.inputs.arraySync() as number[][];
  const argmax = tf.argMax(own.logits, 2).arraySync() as number[][];
  for (let b = 0; b < 2; b++) {
    assert.equal(inputs[b]![0], START);
    for (let t = 1; t < 8; t++) assert.equal(inputs[b]![t], argmax[b]![t - 1], `row ${b} step ${t}`);
  }
  tf.dispose([teacher.logits, teacher.inputs, plain.logits, plain.inputs, own.logits, own.inputs, tokens, images]);
  model.dispose();
});

/**
 * 64 captions of 40 words that cycle through the vocabulary (every word after <start> differs
 * from its row's previous one), and random images drawn with `imageSeed`: enough coin flips for
 * a rate to show.
 */
function longBatch(imageSeed: number) {
  const batch = 64;
  const width = 41;
  const truth = Array.from({ length: batch }, (_, b) =>
    Array.from({ length: width }, (_, t) => (t === 0 ? START : 4 + ((b + t) % (vocab.size - 4)))),
  );
  const tokens = tf.tensor2d(truth, [batch, width], 'int32');
  const images = tf.randomUniform([batch, 8, 8, 3], 0, 1, 'float32', imageSeed) as TF.Tensor4D;
  return { batch, width, truth, tokens, images };
}

test('with 0 < ε < 1 each input is the true word with probability ε (and sampling feeds non-argmax words)', async () => {
  const model = await Captioner.create({ ...config, maxLength: 40 }, vocab, 5);
  const { batch, width, truth, tokens, images } = longBatch(3);
  const fed = model.forward(images, tokens, { teacherProbability: 0.3, feed: 'argmax', rng: new Rng(2) });
  const inputs = fed.inputs.arraySync() as number[][];
  const argmax = tf.argMax(fed.logits, 2).arraySync() as number[][];
  let fromTruth = 0;
  let fromModel = 0;
  for (let b = 0; b < batch; b++) {
    for (let t = 1; t < width - 1; t++) {
      const x = inputs[b]![t];
      if (x === argmax[b]![t - 1] && x !== truth[b]![t]) fromModel++;
      else if (x === truth[b]![t] && x !== argmax[b]![t - 1]) fromTruth++;
      else assert.ok(x === truth[b]![t] || x === argmax[b]![t - 1], 'every input is the true or the predicted word');
    }
  }
  const share = fromTruth / (fromTruth + fromModel);
  assert.ok(share > 0.22 && share < 0.38, `share of true words ${share}, expected about 0.3`);

  const sampled = model.forward(images, tokens, { teacherProbability: 0, feed: 'sample', rng: new Rng(2) });
  const sIn = sampled.inputs.arraySync() as number[][];
  const sMax = tf.argMax(sampled.logits, 2).arraySync() as number[][];
  let differs = 0;
  for (let b = 0; b < batch; b++) for (let t = 1; t < width - 1; t++) if (sIn[b]![t] !== sMax[b]![t - 1]) differs++;
  assert.ok(differs > 0, 'sampled inputs are not always the argmax');
  tf.dispose([fed.logits, fed.inputs, sampled.logits, sampled.inputs, tokens, images]);
  model.dispose();
});

test("scheduled sampling within slots feeds the model's own word only where it fills the true word's slot", async () => {
  const model = await Captioner.create({ ...config, maxLength: 40 }, vocab, 5);
  const { batch, width, truth, tokens, images } = longBatch(3);
  const colours = ['red', 'blue', 'green'].map((w) => vocab.encode(w, 1)[1]!);
  const slots = Array.from({ length: vocab.size }, (_, id) =>
    colours.includes(id) ? colours.filter((c) => c !== id) : [],
  );
  // ε = 0 with sampled words: every input after <start> is the model's own, unless refused.
  const free = model.forward(images, tokens, { teacherProbability: 0, feed: 'sample', rng: new Rng(2) });
  const within = model.forward(images, tokens, {
    teacherProbability: 0,
    feed: 'sample',
    samplingSlots: slots,
    rng: new Rng(2),
  });
  const [freeIn, withinIn] = [free.inputs.arraySync() as number[][], within.inputs.arraySync() as number[][]];
  let outsideSlot = 0;
  let otherColour = 0;
  for (let b = 0; b < batch; b++) {
    for (let t = 1; t < width - 1; t++) {
      const x = truth[b]![t]!;
      if (!colours.includes(x) && freeIn[b]![t] !== x) outsideSlot++;
      if (colours.includes(x)) {
        assert.ok(colours.includes(withinIn[b]![t]!), `[${b}, ${t}]: a colour's place gets a colour`);
        if (withinIn[b]![t] !== x) otherColour++;
      } else {
        assert.equal(withinIn[b]![t], x, `[${b}, ${t}]: a word without substitutes is fed as it is`);
      }
    }
  }
  assert.ok(outsideSlot > 20, `without slots, ${outsideSlot} own words that fill no slot of the truth were fed`);
  assert.ok(otherColour > 0, "within slots, the model's own colour is still fed in place of the true one");
  tf.dispose([free.logits, free.inputs, within.logits, within.inputs, tokens, images]);
  model.dispose();
});

test('word dropout replaces each input after <start> by <unk> with its probability, on top of scheduled sampling', async () => {
  const model = await Captioner.create({ ...config, maxLength: 40 }, vocab, 6);
  const { batch, width, truth, tokens, images } = longBatch(4);

  const none = model.forward(images, tokens, {
    teacherProbability: 1,
    feed: 'argmax',
    wordDropout: 0,
    rng: new Rng(3),
  });
  assert.deepEqual(
    Array.from(none.inputs.dataSync()),
    Array.from(tokens.slice([0, 0], [batch, width - 1]).dataSync()),
    'rate 0 feeds the true words',
  );

  const all = model.forward(images, tokens, { teacherProbability: 1, feed: 'argmax', wordDropout: 1, rng: new Rng(3) });
  for (const row of all.inputs.arraySync() as number[][])
    assert.deepEqual(row, [START, ...Array(width - 2).fill(UNK)], 'rate 1: <start>, then only <unk>');

  // Rate 0.4 with ε = 0.5: an input is <unk> 40 % of the time, and otherwise the true or the predicted word.
  const some = model.forward(images, tokens, {
    teacherProbability: 0.5,
    feed: 'argmax',
    wordDropout: 0.4,
    rng: new Rng(3),
  });
  const inputs = some.inputs.arraySync() as number[][];
  const argmax = tf.argMax(some.logits, 2).arraySync() as number[][];
  let unk = 0;
  for (let b = 0; b < batch; b++) {
    assert.equal(inputs[b]![0], START, 'the first input is never dropped');
    for (let t = 1; t < width - 1; t++) {
      const x = inputs[b]![t]!;
      if (x === UNK) unk++;
      else assert.ok(x === truth[b]![t] || x === argmax[b]![t - 1], 'a kept input is the true or the predicted word');
    }
  }
  const share = unk / (batch * (width - 2));
  assert.ok(share > 0.35 && share < 0.45, `share of <unk> inputs ${share}, expected about 0.4`);

  // The same seed drops the same inputs, so a resumed run repeats its steps exactly.
  const again = model.forward(images, tokens, {
    teacherProbability: 0.5,
    feed: 'argmax',
    wordDropout: 0.4,
    rng: new Rng(3),
  });
  assert.deepEqual(Array.from(again.inputs.dataSync()), Array.from(some.inputs.dataSync()));
  assert.throws(
    () => model.forward(images, tokens, { teacherProbability: 1, feed: 'argmax', wordDropout: 0.4 }),
    /need an rng/,
  );
  tf.dispose([
    none.logits,
    none.inputs,
    all.logits,
    all.inputs,
    some.logits,
    some.inputs,
    again.logits,
    again.inputs,
    tokens,
    images,
  ]);
  model.dispose();
});

test('word substitution feeds a word of the same slot in place of the true one, with its probability', async () => {
  const model = await Captioner.create({ ...config, maxLength: 40 }, vocab, 6);
  const { batch, width, truth, tokens, images } = longBatch(4);
  const [red, blue, green] = ['red', 'blue', 'green'].map((w) => vocab.encode(w, 1)[1]!);
  const classes: number[][] = Array.from({ length: vocab.size }, () => []);
  classes[red!] = [blue!, green!]; // only "red" has substitutes here
  const substitution = (rate: number) => ({
    teacherProbability: 1,
    feed: 'argmax' as const,
    substitution: { classes, rate },
    rng: new Rng(3),
  });

  const none = model.forward(images, tokens, substitution(0));
  assert.deepEqual(
    Array.from(none.inputs.dataSync()),
    Array.from(tokens.slice([0, 0], [batch, width - 1]).dataSync()),
    'rate 0 feeds the true words',
  );
  const all = model.forward(images, tokens, substitution(1));
  const some = model.forward(images, tokens, substitution(0.5));
  const [allIn, someIn] = [all.inputs.arraySync() as number[][], some.inputs.arraySync() as number[][]];
  let reds = 0;
  let swapped = 0;
  for (let b = 0; b < batch; b++) {
    for (let t = 0; t < width - 1; t++) {
      const x = truth[b]![t]!;
      if (x !== red) {
        assert.equal(allIn[b]![t], x, 'a word without substitutes is fed as it is');
        assert.equal(someIn[b]![t], x);
        continue;
      }
      reds++;
      assert.ok([blue, green].includes(allIn[b]![t]!), 'rate 1: red is always fed as blue or green');
      if (someIn[b]![t] !== red) swapped++;
    }
  }
  assert.ok(reds > 20, `the batch holds ${reds} reds`);
  assert.ok(swapped / reds > 0.3 && swapped / reds < 0.7, `rate 0.5 swapped ${swapped} of ${reds}`);
  assert.throws(
    () =>
      model.forward(images, tokens, { teacherProbability: 1, feed: 'argmax', substitution: { classes, rate: 0.5 } }),
    /need an rng/,
  );

  // One rate per word id: red always swapped, blue (now with substitutes too) never.
  classes[blue!] = [red!, green!];
  const rate = classes.map((_, id) => (id === red ? 1 : 0));
  const perWord = model.forward(images, tokens, {
    teacherProbability: 1,
    feed: 'argmax',
    substitution: { classes, rate },
    rng: new Rng(3),
  });
  const perWordIn = perWord.inputs.arraySync() as number[][];
  let blues = 0;
  for (let b = 0; b < batch; b++) {
    for (let t = 0; t < width - 1; t++) {
      const x = truth[b]![t]!;
      if (x === red) assert.notEqual(perWordIn[b]![t], red, 'red at rate 1 is always swapped');
      else assert.equal(perWordIn[b]![t], x, 'every other word, blue at rate 0 included, is fed as it is');
      if (x === blue) blues++;
    }
  }
  assert.ok(blues > 20, `the batch holds ${blues} blues`);
  const zeros = model.forward(images, tokens, {
    teacherProbability: 1,
    feed: 'argmax',
    substitution: { classes, rate: rate.map(() => 0) },
  });
  assert.deepEqual(
    Array.from(zeros.inputs.dataSync()),
    Array.from(none.inputs.dataSync()),
    'rates all 0: substitution is off (and needs no rng)',
  );
  tf.dispose([
    none.logits,
    none.inputs,
    all.logits,
    all.inputs,
    some.logits,
    some.inputs,
    perWord.logits,
    perWord.inputs,
    zeros.logits,
    zeros.inputs,
    tokens,
    images,
  ]);
  model.dispose();
});
