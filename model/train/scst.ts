/**
 * Self-critical sequence training (Rennie, Marcheret, Mroueh, Ross & Goel 2017, "Self-critical
 * Sequence Training for Image Captioning"): the model captions each training image twice, once by
 * drawing every word from its own distribution (w^s) and once greedily (ŵ); the reward of a
 * caption is its CIDEr-D against the image's training references, and the sampled caption's
 * log-probability is pushed up by how much it beat the greedy one:
 *
 *     L = −(r(w^s) − r(ŵ)) · Σ_t log p(w^s_t | w^s_<t, image)
 *
 * (their eq. 8 and 9: REINFORCE, Williams 1992, with the greedy caption's reward as the baseline,
 * so that a sample better than what the model would say now is made likelier and a worse one less
 * likely). The sum runs over the sampled words and the <end> the model chose, nothing after it.
 * The model is trained on what it says itself, so there is no train/test mismatch of inputs
 * (exposure bias, docs/lab.md), and on the sequence-level figure it is judged by.
 *
 * The pure parts are here (the loss, the sampled batch, the rewards); Trainer.scstStep
 * (model/train/step.ts) runs a step with them.
 */
import * as tf from '@tensorflow/tfjs';
import type { DatasetImage } from '../data/dataset.ts';
import type { DecodedCaption } from '../decode/decode.ts';
import { CiderDScorer } from '../metrics/cider.ts';
import { logSoftmax } from '../runtime/fused.ts';
import { ptbTokenize } from '../text/tokenize.ts';
import { END, PAD, START } from '../text/vocab.ts';

/**
 * The SCST loss of a batch: logits [batch, steps, vocab] of a teacher-forced pass over the sampled
 * captions, targets [batch, steps] (int32: the sampled words, then <end>), mask [batch, steps]
 * (1 for each word drawn and the <end> the model chose, 0 after it) and each caption's advantage
 * r(w^s) − r(ŵ), [batch] → the scalar
 *     −(1/batch) Σ_b advantage_b Σ_t mask_bt log softmax(logits_bt)[target_bt].
 * The mask is explicit, not read off PAD: an untrained model can draw <pad> itself, and that
 * word's probability must be pushed down like any other. The mean over the batch, as in
 * maskedSequenceLoss, keeps the gradient's scale independent of the batch size. The advantage is
 * a constant: no gradient flows into it.
 */
export function scstLoss(
  logits: tf.Tensor3D,
  targets: tf.Tensor2D,
  mask: tf.Tensor2D,
  advantage: tf.Tensor1D,
): tf.Scalar {
  return tf.tidy(() => {
    const [batch, , vocab] = logits.shape;
    const logProbs = logSoftmax(logits); // [batch, steps, vocab]
    const picked = tf.sum(tf.mul(logProbs, tf.oneHot(tf.cast(targets, 'int32'), vocab)), 2); // [batch, steps]
    const captionLogProb = tf.sum(tf.mul(picked, mask), 1); // [batch]
    return tf.div(tf.neg(tf.sum(tf.mul(captionLogProb, advantage))), batch) as tf.Scalar;
  });
}

/**
 * Sampled captions as a token batch for the teacher-forced pass: each row `<start> w1 … wn <end>`
 * padded with PAD to [batch, width], width the longest plus two, and the loss mask of its targets
 * (tokens shifted by one), [batch, width − 1]: 1 for w1 … wn and <end>, 0 after. A caption of
 * `maxLength` words did not choose its <end> (decoding forced it, model/decode/decode.ts): its
 * <end> is masked out, so that the loss counts only what was drawn.
 */
export function sampledTokens(
  samples: readonly Pick<DecodedCaption, 'ids'>[],
  maxLength: number,
): { tokens: Int32Array; width: number; mask: Float32Array; count: number } {
  const width = Math.max(...samples.map((s) => s.ids.length)) + 2;
  const tokens = new Int32Array(samples.length * width).fill(PAD);
  const mask = new Float32Array(samples.length * (width - 1));
  let count = 0;
  samples.forEach((s, b) => {
    tokens[b * width] = START;
    tokens.set(s.ids, b * width + 1);
    tokens[b * width + 1 + s.ids.length] = END;
    const chosen = s.ids.length < maxLength ? s.ids.length + 1 : s.ids.length;
    mask.fill(1, b * (width - 1), b * (width - 1) + chosen);
    count += chosen;
  });
  return { tokens, width, mask, count };
}

/**
 * The reward of SCST: a caption's CIDEr-D against its image's training references, with the
 * document frequencies of all the training images' references (counted once, here), as Rennie et
 * al. do, rather than of the batch's: a caption scores the same whatever batch it is in. References
 * are PTB-tokenised as evaluation tokenises them (eval/score.ts); candidates are the model's words.
 */
export class CaptionReward {
  private readonly references = new Map<string, string[][]>();
  private readonly scorer: CiderDScorer;

  constructor(trainImages: readonly DatasetImage[]) {
    for (const img of trainImages)
      this.references.set(
        img.id,
        img.captions.map((c) => ptbTokenize(c)),
      );
    this.scorer = new CiderDScorer([...this.references.values()]);
  }

  /** CIDEr-D of `words` against the references of `imageId` (an image of the references given, or of `refs`). */
  score(imageId: string, words: readonly string[], refs?: readonly string[]): number {
    const references = refs ? refs.map((c) => ptbTokenize(c)) : this.references.get(imageId);
    if (!references) throw new Error(`CaptionReward: image "${imageId}" is not a training image`);
    return this.scorer.score(words, references);
  }
}

/** The mean of `xs` (NaN for none). */
export function mean(xs: readonly number[]): number {
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}
