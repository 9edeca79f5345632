/**
 * Reductions: Sum and Mean over a contiguous block of axes, UnsortedSegmentSum (the gather
 * gradient), and ArgMax and TopK over the last axis (a decoding step's best words).
 */
import * as tf from '@tensorflow/tfjs';
import type { NativeAddon } from './addon.ts';
import { float32Kernel, size, type KernelCall, type NativeKernels } from './common.ts';

/**
 * Sum (or mean) over a contiguous block of axes: out[o, i] = Σ_r x[o, r, i] (÷ r). Axes that
 * are not one block go to JavaScript.
 */
function reduceSum(lib: NativeAddon, call: KernelCall<'x', Float32Array>, mean: boolean): tf.TensorInfo | null {
  const { x } = call.inputs;
  const axes = tf.util.parseAxisParam(call.attrs.axis as number | number[], x.shape).sort((p, q) => p - q);
  if (axes.length === 0 || axes.some((ax, i) => ax !== axes[0]! + i)) return null;
  const first = axes[0]!;
  const last = axes.at(-1)!;
  const outer = size(x.shape.slice(0, first));
  const reduce = size(x.shape.slice(first, last + 1));
  const inner = size(x.shape.slice(last + 1));
  const out = new Float32Array(outer * inner);
  lib.sum(call.values.x, out, outer, reduce, inner);
  if (mean) for (let i = 0; i < out.length; i++) out[i] = out[i]! / reduce;
  const kept = call.attrs.keepDims
    ? x.shape.map((d, i) => (axes.includes(i) ? 1 : d))
    : x.shape.filter((_, i) => !axes.includes(i));
  return call.backend.makeTensorInfo(kept, 'float32', out);
}

/** out[s] = Σ x[i] over the rows i whose segment id is s: x [...ids.shape, ...inner] → [numSegments, ...inner]. */
function unsortedSegmentSum(lib: NativeAddon, call: KernelCall<'x', Float32Array>): tf.TensorInfo | null {
  const { x } = call.inputs;
  const segmentIds = call.all.segmentIds;
  const numSegments = call.attrs.numSegments as number;
  if (!segmentIds || segmentIds.dtype !== 'int32') return null;
  const ids = call.backend.data.get(segmentIds.dataId).values;
  const rank = segmentIds.shape.length;
  if (!(ids instanceof Int32Array) || segmentIds.shape.join() !== x.shape.slice(0, rank).join()) return null;
  const innerShape = x.shape.slice(rank);
  const out = new Float32Array(numSegments * size(innerShape));
  lib.unsortedSegmentSum(call.values.x, ids, out, size(innerShape), numSegments);
  return call.backend.makeTensorInfo([numSegments, ...innerShape], 'float32', out);
}

/**
 * The k largest values of each row (the last axis) and their indices, largest first, ties by
 * smaller index, as the JavaScript kernel sorts them. Unsorted top-k (whose order is the
 * JavaScript partition's) and rows holding NaN go to JavaScript.
 */
function topK(lib: NativeAddon, call: KernelCall<'x', Float32Array>): tf.TensorInfo[] | null {
  const { x } = call.inputs;
  const k = call.attrs.k as number;
  const vocab = x.shape.at(-1);
  if (call.attrs.sorted === false || vocab === undefined || !(k >= 0 && k <= vocab)) return null;
  const rows = vocab === 0 ? 0 : call.values.x.length / vocab;
  const values = new Float32Array(rows * k);
  const indices = new Int32Array(rows * k);
  if (rows > 0 && k > 0 && !lib.topK(call.values.x, values, indices, vocab, k)) return null;
  const shape = [...x.shape.slice(0, -1), k];
  return [call.backend.makeTensorInfo(shape, 'float32', values), call.backend.makeTensorInfo(shape, 'int32', indices)];
}

/** The index of the largest value along the last axis (other axes go to JavaScript). */
function argMax(lib: NativeAddon, call: KernelCall<'x', Float32Array>): tf.TensorInfo | null {
  const { x } = call.inputs;
  const axes = tf.util.parseAxisParam(call.attrs.axis as number | number[], x.shape);
  const vocab = x.shape.at(-1);
  if (axes.length !== 1 || axes[0] !== x.shape.length - 1 || !vocab) return null;
  const out = new Int32Array(call.values.x.length / vocab);
  lib.argMax(call.values.x, out, vocab);
  return call.backend.makeTensorInfo(x.shape.slice(0, -1), 'int32', out);
}

export function reductionKernels(lib: NativeAddon): NativeKernels {
  return {
    ArgMax: float32Kernel(['x'], (call) => argMax(lib, call)),
    TopK: float32Kernel(['x'], (call) => topK(lib, call)),
    Sum: float32Kernel(['x'], (call) => reduceSum(lib, call, false)),
    Mean: float32Kernel(['x'], (call) => reduceSum(lib, call, true)),
    UnsortedSegmentSum: float32Kernel(['x'], (call) => unsortedSegmentSum(lib, call)),
  };
}
