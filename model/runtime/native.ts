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
export interface NativeAddon {
  batchMatMul(
    a: Float32Array,
    b: Float32Array,
    out: Float32Array,
    batch: number,
    batchA: number,
    batchB: number,
    m: number,
    n: number,
    k: number,
    transposeA: boolean,
    transposeB: boolean,
    bias?: Float32Array | null,
    biasSize?: number,
    activation?: number,
    alpha?: number,
  ): void;
  conv2d(
    x: Float32Array,
    filter: Float32Array,
    out: Float32Array,
    g: ConvGeometry,
    bias?: Float32Array | null,
    biasSize?: number,
    activation?: number,
    alpha?: number,
  ): void;
  conv2dBackpropInput(dy: Float32Array, filter: Float32Array, dx: Float32Array, g: ConvGeometry): void;
  conv2dBackpropFilter(x: Float32Array, dy: Float32Array, dw: Float32Array, g: ConvGeometry): void;
  unsortedSegmentSum(x: Float32Array, ids: Int32Array, out: Float32Array, inner: number, numSegments: number): void;
  maxPool(x: Float32Array, out: Float32Array, g: ConvGeometry): void;
  maxPoolGrad(dy: Float32Array, x: Float32Array, dx: Float32Array, g: ConvGeometry): void;
  binary(
    op: number,
    full: Float32Array,
    other: Float32Array,
    out: Float32Array,
    rows: number,
    cols: number,
    mode: number,
    swapped: boolean,
    mid: number,
  ): void;
  unary(op: number, x: Float32Array, out: Float32Array, alpha: number): void;
  sum(x: Float32Array, out: Float32Array, outer: number, reduce: number, inner: number): void;
  transpose2d(x: Float32Array, out: Float32Array, batch: number, rows: number, cols: number): void;
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
export const PURE_JS_COST =
  'the pure-JavaScript kernels train the standard model at about 0.1 images/s, some 100x slower than the native ones (README, Performance)';

/** The parts of the CPU backend (tfjs-backend-cpu's MathBackendCPU) the kernels use. */
interface CpuBackend {
  data: { get(dataId: object): { values?: unknown } };
  makeTensorInfo(shape: number[], dtype: tf.DataType, values: Float32Array | Int32Array): tf.TensorInfo;
}

type KernelArgs = {
  inputs: Record<string, tf.TensorInfo | undefined>;
  backend: unknown;
  attrs?: Record<string, unknown>;
};
type KernelResult = tf.TensorInfo | tf.TensorInfo[];
type JsKernel = (args: KernelArgs) => tf.TensorInfo | tf.TensorInfo[];

const ADDON_PATH = join(dirname(fileURLToPath(import.meta.url)), '../../native/build/Release/captioner_native.node');

let addon: NativeAddon | null = null;
let status: NativeStatus | null = null;
/** The JavaScript kernels that native ones replaced, by kernel name. */
const replaced = new Map<string, tf.KernelConfig>();
/** Calls the native code served (not handed to JavaScript), by kernel name. */
const nativeCalls = new Map<string, number>();

/** Loads the addon, or returns why it cannot be loaded. */
export function loadNativeAddon(): NativeAddon | string {
  if (addon) return addon;
  if (!existsSync(ADDON_PATH))
    return 'the addon is not built (npm install builds it when a BLAS is installed: apt-get install libopenblas-dev pkg-config, then node native/build.mjs)';
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
  return tf.util.sizeFromShape(shape as number[]);
}

/** tfjs-core's fused activations that the addon computes (native/src/kernels.cc biasActivation). */
const ACTIVATIONS: Record<string, number> = { linear: 0, relu: 1, relu6: 2, leakyrelu: 3, sigmoid: 4 };

/** A fused op's bias and activation as the addon takes them, or null when unsupported. */
function fusedEpilogue(
  backend: CpuBackend,
  inputs: KernelArgs['inputs'],
  attrs: Record<string, unknown>,
  channels: number,
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

/**
 * How a broadcasting binary op maps onto the addon: one operand covers the whole output; the
 * other is the same size (mode 0), a scalar (1), or differs from the output only in one
 * contiguous block of axes where it has size 1: leading (2, a trailing block repeated on every
 * row), trailing (3, one value per row) or in the middle (4). Other broadcasts return null
 * and stay in JavaScript.
 */
export function binaryPlan(
  aShape: readonly number[],
  bShape: readonly number[],
): { swapped: boolean; rows: number; cols: number; mid: number; mode: number; outShape: number[] } | null {
  let outShape: number[];
  try {
    outShape = tf.broadcast_util.assertAndGetBroadcastShape(aShape as number[], bShape as number[]);
  } catch {
    return null; // the JavaScript kernel throws the usual error
  }
  const total = size(outShape);
  let swapped: boolean;
  let other: readonly number[];
  if (size(aShape) === total) [swapped, other] = [false, bShape];
  else if (size(bShape) === total) [swapped, other] = [true, aShape];
  else return null;
  const n = size(other);
  if (n === total) return { swapped, rows: 1, cols: total, mid: 1, mode: 0, outShape };
  if (n === 1) return { swapped, rows: 1, cols: total, mid: 1, mode: 1, outShape };
  const rank = outShape.length;
  const padded = [...Array<number>(rank - other.length).fill(1), ...other];
  const differs = outShape.map((d, i) => d !== padded[i]);
  const p = differs.indexOf(true);
  const q = differs.lastIndexOf(true) + 1;
  if (differs.slice(p, q).some((d) => !d)) return null; // broadcast axes not contiguous
  const rows = size(outShape.slice(0, p));
  const mid = size(outShape.slice(p, q));
  const cols = size(outShape.slice(q));
  if (p === 0) return { swapped, rows: mid, cols, mid: 1, mode: 2, outShape };
  if (q === rank) return { swapped, rows, cols: mid, mid: 1, mode: 3, outShape };
  return { swapped, rows, cols, mid, mode: 4, outShape };
}

/** Values of any numeric tensor, for the kernels that only move data. */
function numeric(backend: CpuBackend, t: tf.TensorInfo | undefined): Float32Array | Int32Array | null {
  if (!t || (t.dtype !== 'float32' && t.dtype !== 'int32')) return null;
  const values = backend.data.get(t.dataId).values;
  return values instanceof Float32Array || values instanceof Int32Array ? values : null;
}

/**
 * Copies pieces into one array laid out as [outer, Σ inner_i]: piece i contributes `inner_i`
 * values to each outer row (concatenation along an axis; stacking is the same with a new axis).
 */
function concatRows(
  pieces: (Float32Array | Int32Array)[],
  inners: number[],
  outer: number,
  out: Float32Array | Int32Array,
): void {
  const rowSize = inners.reduce((a, b) => a + b, 0);
  let offset = 0;
  pieces.forEach((piece, i) => {
    const inner = inners[i]!;
    for (let o = 0; o < outer; o++) out.set(piece.subarray(o * inner, (o + 1) * inner), o * rowSize + offset);
    offset += inner;
  });
}

/** The inverse of concatRows: piece i takes `inner_i` values from each outer row. */
function splitRows(values: Float32Array | Int32Array, inners: number[], outer: number): (Float32Array | Int32Array)[] {
  const rowSize = inners.reduce((a, b) => a + b, 0);
  let offset = 0;
  return inners.map((inner) => {
    const piece = values instanceof Float32Array ? new Float32Array(outer * inner) : new Int32Array(outer * inner);
    for (let o = 0; o < outer; o++)
      piece.set(values.subarray(o * rowSize + offset, o * rowSize + offset + inner), o * inner);
    offset += inner;
    return piece;
  });
}

/** Native kernel functions: each returns null to hand the call to the JavaScript kernel. */
function nativeKernels(lib: NativeAddon): Record<string, (args: KernelArgs) => KernelResult | null> {
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
      lib.batchMatMul(
        av,
        bv,
        out,
        batch,
        batchA,
        batchB,
        m,
        n,
        k,
        ta,
        tb,
        epilogue.bias,
        epilogue.biasSize,
        epilogue.activation,
        epilogue.alpha,
      );
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
      x.shape as [number, number, number, number],
      filter.shape as [number, number, number, number],
      attrs.strides as [number, number],
      attrs.dilations as [number, number],
      attrs.pad as 'same',
      attrs.dimRoundingMode as 'floor' | undefined,
    );
    const out = new Float32Array(size(info.outShape));
    if (fused) {
      const epilogue = fusedEpilogue(backend, args.inputs, attrs, info.outChannels);
      if (!epilogue) return null;
      lib.conv2d(
        xv,
        wv,
        out,
        convGeometry(info),
        epilogue.bias,
        epilogue.biasSize,
        epilogue.activation,
        epilogue.alpha,
      );
    } else {
      lib.conv2d(xv, wv, out, convGeometry(info));
    }
    return backend.makeTensorInfo(info.outShape, 'float32', out);
  };

  const binary =
    (op: number) =>
    (args: KernelArgs): tf.TensorInfo | null => {
      const backend = args.backend as CpuBackend;
      const { a, b } = args.inputs;
      const av = float32(backend, a);
      const bv = float32(backend, b);
      if (!a || !b || !av || !bv) return null;
      const plan = binaryPlan(a.shape, b.shape);
      if (!plan) return null;
      const out = new Float32Array(size(plan.outShape));
      lib.binary(
        op,
        plan.swapped ? bv : av,
        plan.swapped ? av : bv,
        out,
        plan.rows,
        plan.cols,
        plan.mode,
        plan.swapped,
        plan.mid,
      );
      return backend.makeTensorInfo(plan.outShape, 'float32', out);
    };
  const unary =
    (op: number) =>
    (args: KernelArgs): tf.TensorInfo | null => {
      const backend = args.backend as CpuBackend;
      const { x } = args.inputs;
      const xv = float32(backend, x);
      if (!x || !xv) return null;
      const out = new Float32Array(xv.length);
      lib.unary(op, xv, out, (args.attrs?.alpha as number | undefined) ?? 0);
      return backend.makeTensorInfo(x.shape.slice(), 'float32', out);
    };

  /** Sum (or mean) over a contiguous block of axes: out[o, i] = Σ_r x[o, r, i] (÷ r). */
  const reduceSum = (args: KernelArgs, mean: boolean): tf.TensorInfo | null => {
    const backend = args.backend as CpuBackend;
    const { x } = args.inputs;
    const xv = float32(backend, x);
    if (!x || !xv) return null;
    const axes = tf.util.parseAxisParam(args.attrs?.axis as number | number[], x.shape).sort((p, q) => p - q);
    // Only a contiguous block of axes: out[o, i] = Σ_r x[o, r, i].
    if (axes.length === 0 || axes.some((ax, i) => ax !== axes[0]! + i)) return null;
    const first = axes[0]!;
    const last = axes.at(-1)!;
    const outer = size(x.shape.slice(0, first));
    const reduce = size(x.shape.slice(first, last + 1));
    const inner = size(x.shape.slice(last + 1));
    const out = new Float32Array(outer * inner);
    lib.sum(xv, out, outer, reduce, inner);
    if (mean) for (let i = 0; i < out.length; i++) out[i] = out[i]! / reduce;
    const kept = args.attrs?.keepDims
      ? x.shape.map((d, i) => (axes.includes(i) ? 1 : d))
      : x.shape.filter((_, i) => !axes.includes(i));
    return backend.makeTensorInfo(kept, 'float32', out);
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
        attrs.inputShape as [number, number, number, number],
        filter.shape as [number, number, number, number],
        attrs.strides as [number, number],
        1,
        attrs.pad as 'same',
        attrs.dimRoundingMode as 'floor' | undefined,
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
        x.shape as [number, number, number, number],
        attrs.filterShape as [number, number, number, number],
        attrs.strides as [number, number],
        1,
        attrs.pad as 'same',
        attrs.dimRoundingMode as 'floor' | undefined,
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
        x.shape as [number, number, number, number],
        attrs.filterSize as [number, number],
        attrs.strides as [number, number],
        1,
        attrs.pad as 'same',
        attrs.dimRoundingMode as 'floor' | undefined,
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
        input.shape as [number, number, number, number],
        attrs.filterSize as [number, number],
        attrs.strides as [number, number],
        1,
        attrs.pad as 'same',
        attrs.dimRoundingMode as 'floor' | undefined,
      );
      if (info.outShape.join() !== dy.shape.join()) return null;
      const dx = new Float32Array(size(input.shape));
      lib.maxPoolGrad(dyv, xv, dx, convGeometry(info));
      return backend.makeTensorInfo(input.shape.slice(), 'float32', dx);
    },
    Add: binary(0),
    Sub: binary(1),
    Multiply: binary(2),
    RealDiv: binary(3),
    Relu: unary(0),
    Step: unary(1),
    Tanh: unary(2),
    Sigmoid: unary(3),
    Exp: unary(4),
    Sqrt: unary(5),
    Square: unary(6),
    Neg: unary(7),
    Log: unary(8),
    Sum: (args) => reduceSum(args, false),
    Mean: (args) => reduceSum(args, true),
    Transpose: (args) => {
      const backend = args.backend as CpuBackend;
      const { x } = args.inputs;
      const perm = args.attrs?.perm as number[];
      const xv = float32(backend, x);
      if (!x || !xv || !perm) return null;
      const rank = x.shape.length;
      const outShape = perm.map((p) => x.shape[p]!);
      if (perm.every((p, i) => p === i)) return backend.makeTensorInfo(outShape, 'float32', xv.slice());
      // Swapping the last two axes (of every matrix in a batch); other permutations stay in JS.
      if (
        rank < 2 ||
        perm[rank - 1] !== rank - 2 ||
        perm[rank - 2] !== rank - 1 ||
        perm.slice(0, -2).some((p, i) => p !== i)
      )
        return null;
      const out = new Float32Array(xv.length);
      lib.transpose2d(xv, out, size(x.shape.slice(0, -2)), x.shape[rank - 2]!, x.shape[rank - 1]!);
      return backend.makeTensorInfo(outShape, 'float32', out);
    },
    SplitV: (args) => {
      const backend = args.backend as CpuBackend;
      const { x } = args.inputs;
      const xv = numeric(backend, x);
      if (!x || !xv) return null;
      const axis = tf.util.parseAxisParam(args.attrs?.axis as number, x.shape)[0]!;
      const splits = tf.backend_util.prepareSplitSize(
        { shape: x.shape } as unknown as tf.Tensor,
        args.attrs?.numOrSizeSplits as number | number[],
        axis,
      );
      const inner = size(x.shape.slice(axis + 1));
      const pieces = splitRows(
        xv,
        splits.map((n) => n * inner),
        size(x.shape.slice(0, axis)),
      );
      return pieces.map((p, i) =>
        backend.makeTensorInfo(
          x.shape.map((d, j) => (j === axis ? splits[i]! : d)),
          x.dtype,
          p,
        ),
      );
    },
    Unpack: (args) => {
      const backend = args.backend as CpuBackend;
      const { value } = args.inputs;
      const xv = numeric(backend, value);
      if (!value || !xv) return null;
      const axis = tf.util.parseAxisParam(args.attrs?.axis as number, value.shape)[0]!;
      const inner = size(value.shape.slice(axis + 1));
      const pieces = splitRows(xv, Array<number>(value.shape[axis]!).fill(inner), size(value.shape.slice(0, axis)));
      const shape = value.shape.filter((_, j) => j !== axis);
      return pieces.map((p) => backend.makeTensorInfo(shape.slice(), value.dtype, p));
    },
    Concat: (args) => {
      const backend = args.backend as CpuBackend;
      const tensors = Object.values(args.inputs) as tf.TensorInfo[];
      const first = tensors[0];
      if (!first) return null;
      const axis = tf.util.parseAxisParam(args.attrs?.axis as number, first.shape)[0]!;
      const values = tensors.map((t) => numeric(backend, t));
      if (
        values.some((v) => !v) ||
        tensors.some((t) => t.dtype !== first.dtype || t.shape.length !== first.shape.length)
      )
        return null;
      if (tensors.some((t) => t.shape.some((d, j) => j !== axis && d !== first.shape[j]))) return null;
      const outShape = first.shape.map((d, j) => (j === axis ? tensors.reduce((n, t) => n + t.shape[axis]!, 0) : d));
      const out = first.dtype === 'float32' ? new Float32Array(size(outShape)) : new Int32Array(size(outShape));
      concatRows(
        values as (Float32Array | Int32Array)[],
        tensors.map((t) => size(t.shape.slice(axis))),
        size(first.shape.slice(0, axis)),
        out,
      );
      return backend.makeTensorInfo(outShape, first.dtype, out);
    },
    Pack: (args) => {
      const backend = args.backend as CpuBackend;
      const tensors = Object.values(args.inputs) as tf.TensorInfo[];
      const first = tensors[0];
      if (!first) return null;
      const axis = tf.util.parseAxisParam(args.attrs?.axis as number, [...first.shape, 1])[0]!;
      const values = tensors.map((t) => numeric(backend, t));
      if (
        values.some((v) => !v) ||
        tensors.some((t) => t.dtype !== first.dtype || t.shape.join() !== first.shape.join())
      )
        return null;
      const outShape = [...first.shape.slice(0, axis), tensors.length, ...first.shape.slice(axis)];
      const out = first.dtype === 'float32' ? new Float32Array(size(outShape)) : new Int32Array(size(outShape));
      const inner = size(first.shape.slice(axis));
      concatRows(
        values as (Float32Array | Int32Array)[],
        tensors.map(() => inner),
        size(first.shape.slice(0, axis)),
        out,
      );
      return backend.makeTensorInfo(outShape, first.dtype, out);
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
      kernelFunc: ((args: KernelArgs) => {
        const result = native(args);
        if (!result) return jsKernel(args);
        nativeCalls.set(name, (nativeCalls.get(name) ?? 0) + 1);
        return result;
      }) as unknown as tf.KernelFunc,
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

/** How many calls each kernel served natively since the last reset (the rest fell back to JS). */
export function nativeCallCounts(reset = false): Record<string, number> {
  const counts = Object.fromEntries(nativeCalls);
  if (reset) nativeCalls.clear();
  return counts;
}

/** The state after enableNativeKernels, or null before it. */
export function nativeStatus(): NativeStatus | null {
  return status;
}

/** One log line: whether native kernels are on and, if off, why and what it costs. */
export function describeNative(s: NativeStatus): string {
  return s.enabled
    ? `native kernels: on (${s.detail}; ${s.kernels.length} kernels)`
    : `native kernels: off: ${s.detail}`;
}
