/**
 * Finite-difference gradient checks: the gradients TF.js derives through the hand-written LSTM,
 * GRU, Elman RNN and IRNN cells, the masked loss and the whole model (backpropagation through time) agree
 * with central differences (f(θ+h) − f(θ−h)) / 2h.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type * as TF from '@tensorflow/tfjs';
import { Captioner, MODEL_DEFAULTS, type ModelConfig } from '../../../model/nn/captioner.ts';
import { CELL_KINDS, createCell, cellStep } from '../../../model/nn/cells.ts';
import { maskedSequenceLoss } from '../../../model/train/loss.ts';
import { Rng } from '../../../model/util/rng.ts';
import { Vocabulary } from '../../../model/text/vocab.ts';
import { setupBackend } from '../../helpers/tf.ts';

const tf = await setupBackend();

/** Central difference of `f` with respect to element `i` of variable `v`. */
function numericGradient(f: () => number, v: TF.Variable, i: number, h = 3e-3): number {
  const base = v.dataSync().slice();
  const at = (delta: number) => {
    const values = base.slice();
    values[i]! += delta;
    v.assign(tf.tensor(values, v.shape));
    return f();
  };
  const up = at(h);
  const down = at(-h);
  v.assign(tf.tensor(base, v.shape));
  return (up - down) / (2 * h);
}

function assertClose(analytic: number, numeric: number, what: string): void {
  const tol = 2e-3 + 2e-2 * Math.abs(numeric);
  assert.ok(Math.abs(analytic - numeric) <= tol, `${what}: analytic ${analytic} vs numeric ${numeric}`);
}

function randomTensor(rng: Rng, shape: number[], scale = 1) {
  const n = shape.reduce((a, b) => a * b, 1);
  return tf.tensor(
    Float32Array.from({ length: n }, () => rng.normal() * scale),
    shape,
  );
}

for (const kind of CELL_KINDS) {
  test(`${kind} cell: gradients of every weight and input match finite differences`, () => {
    const rng = new Rng(7);
    const params = createCell(kind, rng, 3, 4, 'cell');
    const x = tf.variable(randomTensor(rng, [2, 3]));
    const h = tf.variable(randomTensor(rng, [2, 4], 0.5));
    const c = tf.variable(randomTensor(rng, [2, 4], 0.5));
    const rh = randomTensor(rng, [2, 4]);
    const rc = randomTensor(rng, [2, 4]);
    // A scalar that depends on both outputs, so that both paths are checked.
    const loss = () =>
      tf.tidy(() => {
        const next = cellStep(kind, params, 'cell', x as TF.Tensor2D, {
          h: h as TF.Tensor2D,
          c: c as TF.Tensor2D,
        });
        const s = tf.sum(tf.mul(next.h, rh));
        return next.c ? tf.add(s, tf.sum(tf.mul(next.c, rc))) : s;
      }) as TF.Scalar;
    const variables = { ...params, x, h, ...(kind === 'lstm' ? { c } : {}) };
    const { grads } = tf.variableGrads(loss, Object.values(variables));
    const f = () => loss().dataSync()[0]!;
    for (const [name, v] of Object.entries(variables)) {
      const g = grads[v.name]!.dataSync();
      for (let k = 0; k < Math.min(6, v.size); k++) {
        const i = (k * 7919) % v.size;
        assertClose(g[i]!, numericGradient(f, v, i), `${kind} ${name}[${i}]`);
      }
    }
    tf.dispose([x, h, c, rh, rc, ...Object.values(params), ...Object.values(grads)]);
  });
}

for (const smoothing of [0, 0.2]) {
  test(`masked loss${smoothing ? ' with label smoothing' : ''}: gradient w.r.t. logits is (softmax − target)·mask / batch, and matches finite differences`, () => {
    // The target is the one-hot word, or with smoothing α: (1 − α)·one-hot + α/vocab on every word.
    const rng = new Rng(3);
    const logits = tf.variable(randomTensor(rng, [2, 3, 5]));
    const targets = tf.tensor2d(
      [
        [4, 2, 0],
        [1, 0, 0],
      ],
      [2, 3],
      'int32',
    );
    const loss = () => maskedSequenceLoss(logits as TF.Tensor3D, targets, smoothing);
    const { value, grads } = tf.variableGrads(loss, [logits]);
    const g = grads[logits.name]!.dataSync();
    const probs = tf.softmax(logits).dataSync();
    const t = targets.dataSync();
    let expectedLoss = 0;
    for (let b = 0; b < 2; b++) {
      for (let s = 0; s < 3; s++) {
        for (let w = 0; w < 5; w++) {
          const i = (b * 3 + s) * 5 + w;
          const target = t[b * 3 + s]!;
          const want = (1 - smoothing) * (w === target ? 1 : 0) + smoothing / 5;
          const expected = target === 0 ? 0 : (probs[i]! - want) / 2;
          if (target !== 0) expectedLoss -= (want * Math.log(probs[i]!)) / 2;
          assert.ok(Math.abs(g[i]! - expected) < 1e-6, `grad[${b},${s},${w}] = ${g[i]} expected ${expected}`);
          if (target === 0) assert.ok(g[i] === 0, 'a pad position gets exactly zero gradient');
        }
      }
    }
    assert.ok(
      Math.abs(value.dataSync()[0]! - expectedLoss) < 1e-5,
      `loss ${value.dataSync()[0]} expected ${expectedLoss}`,
    );
    const f = () => loss().dataSync()[0]!;
    for (const i of [0, 7, 13, 22]) assertClose(g[i]!, numericGradient(f, logits, i), `logits[${i}]`);
    tf.dispose([logits, targets, value, grads[logits.name]!]);
  });
}

/**
 * The model variants checked whole. A central difference is only right where f is smooth over
 * [θ − h, θ + h]: ReLUs (the encoder's, the IRNN's) have kinks, so some variants draw their images
 * from another seed, or take a narrower step, to keep every ReLU of the check off its kink.
 */
const WHOLE_MODEL_VARIANTS: { name: string; arch: Partial<ModelConfig>; imageSeed?: number; step?: number }[] = [
  { name: '', arch: {} },
  { name: " (initState 'tanh')", arch: { initState: 'tanh' } },
  { name: ' with attention', arch: { encoderPooling: 'grid', featureInput: 'attention' } },
  {
    name: " with attention (attentionQuery 'new-state')",
    arch: { encoderPooling: 'grid', featureInput: 'attention', attentionQuery: 'new-state' },
  },
  { name: ' (rnn)', arch: { cell: 'rnn' }, imageSeed: 7 },
  {
    name: ' (irnn, attention)',
    arch: { cell: 'irnn', encoderPooling: 'grid', featureInput: 'attention' },
    imageSeed: 7,
    step: 1e-3,
  },
  { name: " (decoderInput 'none')", arch: { decoderInput: 'none' } },
  { name: " (rnn, decoderInput 'none')", arch: { cell: 'rnn', decoderInput: 'none' }, imageSeed: 7 },
];
for (const { name: variantName, arch: variant, imageSeed = 5, step } of WHOLE_MODEL_VARIANTS) {
  test(`whole model${variantName}: backpropagation through time matches finite differences for every weight`, async () => {
    const config: ModelConfig = {
      ...MODEL_DEFAULTS,
      ...variant,
      imageSize: 8,
      encoderChannels: [3],
      featureSize: 4,
      embeddingSize: 3,
      hiddenSize: 4,
      maxLength: 4,
      minWordCount: 1,
    };
    const vocab = Vocabulary.build(['red circle', 'blue square'], 1);
    const model = await Captioner.create(config, vocab, 11);
    const rng = new Rng(imageSeed);
    const images = tf.tensor4d(
      Float32Array.from({ length: 2 * 8 * 8 * 3 }, () => rng.next()),
      [2, 8, 8, 3],
    );
    const tokens = tf.tensor2d(
      [
        [1, 4, 5, 2],
        [1, 6, 2, 0],
      ],
      [2, 4],
      'int32',
    );
    const targets = tokens.slice([0, 1], [2, 3]) as TF.Tensor2D;
    const loss = () =>
      tf.tidy(() =>
        maskedSequenceLoss(model.forward(images, tokens, { teacherProbability: 1, feed: 'argmax' }).logits, targets),
      );
    const named = model.namedWeights();
    const { grads } = tf.variableGrads(loss, model.trainableVariables());
    const f = () => loss().dataSync()[0]!;
    for (const [name, v] of Object.entries(named)) {
      const g = grads[v.name]!.dataSync();
      for (let k = 0; k < Math.min(3, v.size); k++) {
        const i = (k * 104729 + 13) % v.size;
        assertClose(g[i]!, numericGradient(f, v, i, step), `${name}[${i}]`);
      }
    }
    tf.dispose([images, tokens, targets, ...Object.values(grads)]);
    model.dispose();
  });
}
