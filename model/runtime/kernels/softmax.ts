/**
 * Softmax and log-softmax over the last axis, each one native pass over its rows
 * (native/src/loss.cc), rounded where TF.js's ops round: `Softmax` replaces the CPU backend's
 * kernel (an attention step's weights), and `CaptionerLogSoftmax`, captioner's own, runs
 * ../fused.ts's `logSoftmax` (a decoding step's log-probabilities; tfjs-core's logSoftmax is
 * six kernels, not one).
 *
 *   Softmax              {logits [..., V]} → softmax over the last axis (attrs.dim: the last)
 *   CaptionerLogSoftmax  {logits [..., V]} → log-softmax over the last axis
 */
import type * as tf from '@tensorflow/tfjs';
import type { NativeAddon } from './addon.ts';
import { float32Kernel, type KernelCall, type NativeKernels } from './common.ts';

import { LOG_SOFTMAX } from '../fused-kernels.ts';

export { LOG_SOFTMAX };

function softmaxRows(lib: NativeAddon, call: KernelCall<'logits', Float32Array>, log: boolean): tf.TensorInfo | null {
  const { logits } = call.inputs;
  const vocab = logits.shape.at(-1);
  if (!vocab) return null;
  const out = new Float32Array(call.values.logits.length);
  lib.softmaxRows(call.values.logits, out, vocab, log);
  return call.backend.makeTensorInfo(logits.shape.slice(), 'float32', out);
}

/** The TF.js kernel replaced: Softmax over the last axis (any other axis goes to JavaScript). */
export function softmaxKernels(lib: NativeAddon): NativeKernels {
  return {
    Softmax: float32Kernel(['logits'], (call) => {
      const dim = call.attrs.dim as number;
      const rank = call.inputs.logits.shape.length;
      return dim === -1 || dim === rank - 1 ? softmaxRows(lib, call, false) : null;
    }),
  };
}

/** captioner's own: CaptionerLogSoftmax over the last axis. */
export function logSoftmaxKernels(lib: NativeAddon): NativeKernels {
  return {
    [LOG_SOFTMAX]: float32Kernel(['logits'], (call) => softmaxRows(lib, call, true)),
  };
}
