/**
 * Recurrent cells written out gate by gate. One set of weights serves every time step: the
 * training loop calls the same cell T times, and backpropagation through time sums the
 * gradient each step contributes to those shared weights.
 */
import * as tf from '@tensorflow/tfjs';
import type { Rng } from '../util/rng.ts';
import { fusedCellStep, type CellWeights } from './fused-cells.ts';
import { glorotUniform } from './init.ts';

export type CellKind = 'lstm' | 'gru' | 'rnn' | 'irnn';

/** Every cell kind, in the order `--cell` lists them. */
export const CELL_KINDS: readonly CellKind[] = ['lstm', 'gru', 'rnn', 'irnn'];

/** The recurrent state: h for every cell, and the LSTM's cell state c. */
export type CellState = {
  h: tf.Tensor2D;
  c?: tf.Tensor2D;
};

export type CellParams = Record<string, tf.Variable>;

/** How many gate blocks each cell stacks side by side in its weight matrices. */
const GATES: Record<CellKind, number> = { lstm: 4, gru: 3, rnn: 1, irnn: 1 };

/**
 * Creates a cell's weights: `kernel` [input, G·H] for the input, `recurrent` [H, G·H] for the
 * previous h, and `bias` [G·H]. The LSTM's forget-gate bias starts at 1 (Jozefowicz et al.
 * 2015), so that the cell state is carried, not forgotten, before training has taught the gate.
 * The IRNN's recurrent matrix starts as the identity and its bias at 0 (Le, Jaitly & Hinton
 * 2015): h' = ReLU(x·W + h) at first, so the Jacobian ∂h'/∂h is the identity wherever a unit
 * is active, and a gradient crosses many steps without shrinking or growing.
 */
export function createCell(
  kind: CellKind,
  rng: Rng,
  inputSize: number,
  hiddenSize: number,
  prefix: string,
): CellParams {
  const g = GATES[kind];
  const bias = new Float32Array(g * hiddenSize);
  if (kind === 'lstm') bias.fill(1, hiddenSize, 2 * hiddenSize); // gate order i, f, g, o
  const kernel = glorotUniform(rng, [inputSize, g * hiddenSize], inputSize, g * hiddenSize);
  const params: CellParams = {
    [`${prefix}/kernel`]: kernel,
    [`${prefix}/recurrent`]:
      kind === 'irnn'
        ? identity(hiddenSize)
        : glorotUniform(rng, [hiddenSize, g * hiddenSize], hiddenSize, g * hiddenSize),
    [`${prefix}/bias`]: tf.tidy(() => tf.variable(tf.tensor1d(bias), true)),
  };
  return params;
}

/** The identity matrix [n, n] as a trainable variable. */
function identity(n: number): tf.Variable {
  return tf.tidy(() => tf.variable(tf.eye(n), true));
}

function param(params: CellParams, name: string): tf.Variable {
  const p = params[name];
  if (!p) throw new Error(`missing parameter ${name}`);
  return p;
}

/** A cell's kernel, recurrent matrix and bias, for the fused kernels (./fused-cells.ts). */
export function cellWeights(params: CellParams, prefix: string): CellWeights {
  return {
    kernel: param(params, `${prefix}/kernel`) as tf.Tensor as tf.Tensor2D,
    recurrent: param(params, `${prefix}/recurrent`) as tf.Tensor as tf.Tensor2D,
    bias: param(params, `${prefix}/bias`) as tf.Tensor as tf.Tensor1D,
  };
}

/**
 * One LSTM step (Hochreiter & Schmidhuber 1997, with the forget gate of Gers et al. 2000):
 *   i = σ(x·Wi + h·Ui + bi)   input gate: how much of the candidate to write
 *   f = σ(x·Wf + h·Uf + bf)   forget gate: how much of the old cell state to keep
 *   g = tanh(x·Wg + h·Ug + bg) candidate values
 *   o = σ(x·Wo + h·Uo + bo)   output gate: how much of the cell to expose as h
 *   c' = f ⊙ c + i ⊙ g        the cell state, carried almost linearly: the long-term memory
 *   h' = o ⊙ tanh(c')
 */
export function lstmStep(params: CellParams, prefix: string, x: tf.Tensor2D, state: CellState): CellState {
  const { h, c } = state;
  if (!c) throw new Error('lstmStep: the state has no cell state c');
  const fused = fusedCellStep('lstm', cellWeights(params, prefix), x, state);
  if (fused) return fused;
  const z = tf.add(
    tf.add(tf.matMul(x, param(params, `${prefix}/kernel`)), tf.matMul(h, param(params, `${prefix}/recurrent`))),
    param(params, `${prefix}/bias`),
  ); // [batch, 4H]
  const [zi, zf, zg, zo] = tf.split(z, 4, 1) as [tf.Tensor2D, tf.Tensor2D, tf.Tensor2D, tf.Tensor2D];
  const i = tf.sigmoid(zi);
  const f = tf.sigmoid(zf);
  const g = tf.tanh(zg);
  const o = tf.sigmoid(zo);
  const cNext = tf.add(tf.mul(f, c), tf.mul(i, g)) as tf.Tensor2D;
  const hNext = tf.mul(o, tf.tanh(cNext)) as tf.Tensor2D;
  return { h: hNext, c: cNext };
}

/**
 * One GRU step (Cho et al. 2014), for comparison with the LSTM:
 *   z = σ(x·Wz + h·Uz + bz)   update gate
 *   r = σ(x·Wr + h·Ur + br)   reset gate
 *   n = tanh(x·Wn + r ⊙ (h·Un) + bn)
 *   h' = (1 − z) ⊙ n + z ⊙ h
 */
export function gruStep(params: CellParams, prefix: string, x: tf.Tensor2D, state: CellState): CellState {
  const fused = fusedCellStep('gru', cellWeights(params, prefix), x, state);
  if (fused) return fused;
  const { h } = state;
  const bias = param(params, `${prefix}/bias`);
  const xw = tf.add(tf.matMul(x, param(params, `${prefix}/kernel`)), bias); // [batch, 3H]
  const hu = tf.matMul(h, param(params, `${prefix}/recurrent`)); // [batch, 3H]
  const [xz, xr, xn] = tf.split(xw, 3, 1) as [tf.Tensor2D, tf.Tensor2D, tf.Tensor2D];
  const [hz, hr, hn] = tf.split(hu, 3, 1) as [tf.Tensor2D, tf.Tensor2D, tf.Tensor2D];
  const z = tf.sigmoid(tf.add(xz, hz));
  const r = tf.sigmoid(tf.add(xr, hr));
  const n = tf.tanh(tf.add(xn, tf.mul(r, hn)));
  const hNext = tf.add(tf.mul(tf.sub(1, z), n), tf.mul(z, h)) as tf.Tensor2D;
  return { h: hNext };
}

/**
 * One step of a plain recurrent network, the cell every gated one improves on:
 *   h' = φ(x·W + h·U + b)
 * with φ = tanh for the Elman network (Elman 1990) and φ = ReLU for the IRNN (Le, Jaitly &
 * Hinton 2015; its U starts as the identity, see `createCell`). Backpropagation through time
 * multiplies the gradient by diag(φ'(z))·Uᵀ at every step it goes back, so over k steps it scales
 * roughly as (|φ'|·‖U‖)^k: it vanishes when that is below 1 and explodes when above (Bengio et
 * al. 1994; Pascanu et al. 2013). The gated cells above add a path on which it does neither.
 */
export function rnnStep(
  activation: 'tanh' | 'relu',
  params: CellParams,
  prefix: string,
  x: tf.Tensor2D,
  state: CellState,
): CellState {
  const z = tf.add(
    tf.add(tf.matMul(x, param(params, `${prefix}/kernel`)), tf.matMul(state.h, param(params, `${prefix}/recurrent`))),
    param(params, `${prefix}/bias`),
  ); // [batch, H]
  return { h: (activation === 'tanh' ? tf.tanh(z) : tf.relu(z)) as tf.Tensor2D };
}

export function cellStep(
  kind: CellKind,
  params: CellParams,
  prefix: string,
  x: tf.Tensor2D,
  state: CellState,
): CellState {
  switch (kind) {
    case 'lstm':
      return lstmStep(params, prefix, x, state);
    case 'gru':
      return gruStep(params, prefix, x, state);
    case 'rnn':
      return rnnStep('tanh', params, prefix, x, state);
    case 'irnn':
      return rnnStep('relu', params, prefix, x, state);
  }
}
