/**
 * What every native kernel shares: the parts of the CPU backend it reads, and the guard in front
 * of it. A native kernel returns null to hand the call to the JavaScript kernel it replaces, so
 * that any input it does not handle (another dtype, a missing input, an unusual attribute) is
 * computed by JavaScript, never answered wrongly; `float32Kernel`, `numericKernel` and
 * `listKernel` check the inputs before the native code sees them.
 */
import * as tf from '@tensorflow/tfjs';
import { findOpCode, type ConvGeometry } from './addon.ts';

/** The parts of the CPU backend (tfjs-backend-cpu's MathBackendCPU) the kernels use. */
export interface CpuBackend {
  data: { get(dataId: object): { values?: unknown } };
  makeTensorInfo(shape: number[], dtype: tf.DataType, values: Float32Array | Int32Array): tf.TensorInfo;
}

/** What TF.js passes a kernel function. */
export type KernelArgs = {
  inputs: Record<string, tf.TensorInfo | undefined>;
  backend: unknown;
  attrs?: Record<string, unknown>;
};
export type KernelResult = tf.TensorInfo | tf.TensorInfo[];

/** A native kernel: its result, or null to hand the call to the JavaScript kernel. */
export type NativeKernel = (args: KernelArgs) => KernelResult | null;

/** Native kernels by TF.js kernel name. */
export type NativeKernels = Record<string, NativeKernel>;

/** A call that passed the guard: the named inputs, present, with their values. */
export interface KernelCall<N extends string, V> {
  backend: CpuBackend;
  inputs: Record<N, tf.TensorInfo>;
  values: Record<N, V>;
  attrs: Record<string, unknown>;
  /** Every input, named ones and optional ones (a fused op's bias) alike. */
  all: KernelArgs['inputs'];
}

/** The values of a float32 tensor, or null for any other. */
export function float32Values(backend: CpuBackend, t: tf.TensorInfo | undefined): Float32Array | null {
  if (!t || t.dtype !== 'float32') return null;
  const values = backend.data.get(t.dataId).values;
  return values instanceof Float32Array ? values : null;
}

/** The values of a float32 or int32 tensor, for the kernels that only move data; null for others. */
export function numericValues(backend: CpuBackend, t: tf.TensorInfo | undefined): Float32Array | Int32Array | null {
  if (!t || (t.dtype !== 'float32' && t.dtype !== 'int32')) return null;
  const values = backend.data.get(t.dataId).values;
  return values instanceof Float32Array || values instanceof Int32Array ? values : null;
}

export function size(shape: readonly number[]): number {
  return tf.util.sizeFromShape(shape as number[]);
}

function guarded<N extends string, V>(
  names: readonly N[],
  read: (backend: CpuBackend, t: tf.TensorInfo | undefined) => V | null,
  run: (call: KernelCall<N, V>) => KernelResult | null,
): NativeKernel {
  return (args) => {
    const backend = args.backend as CpuBackend;
    const inputs = {} as Record<N, tf.TensorInfo>;
    const values = {} as Record<N, V>;
    for (const name of names) {
      const t = args.inputs[name];
      const v = read(backend, t);
      if (!t || v === null) return null;
      inputs[name] = t;
      values[name] = v;
    }
    return run({ backend, inputs, values, attrs: args.attrs ?? {}, all: args.inputs });
  };
}

/** A kernel whose inputs `names` are float32 tensors; any other call goes to JavaScript. */
export function float32Kernel<N extends string>(
  names: readonly N[],
  run: (call: KernelCall<N, Float32Array>) => KernelResult | null,
): NativeKernel {
  return guarded(names, float32Values, run);
}

/** A kernel whose inputs `names` are float32 or int32 tensors; any other call goes to JavaScript. */
export function numericKernel<N extends string>(
  names: readonly N[],
  run: (call: KernelCall<N, Float32Array | Int32Array>) => KernelResult | null,
): NativeKernel {
  return guarded(names, numericValues, run);
}

/**
 * A kernel over a list of tensors (Concat, Pack): at least one, all float32 or all int32;
 * any other call goes to JavaScript.
 */
export function listKernel(
  run: (call: {
    backend: CpuBackend;
    tensors: tf.TensorInfo[];
    values: (Float32Array | Int32Array)[];
    attrs: Record<string, unknown>;
  }) => KernelResult | null,
): NativeKernel {
  return (args) => {
    const backend = args.backend as CpuBackend;
    const tensors = Object.values(args.inputs) as tf.TensorInfo[];
    const first = tensors[0];
    if (!first) return null;
    const values: (Float32Array | Int32Array)[] = [];
    for (const t of tensors) {
      const v = numericValues(backend, t);
      if (!v || t.dtype !== first.dtype) return null;
      values.push(v);
    }
    return run({ backend, tensors, values, attrs: args.attrs ?? {} });
  };
}

/** The addon's geometry of a convolution or pooling window. */
export function convGeometry(info: tf.backend_util.Conv2DInfo): ConvGeometry {
  return {
    batch: info.batchSize,
    inHeight: info.inHeight,
    inWidth: info.inWidth,
    inChannels: info.inChannels,
    outHeight: info.outHeight,
    outWidth: info.outWidth,
    outChannels: info.outChannels,
    filterHeight: info.filterHeight,
    filterWidth: info.filterWidth,
    strideHeight: info.strideHeight,
    strideWidth: info.strideWidth,
    padTop: info.padInfo.top,
    padLeft: info.padInfo.left,
    dilationHeight: info.dilationHeight,
    dilationWidth: info.dilationWidth,
  };
}

/** A fused op's bias and activation as the addon takes them. */
export interface Epilogue {
  bias: Float32Array | null;
  biasSize: number;
  /** A code of native/ops.json's activation group. */
  activation: number;
  alpha: number;
}

/**
 * The bias and activation of a fused op (_FusedMatMul, FusedConv2D) over `channels` output
 * channels, or null when the addon does not compute them: an activation not in native/ops.json
 * (elu, prelu), or a bias that is neither a scalar nor one value per channel.
 */
export function fusedEpilogue(
  backend: CpuBackend,
  inputs: KernelArgs['inputs'],
  attrs: Record<string, unknown>,
  channels: number,
): Epilogue | null {
  const activation = findOpCode('activation', (attrs.activation as string | undefined) ?? 'linear');
  if (activation === null || inputs.preluActivationWeights) return null;
  let bias: Float32Array | null = null;
  let biasSize = 0;
  if (inputs.bias) {
    bias = float32Values(backend, inputs.bias);
    biasSize = size(inputs.bias.shape);
    // Only a bias along the last axis (or a scalar) broadcasts as the addon adds it.
    if (!bias || !(biasSize === 1 || (biasSize === channels && inputs.bias.shape.at(-1) === channels))) return null;
  }
  return { bias, biasSize, activation, alpha: (attrs.leakyreluAlpha as number | undefined) ?? 0.2 };
}
