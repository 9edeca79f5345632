/**
 * Weight initialisation from the project's own seeded generator, so that the same seed gives
 * the same model on every backend (TF.js initialisers draw from per-backend generators).
 * Variables are left unnamed: TF.js names must be unique per process, and a process may hold
 * several models (tests, a server's worker); checkpoints name weights themselves.
 */
import * as tf from '@tensorflow/tfjs';
import type { Rng } from '../util/rng.ts';

/** Glorot/Xavier uniform (Glorot & Bengio 2010): U(±sqrt(6 / (fanIn + fanOut))). */
export function glorotUniform(rng: Rng, shape: number[], fanIn: number, fanOut: number): tf.Variable {
  const limit = Math.sqrt(6 / (fanIn + fanOut));
  const values = new Float32Array(shape.reduce((a, b) => a * b, 1));
  for (let i = 0; i < values.length; i++) values[i] = (2 * rng.next() - 1) * limit;
  return tf.tidy(() => tf.variable(tf.tensor(values, shape), true));
}

/** A variable filled with `value` (zeros for biases; ones where a bias should start open). */
export function constant(shape: number[], value: number): tf.Variable {
  return tf.tidy(() => tf.variable(tf.fill(shape, value), true));
}

/** Uniform embedding rows U(±0.1), the usual choice for word embeddings trained from scratch. */
export function uniform(rng: Rng, shape: number[], limit: number): tf.Variable {
  const values = new Float32Array(shape.reduce((a, b) => a * b, 1));
  for (let i = 0; i < values.length; i++) values[i] = (2 * rng.next() - 1) * limit;
  return tf.tidy(() => tf.variable(tf.tensor(values, shape), true));
}
