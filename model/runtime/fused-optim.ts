/**
 * The optimiser's fused updates: Σx² over the gradients and Adam's update of every variable, each
 * one native pass over the CPU backend's buffers (native/src/optimizer.cc). Each returns null or
 * false when the native kernels are off, and model/train/optim.ts then runs the TF.js ops. Apart
 * from ./fused.ts because it reads the addon itself (./native.ts), which the browser bundle leaves
 * out.
 */
import * as tf from '@tensorflow/tfjs';
import { activeNativeAddon } from './native.ts';
import type { CpuBackend } from './kernels/common.ts';

const float32 = (...ts: tf.Tensor[]) => ts.every((t) => t.dtype === 'float32');

/** The CPU backend's storage, as the optimiser's in-place update reads it. */
type CpuStorage = CpuBackend & { refCount(dataId: object): number };

/** The CPU backend while the native kernels serve it, else null. */
function nativeCpu(): { lib: NonNullable<ReturnType<typeof activeNativeAddon>>; backend: CpuStorage } | null {
  const lib = activeNativeAddon();
  if (!lib || tf.getBackend() !== 'cpu') return null;
  return { lib, backend: tf.backend() as unknown as CpuStorage };
}

function values(backend: CpuStorage, t: tf.Tensor): Float32Array | null {
  if (t.dtype !== 'float32') return null;
  const v = backend.data.get(t.dataId).values;
  return v instanceof Float32Array ? v : null;
}

/**
 * The values of `variable`, to be updated in place: first given a buffer of its own when it
 * shares one (TF.js shares a buffer between a variable and the tensor it was assigned from).
 */
function ownValues(backend: CpuStorage, variable: tf.Variable): Float32Array | null {
  const current = values(backend, variable);
  if (!current) return null;
  if (backend.refCount(variable.dataId) <= 1) return current;
  const copy = tf.tensor(current.slice(), variable.shape, 'float32');
  variable.assign(copy);
  copy.dispose();
  return values(backend, variable);
}

/** Σ over `tensors` of Σ x², in one native pass (null when the native kernels are off). */
export function fusedSumOfSquares(tensors: readonly tf.Tensor[]): number | null {
  const native = nativeCpu();
  if (!native) return null;
  const arrays = tensors.map((t) => values(native.backend, t));
  if (arrays.some((a) => !a)) return null;
  return native.lib.sumOfSquares(arrays as Float32Array[]);
}

/** One variable's part of an Adam update. */
export interface AdamSlot {
  variable: tf.Variable;
  m: tf.Variable;
  v: tf.Variable;
  grad: tf.Tensor;
}

/** Adam's constants for one update (model/train/optim.ts). */
export interface AdamConstants {
  /** Multiplies every gradient first (clipping); 1 leaves them as they are. */
  gradScale: number;
  beta1: number;
  beta2: number;
  epsilon: number;
  /** 1 − β1^t and 1 − β2^t. */
  c1: number;
  c2: number;
  learningRate: number;
}

/**
 * Adam's update of every variable and its two moments, in place, in one native pass over their
 * values, with model/train/optim.ts's float32 arithmetic. Returns false, having changed nothing,
 * when the native kernels are off or a tensor is not float32 of its variable's size.
 */
export function fusedAdamUpdate(slots: readonly AdamSlot[], k: AdamConstants): boolean {
  const native = nativeCpu();
  if (!native) return false;
  const ok = slots.every(
    ({ variable, m, v, grad }) =>
      float32(variable, m, v, grad) &&
      m.size === variable.size &&
      v.size === variable.size &&
      grad.size === variable.size,
  );
  if (!ok) return false;
  const arrays = slots.map(({ variable, m, v, grad }) => [
    ownValues(native.backend, variable),
    ownValues(native.backend, m),
    ownValues(native.backend, v),
    values(native.backend, grad),
  ]);
  if (arrays.some((a) => a.some((x) => !x)))
    throw new Error('fusedAdamUpdate: a float32 tensor without Float32Array values');
  const column = (i: number) => arrays.map((a) => a[i]!);
  native.lib.adam(
    column(0),
    column(1),
    column(2),
    column(3),
    k.gradScale !== 1,
    k.gradScale,
    k.beta1,
    1 - k.beta1,
    k.beta2,
    1 - k.beta2,
    k.c1,
    k.c2,
    k.epsilon,
    k.learningRate,
  );
  return true;
}
