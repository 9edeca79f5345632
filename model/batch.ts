/**
 * Turning captioned images into padded batches. Captions vary in length, so each batch is
 * padded to its longest caption with <pad> (id 0), and the loss masks those positions out.
 */
import type { DatasetImage } from './dataset.ts';
import { Rng, deriveSeed } from './rng.ts';
import { PAD, type Vocabulary } from './vocab.ts';

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

/**
 * The batches of one epoch: the examples shuffled by a generator derived from (seed, epoch),
 * so that a resumed run sees the same order without replaying earlier epochs.
 */
export function epochBatches(examples: readonly Example[], batchSize: number, seed: number, epoch: number): Batch[] {
  const order = new Rng(deriveSeed(seed, 1, epoch)).shuffle(examples);
  const out: Batch[] = [];
  for (let i = 0; i < order.length; i += batchSize) out.push(padBatch(order.slice(i, i + batchSize)));
  return out;
}

/** Batches in a fixed order, for evaluation. */
export function orderedBatches(examples: readonly Example[], batchSize: number): Batch[] {
  const out: Batch[] = [];
  for (let i = 0; i < examples.length; i += batchSize) out.push(padBatch(examples.slice(i, i + batchSize)));
  return out;
}
