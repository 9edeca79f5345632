/**
 * Turning captioned images into padded batches. Captions vary in length, so each batch is
 * padded to its longest caption with <pad> (id 0), and the loss masks those positions out.
 */
import type { DatasetImage } from './dataset.ts';
import { Rng, deriveSeed } from '../util/rng.ts';
import { PAD, type Vocabulary } from '../text/vocab.ts';

/** One training example: an image and one of its captions, as ids `<start> … <end>`. */
export interface Example {
  imageId: string;
  ids: number[];
}

/** A batch: image ids and token ids [batch, width] padded with PAD, row-major. */
export interface Batch {
  imageIds: string[];
  tokens: Int32Array;
  batchSize: number;
  /** Tokens per row: the longest caption in the batch, plus <start> and <end>. */
  width: number;
}

/** Every (image, caption) pair of `images`, each caption encoded and cut to `maxLength` words. */
export function makeExamples(images: readonly DatasetImage[], vocab: Vocabulary, maxLength: number): Example[] {
  return images.flatMap((img) => img.captions.map((c) => ({ imageId: img.id, ids: vocab.encode(c, maxLength) })));
}

/** Pads examples into one batch. `width` may be given to pad further (it must fit every row). */
export function padBatch(examples: readonly Example[], width?: number): Batch {
  const longest = Math.max(...examples.map((e) => e.ids.length));
  const w = width ?? longest;
  if (w < longest) throw new Error(`padBatch: width ${w} is shorter than the longest caption (${longest})`);
  const tokens = new Int32Array(examples.length * w).fill(PAD);
  examples.forEach((e, b) => tokens.set(e.ids, b * w));
  return { imageIds: examples.map((e) => e.imageId), tokens, batchSize: examples.length, width: w };
}

/** Options of `epochBatches`. */
export interface EpochBatchOptions {
  /**
   * Length bucketing: after the shuffle, each pool of `poolBatches` batches' worth of examples
   * is sorted by caption length and cut into batches, and the batches are shuffled, so that a
   * batch holds captions of similar length and pads less (as in the "bucketing" of seq2seq
   * toolkits, e.g. tf.data's bucket_by_sequence_length). Pools keep the order random beyond them.
   */
  bucketing?: boolean;
  poolBatches?: number;
}

/**
 * The batches of one epoch: the examples shuffled by a generator derived from (seed, epoch),
 * so that a resumed run sees the same order without replaying earlier epochs. With bucketing
 * the batches are still a pure function of (examples, seed, epoch).
 */
export function epochBatches(
  examples: readonly Example[],
  batchSize: number,
  seed: number,
  epoch: number,
  opts: EpochBatchOptions = {},
): Batch[] {
  return shuffledBatches(examples, batchSize, deriveSeed(seed, 1, epoch), deriveSeed(seed, 1, epoch, 1), opts).batches;
}

/**
 * `examples` shuffled by `orderSeed` and cut into batches (bucketed as `epochBatches` says, the
 * batches then shuffled by `bucketSeed`). With `holdRemainder` the last `length % batchSize`
 * examples of the shuffled order are returned as `remainder` instead of forming a short batch:
 * a streamed window (model/data/stream.ts) hands them on to the next window.
 */
export function shuffledBatches(
  examples: readonly Example[],
  batchSize: number,
  orderSeed: number,
  bucketSeed: number,
  opts: EpochBatchOptions = {},
  holdRemainder = false,
): { batches: Batch[]; remainder: Example[] } {
  const shuffled = new Rng(orderSeed).shuffle(examples);
  const kept = shuffled.length - (holdRemainder ? shuffled.length % batchSize : 0);
  const order = shuffled.slice(0, kept);
  const remainder = shuffled.slice(kept);
  const out: Batch[] = [];
  if (!opts.bucketing) {
    for (let i = 0; i < order.length; i += batchSize) out.push(padBatch(order.slice(i, i + batchSize)));
    return { batches: out, remainder };
  }
  const pool = batchSize * (opts.poolBatches ?? 32);
  for (let p = 0; p < order.length; p += pool) {
    // stable: ties keep the shuffle
    const sorted = order.slice(p, p + pool).sort((a, b) => a.ids.length - b.ids.length);
    for (let i = 0; i < sorted.length; i += batchSize) out.push(padBatch(sorted.slice(i, i + batchSize)));
  }
  return { batches: new Rng(bucketSeed).shuffle(out), remainder };
}

/** The fraction of token positions in `batches` that are padding (what bucketing cuts). */
export function paddingFraction(batches: readonly Batch[]): number {
  let pad = 0;
  let total = 0;
  for (const b of batches) {
    total += b.tokens.length;
    for (const t of b.tokens) if (t === PAD) pad++;
  }
  return total ? pad / total : 0;
}

/** Batches in a fixed order, for evaluation. */
export function orderedBatches(examples: readonly Example[], batchSize: number): Batch[] {
  const out: Batch[] = [];
  for (let i = 0; i < examples.length; i += batchSize) out.push(padBatch(examples.slice(i, i + batchSize)));
  return out;
}
