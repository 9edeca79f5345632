/**
 * Native kernels for the TF.js CPU backend. The pure-JavaScript CPU backend computes a matrix
 * product or a convolution in scalar loops (about 0.06 GFLOP/s for a training step); the
 * addon in native/ runs the same kernels as BLAS matrix products (convolutions through im2col,
 * Chellapilla et al. 2006) on the backend's own Float32Arrays, using every core.
 *
 * `enableNativeKernels` replaces the 'cpu' backend's kernels by name (tf.unregisterKernel +
 * tf.registerKernel) and keeps each JavaScript kernel to fall back to: any input or attribute
 * the native code does not handle (another dtype, NCHW, PReLU, an unusual broadcast) goes to
 * the JavaScript kernel, never to a wrong answer. Gradients need no change: TF.js builds them
 * from these same kernels (Conv2DBackpropFilter, UnsortedSegmentSum, MaxPoolGrad, …).
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';

/** Geometry of a convolution, from tf.backend_util.computeConv2DInfo (NHWC). */
interface ConvGeometry {
  batch: number;
  inHeight: number;
  inWidth: number;
  inChannels: number;
  outHeight: number;
  outWidth: number;
  outChannels: number;
  filterHeight: number;
  filterWidth: number;
  strideHeight: number;
  strideWidth: number;
  padTop: number;
  padLeft: number;
  dilationHeight: number;
  dilationWidth: number;
}

/** The addon's functions (native/src/kernels.cc); outputs arrive zeroed and are written in place. */
interface NativeAddon {
  batchMatMul(
    a: Float32Array, b: Float32Array, out: Float32Array, batch: number, batchA: number, batchB: number,
    m: number, n: number, k: number, transposeA: boolean, transposeB: boolean,
    bias?: Float32Array | null, biasSize?: number, activation?: number, alpha?: number,
  ): void;
  conv2d(x: Float32Array, filter: Float32Array, out: Float32Array, g: ConvGeometry, bias?: Float32Array | null, biasSize?: number, activation?: number, alpha?: number): void;
  conv2dBackpropInput(dy: Float32Array, filter: Float32Array, dx: Float32Array, g: ConvGeometry): void;
  conv2dBackpropFilter(x: Float32Array, dy: Float32Array, dw: Float32Array, g: ConvGeometry): void;
  unsortedSegmentSum(x: Float32Array, ids: Int32Array, out: Float32Array, inner: number, numSegments: number): void;
  maxPool(x: Float32Array, out: Float32Array, g: ConvGeometry): void;
  maxPoolGrad(dy: Float32Array, x: Float32Array, dx: Float32Array, g: ConvGeometry): void;
  setThreads(n: number): void;
  info(): { threads: number; blas: string; core?: string; blasThreads?: number };
}

/** Whether native kernels are on, and why not when they are off. */
export interface NativeStatus {
  enabled: boolean;
  /** Kernels replaced, when enabled. */
  kernels: string[];
  /** The BLAS and threads in use, or why the native kernels are off. */
  detail: string;
}

/** The cost of running without the addon, measured with `npm run bench` (README "Performance"). */
export const PURE_JS_COST = 'the pure-JavaScript kernels train the std model at ~0.1 images/s instead of ~170 (about 1500x slower)';

/** The parts of the CPU backend (tfjs-backend-cpu's MathBackendCPU) the kernels use. */
interface CpuBackend {
  data: { get(dataId: object): { values?: unknown } };
  makeTensorInfo(shape: number[], dtype: tf.DataType, values: Float32Array): tf.TensorInfo;
}

type KernelArgs = { inputs: Record<string, tf.TensorInfo | undefined>; backend: unknown; attrs?: Record<string, unknown> };
type JsKernel = (args: KernelArgs) => tf.TensorInfo | tf.TensorInfo[];

const ADDON_PATH = join(dirname(fileURLToPath(import.meta.url)), '../native/build/Release/captioner_native.node');

let addon: NativeAddon | null = null;
let status: NativeStatus | null = null;
/** The JavaScript kernels that native ones replaced, by kernel name. */
const replaced = new Map<string, tf.KernelConfig>();

/** Loads the addon, or returns why it cannot be loaded. */
export function loadNativeAddon(): NativeAddon | string {
  if (addon) return addon;
  if (!existsSync(ADDON_PATH)) return 'the addon is not built (npm install builds it when a BLAS is installed: apt-get install libopenblas-dev pkg-config, then npm rebuild captioner or node native/build.mjs)';
  try {
    addon = createRequire(import.meta.url)(ADDON_PATH) as NativeAddon;
    const threads = Number(process.env.CAPTIONER_THREADS);
    if (Number.isInteger(threads) && threads > 0) addon.setThreads(threads);
    return addon;
  } catch (err) {
    return `the addon does not load (${(err as Error).message.split('\n')[0]})`;
  }
}

function float32(backend: CpuBackend, t: tf.TensorInfo | undefined): Float32Array | null {
  if (!t || t.dtype !== 'float32') return null;
  const values = backend.data.get(t.dataId).values;
  return values instanceof Float32Array ? values : null;
}

function size(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** tfjs-core's fused activations that the addon computes (native/src/kernels.cc biasActivation). */
const ACTIVATIONS: Record<string, number> = { linear: 0, relu: 1, relu6: 2, leakyrelu: 3, sigmoid: 4 };

/** A fused op's bias and activation as the addon takes them, or null when unsupported. */
function fusedEpilogue(
  backend: CpuBackend, inputs: KernelArgs['inputs'], attrs: Record<string, unknown>, channels: number,
): { bias: Float32Array | null; biasSize: number; activation: number; alpha: number } | null {
  const activation = ACTIVATIONS[(attrs.activation as string | undefined) ?? 'linear'];
  if (activation === undefined || inputs.preluActivationWeights) return null;
  let bias: Float32Array | null = null;
  let biasSize = 0;
  if (inputs.bias) {
    bias = float32(backend, inputs.bias);
    biasSize = size(inputs.bias.shape);
    // Only a bias along the last axis (or a scalar) broadcasts as the addon adds it.
    if (!bias || !(biasSize === 1 || (biasSize === channels && inputs.bias.shape.at(-1) === channels))) return null;
  }
  return { bias, biasSize, activation, alpha: (attrs.leakyreluAlpha as number | undefined) ?? 0.2 };
}

function convGeometry(info: tf.backend_util.Conv2DInfo): ConvGeometry {
  return {
    batch: info.batchSize, inHeight: info.inHeight, inWidth: info.inWidth, inChannels: info.inChannels,
    outHeight: info.outHeight, outWidth: info.outWidth, outChannels: info.outChannels,
    filterHeight: info.filterHeight, filterWidth: info.filterWidth, strideHeight: info.strideHeight, strideWidth: info.strideWidth,
    padTop: info.padInfo.top, padLeft: info.padInfo.left, dilationHeight: info.dilationHeight, dilationWidth: info.dilationWidth,
  };
}

/** Native kernel functions: each returns null to hand the call to the JavaScript kernel. */
function nativeKernels(lib: NativeAddon): Record<string, (args: KernelArgs) => tf.TensorInfo | null> {
  const matMul = (args: KernelArgs, fused: boolean): tf.TensorInfo | null => {
    const backend = args.backend as CpuBackend;
    const { a, b } = args.inputs;
    const attrs = args.attrs ?? {};
    const av = float32(backend, a);
    const bv = float32(backend, b);
    if (!a || !b || !av || !bv || a.shape.length < 2 || b.shape.length < 2) return null;
    const ta = Boolean(attrs.transposeA);
    const tb = Boolean(attrs.transposeB);
    const [ar, br] = [a.shape.length, b.shape.length];
    const m = ta ? a.shape[ar - 1]! : a.shape[ar - 2]!;
    const k = ta ? a.shape[ar - 2]! : a.shape[ar - 1]!;
    const kb = tb ? b.shape[br - 1]! : b.shape[br - 2]!;
    const n = tb ? b.shape[br - 2]! : b.shape[br - 1]!;
    if (k !== kb) return null; // the JavaScript kernel throws the error message users expect
    const batchA = size(a.shape.slice(0, -2));
    const batchB = size(b.shape.slice(0, -2));
    // Equal batches, or one side shared by every batch; other broadcasts go to JavaScript.
    if (batchA !== batchB && batchA !== 1 && batchB !== 1) return null;
    const outBatchShape = tf.broadcast_util.assertAndGetBroadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2));
    const batch = Math.max(batchA, batchB);
    if (size(outBatchShape) !== batch) return null;
    const out = new Float32Array(batch * m * n);
    if (fused) {
      const epilogue = fusedEpilogue(backend, args.inputs, attrs, n);
      if (!epilogue) return null;
      lib.batchMatMul(av, bv, out, batch, batchA, batchB, m, n, k, ta, tb, epilogue.bias, epilogue.biasSize, epilogue.activation, epilogue.alpha);
    } else {
      lib.batchMatMul(av, bv, out, batch, batchA, batchB, m, n, k, ta, tb);
    }
    return backend.makeTensorInfo([...outBatchShape, m, n], 'float32', out);
  };

  const conv = (args: KernelArgs, fused: boolean): tf.TensorInfo | null => {
    const backend = args.backend as CpuBackend;
    const { x, filter } = args.inputs;
    const attrs = args.attrs ?? {};
    const xv = float32(backend, x);
    const wv = float32(backend, filter);
    if (!x || !filter || !xv || !wv || attrs.dataFormat === 'NCHW') return null;
    const info = tf.backend_util.computeConv2DInfo(
      x.shape as [number, number, number, number], filter.shape as [number, number, number, number],
      attrs.strides as [number, number], attrs.dilations as [number, number], attrs.pad as 'same',
      attrs.dimRoundingMode as 'floor' | undefined,
    );
    const out = new Float32Array(size(info.outShape));
    if (fused) {
      const epilogue = fusedEpilogue(backend, args.inputs, attrs, info.outChannels);
      if (!epilogue) return null;
      lib.conv2d(xv, wv, out, convGeometry(info), epilogue.bias, epilogue.biasSize, epilogue.activation, epilogue.alpha);
    } else {
      lib.conv2d(xv, wv, out, convGeometry(info));
    }
    return backend.makeTensorInfo(info.outShape, 'float32', out);
  };

  return {
    BatchMatMul: (args) => matMul(args, false),
    _FusedMatMul: (args) => matMul(args, true),
    Conv2D: (args) => conv(args, false),
    FusedConv2D: (args) => conv(args, true),
    Conv2DBackpropInput: (args) => {
      const backend = args.backend as CpuBackend;
      const { dy, filter } = args.inputs;
      const attrs = args.attrs ?? {};
      const dyv = float32(backend, dy);
      const wv = float32(backend, filter);
      if (!dy || !filter || !dyv || !wv || attrs.dataFormat === 'NCHW') return null;
      const info = tf.backend_util.computeConv2DInfo(
        attrs.inputShape as [number, number, number, number], filter.shape as [number, number, number, number],
        attrs.strides as [number, number], 1, attrs.pad as 'same', attrs.dimRoundingMode as 'floor' | undefined,
      );
      if (info.outShape.join() !== dy.shape.join()) return null;
      const dx = new Float32Array(size(info.inShape));
      lib.conv2dBackpropInput(dyv, wv, dx, convGeometry(info));
      return backend.makeTensorInfo(info.inShape, 'float32', dx);
    },
    Conv2DBackpropFilter: (args) => {
      const backend = args.backend as CpuBackend;
      const { x, dy } = args.inputs;
      const attrs = args.attrs ?? {};
      const xv = float32(backend, x);
      const dyv = float32(backend, dy);
      if (!x || !dy || !xv || !dyv || attrs.dataFormat === 'NCHW') return null;
      const info = tf.backend_util.computeConv2DInfo(
        x.shape as [number, number, number, number], attrs.filterShape as [number, number, number, number],
        attrs.strides as [number, number], 1, attrs.pad as 'same', attrs.dimRoundingMode as 'floor' | undefined,
      );
      if (info.outShape.join() !== dy.shape.join()) return null;
      const dw = new Float32Array(size(info.filterShape));
      lib.conv2dBackpropFilter(xv, dyv, dw, convGeometry(info));
      return backend.makeTensorInfo(info.filterShape, 'float32', dw);
    },
    MaxPool: (args) => {
      const backend = args.backend as CpuBackend;
      const { x } = args.inputs;
      const attrs = args.attrs ?? {};
      const xv = float32(backend, x);
      if (!x || !xv || x.shape.length !== 4) return null;
      const info = tf.backend_util.computePool2DInfo(
        x.shape as [number, number, number, number], attrs.filterSize as [number, number], attrs.strides as [number, number],
        1, attrs.pad as 'same', attrs.dimRoundingMode as 'floor' | undefined,
      );
      const out = new Float32Array(size(info.outShape));
      lib.maxPool(xv, out, convGeometry(info));
      return backend.makeTensorInfo(info.outShape, 'float32', out);
    },
    MaxPoolGrad: (args) => {
      const backend = args.backend as CpuBackend;
      const { dy, input } = args.inputs;
      const attrs = args.attrs ?? {};
      const dyv = float32(backend, dy);
      const xv = float32(backend, input);
      if (!dy || !input || !dyv || !xv || input.shape.length !== 4) return null;
      const info = tf.backend_util.computePool2DInfo(
        input.shape as [number, number, number, number], attrs.filterSize as [number, number], attrs.strides as [number, number],
        1, attrs.pad as 'same', attrs.dimRoundingMode as 'floor' | undefined,
      );
      if (info.outShape.join() !== dy.shape.join()) return null;
      const dx = new Float32Array(size(input.shape));
      lib.maxPoolGrad(dyv, xv, dx, convGeometry(info));
      return backend.makeTensorInfo(input.shape.slice(), 'float32', dx);
    },
    UnsortedSegmentSum: (args) => {
      const backend = args.backend as CpuBackend;
      const { x, segmentIds } = args.inputs;
      const numSegments = args.attrs?.numSegments as number;
      const xv = float32(backend, x);
      if (!x || !segmentIds || !xv || segmentIds.dtype !== 'int32') return null;
      const ids = backend.data.get(segmentIds.dataId).values;
      const rank = segmentIds.shape.length;
      if (!(ids instanceof Int32Array) || segmentIds.shape.join() !== x.shape.slice(0, rank).join()) return null;
      const innerShape = x.shape.slice(rank);
      const out = new Float32Array(numSegments * size(innerShape));
      lib.unsortedSegmentSum(xv, ids, out, size(innerShape), numSegments);
      return backend.makeTensorInfo([numSegments, ...innerShape], 'float32', out);
    },
  };
}

/**
 * Replaces the 'cpu' backend's hot kernels by native ones, when the addon is built and
 * CAPTIONER_NATIVE is not 0. Idempotent; returns whether they are on and why not.
 */
export function enableNativeKernels(): NativeStatus {
  if (status?.enabled) return status;
  if (process.env.CAPTIONER_NATIVE === '0') {
    status = { enabled: false, kernels: [], detail: `turned off by CAPTIONER_NATIVE=0; ${PURE_JS_COST}` };
    return status;
  }
  const lib = loadNativeAddon();
  if (typeof lib === 'string') {
    status = { enabled: false, kernels: [], detail: `${lib}; ${PURE_JS_COST}` };
    return status;
  }
  const kernels = nativeKernels(lib);
  for (const [name, native] of Object.entries(kernels)) {
    const js = tf.getKernel(name, 'cpu');
    if (!js) continue;
    const jsKernel = js.kernelFunc as unknown as JsKernel;
    tf.unregisterKernel(name, 'cpu');
    tf.registerKernel({
      ...js,
      kernelFunc: ((args: KernelArgs) => native(args) ?? jsKernel(args)) as unknown as tf.KernelFunc,
    });
    replaced.set(name, js);
  }
  const info = lib.info();
  const blas = info.blas.split(' ').slice(0, 2).join(' ');
  status = {
    enabled: true,
    kernels: [...replaced.keys()],
    detail: `${blas}${info.core ? ` (${info.core})` : ''}, ${info.threads} threads`,
  };
  return status;
}

/** Puts the JavaScript kernels back (for comparisons and tests). */
export function disableNativeKernels(): void {
  for (const [name, js] of replaced) {
    tf.unregisterKernel(name, 'cpu');
    tf.registerKernel(js);
  }
  replaced.clear();
  status = null;
}

/** The state after enableNativeKernels, or null before it. */
export function nativeStatus(): NativeStatus | null {
  return status;
}

/** One log line: whether native kernels are on and, if off, why and what it costs. */
export function describeNative(s: NativeStatus): string {
  return s.enabled ? `native kernels: on (${s.detail}; ${s.kernels.length} kernels)` : `native kernels: off: ${s.detail}`;
}
