/**
 * Exposure bias, measured (Bengio et al. 2015; Ranzato et al. 2016 named it): a decoder trained by
 * teacher forcing only ever reads true prefixes, and at test time it reads its own. Two
 * measurements of what that costs, for `captioner eval --exposure` (docs/evaluation.md):
 *
 * 1. Per position t, the loss −log p(r_t | prefix, image) and the accuracy (is r_t the model's best
 *    word?) of a reference r, once with the true prefix r_<t fed (teacher-forced) and once with
 *    the model's own greedy words fed instead (free-running: each step reads the previous step's
 *    best word, <end> included, as scheduled sampling at ε = 0 does). The reference of each image
 *    is the one its greedy caption follows longest (the longest common prefix; ties: the most
 *    positions that agree, then the first), so that a paraphrase the model did not choose
 *    ("there is a …" where it says "a picture of a …") does not count as its error; the two curves
 *    are over the same words and differ only in what was fed. At position 1 both read <start>
 *    and agree exactly.
 * 2. Recovery (on the shapes data, whose images carry their scenes): for each image whose greedy
 *    caption is semantically exact, and each position k of it, the model's words 1 … k−1 are kept,
 *    word k is replaced by a wrong one (the word the model ranked second there, special tokens
 *    excluded) and greedy decoding goes on from it. The caption has recovered when it is still
 *    exact either as written (the wrong word was a paraphrase: "a" for "one") or with word k put
 *    back (every word after the error is right); parsable when the grammar still reads it as
 *    written (data-scripts/shapes/semantics.ts).
 */
import * as tf from '@tensorflow/tfjs';
import { padBatch, type Example } from '../model/data/batch.ts';
import { ImageCache, type DatasetImage } from '../model/data/dataset.ts';
import { greedyDecode } from '../model/decode/decode.ts';
import type { Captioner } from '../model/nn/captioner.ts';
import { END, PAD, START, UNK } from '../model/text/vocab.ts';
import { Rng } from '../model/util/rng.ts';
import { compareScenes, parseShapesCaption, type Scene } from '../data-scripts/shapes/semantics.ts';

/** One position's figures: its targets, their mean loss (nats) and the share that was the best word. */
export interface PositionFigures {
  /** 1 is the first word; a caption of n words has its <end> at position n + 1. */
  position: number;
  tokens: number;
  loss: number;
  accuracy: number;
}

/** Recovery after a wrong word at one position. */
export interface RecoveryFigures {
  /** k: the position of the wrong word (1 is the first word). */
  position: number;
  /** Exactly captioned images with at least k words: the captions tried. */
  captions: number;
  /** Share whose caption the shapes grammar still reads, as written. */
  parsable: number;
  /** Share that is exact as written or with word k put back: every word after the error right. */
  exact: number;
}

export interface ExposureFigures {
  images: number;
  teacherForced: PositionFigures[];
  freeRunning: PositionFigures[];
  /** Over every position: the mean loss per token and the accuracy, both ways. */
  overall: { teacherForced: { loss: number; accuracy: number }; freeRunning: { loss: number; accuracy: number } };
  /** On the shapes data (images with scenes): recovery per position; null elsewhere. */
  recovery: { exactImages: number; positions: RecoveryFigures[] } | null;
}

/** Sums of loss and hits per position, turned into PositionFigures. */
export class PositionTally {
  private readonly sums: { tokens: number; loss: number; hits: number }[] = [];

  /** A target at `position` (1-based) with its loss and whether it was the best word. */
  add(position: number, loss: number, hit: boolean): void {
    while (this.sums.length < position) this.sums.push({ tokens: 0, loss: 0, hits: 0 });
    const s = this.sums[position - 1]!;
    s.tokens += 1;
    s.loss += loss;
    s.hits += hit ? 1 : 0;
  }

  figures(): PositionFigures[] {
    return this.sums.flatMap((s, i) =>
      s.tokens ? [{ position: i + 1, tokens: s.tokens, loss: s.loss / s.tokens, accuracy: s.hits / s.tokens }] : [],
    );
  }

  overall(): { loss: number; accuracy: number } {
    const tokens = this.sums.reduce((a, s) => a + s.tokens, 0);
    return {
      loss: this.sums.reduce((a, s) => a + s.loss, 0) / tokens,
      accuracy: this.sums.reduce((a, s) => a + s.hits, 0) / tokens,
    };
  }
}

/**
 * The index of the reference (word ids, no <start>/<end>) that `caption` follows longest: the
 * longest common prefix, then the most positions that agree, then the first.
 */
export function followedReference(caption: readonly number[], references: readonly (readonly number[])[]): number {
  let best = 0;
  let bestKey = [-1, -1];
  references.forEach((ref, i) => {
    let prefix = 0;
    while (prefix < ref.length && prefix < caption.length && ref[prefix] === caption[prefix]) prefix++;
    const agree = ref.filter((w, t) => caption[t] === w).length;
    if (prefix > bestKey[0]! || (prefix === bestKey[0] && agree > bestKey[1]!)) {
      best = i;
      bestKey = [prefix, agree];
    }
  });
  return best;
}

/** The best-scoring word of `scores` (one per vocabulary word) other than `not` and the special tokens. */
export function runnerUp(scores: ArrayLike<number>, not: number): number {
  let best = -1;
  for (let v = 0; v < scores.length; v++) {
    if (v === not || v === PAD || v === START || v === END || v === UNK) continue;
    if (best < 0 || scores[v]! > scores[best]!) best = v;
  }
  return best;
}

/**
 * Whether a caption decoded after a wrong word at position k (1-based) recovered: `parsable` as
 * written, and `exact` as written or with `original` put back at k.
 */
export function recovered(
  words: readonly string[],
  k: number,
  original: string,
  truth: Scene,
): { parsable: boolean; exact: boolean } {
  const exactCaption = (ws: readonly string[]) => {
    const parsed = parseShapesCaption(ws.join(' '));
    return parsed !== null && compareScenes(parsed, truth).exact;
  };
  const restored = words.map((w, i) => (i === k - 1 ? original : w));
  return {
    parsable: parseShapesCaption(words.join(' ')) !== null,
    exact: exactCaption(words) || exactCaption(restored),
  };
}

export interface ExposureOptions {
  batchSize: number;
  /** Called after each batch of images. */
  progress?(done: number, total: number): void;
}

/**
 * The exposure-bias figures of `model` on `images` of the data set in `dataDir` (see the module
 * comment). Recovery is measured when every image carries its scene (the shapes data).
 * Cost: two forward passes and one greedy decoding per image for the curves; for recovery, one
 * more forward pass and, per position k, one greedy decoding of each exactly captioned image.
 */
export async function measureExposure(
  model: Captioner,
  dataDir: string,
  images: readonly DatasetImage[],
  options: ExposureOptions,
): Promise<ExposureFigures> {
  const size = model.config.imageSize;
  const maxLength = model.config.maxLength;
  const cache = await ImageCache.load(dataDir, images, size);
  const withScenes = images.length > 0 && images.every((img) => img.scene !== undefined);
  const teacherForced = new PositionTally();
  const freeRunning = new PositionTally();
  const recovery = new Map<number, { captions: number; parsable: number; exact: number }>();
  let exactImages = 0;
  for (let start = 0; start < images.length; start += options.batchSize) {
    const batch = images.slice(start, start + options.batchSize);
    const imgs = tf.tensor4d(cache.batch(batch.map((img) => img.id)), [batch.length, size, size, 3]);
    try {
      const greedy = greedyDecode(model, imgs, maxLength);
      // Each image's reference: the one its greedy caption follows longest.
      const examples: Example[] = batch.map((img, b) => {
        const refs = img.captions.map((c) => model.vocab.encode(c, maxLength)); // <start> … <end>
        const chosen = followedReference(
          greedy[b]!.ids,
          refs.map((r) => r.slice(1, -1)),
        );
        return { imageId: img.id, ids: refs[chosen]! };
      });
      tallyPositions(model, imgs, padBatch(examples), teacherForced, freeRunning);
      if (withScenes) {
        const exact = batch.flatMap((img, b) => {
          const parsed = parseShapesCaption(greedy[b]!.words.join(' '));
          return parsed && compareScenes(parsed, img.scene as Scene).exact ? [b] : [];
        });
        exactImages += exact.length;
        if (exact.length) recoverAfterWrongWords(model, imgs, exact, greedy, batch, recovery);
      }
    } finally {
      imgs.dispose();
    }
    options.progress?.(Math.min(start + options.batchSize, images.length), images.length);
  }
  return {
    images: images.length,
    teacherForced: teacherForced.figures(),
    freeRunning: freeRunning.figures(),
    overall: { teacherForced: teacherForced.overall(), freeRunning: freeRunning.overall() },
    recovery: withScenes
      ? {
          exactImages,
          positions: [...recovery.entries()]
            .sort(([a], [b]) => a - b)
            .map(([position, r]) => ({
              position,
              captions: r.captions,
              parsable: r.parsable / r.captions,
              exact: r.exact / r.captions,
            })),
        }
      : null,
  };
}

/** Adds each target of `batch` to the tallies: fed the true prefix, and fed the model's own words. */
function tallyPositions(
  model: Captioner,
  imgs: tf.Tensor4D,
  batch: ReturnType<typeof padBatch>,
  teacherForced: PositionTally,
  freeRunning: PositionTally,
): void {
  const { batchSize, width, tokens } = batch;
  const steps = width - 1;
  const toks = tf.tensor2d(tokens, [batchSize, width], 'int32');
  try {
    for (const [tally, epsilon] of [
      [teacherForced, 1],
      [freeRunning, 0],
    ] as const) {
      const [picked, best] = tf.tidy(() => {
        // ε = 0 with argmax feeds the model's own best word at every step after <start>; the rng draws nothing.
        const { logits } = model.forward(imgs, toks, { teacherProbability: epsilon, feed: 'argmax', rng: new Rng(0) });
        const logProbs = tf.logSoftmax(logits); // [batch, steps, vocab]
        const targets = toks.slice([0, 1], [batchSize, steps]); // [batch, steps]
        const vocab = logits.shape[2];
        return [tf.sum(tf.mul(logProbs, tf.oneHot(targets, vocab)), 2), tf.argMax(logits, 2)]; // [batch, steps] each
      });
      const lp = picked.dataSync();
      const top = best.dataSync();
      tf.dispose([picked, best]);
      for (let b = 0; b < batchSize; b++)
        for (let t = 0; t < steps; t++) {
          const target = tokens[b * width + t + 1]!;
          if (target === PAD) continue;
          tally.add(t + 1, -lp[b * steps + t]!, top[b * steps + t] === target);
        }
    }
  } finally {
    toks.dispose();
  }
}

/**
 * For the exactly captioned rows `exact` of the batch: at every position k of each greedy caption,
 * the runner-up word forced there after the model's own words 1 … k−1, greedy decoding on from it,
 * and whether the caption recovered; adds to `recovery` by k.
 */
function recoverAfterWrongWords(
  model: Captioner,
  imgs: tf.Tensor4D,
  exact: readonly number[],
  greedy: ReturnType<typeof greedyDecode>,
  batch: readonly DatasetImage[],
  recovery: Map<number, { captions: number; parsable: number; exact: number }>,
): void {
  const maxLength = model.config.maxLength;
  const rows = tf.tensor1d([...exact], 'int32');
  const subset = tf.gather(imgs, rows) as tf.Tensor4D;
  rows.dispose();
  try {
    // The model's scores along its own caption: teacher forcing over it gives the greedy steps' logits.
    const own = padBatch(exact.map((b) => ({ imageId: batch[b]!.id, ids: [START, ...greedy[b]!.ids, END] })));
    const toks = tf.tensor2d(own.tokens, [own.batchSize, own.width], 'int32');
    const logits = tf.tidy(() => model.forward(subset, toks, { teacherProbability: 1, feed: 'argmax' }).logits);
    const scores = logits.dataSync(); // [rows, steps, vocab]
    const [, steps, vocab] = logits.shape;
    tf.dispose([toks, logits]);
    const longest = Math.max(...exact.map((b) => greedy[b]!.ids.length));
    for (let k = 1; k <= longest; k++) {
      const tried = exact.map((b, r) => ({ b, r })).filter(({ b }) => greedy[b]!.ids.length >= k);
      const forced = tried.map(({ b, r }) => {
        const at = (r * steps + (k - 1)) * vocab;
        const wrong = runnerUp(scores.subarray(at, at + vocab), greedy[b]!.ids[k - 1]!);
        return [...greedy[b]!.ids.slice(0, k - 1), wrong];
      });
      const pick = tf.tensor1d(
        tried.map(({ r }) => r),
        'int32',
      );
      const images = tf.gather(subset, pick) as tf.Tensor4D;
      pick.dispose();
      const decoded = greedyDecode(model, images, maxLength, forced);
      images.dispose();
      const tally = recovery.get(k) ?? { captions: 0, parsable: 0, exact: 0 };
      decoded.forEach((caption, i) => {
        const { b } = tried[i]!;
        const r = recovered(caption.words, k, greedy[b]!.words[k - 1]!, batch[b]!.scene as Scene);
        tally.captions += 1;
        tally.parsable += r.parsable ? 1 : 0;
        tally.exact += r.exact ? 1 : 0;
      });
      recovery.set(k, tally);
    }
  } finally {
    subset.dispose();
  }
}
