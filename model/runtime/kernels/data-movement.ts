/**
 * Kernels that only move data: Transpose (of the last two axes, in the addon), and SplitV,
 * Unpack, Concat, Pack and GatherV2 (row copies in JavaScript, float32 or int32), which the
 * pure JavaScript backend does element by element.
 */
import * as tf from '@tensorflow/tfjs';
import type { NativeAddon } from './addon.ts';
import { float32Kernel, listKernel, numericKernel, size, type KernelCall, type NativeKernels } from './common.ts';

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

/** The identity permutation (a copy), or a swap of the last two axes of every matrix in a batch; others stay in JS. */
function transpose(lib: NativeAddon, call: KernelCall<'x', Float32Array>): tf.TensorInfo | null {
  const { x } = call.inputs;
  const perm = call.attrs.perm as number[] | undefined;
  if (!perm) return null;
  const rank = x.shape.length;
  const outShape = perm.map((p) => x.shape[p]!);
  if (perm.every((p, i) => p === i)) return call.backend.makeTensorInfo(outShape, 'float32', call.values.x.slice());
  const swapsLastTwo =
    rank >= 2 &&
    perm[rank - 1] === rank - 2 &&
    perm[rank - 2] === rank - 1 &&
    perm.slice(0, -2).every((p, i) => p === i);
  if (!swapsLastTwo) return null;
  const out = new Float32Array(call.values.x.length);
  lib.transpose2d(call.values.x, out, size(x.shape.slice(0, -2)), x.shape[rank - 2]!, x.shape[rank - 1]!);
  return call.backend.makeTensorInfo(outShape, 'float32', out);
}

function splitV(call: KernelCall<'x', Float32Array | Int32Array>): tf.TensorInfo[] {
  const { backend, attrs } = call;
  const { x } = call.inputs;
  const axis = tf.util.parseAxisParam(attrs.axis as number, x.shape)[0]!;
  const splits = tf.backend_util.prepareSplitSize(
    { shape: x.shape } as unknown as tf.Tensor,
    attrs.numOrSizeSplits as number | number[],
    axis,
  );
  const inner = size(x.shape.slice(axis + 1));
  const pieces = splitRows(
    call.values.x,
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
}

function unpack(call: KernelCall<'value', Float32Array | Int32Array>): tf.TensorInfo[] {
  const { value } = call.inputs;
  const axis = tf.util.parseAxisParam(call.attrs.axis as number, value.shape)[0]!;
  const inner = size(value.shape.slice(axis + 1));
  const pieces = splitRows(
    call.values.value,
    Array<number>(value.shape[axis]!).fill(inner),
    size(value.shape.slice(0, axis)),
  );
  const shape = value.shape.filter((_, j) => j !== axis);
  return pieces.map((p) => call.backend.makeTensorInfo(shape.slice(), value.dtype, p));
}

/**
 * x gathered along `axis` at int32 `indices`: out [...x.shape[:axis], ...indices.shape[batchDims:],
 * ...x.shape[axis + 1:]], each index's block copied whole (an embedding lookup is one row per
 * token). With batchDims b, the first b axes of x and indices are one batch, and each batch's
 * indices pick from its own slice of x (a decoding step's chosen word per row). An index
 * outside the axis goes to JavaScript, which reports it.
 */
function gather(call: KernelCall<'x' | 'indices', Float32Array | Int32Array>): tf.TensorInfo | null {
  const { x, indices } = call.inputs;
  const ids = call.values.indices;
  if (indices.dtype !== 'int32' || !(ids instanceof Int32Array)) return null;
  const axis = tf.util.parseAxisParam(call.attrs.axis as number, x.shape)[0]!;
  const batchDims = (call.attrs.batchDims as number | undefined) ?? 0;
  if (!(batchDims >= 0 && batchDims <= axis && batchDims <= indices.shape.length)) return null;
  if (x.shape.slice(0, batchDims).join() !== indices.shape.slice(0, batchDims).join()) return null;
  const along = x.shape[axis]!;
  if (ids.some((i) => i < 0 || i >= along)) return null;
  const batch = size(x.shape.slice(0, batchDims));
  const outer = size(x.shape.slice(batchDims, axis));
  const inner = size(x.shape.slice(axis + 1));
  const perBatch = batch === 0 ? 0 : ids.length / batch; // indices of each batch
  const src = call.values.x;
  const count = batch * outer * perBatch * inner;
  const out = src instanceof Float32Array ? new Float32Array(count) : new Int32Array(count);
  for (let n = 0; n < batch; n++)
    for (let o = 0; o < outer; o++) {
      const row = n * outer + o;
      for (let j = 0; j < perBatch; j++) {
        const from = (row * along + ids[n * perBatch + j]!) * inner;
        out.set(src.subarray(from, from + inner), (row * perBatch + j) * inner);
      }
    }
  const shape = [...x.shape.slice(0, axis), ...indices.shape.slice(batchDims), ...x.shape.slice(axis + 1)];
  return call.backend.makeTensorInfo(shape, x.dtype, out);
}

export function dataMovementKernels(lib: NativeAddon): NativeKernels {
  return {
    GatherV2: numericKernel(['x', 'indices'], gather),
    Transpose: float32Kernel(['x'], (call) => transpose(lib, call)),
    SplitV: numericKernel(['x'], splitV),
    Unpack: numericKernel(['value'], unpack),
    // Tensors of one rank that differ only along the axis.
    Concat: listKernel(({ backend, tensors, values, attrs }) => {
      const first = tensors[0]!;
      const axis = tf.util.parseAxisParam(attrs.axis as number, first.shape)[0]!;
      if (tensors.some((t) => t.shape.length !== first.shape.length)) return null;
      if (tensors.some((t) => t.shape.some((d, j) => j !== axis && d !== first.shape[j]))) return null;
      const outShape = first.shape.map((d, j) => (j === axis ? tensors.reduce((n, t) => n + t.shape[axis]!, 0) : d));
      const out = first.dtype === 'float32' ? new Float32Array(size(outShape)) : new Int32Array(size(outShape));
      const inners = tensors.map((t) => size(t.shape.slice(axis)));
      concatRows(values, inners, size(first.shape.slice(0, axis)), out);
      return backend.makeTensorInfo(outShape, first.dtype, out);
    }),
    // Tensors of one shape, stacked along a new axis.
    Pack: listKernel(({ backend, tensors, values, attrs }) => {
      const first = tensors[0]!;
      const axis = tf.util.parseAxisParam(attrs.axis as number, [...first.shape, 1])[0]!;
      if (tensors.some((t) => t.shape.join() !== first.shape.join())) return null;
      const outShape = [...first.shape.slice(0, axis), tensors.length, ...first.shape.slice(axis)];
      const out = first.dtype === 'float32' ? new Float32Array(size(outShape)) : new Int32Array(size(outShape));
      const inner = size(first.shape.slice(axis));
      concatRows(
        values,
        tensors.map(() => inner),
        size(first.shape.slice(0, axis)),
        out,
      );
      return backend.makeTensorInfo(outShape, first.dtype, out);
    }),
  };
}
