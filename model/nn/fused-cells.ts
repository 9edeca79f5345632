/**
 * The LSTM and GRU of ./cells.ts on the fused native kernels (model/runtime/fused.ts): the input
 * projections x·W + b of every step as one matrix product, then the recurrence (h·U and the
 * gates, step after step) and its backward pass one kernel each. Same function as the gate-by-
 * gate code in cells.ts, which runs wherever these return null (other cells, the native
 * kernels off, another backend).
 */
import * as tf from '@tensorflow/tfjs';
import { gruSequence, hasFusedCell, lstmSequence } from '../runtime/fused.ts';
import type { CellState } from './cells.ts';

/** A cell's weights: kernel [input, G·H], recurrent [H, G·H], bias [G·H]. */
export interface CellWeights {
  kernel: tf.Tensor2D;
  recurrent: tf.Tensor2D;
  bias: tf.Tensor1D;
}

/**
 * Runs `cell` over xs [batch, steps, input] from `state`: every step's h, [batch, steps, H],
 * and the LSTM's every c. Null when the cell has no fused kernels here.
 */
function run(
  cell: string,
  weights: CellWeights,
  xs: tf.Tensor3D,
  state: CellState,
): { hs: tf.Tensor3D; cs?: tf.Tensor3D } | null {
  if (!hasFusedCell(cell) || (cell === 'lstm' && !state.c)) return null;
  const [batch, steps, input] = xs.shape;
  const width = weights.recurrent.shape[1];
  // Two kernels (tf.fused.matMul's own reshapes would add four more to every decoding step).
  const xw = tf.reshape(
    tf.add(tf.matMul(tf.reshape(xs, [batch * steps, input]) as tf.Tensor2D, weights.kernel), weights.bias),
    [batch, steps, width],
  ) as tf.Tensor3D; // [batch, steps, G·H]
  if (cell === 'lstm') return lstmSequence(xw, state.h, state.c!, weights.recurrent);
  const hs = gruSequence(xw, state.h, weights.recurrent);
  return hs ? { hs } : null;
}

/** One step of `cell`: x [batch, input] → the new state; null when the cell has no fused kernels here. */
export function fusedCellStep(cell: string, weights: CellWeights, x: tf.Tensor2D, state: CellState): CellState | null {
  if (!hasFusedCell(cell)) return null;
  const [batch, input] = x.shape;
  const out = run(cell, weights, tf.reshape(x, [batch, 1, input]) as tf.Tensor3D, state);
  if (!out) return null;
  const hidden = state.h.shape[1];
  const h = tf.reshape(out.hs, [batch, hidden]) as tf.Tensor2D;
  return out.cs ? { h, c: tf.reshape(out.cs, [batch, hidden]) as tf.Tensor2D } : { h };
}

/**
 * `cell` over a whole sequence whose inputs are all known (teacher forcing): xs [batch, steps,
 * input] → every step's h, [batch, steps, H]. Null when the cell has no fused kernels here.
 */
export function fusedCellSequence(
  cell: string,
  weights: CellWeights,
  xs: tf.Tensor3D,
  state: CellState,
): tf.Tensor3D | null {
  return run(cell, weights, xs, state)?.hs ?? null;
}
