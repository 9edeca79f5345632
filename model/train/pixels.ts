/**
 * Where a run's pixels come from: all in memory when they fit the pixel budget (or --stream
 * off), else the training split streamed chunk by chunk (model/data/stream.ts) while the small
 * validation split stays in memory. Either way the batches of an epoch come in the same order.
 */
import { epochBatches, type Example } from '../data/batch.ts';
import { ImageCache, type DatasetImage } from '../data/dataset.ts';
import { StreamedPixels, type PixelBatch } from '../data/stream.ts';
import type { TrainConfig } from './config.ts';

/** The pixels a run trains and validates on. */
export interface RunPixels {
  /** The batches of `epoch` from batch `from`, with their pixels. */
  trainBatches(epoch: number, from: number): AsyncGenerator<PixelBatch>;
  /** The validation images (and, when nothing streams, the training images too). */
  cache: ImageCache;
  /** The training split's stream, or null when it is in memory. */
  stream: StreamedPixels | null;
  /** Stops any reads in flight. */
  close(): Promise<void>;
}

/**
 * Opens the pixel source `config.stream` and `config.pixelBudgetMb` choose, and logs one line
 * saying which and why. `loading` is told of progress while images are decoded.
 */
export async function openPixels(
  config: TrainConfig,
  split: { trainImages: readonly DatasetImage[]; valImages: readonly DatasetImage[]; examples: readonly Example[] },
  size: number,
  log: (line: string) => void,
  loading?: (done: number, total: number) => void,
): Promise<RunPixels> {
  const { trainImages, valImages, examples } = split;
  const budget = config.pixelBudgetMb * 2 ** 20;
  const allBytes = (trainImages.length + valImages.length) * size * size * 3;
  const streaming = config.stream === 'on' || (config.stream === 'auto' && allBytes > budget);
  if (!streaming) {
    const cache = await ImageCache.load(config.data, [...trainImages, ...valImages], size, loading);
    log(`images: ${cache.sourceDescription}, in memory`);
    return {
      trainBatches: (epoch, from) => inMemoryBatches(cache, examples, config, epoch, from),
      cache,
      stream: null,
      close: async () => {},
    };
  }
  // Validation stays in memory (a small split); the training split streams.
  const cache = await ImageCache.load(config.data, valImages, size, loading);
  const stream = await StreamedPixels.open(config.data, trainImages, examples, size, {
    batchSize: config.batchSize,
    seed: config.seed,
    epochs: config.epochs,
    bucketing: config.bucketing,
    window: config.streamWindow,
    readAhead: config.streamReadAhead,
    budgetBytes: budget - valImages.length * size * size * 3,
  });
  const why =
    config.stream === 'on'
      ? '--stream on'
      : `${(allBytes / 2 ** 20).toFixed(0)} MB of pixels exceed --pixel-budget-mb ${config.pixelBudgetMb}`;
  log(`images: ${stream.description} (${why}); ${config.valSplit}: ${cache.sourceDescription}, in memory`);
  return { trainBatches: (epoch, from) => stream.epoch(epoch, from), cache, stream, close: () => stream.close() };
}

/** The in-memory pixel source: `epochBatches`'s order, pixels gathered from the cache. */
async function* inMemoryBatches(
  cache: ImageCache,
  examples: readonly Example[],
  config: TrainConfig,
  epoch: number,
  from: number,
): AsyncGenerator<PixelBatch> {
  const batches = epochBatches(examples, config.batchSize, config.seed, epoch, { bucketing: config.bucketing });
  for (let b = from; b < batches.length; b++)
    yield { batch: batches[b]!, pixels: cache.batch(batches[b]!.imageIds), index: b };
}

/** One log line: how long the loop waited for pixels in all and, when streaming, for which reads. */
export function describeDataWait(dataWaitSeconds: number, stream: StreamedPixels | null): string {
  const seconds = (ms: number) => (ms / 1000).toFixed(2);
  const reads = stream
    ? ` (of it waiting on reads: ${seconds(stream.stats.startWaitMs)} s for the first window, ` +
      `${seconds(stream.stats.ioWaitMs)} s later; ${stream.stats.chunksRead} chunks read, ` +
      `at most ${stream.stats.maxResident} resident)`
    : '';
  return `data: waited ${dataWaitSeconds.toFixed(2)} s for batch pixels${reads}`;
}
