/**
 * Drawing tokens from a model's output distribution with the project's seeded generator,
 * so that a resumed run or a repeated request draws exactly the same tokens.
 */
import * as tf from '@tensorflow/tfjs';
import type { Rng } from './rng.ts';

/**
 * Inverse-CDF sampling: logits [batch, vocab] and one uniform u ∈ [0, 1) per row → the index
 * of the first word whose cumulative probability exceeds u, as int32 [batch].
 */
export function sampleCategorical(logits: tf.Tensor2D, uniforms: Float32Array): tf.Tensor1D {
  return tf.tidy(() => {
    const vocab = logits.shape[1];
    const cumulative = tf.cumsum(tf.softmax(logits), 1); // [batch, vocab]
    const u = tf.tensor2d(uniforms, [uniforms.length, 1]);
    const below = tf.sum(tf.cast(tf.less(cumulative, u), 'int32'), 1); // words passed before u
    return tf.minimum(below, tf.scalar(vocab - 1, 'int32')) as tf.Tensor1D; // guards against rounding at the top
  });
}

/** `n` uniforms from `rng`. */
export function uniforms(rng: Rng, n: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = rng.next();
  return out;
}
