/**
 * Drawing tokens from a model's output distribution with the project's seeded generator,
 * so that a resumed run or a repeated request draws exactly the same tokens.
 */
import * as tf from '@tensorflow/tfjs';
import type { Rng } from '../util/rng.ts';

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

/** How a sampled decoder reshapes the model's distribution before drawing from it. */
export interface SamplingFilter {
  /**
   * Divides the logits: below 1 sharpens, above 1 flattens (softmax temperature, Ackley, Hinton & Sejnowski 1985). Must
   * be > 0.
   */
  temperature: number;
  /** Keep only the k most probable words (Fan, Lewis & Dauphin 2018); 0 or absent: all. */
  topK?: number;
  /**
   * Keep the smallest set of most probable words whose mass reaches p (nucleus sampling, Holtzman et al. 2020); 1 or
   * absent: all.
   */
  topP?: number;
}

/**
 * logits [batch, vocab] → logits / T with every word outside the top-k and outside the nucleus
 * set to −∞, ready for `sampleCategorical`. The nucleus is the shortest prefix of the words
 * sorted by probability (after temperature and top-k) whose mass reaches p; it always holds
 * the most probable word. Words tied with the last word kept are kept too.
 */
export function filterLogits(logits: tf.Tensor2D, filter: SamplingFilter): tf.Tensor2D {
  const { temperature, topK = 0, topP = 1 } = filter;
  if (!(temperature > 0)) throw new Error(`filterLogits: temperature must be > 0, got ${temperature}`);
  if (!Number.isInteger(topK) || topK < 0)
    throw new Error(`filterLogits: topK must be a whole number ≥ 0, got ${topK}`);
  if (!(topP > 0 && topP <= 1)) throw new Error(`filterLogits: topP must be in (0, 1], got ${topP}`);
  return tf.tidy(() => {
    const vocab = logits.shape[1];
    let scaled = tf.div(logits, temperature) as tf.Tensor2D;
    const minusInf = tf.fill(scaled.shape, -Infinity);
    if (topK > 0 && topK < vocab) {
      const kth = tf.topk(scaled, topK).values.slice([0, topK - 1], [-1, 1]); // [batch, 1]
      scaled = tf.where(tf.less(scaled, kth), minusInf, scaled) as tf.Tensor2D;
    }
    if (topP < 1) {
      const sorted = tf.topk(scaled, vocab).values; // [batch, vocab], descending
      const before = tf.cumsum(tf.softmax(sorted), 1, true); // mass of the words ranked above each
      const kept = tf.less(before, topP); // the first word always (mass before it is 0)
      const threshold = tf.min(tf.where(kept, sorted, tf.fill(sorted.shape, Infinity)), 1, true); // [batch, 1]
      scaled = tf.where(tf.less(scaled, threshold), minusInf, scaled) as tf.Tensor2D;
    }
    return scaled;
  });
}

/**
 * One token per row drawn from `logits` [rows, vocab] reshaped by `filter`, with the uniforms
 * `u` (one per row) → int32 [rows]. A uniform at the very top of the CDF can land on a word the
 * filter removed; the best kept word is taken then.
 */
export function drawTokens(logits: tf.Tensor2D, u: Float32Array, filter: SamplingFilter): tf.Tensor1D {
  return tf.tidy(() => {
    const vocab = logits.shape[1];
    const filtered = filterLogits(logits, filter);
    const drawn = tf.cast(sampleCategorical(filtered, u), 'int32') as tf.Tensor1D;
    const kept = tf.cast(tf.isFinite(filtered), 'float32'); // [rows, vocab]
    const allowed = tf.greater(tf.sum(tf.mul(kept, tf.oneHot(drawn, vocab)), 1), 0);
    return tf.where(allowed, drawn, tf.cast(tf.argMax(filtered, 1), 'int32')) as tf.Tensor1D;
  });
}
