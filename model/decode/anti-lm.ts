/**
 * What a decoding step chooses words by, plain or under anti-LM (the prior: model/decode/prior.ts;
 * the method: model/decode/decode.ts). Both searches call it inside their step's `tf.tidy`.
 */
import * as tf from '@tensorflow/tfjs';
import type { ResolvedOptions } from './options.ts';
import { logSoftmax } from '../runtime/fused.ts';

/**
 * The log-probabilities themselves or, under anti-LM, the distribution
 * q(w) ∝ p(w)·p_prior(w | prev)^−λ over the plausible words (p ≥ β·max p; −∞ for the rest),
 * renormalised per step so that beams compare as under plain decoding. `adjusted` is q without
 * the plausibility cut (for an <end> forced at the length limit).
 * logProbs [rows, vocab], prev [rows] → scores and adjusted [rows, vocab].
 */
export function choiceScores(
  o: Pick<ResolvedOptions, 'antiLm' | 'antiLmPlausibility' | 'prior'>,
  logProbs: tf.Tensor2D,
  prev: tf.Tensor1D,
): { scores: tf.Tensor2D; adjusted: tf.Tensor2D } {
  if (o.antiLm === 0 || !o.prior) return { scores: logProbs, adjusted: logProbs };
  const prior = tf.tensor2d(o.prior.rows(prev.dataSync()), logProbs.shape);
  const shifted = tf.sub(logProbs, tf.mul(prior, o.antiLm));
  const plausible = tf.greaterEqual(logProbs, tf.add(tf.max(logProbs, 1, true), Math.log(o.antiLmPlausibility)));
  const scores = logSoftmax(tf.where(plausible, shifted, tf.fill(shifted.shape, -Infinity))) as tf.Tensor2D;
  return { scores, adjusted: logSoftmax(shifted) as tf.Tensor2D };
}
