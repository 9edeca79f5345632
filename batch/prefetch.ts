/**
 * Loading the images of a batch run ahead of the captioning, with memory bounded: each image's
 * header is read first (no pixels decoded), an image over the pixel limit becomes an error, and
 * decodes run in parallel only while the memory they hold, estimated from their headers as the
 * server estimates it, fits in a byte budget (one image larger than the budget decodes alone).
 * Decoding happens in sharp's threads, so the next batch decodes while this one is captioned.
 */
import { checkPixelLimit, decodeMemoryBytes, readImageHeader } from '../model/data/image-header.ts';
import { ImageError, loadImagePixels } from '../model/data/image.ts';
import { ByteBudget } from '../model/util/byte-budget.ts';

/** One image, decoded to size × size × 3 bytes, or why it could not be. */
export type LoadedImage = { path: string; pixels: Uint8Array } | { path: string; error: string };

export interface PrefetchOptions {
  /** Side of the square images the model takes. */
  size: number;
  /** Largest image, width × height of its first frame; larger ones are errors, never decoded. */
  maxPixels: number;
  /** Memory that decodes in progress may hold together, by their estimates (see decodeMemoryBytes). */
  budgetBytes: number;
  /** How many images past those taken to start loading. */
  lookahead: number;
}

/** An image's error without the path its record already names, on one line. */
export function errorText(err: unknown, path: string): string {
  const message = err instanceof Error ? err.message : String(err);
  return (message.startsWith(`${path}: `) ? message.slice(path.length + 2) : message).replace(/\s+/g, ' ');
}

/**
 * Header, limit, budget, decode: one image. An image that cannot be decoded (an ImageError) is its
 * record's error. The prefetcher and the queue worker (queue/worker.ts) both load through it.
 */
export async function loadImage(path: string, options: PrefetchOptions, budget: ByteBudget): Promise<LoadedImage> {
  try {
    const header = await readImageHeader(path);
    checkPixelLimit(header, options.maxPixels, path);
    const pixels = await budget.run(decodeMemoryBytes(header), undefined, () => loadImagePixels(path, options.size));
    return { path, pixels };
  } catch (err) {
    if (err instanceof ImageError) return { path, error: errorText(err, path) };
    throw err;
  }
}

/** Loads `paths` in order, `lookahead` images ahead of what has been taken. */
export class Prefetcher {
  private readonly jobs: Promise<LoadedImage>[] = [];
  private taken = 0;
  readonly budget: ByteBudget;

  constructor(
    private readonly paths: readonly string[],
    private readonly options: PrefetchOptions,
  ) {
    this.budget = new ByteBudget(options.budgetBytes);
  }

  private fill(upTo: number): void {
    const end = Math.min(upTo, this.paths.length);
    while (this.jobs.length < end) {
      const job = loadImage(this.paths[this.jobs.length]!, this.options, this.budget);
      // A job that fails for a reason other than its image rejects when taken (or settled); until
      // then this handler keeps it from counting as unhandled. It does not swallow the error.
      job.then(undefined, () => undefined);
      this.jobs.push(job);
    }
  }

  /** The next `n` images, in order, once each is loaded; the ones after them start loading. */
  async take(n: number): Promise<LoadedImage[]> {
    const start = this.taken;
    this.taken = Math.min(this.paths.length, start + n);
    this.fill(this.taken + this.options.lookahead);
    return Promise.all(this.jobs.slice(start, this.taken));
  }

  /** Waits for every load started (and not taken) to end, so that none outlives the run. */
  async settle(): Promise<void> {
    await Promise.all(this.jobs.slice(this.taken));
  }
}
