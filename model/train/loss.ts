/**
 * The sequence loss: softmax cross-entropy at every time step, summed over steps, with a
 * padding mask so that a pad position adds exactly zero loss and exactly zero gradient
 * (its term is multiplied by 0, so nothing reaches its logits).
 */
import * as tf from '@tensorflow/tfjs';
import { softmaxCrossEntropy } from '../runtime/fused.ts';
import { PAD } from '../text/vocab.ts';

/**
 * logits [batch, steps, vocab], targets [batch, steps] (int32, PAD where there is no word)
 * → the masked cross-entropy summed over steps and averaged over the batch (a scalar).
 * Averaging over the batch keeps the gradient's scale independent of the batch size; summing
 * over steps gives each step its own loss, as the model is trained to predict every word.
 *
 * With `labelSmoothing` α > 0 the target is (1 − α)·one-hot + α·uniform over the vocabulary
 * (Szegedy et al. 2016). Plain cross-entropy rewards pushing a word the data never shows in a
 * context towards probability 0 without limit: on the shapes data no yellow object is ever a
 * circle in training, so the decoder learns "yellow ⇒ not circle" as hard as the picture's
 * evidence for "circle". Smoothing bounds how far below the other words any word can go,
 * which caps such learned exclusions.
 *
 * With the native kernels on, the whole loss is one fused kernel and its gradient one more
 * (model/runtime/fused.ts's softmaxCrossEntropy); the TF.js ops below are the same function.
 *
 * `maskPadding: false` is the unmasked loss, a control for the RNN lab's padding experiment: the
 * pad positions after <end> count as targets (<pad>) like words, so a batch's loss and gradient
 * depend on how much padding it holds.
 */
export function maskedSequenceLoss(
  logits: tf.Tensor3D,
  targets: tf.Tensor2D,
  labelSmoothing = 0,
  { maskPadding = true }: { maskPadding?: boolean } = {},
): tf.Scalar {
  if (!(labelSmoothing >= 0 && labelSmoothing < 1))
    throw new Error(`maskedSequenceLoss: labelSmoothing must be in [0, 1), got ${labelSmoothing}`);
  return tf.tidy(() => {
    const [batch, , vocab] = logits.shape;
    // Without the mask, <pad> is a target like any word (no id equals the pad id -1).
    const pad = maskPadding ? PAD : -1;
    const fused = softmaxCrossEntropy(logits, targets, { pad, labelSmoothing, scale: 1 / batch });
    if (fused) return fused;
    const logProbs = tf.logSoftmax(logits); // [batch, steps, vocab]
    let target = tf.oneHot(tf.cast(targets, 'int32'), vocab); // [batch, steps, vocab]
    if (labelSmoothing > 0) target = tf.add(tf.mul(target, 1 - labelSmoothing), labelSmoothing / vocab);
    const picked = tf.sum(tf.mul(logProbs, target), 2); // [batch, steps]
    if (!maskPadding) return tf.div(tf.neg(tf.sum(picked)), batch) as tf.Scalar;
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
export function perTokenLoss(
  batchLoss: number,
  batchSize: number,
  tokens: number,
): { lossPerToken: number; perplexity: number } {
  const lossPerToken = tokens > 0 ? (batchLoss * batchSize) / tokens : 0;
  return { lossPerToken, perplexity: Math.exp(lossPerToken) };
}
