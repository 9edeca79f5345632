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
 *
 * With `labelSmoothing` α > 0 the target is (1 − α)·one-hot + α·uniform over the vocabulary
 * (Szegedy et al. 2016). Plain cross-entropy rewards pushing a word the data never shows in a
 * context towards probability 0 without limit: on the shapes data no yellow object is ever a
 * circle in training, so the decoder learns "yellow ⇒ not circle" as hard as the picture's
 * evidence for "circle". Smoothing bounds how far below the other words any word can go,
 * which caps such learned exclusions.
 *
 * With `slots` (each word id's substitutes, model/substitution.ts), a target word that has
 * substitutes spreads α over its slot instead: "circle" gives α / 6 to each shape rather than
 * α / |V| to every word. The floor that caps an exclusion then sits where the exclusion is
 * learned, among the words that compete for the same place: it is about |V| / 6 times higher,
 * and no mass goes to words that could not stand there ("of" in place of a shape). Words
 * without substitutes keep the vocabulary-wide α.
 */
export function maskedSequenceLoss(logits: tf.Tensor3D, targets: tf.Tensor2D, labelSmoothing = 0, slots?: readonly (readonly number[])[]): tf.Scalar {
  if (!(labelSmoothing >= 0 && labelSmoothing < 1)) throw new Error(`maskedSequenceLoss: labelSmoothing must be in [0, 1), got ${labelSmoothing}`);
  return tf.tidy(() => {
    const [batch, steps, vocab] = logits.shape;
    const logProbs = tf.logSoftmax(logits); // [batch, steps, vocab]
    const ids = tf.cast(targets, 'int32');
    let picked = tf.sum(tf.mul(logProbs, tf.oneHot(ids, vocab)), 2); // [batch, steps]: log p(target)
    if (labelSmoothing > 0) {
      // The smoothing term: mean log p over the target's slot, or over the vocabulary.
      let spread = tf.mean(logProbs, 2);
      if (slots) {
        const { index, weight, width, slotted } = slotTable(slots, vocab);
        const rows = batch * steps;
        const members = tf.gather(tf.tensor2d(index, [vocab, width], 'int32'), tf.reshape(ids, [rows])); // [rows, width]
        const w = tf.gather(tf.tensor2d(weight, [vocab, width]), tf.reshape(ids, [rows]));
        const offsets = tf.reshape(tf.range(0, rows * vocab, vocab, 'int32'), [rows, 1]); // row r starts at r·vocab
        const memberLogProbs = tf.reshape(tf.gather(tf.reshape(logProbs, [-1]), tf.add(members, offsets)), [rows, width]);
        const inSlot = tf.reshape(tf.sum(tf.mul(memberLogProbs, w), 1), [batch, steps]);
        spread = tf.where(tf.gather(tf.tensor1d(slotted, 'bool'), ids), inSlot, spread);
      }
      picked = tf.add(tf.mul(picked, 1 - labelSmoothing), tf.mul(spread, labelSmoothing));
    }
    const mask = tf.cast(tf.notEqual(targets, PAD), 'float32'); // [batch, steps]
    return tf.div(tf.neg(tf.sum(tf.mul(picked, mask))), batch) as tf.Scalar;
  });
}

interface SlotTable {
  /** Row w: w's slot (w and its substitutes), padded with w; `width` columns. */
  index: Int32Array;
  /** 1 / slot size for each member, 0 for the padding. */
  weight: Float32Array;
  width: number;
  /** 1 where the word has substitutes. */
  slotted: Uint8Array;
  vocab: number;
}

/** The slot table of a class table, built once per class table. */
const slotTables = new WeakMap<readonly (readonly number[])[], SlotTable>();
function slotTable(slots: readonly (readonly number[])[], vocab: number): SlotTable {
  const cached = slotTables.get(slots);
  if (cached?.vocab === vocab) return cached;
  const width = 1 + Math.max(0, ...slots.map((s) => s.length));
  const index = new Int32Array(vocab * width);
  const weight = new Float32Array(vocab * width);
  const slotted = new Uint8Array(vocab);
  for (let w = 0; w < vocab; w++) {
    const members = [w, ...(slots[w] ?? [])];
    slotted[w] = members.length > 1 ? 1 : 0;
    for (let k = 0; k < width; k++) {
      index[w * width + k] = members[k] ?? w;
      weight[w * width + k] = k < members.length ? 1 / members.length : 0;
    }
  }
  const table = { index, weight, width, slotted, vocab };
  slotTables.set(slots, table);
  return table;
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
