/**
 * The sequence loss: softmax cross-entropy at every time step, summed over steps, with a
 * padding mask so that a pad position adds exactly zero loss and exactly zero gradient
 * (its term is multiplied by 0, so nothing reaches its logits).
 */
import * as tf from '@tensorflow/tfjs';
import { PAD } from './vocab.ts';

/**
 * logits [batch, steps, vocab], targets [batch, steps] (int32, PAD where there is no word)
 * → the masked cross-entropy summed over steps and averaged over the batch (a scalar).
 * Averaging over the batch keeps the gradient's scale independent of the batch size; summing
 * over steps gives each step its own loss, as the model is trained to predict every word.
 */
export function maskedSequenceLoss(logits: tf.Tensor3D, targets: tf.Tensor2D): tf.Scalar {
  return tf.tidy(() => {
    const [batch, , vocab] = logits.shape;
    const logProbs = tf.logSoftmax(logits); // [batch, steps, vocab]
    const picked = tf.sum(tf.mul(logProbs, tf.oneHot(tf.cast(targets, 'int32'), vocab)), 2); // [batch, steps]
    const mask = tf.cast(tf.notEqual(targets, PAD), 'float32'); // [batch, steps]
    return tf.div(tf.neg(tf.sum(tf.mul(picked, mask))), batch) as tf.Scalar;
  });
}

/** Number of non-pad targets: the tokens a batch's loss is spread over. */
export function countTokens(targets: ArrayLike<number>): number {
  let n = 0;
  for (let i = 0; i < targets.length; i++) if (targets[i] !== PAD) n++;
  return n;
}

/** Mean loss per token and perplexity from the batch loss of maskedSequenceLoss. */
export function perTokenLoss(batchLoss: number, batchSize: number, tokens: number): { lossPerToken: number; perplexity: number } {
  const lossPerToken = tokens > 0 ? (batchLoss * batchSize) / tokens : 0;
  return { lossPerToken, perplexity: Math.exp(lossPerToken) };
}
