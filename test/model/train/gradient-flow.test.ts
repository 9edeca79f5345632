/**
 * Gradient flow through time (model/train/gradient-flow.ts): the norms it reports are the
 * gradients tf.grad computes directly, by running the decoder on from a state (for each cell, and
 * for the attending decoders with either query); a plain RNN with small recurrent weights loses
 * the gradient over time steps where an IRNN keeps it; and a training run with
 * --log-gradient-flow writes its records to metrics.jsonl.
 */
import assert from 'node:assert/strict';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type * as TF from '@tensorflow/tfjs';
import { Captioner, MODEL_DEFAULTS, type DecoderState, type ModelConfig } from '../../../model/nn/captioner.ts';
import { readMetricsLog } from '../../../model/io/metrics-log.ts';
import { measureGradientFlow } from '../../../model/train/gradient-flow.ts';
import { train } from '../../../model/train/trainer.ts';
import { END, PAD, START, Vocabulary } from '../../../model/text/vocab.ts';
import { makeTinyDataset } from '../../helpers/tiny-data.ts';
import { tinyConfig } from '../../helpers/tiny-model.ts';
import { setupBackend } from '../../helpers/tf.ts';

const tf = await setupBackend();

const WORDS = 'a b c d e f g h i j k l m n'.split(' ');

async function tinyNet(arch: Partial<ModelConfig>, seed = 3): Promise<Captioner> {
  const config: ModelConfig = {
    ...MODEL_DEFAULTS,
    imageSize: 8,
    encoderChannels: [4],
    featureSize: 6,
    embeddingSize: 5,
    hiddenSize: 7,
    maxLength: 16,
    minWordCount: 1,
    ...arch,
  };
  return Captioner.create(config, Vocabulary.build([WORDS.join(' ')], 1), seed);
}

/** Captions of `lengths` words each, padded: [batch, longest + 2] token ids. */
function captions(vocab: Vocabulary, lengths: number[]): TF.Tensor2D {
  const width = Math.max(...lengths) + 2;
  const rows = lengths.map((n, b) => {
    const words = Array.from({ length: n }, (_, i) => vocab.id(WORDS[(i * 3 + b) % WORDS.length]!));
    const row = [START, ...words, END];
    return [...row, ...Array.from({ length: width - row.length }, () => PAD)];
  });
  return tf.tensor2d(rows, [lengths.length, width], 'int32');
}

/**
 * The reference: ∂L/∂h_t (or ∂L/∂c_t with h_t held) by tf.grad of a function that takes the
 * state at t and runs the decoder on from it, L = −Σ weights[b, u]·log p(target[b, u]).
 * Per row, [batch][H]. Word t is read off h_t (t ≥ 1) by hand: with attention, beside the look
 * it was read with, by hand too: the look the step before took (attentionQuery 'previous-state',
 * which h_t does not change) or the look h_t itself takes ('new-state', which the next step also
 * reads).
 */
function referenceGradients(
  model: Captioner,
  images: TF.Tensor4D,
  tokens: TF.Tensor2D,
  weights: number[][],
  which: 'h' | 'c',
): number[][] {
  const [batch, width] = tokens.shape;
  const steps = width - 1;
  const truth = tf.unstack(tokens, 1) as TF.Tensor1D[];
  const features = model.encode(images);
  const states: DecoderState[] = [model.initialState(features)];
  for (let t = 0; t < steps; t++) states.push(model.step(truth[t]!, states[t]!, features).state);
  const V = model.vocab.size;
  const w = tf.tensor2d(weights, [batch, steps]);
  const stepLoss = (logits: TF.Tensor2D, u: number) =>
    tf.neg(
      tf.sum(
        tf.mul(
          tf.sum(tf.mul(tf.logSoftmax(logits), tf.oneHot(truth[u + 1]!, V)), 1),
          w.slice([0, u], [batch, 1]).reshape([batch]),
        ),
      ),
    );
  const named = model.namedWeights();
  const attention = model.config.featureInput === 'attention';
  const newState = attention && model.config.attentionQuery === 'new-state';
  // Scaled dot-product attention over the grid [batch, positions, F], asked by h: the context.
  const look = (h: TF.Tensor2D) => {
    const grid = features as TF.Tensor3D;
    const query = tf.matMul(h, named['decoder/attention/query']!); // [batch, F]
    const scores = tf.div(tf.sum(tf.mul(grid, tf.expandDims(query, 1)), 2), Math.sqrt(grid.shape[2]));
    return tf.sum(tf.mul(grid, tf.expandDims(tf.softmax(scores), 2)), 1) as TF.Tensor2D;
  };
  const norms: number[][] = [];
  for (let t = 0; t <= steps; t++) {
    const from = states[t]!;
    const f = (x: TF.Tensor) => {
      let state: DecoderState =
        which === 'h'
          ? { ...from, h: x as TF.Tensor2D, ...(newState ? { context: look(x as TF.Tensor2D) } : {}) }
          : { ...from, c: x as TF.Tensor2D };
      let loss: TF.Tensor = tf.scalar(0);
      if (which === 'h' && t >= 1) {
        const context = newState ? state.context! : attention ? look(states[t - 1]!.h) : null;
        const readout = context ? tf.concat([state.h, context], 1) : state.h;
        const logits = tf.add(tf.matMul(readout, named['decoder/output/kernel']!), named['decoder/output/bias']!);
        loss = tf.add(loss, stepLoss(logits as TF.Tensor2D, t - 1));
      }
      for (let u = t; u < steps; u++) {
        const out = model.step(truth[u]!, state, features);
        loss = tf.add(loss, stepLoss(out.logits, u));
        state = out.state;
      }
      return loss as TF.Scalar;
    };
    const x = which === 'h' ? from.h : from.c!;
    const g = t === steps && which === 'c' ? tf.zerosLike(x) : tf.grad(f)(x);
    norms.push(Array.from({ length: batch }, (_, b) => tf.norm(g.slice([b, 0], [1, -1])).dataSync()[0]!));
  }
  return norms;
}

const mean = (xs: number[]) => xs.reduce((a, x) => a + x, 0) / xs.length;

function assertNear(got: number, want: number, what: string): void {
  assert.ok(Math.abs(got - want) <= 1e-4 + 1e-3 * Math.abs(want), `${what}: logged ${got}, tf.grad ${want}`);
}

const ARCHITECTURES: [string, Partial<ModelConfig>][] = [
  ['lstm', { cell: 'lstm' }],
  ['gru', { cell: 'gru' }],
  ['rnn', { cell: 'rnn' }],
  ...(['previous-state', 'new-state'] as const).flatMap((attentionQuery): [string, Partial<ModelConfig>][] =>
    (['lstm', 'gru'] as const).map((cell) => [
      `${cell} attending (${attentionQuery})`,
      { cell, encoderPooling: 'grid', featureInput: 'attention', attentionQuery },
    ]),
  ),
];

for (const [name, arch] of ARCHITECTURES) {
  const cell = arch.cell!;
  test(`${name}: the logged norms are the gradients tf.grad computes by running the decoder on from each state`, async () => {
    const model = await tinyNet(arch);
    const lengths = [5, 2, 3];
    const tokens = captions(model.vocab, lengths);
    const images = tf.randomUniform([3, 8, 8, 3], 0, 1, 'float32', 4) as TF.Tensor4D;
    const live = tf.memory().numTensors;
    const flow = measureGradientFlow(model, images, tokens);
    assert.equal(tf.memory().numTensors, live, 'the measurement holds no tensor');
    const steps = Math.max(...lengths) + 1;
    assert.equal(flow.steps, steps);
    assert.equal(flow.hNorm.length, steps + 1);
    assert.deepEqual(flow.lastWordCaptions, [3, 3, 3, 2, 1, 1]); // distances 0 … 5: captions of ≥ k words

    const mask = lengths.map((n) => Array.from({ length: steps }, (_, u) => (u <= n ? 1 : 0)));
    const lastWord = lengths.map((n) => Array.from({ length: steps }, (_, u) => (u === n - 1 ? 1 : 0)));
    const check = (which: 'h' | 'c', logged: number[], logLast: number[]) => {
      const whole = tf.tidy(() => referenceGradients(model, images, tokens, mask, which));
      const last = tf.tidy(() => referenceGradients(model, images, tokens, lastWord, which));
      for (let t = 0; t <= steps; t++) {
        const rows = lengths.flatMap((n, b) => (t <= n + 1 ? [whole[t]![b]!] : []));
        assertNear(logged[t]!, rows.length ? mean(rows) : 0, `${which} norm at t = ${t}`);
      }
      for (let k = 0; k < logLast.length; k++) {
        const rows = lengths.flatMap((n, b) => (k <= n ? [last[n - k]![b]!] : []));
        assertNear(logLast[k]!, mean(rows), `last word's ${which} norm at distance ${k}`);
      }
      // States after a caption's <end> reach none of its losses: their gradient is exactly 0.
      assert.equal(whole[steps]![1], 0);
    };
    check('h', flow.hNorm, flow.lastWordH);
    if (cell === 'lstm') check('c', flow.cNorm!, flow.lastWordC!);
    else assert.equal(flow.cNorm, undefined);
    assert.ok(flow.hNorm.every((x) => Number.isFinite(x) && x >= 0));
    tf.dispose([tokens, images]);
    model.dispose();
  });
}

test("an rnn with small recurrent weights loses the last word's gradient over time steps; an irnn (identity) keeps it", async () => {
  const rnn = await tinyNet({ cell: 'rnn', hiddenSize: 16 });
  const recurrent = rnn.namedWeights()['decoder/cell/recurrent']!;
  recurrent.assign(tf.mul(recurrent, 0.5));
  const irnn = await tinyNet({ cell: 'irnn', hiddenSize: 16 });
  const tokens = captions(rnn.vocab, [12, 12]);
  const images = tf.randomUniform([2, 8, 8, 3], 0, 1, 'float32', 2) as TF.Tensor4D;
  const decay = (m: Captioner) => {
    const flow = measureGradientFlow(m, images, tokens);
    return flow.lastWordH[10]! / flow.lastWordH[1]!; // ten steps back against one
  };
  const [small, identity] = [decay(rnn), decay(irnn)];
  assert.ok(small < 0.01, `rnn: ‖∂L/∂h‖ ten steps back is ${small} of one step back`);
  assert.ok(identity > 0.3, `irnn: ‖∂L/∂h‖ ten steps back is ${identity} of one step back`);
  tf.dispose([tokens, images]);
  rnn.dispose();
  irnn.dispose();
});

let data: string;
const cleanup: string[] = [];
before(async () => {
  data = (await makeTinyDataset()).dir;
  cleanup.push(data);
});
after(async () => {
  for (const dir of cleanup) await rm(dir, { recursive: true, force: true });
});

test('--log-gradient-flow 2 writes a gradient-flow record before the first step, every 2 steps and after the last', async () => {
  const config = await tinyConfig(data, { cell: 'lstm', epochs: 50, maxSteps: 5, logGradientFlow: 2, batchSize: 3 });
  cleanup.push(config.out);
  await train(config);
  const records = (await readMetricsLog(join(config.out, 'metrics.jsonl'))).filter((r) => r.type === 'gradient-flow');
  assert.deepEqual(
    records.map((r) => r.step),
    [0, 2, 4, 5],
  );
  for (const r of records) {
    const steps = r.steps as number;
    assert.equal(r.cell, 'lstm');
    assert.equal(r.captions, 3);
    assert.equal((r.hNorm as number[]).length, steps + 1);
    assert.equal((r.cNorm as number[]).length, steps + 1);
    assert.equal((r.lastWordH as number[]).length, (r.lastWordCaptions as number[]).length);
    assert.ok((r.hNorm as number[]).every((x) => Number.isFinite(x) && x >= 0));
    assert.ok((r.lastWordH as number[])[0]! > 0, "the last word's loss reaches the state that reads it");
  }
  // The weights moved between the first and the last record, so the figures did too.
  assert.notDeepEqual(records[0]!.lastWordH, records[3]!.lastWordH);
  const text = await readFile(join(config.out, 'metrics.jsonl'), 'utf8');
  assert.ok(text.endsWith('\n'));
});

test('a resumed run goes on logging gradient flow where it stopped, without measuring step 0 again', async () => {
  const config = await tinyConfig(data, { cell: 'rnn', epochs: 50, maxSteps: 3, logGradientFlow: 2, batchSize: 3 });
  cleanup.push(config.out);
  await train(config);
  await train({ ...config, resume: true, maxSteps: 5 });
  const steps = (await readMetricsLog(join(config.out, 'metrics.jsonl')))
    .filter((r) => r.type === 'gradient-flow')
    .map((r) => r.step);
  assert.deepEqual(steps, [0, 2, 3, 4, 5]);
});
