/**
 * Training pixels streamed from disk, for data sets whose pixels do not fit in memory (COCO at
 * 224 px is ~18 GB of uint8). The training split is cut into chunks — the training images of one
 * shard (model/data/dataset.ts), or for images without shards a run of files decoded at the training
 * size — and an epoch is planned from metadata alone:
 *
 *   1. the chunk order is shuffled by a generator derived from (seed, epoch);
 *   2. consecutive runs of `window` chunks form windows; the examples of a window (plus the few
 *      handed on by the window before) are shuffled, optionally length-bucketed, and cut into
 *      full batches (model/data/batch.ts `shuffledBatches`); the examples that do not fill a batch
 *      are handed on (their pixels copied out, at most one batch of images), and the last window
 *      of the epoch ends with the one short batch;
 *
 * so every (image, caption) example is seen exactly once per epoch, there are as many batches as
 * in memory (⌈examples / batchSize⌉), and the order is a pure function of (seed, epoch): a run
 * resumed at batch b of epoch e sees the batches it would have seen. The shuffle is "local" (a
 * shuffle buffer, as tf.data's `shuffle(buffer_size)` and WebDataset's shard shuffling do it):
 * random across the whole set at the level of chunks, random within a window at the level of
 * examples. A window covering every chunk gives exactly `epochBatches` (the in-memory order).
 *
 * Reading runs ahead: while the trainer works on the batches of the resident window, the next
 * `readAhead` chunks (across the epoch boundary too) are already being read with fs promises,
 * and a window's chunks are released as soon as its last batch has been gathered, so at most
 * `window + readAhead` chunks are resident (read or being read) at any time.
 */
import { join } from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { shuffledBatches, type Batch, type EpochBatchOptions, type Example } from './batch.ts';
import {
  groupByShard,
  inParallel,
  readShardImages,
  readShardIndex,
  type DatasetImage,
  type ShardIndex,
} from './dataset.ts';
import { loadImagePixels, pixelsToUnit } from './image.ts';
import { Rng, deriveSeed } from '../util/rng.ts';

/** A unit of reading: the training images of one shard, or a run of images decoded from their files. */
export interface Chunk {
  /** Index into the shard index's `files`; absent for images decoded from their files. */
  shard?: number;
  images: DatasetImage[];
}

/** One window of an epoch's plan. */
export interface WindowPlan {
  /** Indices into the chunk list of the chunks resident for this window, in reading order. */
  chunks: number[];
  /** Index within the epoch of the window's first batch. */
  firstBatch: number;
  batches: Batch[];
  /** Images of the examples handed on to the next window (their pixels are kept after release). */
  carryOut: string[];
}

/** An epoch as the stream will deliver it. */
export interface EpochPlan {
  chunkOrder: number[];
  windows: WindowPlan[];
  batches: number;
}

/**
 * Bytes of images about this size are grouped into one chunk when they have no shards (as data-scripts/build.ts sizes
 * shards).
 */
const FILE_CHUNK_BYTES = 16 << 20;

/**
 * The chunks of `images`: one per shard holding any of them (in shard order, images in slot
 * order), then runs of `fileChunkImages` images without shards, in manifest order.
 */
export function makeChunks(
  images: readonly DatasetImage[],
  shardIndex: ShardIndex | null,
  fileChunkImages: number,
): Chunk[] {
  const { shards, files } = groupByShard(images, shardIndex);
  const chunks: Chunk[] = shards.map(([shard, list]) => ({ shard, images: list }));
  for (let i = 0; i < files.length; i += fileChunkImages) chunks.push({ images: files.slice(i, i + fileChunkImages) });
  return chunks;
}

/**
 * The plan of one epoch (see the module comment). `chunkExamples[c]` are the indices into
 * `examples` of chunk c's examples, ascending. Window 0 uses `epochBatches`'s seeds, so that one
 * window over every chunk reproduces the in-memory order exactly; later windows have their own.
 */
export function streamEpochPlan(
  examples: readonly Example[],
  chunkExamples: readonly (readonly number[])[],
  batchSize: number,
  seed: number,
  epoch: number,
  window: number,
  opts: EpochBatchOptions = {},
): EpochPlan {
  const chunkOrder = new Rng(deriveSeed(seed, 1, epoch, 4)).shuffle(chunkExamples.map((_, c) => c));
  const windows: WindowPlan[] = [];
  let carry: Example[] = [];
  let firstBatch = 0;
  for (let start = 0, w = 0; start < chunkOrder.length; start += window, w++) {
    const chunks = chunkOrder.slice(start, start + window);
    const last = start + window >= chunkOrder.length;
    const own = chunks
      .flatMap((c) => chunkExamples[c]!)
      .sort((a, b) => a - b)
      .map((i) => examples[i]!); // canonical (manifest) order
    const [orderSeed, bucketSeed] =
      w === 0
        ? [deriveSeed(seed, 1, epoch), deriveSeed(seed, 1, epoch, 1)]
        : [deriveSeed(seed, 1, epoch, 2, w), deriveSeed(seed, 1, epoch, 3, w)];
    const { batches, remainder } = shuffledBatches([...carry, ...own], batchSize, orderSeed, bucketSeed, opts, !last);
    windows.push({ chunks, firstBatch, batches, carryOut: [...new Set(remainder.map((e) => e.imageId))] });
    firstBatch += batches.length;
    carry = remainder;
  }
  return { chunkOrder, windows, batches: firstBatch };
}

/** Options of `StreamedPixels`. */
export interface StreamOptions extends EpochBatchOptions {
  batchSize: number;
  seed: number;
  /** Epochs of the run: reading ahead stops at the end of the last. */
  epochs: number;
  /** Chunks whose examples are shuffled together (≥ 1; 0: sized by `budgetBytes`). */
  window: number;
  /** Chunks read ahead of the window being trained on (0: none; -1: sized by `budgetBytes`). */
  readAhead: number;
  /** What an automatic window and read-ahead may fill together (see `streamWindowSizes`). */
  budgetBytes?: number;
  /** Images per chunk for images without shards (default: about 16 MB of pixels). */
  fileChunkImages?: number;
  /** Sees every read, release and batch handed out: for tests and tracing. */
  onEvent?(event: StreamEvent): void;
}

export type StreamEvent =
  | { type: 'read-start' | 'read-end' | 'release'; epoch: number; position: number; chunk: number; resident: number }
  | { type: 'batch'; epoch: number; index: number };

/** A batch and its pixels, [batchSize, size, size, 3] float32 in [0, 1], flattened. */
export interface PixelBatch {
  batch: Batch;
  pixels: Float32Array;
  /** The batch's index within its epoch. */
  index: number;
}

interface Position {
  epoch: number;
  /** Index into the epoch's chunk order. */
  k: number;
}

/**
 * The training split's pixels read chunk by chunk with read-ahead (see the module comment).
 * `epoch(e, from)` hands out the batches of epoch e from batch `from`; calling it for the next
 * epoch (or resuming) continues with the reads already in flight. `close()` when done.
 */
export class StreamedPixels {
  /**
   * Counters: the most chunks resident at once, chunks read, and the time the consumer waited
   * for reads: for the first window after a start or resume (nothing can be read ahead of it),
   * and for every later window (what reading ahead should keep at zero).
   */
  readonly stats = { maxResident: 0, chunksRead: 0, startWaitMs: 0, ioWaitMs: 0 };
  /** Chunks shuffled together and chunks read ahead, as resolved. */
  readonly window: number;
  readonly readAhead: number;
  /** The largest chunk's pixels at the training size, bytes: what one resident chunk costs. */
  readonly chunkBytes: number;
  private readonly per: number;
  private readonly chunkExamples: number[][];
  private readonly chunkOfImage = new Map<string, number>();
  private readonly plans = new Map<number, EpochPlan>();
  /** Issued reads (in flight or done) not yet released, by position key. */
  private readonly resident = new Map<string, Promise<Uint8Array>>();
  /** Pixels of the images handed on to the next window. */
  private carry = new Map<string, Uint8Array>();
  /** Where the next window to be trained on starts, and the next chunk to read. */
  private head: Position | null = null;
  private next: Position | null = null;
  /** Reads not yet settled (including any a reset dropped). */
  private inFlight = 0;

  private constructor(
    private readonly dataDir: string,
    readonly size: number,
    private readonly examples: readonly Example[],
    readonly chunks: readonly Chunk[],
    private readonly shardIndex: ShardIndex | null,
    private readonly opts: StreamOptions,
  ) {
    this.per = size * size * 3;
    this.chunkBytes = chunks.reduce((most, c) => Math.max(most, c.images.length), 0) * this.per;
    ({ window: this.window, readAhead: this.readAhead } = streamWindowSizes(
      opts.window,
      opts.readAhead,
      this.chunkBytes,
      chunks.length,
      opts.budgetBytes ?? 0,
    ));
    if (!Number.isInteger(this.window) || this.window < 1)
      throw new RangeError(`StreamedPixels: window must be an integer >= 0, got ${opts.window}`);
    if (!Number.isInteger(this.readAhead) || this.readAhead < 0)
      throw new RangeError(`StreamedPixels: readAhead must be an integer >= -1, got ${opts.readAhead}`);
    chunks.forEach((c, i) => c.images.forEach((img) => this.chunkOfImage.set(img.id, i)));
    this.chunkExamples = chunks.map(() => []);
    examples.forEach((e, i) => {
      const c = this.chunkOfImage.get(e.imageId);
      if (c === undefined)
        throw new Error(
          `StreamedPixels: example ${i} names image ${e.imageId}, which is not among the streamed images`,
        );
      this.chunkExamples[c]!.push(i);
    });
  }

  /**
   * Streams the pixels of `images` (one split) at `size` for `examples` (their captions). Reads
   * the shard index when any image has shards; nothing else is read until `epoch` is called.
   */
  static async open(
    dataDir: string,
    images: readonly DatasetImage[],
    examples: readonly Example[],
    size: number,
    opts: StreamOptions,
  ): Promise<StreamedPixels> {
    const shardIndex = images.some((img) => img.shard !== undefined) ? await readShardIndex(dataDir) : null;
    const fileChunk = opts.fileChunkImages ?? Math.max(1, Math.floor(FILE_CHUNK_BYTES / (size * size * 3)));
    return new StreamedPixels(dataDir, size, examples, makeChunks(images, shardIndex, fileChunk), shardIndex, opts);
  }

  /** One line for the training log. */
  get description(): string {
    const shards = this.chunks.filter((c) => c.shard !== undefined).length;
    const files = this.chunks.length - shards;
    const s = this.shardIndex?.imageSize;
    const from = [
      shards
        ? `${shards} shards (${s === this.size ? 'no decoding' : `${s}×${s} resized to ${this.size}×${this.size} with sharp`})`
        : '',
      files ? `${files} chunks of image files decoded at ${this.size}×${this.size}` : '',
    ]
      .filter(Boolean)
      .join(' and ');
    const images = this.chunks.reduce((n, c) => n + c.images.length, 0);
    const { window, readAhead } = this;
    const mb = ((window + readAhead) * this.chunkBytes) / 2 ** 20;
    return `streaming ${images} images from ${from}: chunk order shuffled every epoch, examples shuffled within windows of ${window} of ${this.chunks.length} chunks, ${readAhead} read ahead; at most ${window + readAhead} chunks (${mb.toFixed(0)} MB) resident`;
  }

  /** The plan of `epoch` (kept for the current and the next epoch only). */
  plan(epoch: number): EpochPlan {
    let plan = this.plans.get(epoch);
    if (!plan) {
      const { batchSize, seed, bucketing, poolBatches } = this.opts;
      plan = streamEpochPlan(this.examples, this.chunkExamples, batchSize, seed, epoch, this.window, {
        bucketing,
        poolBatches,
      });
      this.plans.set(epoch, plan);
      for (const e of this.plans.keys()) if (e < epoch - 1) this.plans.delete(e);
    }
    return plan;
  }

  /** The batches of `epoch` from batch `from`, each with its pixels, reading ahead as it goes. */
  async *epoch(epoch: number, from = 0): AsyncGenerator<PixelBatch> {
    const plan = this.plan(epoch);
    let w = plan.windows.findIndex((win) => from < win.firstBatch + win.batches.length);
    if (w < 0) return;
    let starting = false;
    if (!this.head || this.head.epoch !== epoch || this.head.k !== w * this.window) {
      starting = true;
      // A start or a resume: nothing read ahead fits, so begin at this window.
      this.reset({ epoch, k: w * this.window });
      const asked = performance.now();
      if (w > 0) await this.restoreCarry(plan.windows[w - 1]!.carryOut);
      this.stats.startWaitMs += performance.now() - asked;
    }
    this.pump();
    for (; w < plan.windows.length; w++) {
      const win = plan.windows[w]!;
      const keys = win.chunks.map((_, i) => positionKey({ epoch, k: w * this.window + i }));
      const asked = performance.now();
      const loaded = await Promise.all(keys.map((key) => this.resident.get(key)!));
      this.stats[starting ? 'startWaitMs' : 'ioWaitMs'] += performance.now() - asked;
      starting = false;
      const lookup = new Map(this.carry);
      win.chunks.forEach((c, i) =>
        this.chunks[c]!.images.forEach((img, j) =>
          lookup.set(img.id, loaded[i]!.subarray(j * this.per, (j + 1) * this.per)),
        ),
      );
      if (win.batches.length === 0) this.finishWindow(epoch, w, plan, lookup, keys);
      for (let b = Math.max(0, from - win.firstBatch); b < win.batches.length; b++) {
        const batch = win.batches[b]!;
        const pixels = this.gather(lookup, batch.imageIds);
        // Released before the last batch is handed out: the next reads start while it trains.
        if (b === win.batches.length - 1) this.finishWindow(epoch, w, plan, lookup, keys);
        this.opts.onEvent?.({ type: 'batch', epoch, index: win.firstBatch + b });
        // A training step is synchronous: without a turn of the event loop here, the completions
        // of the reads in flight would wait for the next real await, and reading ahead would stall.
        if (this.inFlight > 0) await nextTurn();
        yield { batch, pixels, index: win.firstBatch + b };
      }
    }
  }

  /** Waits for the reads in flight (their errors no longer matter) and drops every chunk. */
  async close(): Promise<void> {
    const pending = [...this.resident.values()];
    this.reset(null);
    await Promise.allSettled(pending);
  }

  private reset(at: Position | null): void {
    this.resident.clear();
    this.carry = new Map();
    this.head = at;
    this.next = at;
  }

  /** Starts reads in order until `window + readAhead` chunks are resident. */
  private pump(): void {
    const limit = this.window + this.readAhead;
    while (this.next && this.resident.size < limit) {
      const at = this.next;
      const chunk = this.plan(at.epoch).chunkOrder[at.k]!;
      const event = { epoch: at.epoch, position: at.k, chunk };
      this.opts.onEvent?.({ type: 'read-start', ...event, resident: this.resident.size + 1 });
      const read = this.readChunk(chunk).then((pixels) => {
        this.stats.chunksRead += 1;
        this.opts.onEvent?.({ type: 'read-end', ...event, resident: this.resident.size });
        return pixels;
      });
      this.inFlight += 1;
      // Awaited when its window comes; handling the rejection here too keeps an early failure from counting as
      // unhandled.
      void read.then(
        () => this.inFlight--,
        () => this.inFlight--,
      );
      this.resident.set(positionKey(at), read);
      this.stats.maxResident = Math.max(this.stats.maxResident, this.resident.size);
      this.next =
        at.k + 1 < this.chunks.length
          ? { epoch: at.epoch, k: at.k + 1 }
          : at.epoch + 1 < this.opts.epochs
            ? { epoch: at.epoch + 1, k: 0 }
            : null;
    }
  }

  /** Keeps the handed-on images' pixels, releases the window's chunks, reads on. */
  private finishWindow(
    epoch: number,
    w: number,
    plan: EpochPlan,
    lookup: Map<string, Uint8Array>,
    keys: readonly string[],
  ): void {
    this.carry = new Map(plan.windows[w]!.carryOut.map((id) => [id, lookup.get(id)!.slice()]));
    for (const [i, key] of keys.entries()) {
      this.resident.delete(key);
      this.opts.onEvent?.({
        type: 'release',
        epoch,
        position: w * this.window + i,
        chunk: plan.windows[w]!.chunks[i]!,
        resident: this.resident.size,
      });
    }
    this.head = w + 1 < plan.windows.length ? { epoch, k: (w + 1) * this.window } : { epoch: epoch + 1, k: 0 };
    this.pump();
  }

  /** On a resume mid-epoch: the pixels of the images the window before handed on, read one chunk at a time. */
  private async restoreCarry(ids: readonly string[]): Promise<void> {
    const byChunk = new Map<number, string[]>();
    for (const id of ids) {
      const c = this.chunkOfImage.get(id)!;
      byChunk.set(c, [...(byChunk.get(c) ?? []), id]);
    }
    for (const [c, wanted] of byChunk) {
      this.stats.maxResident = Math.max(this.stats.maxResident, 1);
      const pixels = await this.readChunk(c);
      const images = this.chunks[c]!.images;
      for (const id of wanted) {
        const j = images.findIndex((img) => img.id === id);
        this.carry.set(id, pixels.slice(j * this.per, (j + 1) * this.per));
      }
    }
  }

  /** Float pixels in [0, 1] of the given images, [n, size, size, 3] flattened. */
  private gather(lookup: ReadonlyMap<string, Uint8Array>, ids: readonly string[]): Float32Array {
    const out = new Float32Array(ids.length * this.per);
    ids.forEach((id, b) => {
      const pixels = lookup.get(id);
      if (!pixels) throw new Error(`StreamedPixels: image ${id} is not resident (a bug in the plan)`);
      pixelsToUnit(pixels, out, b * this.per);
    });
    return out;
  }

  /** A chunk's images at the training size, one after another: a shard read and checked, or files decoded. */
  private async readChunk(c: number): Promise<Uint8Array> {
    const chunk = this.chunks[c]!;
    if (chunk.shard !== undefined)
      return readShardImages(this.dataDir, this.shardIndex!, chunk.shard, chunk.images, this.size, DECODES_IN_FLIGHT);
    const per = this.per;
    const out = new Uint8Array(chunk.images.length * per);
    await inParallel([...chunk.images.keys()], DECODES_IN_FLIGHT, async (j) =>
      out.set(await loadImagePixels(join(this.dataDir, chunk.images[j]!.file), this.size), j * per),
    );
    return out;
  }
}

const positionKey = (p: Position) => `${p.epoch}:${p.k}`;

/**
 * Decodes or resizes queued at once for a chunk: sharp runs them on libuv's pool while the
 * trainer computes, but a finished one only starts the next on a turn of the event loop (once
 * a step), so the queue must be deep enough to keep the pool busy between turns.
 */
const DECODES_IN_FLIGHT = 64;

/**
 * The window and read-ahead to stream with. Given values win (window ≥ 1, read-ahead ≥ 0); a
 * window of 0 asks for as many chunks as half of `budgetBytes` holds (at least 1, at most all),
 * a read-ahead of -1 for as many as the window, so that the whole next window is read while
 * this one trains and the two together stay within the budget.
 */
export function streamWindowSizes(
  window: number,
  readAhead: number,
  chunkBytes: number,
  chunks: number,
  budgetBytes: number,
): { window: number; readAhead: number } {
  const fits = Math.floor(budgetBytes / Math.max(1, chunkBytes));
  const w = window > 0 ? window : Math.max(1, Math.min(chunks, Math.floor(fits / 2)));
  const r = readAhead >= 0 ? readAhead : Math.min(w, Math.max(0, chunks - 1));
  return { window: Math.min(w, Math.max(1, chunks)), readAhead: r };
}
