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

/** x [rows, input] · kernel + bias → [rows, G·H]: two kernels (tf.fused.matMul's own reshapes would add four more). */
function inputProjection(weights: CellWeights, x: tf.Tensor2D): tf.Tensor2D {
  return tf.add(tf.matMul(x, weights.kernel), weights.bias) as tf.Tensor2D;
}

/** One step of `cell`: x [batch, input] → the new state; null when the cell has no fused kernels here. */
export function fusedCellStep(cell: string, weights: CellWeights, x: tf.Tensor2D, state: CellState): CellState | null {
  if (!hasFusedCell(cell) || (cell === 'lstm' && !state.c)) return null;
  // One step is a sequence of one, [batch, G·H] in and [batch, H] out: no reshapes around it.
  const xw = inputProjection(weights, x);
  if (cell === 'lstm') {
    const out = lstmSequence(xw, state.h, state.c!, weights.recurrent);
    return out ? { h: out.hs, c: out.cs } : null;
  }
  const h = gruSequence(xw, state.h, weights.recurrent);
  return h ? { h } : null;
}

/**
 * `cell` over a whole sequence whose inputs are all known (teacher forcing): xs [batch, steps,
 * input] → every step's h, [batch, steps, H]: the input projections of every step as one
 * product, then the recurrence in one kernel. Null when the cell has no fused kernels here.
 */
export function fusedCellSequence(
  cell: string,
  weights: CellWeights,
  xs: tf.Tensor3D,
  state: CellState,
): tf.Tensor3D | null {
  if (!hasFusedCell(cell) || (cell === 'lstm' && !state.c)) return null;
  const [batch, steps, input] = xs.shape;
  const width = weights.recurrent.shape[1];
  const xw = tf.reshape(inputProjection(weights, tf.reshape(xs, [batch * steps, input]) as tf.Tensor2D), [
    batch,
    steps,
    width,
  ]) as tf.Tensor3D; // [batch, steps, G·H]
  if (cell === 'lstm') return lstmSequence(xw, state.h, state.c!, weights.recurrent)?.hs ?? null;
  return gruSequence(xw, state.h, weights.recurrent);
}
