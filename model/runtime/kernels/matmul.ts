/** Matrix products: BatchMatMul and _FusedMatMul (bias and activation applied by the addon). */
import * as tf from '@tensorflow/tfjs';
import type { NativeAddon } from './addon.ts';
import { float32Kernel, fusedEpilogue, size, type KernelCall, type NativeKernels } from './common.ts';

/**
 * a [...batch, m, k] · b [...batch, k, n] (either transposed by its attribute) → [...batch, m, n].
 * Equal batches, or one side shared by every batch; other broadcasts, and mismatched inner
 * sizes (whose error message the JavaScript kernel gives), go to JavaScript.
 */
function batchMatMul(
  lib: NativeAddon,
  call: KernelCall<'a' | 'b', Float32Array>,
  fused: boolean,
): tf.TensorInfo | null {
  const { a, b } = call.inputs;
  if (a.shape.length < 2 || b.shape.length < 2) return null;
  const ta = Boolean(call.attrs.transposeA);
  const tb = Boolean(call.attrs.transposeB);
  const [ar, br] = [a.shape.length, b.shape.length];
  const m = ta ? a.shape[ar - 1]! : a.shape[ar - 2]!;
  const k = ta ? a.shape[ar - 2]! : a.shape[ar - 1]!;
  const kb = tb ? b.shape[br - 1]! : b.shape[br - 2]!;
  const n = tb ? b.shape[br - 2]! : b.shape[br - 1]!;
  if (k !== kb) return null;
  const batchA = size(a.shape.slice(0, -2));
  const batchB = size(b.shape.slice(0, -2));
  if (batchA !== batchB && batchA !== 1 && batchB !== 1) return null;
  const outBatchShape = tf.broadcast_util.assertAndGetBroadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2));
  const batch = Math.max(batchA, batchB);
  if (size(outBatchShape) !== batch) return null;
  const epilogue = fused ? fusedEpilogue(call.backend, call.all, call.attrs, n) : null;
  if (fused && !epilogue) return null;
  const out = new Float32Array(batch * m * n);
  const { a: av, b: bv } = call.values;
  if (epilogue) {
    const { bias, biasSize, activation, alpha } = epilogue;
    lib.batchMatMul(av, bv, out, batch, batchA, batchB, m, n, k, ta, tb, bias, biasSize, activation, alpha);
  } else {
    lib.batchMatMul(av, bv, out, batch, batchA, batchB, m, n, k, ta, tb);
  }
  return call.backend.makeTensorInfo([...outBatchShape, m, n], 'float32', out);
}

export function matMulKernels(lib: NativeAddon): NativeKernels {
  return {
    BatchMatMul: float32Kernel(['a', 'b'], (call) => batchMatMul(lib, call, false)),
    _FusedMatMul: float32Kernel(['a', 'b'], (call) => batchMatMul(lib, call, true)),
  };
}
