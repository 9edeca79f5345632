/**
 * Elementwise binary ops with broadcasting: every op of native/ops.json's "binary" group (Add,
 * Sub, Multiply, RealDiv) is registered under its TF.js kernel name.
 */
import * as tf from '@tensorflow/tfjs';
import { OP_TABLE, opCode, type NativeAddon } from './addon.ts';
import { float32Kernel, size, type NativeKernels } from './common.ts';

/** How the operand that does not cover the output broadcasts (native/ops.json's "broadcast" group). */
export type BroadcastMode = 'full' | 'scalar' | 'row' | 'column' | 'middle';

/** Each mode's code, read once: a name missing from native/ops.json fails at load. */
const MODE_CODES: Record<BroadcastMode, number> = {
  full: opCode('broadcast', 'full'),
  scalar: opCode('broadcast', 'scalar'),
  row: opCode('broadcast', 'row'),
  column: opCode('broadcast', 'column'),
  middle: opCode('broadcast', 'middle'),
};

/** How a binary op of two shapes runs in the addon (see `binaryPlan`). */
export interface BinaryPlan {
  /** The left operand is the one that broadcasts. */
  swapped: boolean;
  rows: number;
  cols: number;
  mid: number;
  mode: BroadcastMode;
  outShape: number[];
}

/**
 * How a broadcasting binary op maps onto the addon: one operand covers the whole output; the
 * other is the same size ('full'), a scalar ('scalar'), or differs from the output only in one
 * contiguous block of axes where it has size 1: leading ('row': a trailing block repeated on
 * every row), trailing ('column': one value per row) or in the middle ('middle'). Other
 * broadcasts return null and stay in JavaScript.
 */
export function binaryPlan(aShape: readonly number[], bShape: readonly number[]): BinaryPlan | null {
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
  if (n === total) return { swapped, rows: 1, cols: total, mid: 1, mode: 'full', outShape };
  if (n === 1) return { swapped, rows: 1, cols: total, mid: 1, mode: 'scalar', outShape };
  const rank = outShape.length;
  const padded = [...Array<number>(rank - other.length).fill(1), ...other];
  const differs = outShape.map((d, i) => d !== padded[i]);
  const p = differs.indexOf(true);
  const q = differs.lastIndexOf(true) + 1;
  if (differs.slice(p, q).some((d) => !d)) return null; // broadcast axes not contiguous
  const rows = size(outShape.slice(0, p));
  const mid = size(outShape.slice(p, q));
  const cols = size(outShape.slice(q));
  if (p === 0) return { swapped, rows: mid, cols, mid: 1, mode: 'row', outShape };
  if (q === rank) return { swapped, rows, cols: mid, mid: 1, mode: 'column', outShape };
  return { swapped, rows, cols, mid, mode: 'middle', outShape };
}

/** Every binary op of native/ops.json, by its TF.js kernel name. */
export function binaryKernels(lib: NativeAddon): NativeKernels {
  return Object.fromEntries(
    OP_TABLE.binary.map((name, op) => [
      name,
      float32Kernel(['a', 'b'], ({ backend, inputs: { a, b }, values }) => {
        const plan = binaryPlan(a.shape, b.shape);
        if (!plan) return null;
        const out = new Float32Array(size(plan.outShape));
        const [full, other] = plan.swapped ? [values.b, values.a] : [values.a, values.b];
        lib.binary(op, full, other, out, plan.rows, plan.cols, MODE_CODES[plan.mode], plan.swapped, plan.mid);
        return backend.makeTensorInfo(plan.outShape, 'float32', out);
      }),
    ]),
  );
}
