/**
 * Fused ops: a piece of the model that TF.js would run as a dozen small kernels, run as one
 * native kernel forward and one backward (./kernels/recurrent.ts, conv-block.ts, loss.ts), and
 * the optimiser's update as one native pass. Each op returns null when its kernel is not
 * registered on the active backend (CAPTIONER_NATIVE=0, the addon not built, another backend)
 * or the inputs are not ones it takes; the caller then runs the plain TF.js ops, which compute
 * the same function (test/model/runtime/fused.test.ts compares the two, forward and gradient).
 *
 * Nothing here loads the native addon (./native.ts registers the kernels; this file only asks
 * whether they are there), so the browser bundle runs these ops on their TF.js fallbacks; the
 * optimiser's in-place native update, which reads the addon directly, is in ./fused-optim.ts.
 *
 * Gradients are registered with TF.js (tf.registerGradient) for each fused kernel, so autodiff
 * (tf.variableGrads) runs through them as through any op. A gradient kernel with several
 * outputs runs when the gradient function is called, not in the per-input thunks: TF.js runs
 * each thunk in its own tidy, which would dispose the outputs the other thunks return.
 */
import * as tf from '@tensorflow/tfjs';
import {
  CONV_RELU_MAX_POOL,
  GRU_SEQUENCE,
  GRU_SEQUENCE_GRAD,
  LOG_SOFTMAX,
  LSTM_SEQUENCE,
  LSTM_SEQUENCE_GRAD,
  MAX_POOL_RELU_BIAS_GRAD,
  SOFTMAX_CROSS_ENTROPY,
  SOFTMAX_CROSS_ENTROPY_GRAD,
  blockPoolInfo,
  windowsDisjoint,
} from './fused-kernels.ts';

/** Whether `kernels` are all registered on the active backend. */
function registered(...kernels: string[]): boolean {
  const backend = tf.getBackend();
  return kernels.every((k) => tf.getKernel(k, backend) !== undefined);
}

function run(kernel: string, inputs: tf.NamedTensorMap, attrs: Record<string, unknown> = {}): tf.Tensor[] {
  const out = tf.engine().runKernel(kernel, inputs, attrs as tf.NamedAttrMap);
  return Array.isArray(out) ? out : [out];
}

const float32 = (...ts: tf.Tensor[]) => ts.every((t) => t.dtype === 'float32');

/** Whether the fused sequence kernels of `cell` are there (so its input projections are worth computing apart). */
export function hasFusedCell(cell: string): boolean {
  if (cell === 'lstm') return registered(LSTM_SEQUENCE, LSTM_SEQUENCE_GRAD);
  if (cell === 'gru') return registered(GRU_SEQUENCE, GRU_SEQUENCE_GRAD);
  return false;
}

/**
 * An LSTM over a sequence (model/nn/cells.ts's lstmStep at every step): xw [B, T, 4H] the input
 * projections x_t·W + b of every step (gate order i, f, g, o), h0 and c0 [B, H], recurrent U
 * [H, 4H] → hs and cs [B, T, H], every step's h and c. xw [B, 4H] is one step, giving h and c
 * [B, H]. Null when the fused kernel is not there.
 */
export function lstmSequence<X extends tf.Tensor2D | tf.Tensor3D>(
  xw: X,
  h0: tf.Tensor2D,
  c0: tf.Tensor2D,
  recurrent: tf.Tensor2D,
): { hs: X; cs: X } | null {
  if (!registered(LSTM_SEQUENCE, LSTM_SEQUENCE_GRAD) || !float32(xw, h0, c0, recurrent)) return null;
  const [hs, cs, gates] = run(LSTM_SEQUENCE, { xw, h0, c0, recurrent });
  gates!.dispose(); // kept for the gradient, when there is one, by the tape's own reference
  return { hs: hs as X, cs: cs as X };
}

tf.registerGradient({
  kernelName: LSTM_SEQUENCE,
  inputsToSave: ['h0', 'c0', 'recurrent'],
  outputsToSave: [true, true, true],
  gradFunc: (dy, saved) => {
    const [dhs, dcs] = dy as tf.Tensor[];
    const [h0, c0, recurrent, hs, cs, gates] = saved;
    const [dxw, dh0, dc0, dRecurrent] = run(LSTM_SEQUENCE_GRAD, {
      dhs: dhs!,
      dcs: dcs!,
      gates: gates!,
      cs: cs!,
      hs: hs!,
      h0: h0!,
      c0: c0!,
      recurrent: recurrent!,
    });
    return { xw: () => dxw!, h0: () => dh0!, c0: () => dc0!, recurrent: () => dRecurrent! };
  },
});

/**
 * A GRU over a sequence (model/nn/cells.ts's gruStep at every step): xw [B, T, 3H] the input
 * projections x_t·W + b (gate order z, r, n), h0 [B, H], recurrent U [H, 3H] → hs [B, T, H];
 * xw [B, 3H] is one step, giving h [B, H]. Null when the fused kernel is not there.
 */
export function gruSequence<X extends tf.Tensor2D | tf.Tensor3D>(
  xw: X,
  h0: tf.Tensor2D,
  recurrent: tf.Tensor2D,
): X | null {
  if (!registered(GRU_SEQUENCE, GRU_SEQUENCE_GRAD) || !float32(xw, h0, recurrent)) return null;
  const [hs, gates, hn] = run(GRU_SEQUENCE, { xw, h0, recurrent });
  tf.dispose([gates!, hn!]);
  return hs as X;
}

tf.registerGradient({
  kernelName: GRU_SEQUENCE,
  inputsToSave: ['h0', 'recurrent'],
  outputsToSave: [true, true, true],
  gradFunc: (dy, saved) => {
    const [dhs] = dy as tf.Tensor[];
    const [h0, recurrent, hs, gates, hn] = saved;
    const [dxw, dh0, dRecurrent] = run(GRU_SEQUENCE_GRAD, {
      dhs: dhs!,
      gates: gates!,
      hn: hn!,
      hs: hs!,
      h0: h0!,
      recurrent: recurrent!,
    });
    return { xw: () => dxw!, h0: () => dh0!, recurrent: () => dRecurrent! };
  },
});

/** The encoder block's convolution and pooling settings. */
export interface ConvBlockOptions {
  strides: number;
  pad: 'same' | 'valid';
  poolSize: number;
  poolStrides: number;
  poolPad: 'same' | 'valid';
}

/**
 * maxPool(relu(conv2d(x, filter) + bias)) (NHWC, no dilation), model/nn/encoder.ts's block, in
 * one kernel; its gradient is one pass for the pooling, ReLU and bias, then the convolution's
 * two. Null when the fused kernel is not there or the pooling windows overlap.
 */
export function convReluMaxPool(
  x: tf.Tensor4D,
  filter: tf.Tensor4D,
  bias: tf.Tensor1D,
  options: ConvBlockOptions,
): tf.Tensor4D | null {
  if (!registered(CONV_RELU_MAX_POOL, MAX_POOL_RELU_BIAS_GRAD) || !float32(x, filter, bias)) return null;
  const conv = tf.backend_util.computeConv2DInfo(x.shape, filter.shape, options.strides, 1, options.pad);
  if (!windowsDisjoint(blockPoolInfo(conv.outShape, { ...options }))) return null;
  // The argmax only where a gradient can be asked for (the tape records this op): decoding
  // gets an empty one and the kernel writes none.
  const argmax = tf.engine().isTapeOn();
  const [pooled, where] = run(CONV_RELU_MAX_POOL, { x, filter, bias }, { ...options, argmax });
  where!.dispose(); // kept for the gradient, when there is one, by the tape's own reference
  return pooled as tf.Tensor4D;
}

tf.registerGradient({
  kernelName: CONV_RELU_MAX_POOL,
  inputsToSave: ['x', 'filter'],
  outputsToSave: [false, true],
  gradFunc: (dy, saved, attrs) => {
    const [dpooled] = dy as tf.Tensor[];
    const [x, filter, argmax] = saved as [tf.Tensor4D, tf.Tensor4D, tf.Tensor4D];
    const { strides, pad } = attrs as unknown as ConvBlockOptions;
    const yShape = tf.backend_util.computeConv2DInfo(x.shape, filter.shape, strides, 1, pad).outShape;
    const [da, dbias] = run(MAX_POOL_RELU_BIAS_GRAD, { dpooled: dpooled!, argmax }, { ...attrs, yShape });
    const conv = { strides, pad, dataFormat: 'NHWC', dimRoundingMode: undefined };
    // The convolution's gradients only when asked for: the images' never is.
    return {
      x: () => run('Conv2DBackpropInput', { dy: da!, filter }, { ...conv, inputShape: x.shape })[0]!,
      filter: () => run('Conv2DBackpropFilter', { x, dy: da! }, { ...conv, filterShape: filter.shape })[0]!,
      bias: () => dbias!,
    };
  },
});

/** The loss's settings: the pad id (adds nothing), label smoothing α, and the factor on the sum. */
export interface CrossEntropyOptions {
  pad: number;
  labelSmoothing: number;
  scale: number;
}

/**
 * −scale · Σ over positions whose target is not `pad` of Σ_j t_j · log softmax(logits)_j, with
 * t = (1 − α)·onehot(target) + α/V (model/train/loss.ts's maskedSequenceLoss with scale 1/batch).
 * logits [..., V] float32, targets [...] int32. Null when the fused kernel is not there or a
 * target lies outside [0, V).
 */
export function softmaxCrossEntropy(
  logits: tf.Tensor,
  targets: tf.Tensor,
  options: CrossEntropyOptions,
): tf.Scalar | null {
  if (!registered(SOFTMAX_CROSS_ENTROPY, SOFTMAX_CROSS_ENTROPY_GRAD)) return null;
  if (logits.dtype !== 'float32' || targets.dtype !== 'int32') return null;
  const vocab = logits.shape.at(-1)!;
  if (targets.dataSync().some((id) => id !== options.pad && !(id >= 0 && id < vocab))) return null;
  return run(SOFTMAX_CROSS_ENTROPY, { logits, targets }, { ...options })[0] as tf.Scalar;
}

tf.registerGradient({
  kernelName: SOFTMAX_CROSS_ENTROPY,
  inputsToSave: ['logits', 'targets'],
  gradFunc: (dy, saved, attrs) => {
    const [logits, targets] = saved;
    return {
      logits: () =>
        run(SOFTMAX_CROSS_ENTROPY_GRAD, { logits: logits!, targets: targets!, dy: dy as tf.Tensor }, attrs)[0]!,
      targets: () => tf.zerosLike(targets!),
    };
  },
});

/**
 * log softmax(logits) over the last axis, as tf.logSoftmax (same function, same rounding): one
 * native kernel where it is registered and the logits are float32, else tf.logSoftmax's six
 * kernels. A decoding step runs it on every step's logits.
 */
export function logSoftmax<T extends tf.Tensor>(logits: T): T {
  if (!registered(LOG_SOFTMAX) || logits.dtype !== 'float32' || logits.rank === 0 || logits.shape.at(-1) === 0)
    return tf.logSoftmax(logits) as T;
  return run(LOG_SOFTMAX, { logits })[0] as T;
}

tf.registerGradient({
  kernelName: LOG_SOFTMAX,
  outputsToSave: [true],
  // tfjs-core's logSoftmax gradient: dy − softmax · Σ dy over the last axis.
  gradFunc: (dy, saved) => {
    const [value] = saved;
    const d = dy as tf.Tensor;
    return { logits: () => tf.sub(d, tf.mul(tf.sum(d, -1, true), tf.exp(value!))) };
  },
});
