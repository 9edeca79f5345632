/**
 * The plain recurrent cells (Elman RNN, IRNN) and the non-autoregressive control
 * (decoderInput 'none'): their equations, initialisation, a save → load round trip, and decoding
 * with every strategy (beam search still exact) without leaking tensors.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type * as TF from '@tensorflow/tfjs';
import { Captioner, MODEL_DEFAULTS, type ModelConfig } from '../../../model/nn/captioner.ts';
import { cellStep, createCell } from '../../../model/nn/cells.ts';
import { saveCheckpoint } from '../../../model/io/checkpoint.ts';
import { loadModel } from '../../../model/io/load.ts';
import { beamSearch, captionImages, greedyDecode } from '../../../model/decode/decode.ts';
import { streamCaption } from '../../../model/decode/stream.ts';
import { END, START, Vocabulary } from '../../../model/text/vocab.ts';
import { Rng } from '../../../model/util/rng.ts';
import { TINY_MODEL } from '../../helpers/tiny-model.ts';
import { setupBackend } from '../../helpers/tf.ts';

const tf = await setupBackend();

const CAPTIONS = ['a red circle', 'a blue square', 'a green triangle left of a red star'];

async function model(arch: Partial<ModelConfig>, seed = 3): Promise<Captioner> {
  return Captioner.create({ ...MODEL_DEFAULTS, ...TINY_MODEL, ...arch }, Vocabulary.build(CAPTIONS, 1), seed);
}

function randomImages(n: number, seed: number): TF.Tensor4D {
  return tf.randomUniform([n, 16, 16, 3], 0, 1, 'float32', seed) as TF.Tensor4D;
}

test('irnn: the recurrent matrix starts as the identity and the bias at 0; rnn: a random recurrent matrix', () => {
  const irnn = createCell('irnn', new Rng(1), 3, 5, 'cell');
  assert.deepEqual(irnn['cell/recurrent']!.arraySync(), tf.eye(5).arraySync());
  assert.deepEqual([...irnn['cell/bias']!.dataSync()], [0, 0, 0, 0, 0]);
  assert.deepEqual(irnn['cell/kernel']!.shape, [3, 5]);
  assert.ok(
    irnn['cell/kernel']!.dataSync().some((v) => v !== 0),
    'the input weights are drawn',
  );
  const rnn = createCell('rnn', new Rng(1), 3, 5, 'cell');
  const u = rnn['cell/recurrent']!.arraySync() as number[][];
  assert.deepEqual(rnn['cell/recurrent']!.shape, [5, 5]);
  assert.ok(
    u.some((row, i) => row.some((v, j) => v !== (i === j ? 1 : 0))),
    'the Elman RNN does not start from the identity',
  );
  tf.dispose([...Object.values(irnn), ...Object.values(rnn)]);
});

test('rnn and irnn steps are tanh and ReLU of x·W + h·U + b, computed by hand', () => {
  const rng = new Rng(4);
  const [I, H, B] = [3, 4, 2];
  const x = Array.from({ length: B * I }, () => rng.normal());
  const h = Array.from({ length: B * H }, () => rng.normal());
  for (const [kind, phi] of [
    ['rnn', Math.tanh],
    ['irnn', (z: number) => Math.max(0, z)],
  ] as const) {
    const params = createCell(kind, new Rng(9), I, H, 'c');
    params['c/bias']!.assign(tf.tensor1d([0.1, -0.2, 0.3, -0.4]));
    const W = params['c/kernel']!.dataSync();
    const U = params['c/recurrent']!.dataSync();
    const b = params['c/bias']!.dataSync();
    const next = cellStep(kind, params, 'c', tf.tensor2d(x, [B, I]), { h: tf.tensor2d(h, [B, H]) });
    assert.equal(next.c, undefined, `${kind} has no cell state`);
    const got = next.h.dataSync();
    for (let r = 0; r < B; r++) {
      for (let j = 0; j < H; j++) {
        let z = b[j]!;
        for (let i = 0; i < I; i++) z += x[r * I + i]! * W[i * H + j]!;
        for (let k = 0; k < H; k++) z += h[r * H + k]! * U[k * H + j]!;
        assert.ok(Math.abs(got[r * H + j]! - phi(z)) < 1e-5, `${kind}[${r},${j}]: ${got[r * H + j]} vs ${phi(z)}`);
      }
    }
    tf.dispose([next.h, ...Object.values(params)]);
  }
});

test('a Captioner with an irnn cell starts its recurrent weights as the identity, and has no c state', async () => {
  const m = await model({ cell: 'irnn' });
  const H = TINY_MODEL.hiddenSize;
  assert.deepEqual(m.namedWeights()['decoder/cell/recurrent']!.arraySync(), tf.eye(H).arraySync());
  assert.equal(m.namedWeights()['decoder/init_c/kernel'], undefined);
  const images = randomImages(2, 1);
  const state = tf.tidy(() => m.initialState(m.encode(images)));
  assert.equal(state.c, undefined);
  assert.deepEqual(state.h.shape, [2, H]);
  tf.dispose([images, state.h]);
  m.dispose();
});

test("decoderInput 'none': each step's logits are the same whatever word is fed, and change with the position", async () => {
  const m = await model({ decoderInput: 'none' });
  const images = randomImages(3, 2);
  const V = m.vocab.size;
  const [a, b] = tf.tidy(() => {
    const features = m.encode(images);
    const state = m.initialState(features);
    const one = m.step(tf.tensor1d([START, START, START], 'int32'), state, features);
    const other = m.step(tf.tensor1d([4, V - 1, END], 'int32'), state, features);
    return [one.logits, other.logits];
  });
  assert.deepEqual(a.dataSync(), b.dataSync(), 'the word fed is not read');
  // The training forward pass: any true words give the same logits (only their number matters).
  const tokens = (rows: number[][]) => tf.tensor2d(rows, [3, 5], 'int32');
  const first = tokens([
    [START, 4, 5, 6, END],
    [START, 5, 6, END, 0],
    [START, 7, END, 0, 0],
  ]);
  const second = tokens([
    [START, 8, 8, 8, END],
    [START, 4, 4, END, 0],
    [START, 9, END, 0, 0],
  ]);
  const fx = m.forward(images, first, { teacherProbability: 0, feed: 'sample', rng: new Rng(1), wordDropout: 1 });
  const fy = m.forward(images, second, { teacherProbability: 1, feed: 'argmax' });
  assert.deepEqual(fx.logits.dataSync(), fy.logits.dataSync());
  assert.ok(
    fx.inputs.dataSync().every((id) => id === START),
    'every input fed is <start>',
  );
  // The steps differ: the position embedding (and the recurrence) tell them apart.
  const step0 = fy.logits.slice([0, 0, 0], [1, 1, V]).dataSync();
  const step1 = fy.logits.slice([0, 1, 0], [1, 1, V]).dataSync();
  assert.notDeepEqual(step0, step1);
  tf.dispose([images, a, b, first, second, fx.logits, fx.inputs, fy.logits, fy.inputs]);
  m.dispose();
});

/** log p(ids <end> | image) of a decoderInput 'none' model: one forward pass, the words fed do not matter. */
function forwardLogProb(m: Captioner, image: TF.Tensor4D, ids: number[]): number {
  return tf.tidy(() => {
    const row = [START, ...ids, END];
    const { logits } = m.forward(image, tf.tensor2d(row, [1, row.length], 'int32'), {
      teacherProbability: 1,
      feed: 'argmax',
    });
    const logProbs = tf.logSoftmax(logits).arraySync() as number[][][];
    return row.slice(1).reduce((sum, id, t) => sum + logProbs[0]![t]![id]!, 0);
  });
}

test("decoderInput 'none': greedy takes the best word at each position, beam search reports the model's log p and the best caption of its length", async () => {
  // The model's distribution factorises over positions: p(w_t | image, t). So greedy decoding is
  // the best word at each position until <end> is the best, and the most probable caption of n
  // words is the best non-<end> word at each position 1 … n, then <end>.
  const m = await model({ decoderInput: 'none', maxLength: 5 }, 8);
  const images = randomImages(4, 5);
  const perPosition = tf.tidy(() => {
    const row = Array.from({ length: 7 }, () => START); // 6 steps: positions 0 … 5
    const { logits } = m.forward(images, tf.tensor2d([row, row, row, row], [4, 7], 'int32'), {
      teacherProbability: 1,
      feed: 'argmax',
    });
    return tf.logSoftmax(logits).arraySync() as number[][][]; // [image, position, vocab]
  });
  const argmax = (row: number[], skip = -1) =>
    row.reduce((best, v, w) => (w !== skip && (best < 0 || v > row[best]!) ? w : best), -1);
  const greedy = greedyDecode(m, images);
  const found = beamSearch(m, images, { beamWidth: 3, lengthPenalty: 0 });
  for (let b = 0; b < 4; b++) {
    const expectGreedy: number[] = [];
    for (let t = 0; t < 5 && argmax(perPosition[b]![t]!) !== END; t++) expectGreedy.push(argmax(perPosition[b]![t]!));
    assert.deepEqual(greedy[b]!.ids, expectGreedy, `image ${b}: greedy`);

    const best = { logProb: -Infinity, prefixes: [] as number[][] };
    let prefix = 0;
    const ids: number[] = [];
    for (let n = 0; n <= 5; n++) {
      best.logProb = Math.max(best.logProb, prefix + perPosition[b]![n]![END]!);
      best.prefixes.push([...ids]);
      if (n === 5) break;
      ids.push(argmax(perPosition[b]![n]!, END));
      prefix += perPosition[b]![n]![ids.at(-1)!]!;
    }
    // Every hypothesis's log p is the model's, position by position: the search fed each row its
    // own position (a row at the wrong position would score its words under another step's distribution).
    const one = images.slice([b, 0, 0, 0], [1, 16, 16, 3]);
    for (const h of found[b]!) assert.ok(Math.abs(h.logProb - forwardLogProb(m, one, h.tokens)) < 1e-4);
    one.dispose();
    const top = found[b]![0]!;
    // Beam search may miss the best length (an <end> outside the top `width` candidates is
    // dropped), but whatever length it returns, its best caption of that length is the best word
    // at each position: that prefix is the top live beam at every step.
    assert.deepEqual(top.tokens, best.prefixes[top.tokens.length], `image ${b}: beam search's best`);
    assert.ok(top.logProb <= best.logProb + 1e-4, `image ${b}: ${top.logProb} above the optimum ${best.logProb}`);
  }
  tf.dispose(images);
  m.dispose();
});

async function collect<T>(it: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of it) out.push(x);
  return out;
}

for (const arch of [
  { cell: 'rnn' },
  { cell: 'irnn', encoderPooling: 'grid', featureInput: 'attention' },
  { decoderInput: 'none' },
  { decoderInput: 'none', cell: 'lstm', encoderPooling: 'grid', featureInput: 'attention' },
] as const) {
  test(`${JSON.stringify(arch)}: save → load computes the same captions; greedy, beam, sampling and streaming leak no tensor`, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'captioner-lab-'));
    try {
      const m = await model(arch, 11);
      await saveCheckpoint(
        dir,
        {
          config: { model: m.config, versions: { captioner: 'x', tfjs: tf.version.tfjs } },
          vocab: m.vocab,
          weights: m.namedWeights(),
          backboneTopology: null,
        },
        true,
      );
      const { model: back } = await loadModel(dir);
      assert.deepEqual(back.config, m.config);
      const images = randomImages(3, 4);
      const image = randomImages(1, 6);
      const before = tf.memory().numTensors;
      for (const strategy of ['greedy', 'beam', 'sample'] as const) {
        const options = { strategy, beamWidth: 3, seed: 2 };
        const ours = captionImages(m, images, options);
        const theirs = captionImages(back, images, options);
        assert.deepEqual(
          theirs.map((c) => c.words),
          ours.map((c) => c.words),
          strategy,
        );
        theirs.forEach((c, i) => assert.ok(Math.abs(c.logProb - ours[i]!.logProb) < 1e-5, strategy));
        const streamed = await collect(streamCaption(back, image, options));
        const done = streamed.at(-1)!;
        assert.equal(done.type, 'done');
        if (done.type === 'done')
          assert.deepEqual(done.result.words, captionImages(back, image, options)[0]!.words, `${strategy} streamed`);
      }
      greedyDecode(back, images, 40); // longer than maxLength: positions past the table
      assert.equal(tf.memory().numTensors, before, 'decoding leaks nothing');
      tf.dispose([images, image]);
      back.dispose();
      m.dispose();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
}
