/**
 * captioner's fused native kernels (model/runtime/fused.ts) against the TF.js ops they stand for:
 * each case runs once with the native kernels off (the plain ops) and once with them on (the
 * fused kernel), forward and gradient, and asserts the fused kernels really ran. The addon must
 * be built: these tests fail, not skip, when it is not.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { cellWeights, createCell, gruStep, lstmStep, type CellKind } from '../../../model/nn/cells.ts';
import { fusedCellSequence } from '../../../model/nn/fused-cells.ts';
import {
  convReluMaxPool,
  gruSequence,
  hasFusedCell,
  logSoftmax,
  lstmSequence,
  softmaxCrossEntropy,
  type ConvBlockOptions,
} from '../../../model/runtime/fused.ts';
import { fusedAdamUpdate } from '../../../model/runtime/fused-optim.ts';
import { disableNativeKernels, enableNativeKernels, loadNativeAddon } from '../../../model/runtime/native.ts';
import { maskedSequenceLoss } from '../../../model/train/loss.ts';
import { Adam, globalNorm } from '../../../model/train/optim.ts';
import { PAD } from '../../../model/text/vocab.ts';
import { Rng } from '../../../model/util/rng.ts';
import {
  assertCaptionerGradientsMatch,
  assertClose,
  assertServedNatively,
  onBoth,
  rand,
} from '../../helpers/native-compare.ts';

/** Steps of `cell` one at a time, as decoding runs them: every h, and the last state. */
function stepByStep(
  kind: CellKind,
  params: Record<string, tf.Variable>,
  xs: tf.Tensor3D,
  h0: tf.Tensor2D,
  c0: tf.Tensor2D,
) {
  let state = kind === 'lstm' ? { h: h0, c: c0 } : { h: h0 };
  const hs: tf.Tensor2D[] = [];
  for (const x of tf.unstack(xs, 1) as tf.Tensor2D[]) {
    state = (kind === 'lstm' ? lstmStep : gruStep)(params, 'cell', x, state);
    hs.push(state.h);
  }
  return { hs: tf.stack(hs, 1) as tf.Tensor3D, state };
}

describe('fused kernels', () => {
  before(async () => {
    await tf.setBackend('cpu');
    assert.equal(typeof loadNativeAddon(), 'object', 'the native addon must be built for these tests');
  });
  after(() => disableNativeKernels());

  for (const kind of ['lstm', 'gru'] as const) {
    const gates = kind === 'lstm' ? 4 : 3;
    test(`${kind}: a step, and a whole sequence, equal the gate-by-gate cell, forward and gradient`, () => {
      // Batch 9 runs the recurrent products as GEMMs, batches 5 and 2 as few-row products (and
      // the backward pass's, against Uᵀ, as a GEMM (on a transposed copy of U where the products run
      // on AVX-512) and as matrix-vector products). A step is a
      // sequence of one, run with xw [batch, G·H] (model/nn/fused-cells.ts).
      for (const [batch, steps, input, hidden] of [
        [9, 4, 6, 7],
        [5, 3, 4, 10],
        [2, 3, 5, 9],
      ] as const) {
        const params = createCell(kind, new Rng(3), input, hidden, 'cell');
        const weights = Object.values(params);
        const xs = rand([batch, steps, input], 2) as tf.Tensor3D;
        const h0 = rand([batch, hidden]) as tf.Tensor2D;
        const c0 = rand([batch, hidden]) as tf.Tensor2D;
        const probe = rand([batch, steps, hidden]);
        const probeC = rand([batch, hidden]);
        // Every h and the last c, weighted, so that every output's gradient flows back.
        const stepLoss = (x: tf.Tensor3D, h: tf.Tensor2D, c: tf.Tensor2D) => {
          const { hs, state } = stepByStep(kind, params, x, h, c);
          return tf.add(tf.sum(tf.mul(hs, probe)), tf.sum(tf.mul(state.c ?? state.h, probeC))) as tf.Scalar;
        };
        const label = `${kind} batch ${batch}`;
        assertClose(() => stepByStep(kind, params, xs, h0, c0).hs, `${label}: steps, forward`);
        assertClose(() => {
          const { value, grads } = tf.variableGrads(() => stepLoss(xs, h0, c0), weights);
          return [value, ...weights.map((w) => grads[w.name]!)];
        }, `${label}: steps, weight gradients`);
        // The GRU has no c: its c0 takes no part.
        const inputs = kind === 'lstm' ? [xs, h0, c0] : [xs, h0];
        const withInputs =
          (loss: typeof stepLoss) =>
          (...t: tf.Tensor[]) =>
            loss(t[0] as tf.Tensor3D, t[1] as tf.Tensor2D, (t[2] ?? c0) as tf.Tensor2D);
        assertClose(() => tf.grads(withInputs(stepLoss))(inputs), `${label}: steps, input and state gradients`);
        // The whole sequence at once (teacher forcing) against steps of the gate-by-gate cell.
        const sequenceLoss = (x: tf.Tensor3D, h: tf.Tensor2D, c: tf.Tensor2D) => {
          const state = kind === 'lstm' ? { h, c } : { h };
          const hs =
            fusedCellSequence(kind, cellWeights(params, 'cell'), x, state) ?? stepByStep(kind, params, x, h, c).hs;
          return tf.sum(tf.mul(hs, probe)) as tf.Scalar;
        };
        assertClose(() => {
          const { value, grads } = tf.variableGrads(() => sequenceLoss(xs, h0, c0), weights);
          return [value, ...weights.map((w) => grads[w.name]!)];
        }, `${label}: sequence, forward and weight gradients`);
        assertClose(() => tf.grads(withInputs(sequenceLoss))(inputs), `${label}: sequence, input and state gradients`);
        assert.equal(params['cell/kernel']!.shape[1], gates * hidden);
        tf.dispose([...weights, xs, h0, c0, probe, probeC]);
      }
      const name = kind === 'lstm' ? 'CaptionerLstmSequence' : 'CaptionerGruSequence';
      assertServedNatively(name, `${name}Grad`);
    });
  }

  test('encoder block: conv, bias, ReLU and max-pool equal the TF.js ops, with the gradient of x, filter and bias', () => {
    const block = (x: tf.Tensor4D, w: tf.Tensor4D, b: tf.Tensor1D, o: ConvBlockOptions) =>
      convReluMaxPool(x, w, b, o) ??
      tf.maxPool(
        tf.relu(tf.add(tf.conv2d(x, w, o.strides as 1, o.pad), b)) as tf.Tensor4D,
        o.poolSize,
        o.poolStrides,
        o.poolPad,
      );
    for (const [xShape, wShape, options] of [
      [[3, 8, 8, 3], [3, 3, 3, 5], { strides: 1, pad: 'same', poolSize: 2, poolStrides: 2, poolPad: 'same' }],
      // odd sides: the last window of 'same' pooling hangs over the edge; 'valid' drops it
      [[2, 7, 9, 4], [3, 3, 4, 6], { strides: 1, pad: 'same', poolSize: 2, poolStrides: 2, poolPad: 'same' }],
      [[2, 7, 9, 4], [3, 3, 4, 6], { strides: 1, pad: 'valid', poolSize: 2, poolStrides: 2, poolPad: 'valid' }],
      [[2, 10, 10, 3], [3, 3, 3, 4], { strides: 2, pad: 'same', poolSize: 3, poolStrides: 3, poolPad: 'same' }],
      // channels in multiples of 16, as the encoder's: AVX-512 tiles where the CPU has them
      [[2, 9, 9, 16], [3, 3, 16, 48], { strides: 1, pad: 'same', poolSize: 2, poolStrides: 2, poolPad: 'same' }],
    ] as [number[], number[], ConvBlockOptions][]) {
      const x = rand(xShape) as tf.Tensor4D;
      const w = rand(wShape) as tf.Tensor4D;
      const b = rand([wShape[3]!], 0.5) as tf.Tensor1D; // about half the pre-activations negative
      const probe = rand(block(x, w, b, options).shape);
      const label = `block x[${xShape}] w[${wShape}] ${JSON.stringify(options)}`;
      assertClose(() => block(x, w, b, options), `${label}: forward`);
      assertClose(
        () =>
          tf.grads((xx, ww, bb) =>
            tf.sum(tf.mul(block(xx as tf.Tensor4D, ww as tf.Tensor4D, bb as tf.Tensor1D, options), probe)),
          )([x, w, b]),
        `${label}: gradients`,
      );
      tf.dispose([x, w, b, probe]);
    }
    // Ties: a constant image gives equal values in every window; the first one wins, as in MaxPoolGrad.
    const flat = tf.ones([1, 4, 4, 2]) as tf.Tensor4D;
    const w = tf.ones([1, 1, 2, 3]) as tf.Tensor4D;
    const b = tf.tensor1d([0.5, -3, 0]);
    const options = { strides: 1, pad: 'same', poolSize: 2, poolStrides: 2, poolPad: 'same' } as const;
    assertClose(
      () => tf.grads((xx, bb) => tf.sum(block(xx as tf.Tensor4D, w, bb as tf.Tensor1D, options)))([flat, b]),
      'ties',
    );
    assertServedNatively(
      'CaptionerConvReluMaxPool',
      'CaptionerMaxPoolReluBiasGrad',
      'Conv2DBackpropInput',
      'Conv2DBackpropFilter',
    );
    // Overlapping windows are the TF.js ops' (an input can be the argmax of two windows).
    assert.equal(convReluMaxPool(flat, w, b, { ...options, poolSize: 3, poolStrides: 1 }), null);
    tf.dispose([flat, w, b]);
  });

  test('softmax cross-entropy: the masked, label-smoothed sequence loss and its gradient', () => {
    const logits = rand([4, 5, 11], 3) as tf.Tensor3D;
    const targets = tf.tensor2d(
      [
        [4, 5, 6, 2, PAD],
        [7, 10, 2, PAD, PAD],
        [9, 8, 4, 5, 2],
        [3, 2, PAD, PAD, PAD],
      ],
      [4, 5],
      'int32',
    );
    for (const smoothing of [0, 0.1]) {
      assertClose(
        () =>
          tf
            .grads((z) => maskedSequenceLoss(z as tf.Tensor3D, targets, smoothing))([logits])
            .concat(maskedSequenceLoss(logits, targets, smoothing)),
        `label smoothing ${smoothing}`,
      );
    }
    // The unmasked loss (--loss-on-padding): <pad> a target like any word.
    assertClose(
      () =>
        tf
          .grads((z) => maskedSequenceLoss(z as tf.Tensor3D, targets, 0.1, { maskPadding: false }))([logits])
          .concat(maskedSequenceLoss(logits, targets, 0.1, { maskPadding: false })),
      'pads in the loss',
    );
    assertServedNatively('CaptionerSoftmaxCrossEntropy', 'CaptionerSoftmaxCrossEntropyGrad');
    // A target outside the vocabulary is the TF.js ops' (its one-hot row is all zeros).
    const outside = tf.tensor2d([[4, 11, 2, PAD, PAD]], [1, 5], 'int32');
    assertClose(
      () => maskedSequenceLoss(logits.slice([0, 0, 0], [1, 5, 11]) as tf.Tensor3D, outside),
      'target outside [0, V)',
    );
    tf.dispose([logits, targets, outside]);
  });

  test('log-softmax: the same numbers as tf.logSoftmax, and its gradient', () => {
    const { js, native } = onBoth(() => [
      logSoftmax(rand([3, 1000], 8)),
      logSoftmax(tf.concat([rand([2, 4, 5], 3), tf.fill([2, 4, 2], -Infinity)], 2)),
    ]);
    js.forEach((ref, i) => assert.deepEqual(native[i], ref, `log-softmax [output ${i}]`));
    const probe = rand([4, 3, 30]);
    assertClose(() => tf.grad((x) => tf.sum(tf.mul(logSoftmax(x), probe)))(rand([4, 3, 30], 4)), 'gradient');
    assertServedNatively('CaptionerLogSoftmax');
    probe.dispose();
  });

  test('Adam: the fused update gives exactly the numbers of the TF.js ops, clipped or not, and leaves shared buffers alone', () => {
    const shapes = [[3, 70000], [5], [2, 3, 4]];
    for (const gradScale of [1, 0.37]) {
      const { js, native } = onBoth(() => {
        const variables = Object.fromEntries(shapes.map((s, i) => [`w${i}`, tf.variable(rand(s))]));
        const adam = new Adam();
        for (let step = 0; step < 3; step++) {
          const grads = Object.fromEntries(shapes.map((s, i) => [`w${i}`, rand(s, 10 ** (i - 2))]));
          adam.apply(variables, grads, 0.01 * (step + 1), gradScale);
          tf.dispose(Object.values(grads));
        }
        const state = adam.stateTensors();
        const out = [...Object.values(variables), ...Object.values(state)].map((t) => t.clone());
        adam.dispose();
        tf.dispose(Object.values(variables));
        return out;
      });
      js.forEach((ref, i) => assert.deepEqual(native[i], ref, `gradScale ${gradScale}: tensor ${i} differs`));
    }
    enableNativeKernels();
    // A variable assigned from a tensor shares its buffer: the update must not write into that tensor.
    const init = tf.tensor1d([1, 2, 3]);
    const variable = tf.variable(init);
    const m = tf.variable(tf.zeros([3]), false);
    const v = tf.variable(tf.zeros([3]), false);
    const grad = tf.tensor1d([0.5, -0.5, 1]);
    const k = { gradScale: 1, beta1: 0.9, beta2: 0.999, epsilon: 1e-8, c1: 0.1, c2: 0.001, learningRate: 0.1 };
    assert.ok(fusedAdamUpdate([{ variable, m, v, grad }], k));
    assert.deepEqual(Array.from(init.dataSync()), [1, 2, 3]);
    assert.notDeepEqual(Array.from(variable.dataSync()), [1, 2, 3]);
    tf.dispose([init, variable, m, v, grad]);
  });

  test('the global norm in one pass equals the TF.js ops', () => {
    const { js, native } = onBoth(() => {
      const grads = { a: rand([3, 70000]), b: rand([7], 100), c: rand([2, 2]) };
      return tf.scalar(globalNorm(grads));
    });
    assert.ok(Math.abs(native[0]![0]! - js[0]![0]!) <= 1e-6 * js[0]![0]!, `${native[0]![0]} vs ${js[0]![0]}`);
  });

  for (const variant of [
    { cell: 'lstm', featureInput: 'init' },
    { cell: 'gru', featureInput: 'init' },
    { cell: 'lstm', featureInput: 'attention', encoderPooling: 'grid' },
    { cell: 'lstm', featureInput: 'attention', encoderPooling: 'grid', encoderInput: 'chroma', colourStream: 3 },
    {
      cell: 'lstm',
      featureInput: 'attention',
      encoderPooling: 'grid',
      encoderInput: 'chroma',
      colourStream: 3,
      colourStreamPool: 2,
      attentionQuery: 'new-state',
    },
  ] as const) {
    const input =
      ('encoderInput' in variant ? `, ${variant.encoderInput} + colour stream` : '') +
      ('colourStreamPool' in variant ? ` pooled ${variant.colourStreamPool}, ${variant.attentionQuery}` : '');
    test(`the model (${variant.cell}, ${variant.featureInput}${input}): teacher-forced loss and every gradient equal the TF.js ops`, async () => {
      await assertCaptionerGradientsMatch(variant, 0.1);
      const kernel = variant.cell === 'lstm' ? 'CaptionerLstmSequence' : 'CaptionerGruSequence';
      assertServedNatively(kernel, `${kernel}Grad`, 'CaptionerConvReluMaxPool', 'CaptionerSoftmaxCrossEntropy');
    });
  }
});

test('without the native kernels (as in the browser bundle) every fused op declines, so the TF.js ops run', () => {
  disableNativeKernels();
  const [b, t, h] = [2, 3, 4];
  const tensors = [
    tf.zeros([b, t, 4 * h]),
    tf.zeros([b, h]),
    tf.zeros([h, 4 * h]),
    tf.zeros([b, t, 3 * h]),
    tf.zeros([h, 3 * h]),
    tf.zeros([1, 8, 8, 3]),
    tf.zeros([3, 3, 3, 4]),
    tf.zeros([4]),
    tf.zeros([b, t, 5]),
    tf.zeros([b, t], 'int32'),
  ] as const;
  const [xw4, h0, u4, xw3, u3, x, filter, bias, logits, targets] = tensors;
  const before = tf.memory().numTensors;
  assert.equal(hasFusedCell('lstm'), false);
  assert.equal(hasFusedCell('gru'), false);
  assert.equal(lstmSequence(xw4 as tf.Tensor3D, h0 as tf.Tensor2D, h0 as tf.Tensor2D, u4 as tf.Tensor2D), null);
  assert.equal(gruSequence(xw3 as tf.Tensor3D, h0 as tf.Tensor2D, u3 as tf.Tensor2D), null);
  const block: ConvBlockOptions = { strides: 1, pad: 'same', poolSize: 2, poolStrides: 2, poolPad: 'valid' };
  assert.equal(convReluMaxPool(x as tf.Tensor4D, filter as tf.Tensor4D, bias as tf.Tensor1D, block), null);
  assert.equal(softmaxCrossEntropy(logits, targets, { pad: 0, labelSmoothing: 0, scale: 1 }), null);
  assert.equal(tf.memory().numTensors, before, 'declining allocates nothing');
  // logSoftmax never declines: without its kernel it is tf.logSoftmax.
  const logProbs = logSoftmax(logits);
  assert.deepEqual(logProbs.dataSync(), tf.logSoftmax(logits).dataSync());
  assert.equal(tf.getKernel('CaptionerLogSoftmax', 'cpu'), undefined);
  logProbs.dispose();
  tf.dispose([...tensors]);
});
