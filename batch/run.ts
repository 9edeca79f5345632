/**
 * A batch captioning run: images in batches through the model, one record per image into a
 * record output (batch/output.ts), the next batch decoding while this one is captioned
 * (batch/prefetch.ts). Asked to stop (an aborted signal: Ctrl-C), it finishes the batch in
 * flight, writes its records, lets the loads it started end, and returns: every record written
 * is whole, and a rerun on the same record file does the rest.
 */
import type { Captioner } from '../model/nn/captioner.ts';
import { captionImages, type CaptionResult, type DecodeOptions } from '../model/decode/decode.ts';
import { imagesToTensor } from '../model/data/image.ts';
import type { Familiarity, FamiliarityModel } from '../model/familiarity/familiarity.ts';
import { deriveSeed } from '../model/util/rng.ts';
import type { InputError, InputFile } from './inputs.ts';
import type { RecordOutput } from './output.ts';
import { Prefetcher, type LoadedImage } from './prefetch.ts';
import type { CaptionRecord } from './records.ts';

export interface BatchOptions {
  model: Captioner;
  /** The images asked for; those already in `output.done` are skipped. */
  files: readonly InputFile[];
  /** Arguments that named nothing to caption: each written as a failed record. */
  unreadable?: readonly InputError[];
  output: RecordOutput;
  decode: DecodeOptions;
  /** Write each caption's attention maps into its record (a model with attention). */
  attention?: boolean;
  /** The model's familiarity calibration (model/io/load.ts): each record says how familiar its image looks. */
  familiarity?: FamiliarityModel | null;
  /** Images captioned together. */
  batchSize: number;
  /** Largest image in pixels (width × height); larger ones are error records. */
  maxPixels: number;
  /** Estimated decode memory the images decoding at once may hold, bytes (batch/prefetch.ts). */
  decodeBudgetBytes: number;
  /** Aborted: stop after the batch in flight. */
  signal?: AbortSignal;
  /** Images done of those to do: called with 0 before the first batch and after each. */
  progress?(done: number, total: number): void;
}

export interface BatchSummary {
  captioned: number;
  /** Images (and arguments) that failed, each with an error record. */
  failed: number;
  /** Images already captioned in the record file. */
  skipped: number;
  /** Captioned images that look unlike the model's training images (familiar: false); 0 without a calibration. */
  unfamiliar: number;
  /** Stopped by the signal before the end. */
  interrupted: boolean;
  /** Images left undone by an interruption. */
  left: number;
  /** Images processed (captioned or failed) per second of the run. */
  imagesPerSecond: number;
  seconds: number;
}

/**
 * The sampling seed of one image: the run's seed and its path (FNV-1a hash of the path as given),
 * so that a rerun or a resumed run draws the same caption whatever batch the image falls in.
 */
export function imageSeed(seed: number, path: string): number {
  let h = 0x811c9dc5;
  for (const byte of Buffer.from(path, 'utf8')) h = Math.imul(h ^ byte, 0x01000193) >>> 0;
  return deriveSeed(seed, h);
}

function recordFor(
  file: InputFile,
  r: CaptionResult,
  nBest: number | undefined,
  attention: boolean,
  familiarity: Familiarity | undefined,
): CaptionRecord {
  const rec: CaptionRecord = { path: file.path, realPath: file.realPath, caption: r.caption, logProb: r.logProb };
  if (nBest !== undefined && r.nbest) rec.nbest = r.nbest;
  if (attention && r.attention) rec.attention = r.attention;
  if (familiarity) rec.familiarity = familiarity;
  return rec;
}

/** What one batch is captioned with (batch/run.ts `captionBatch`). */
export interface CaptionBatchOptions {
  decode: DecodeOptions;
  /** Put each caption's attention maps in its record (a model with attention). */
  attention?: boolean;
  /** The model's familiarity calibration: each record says how familiar its image looks. */
  familiarity?: FamiliarityModel | null;
}

/**
 * Captions the decoded images of one batch, in order; the others' records carry their errors.
 * The in-process run and the queue worker (queue/worker.ts) both caption through it.
 */
export function captionBatch(
  model: Captioner,
  files: readonly InputFile[],
  loaded: readonly LoadedImage[],
  { decode, attention = false, familiarity = null }: CaptionBatchOptions,
): CaptionRecord[] {
  const size = model.config.imageSize;
  const good = loaded.flatMap((l, i) => ('pixels' in l ? [{ pixels: l.pixels, file: files[i]! }] : []));
  let results: CaptionResult[] = [];
  let judged: Familiarity[] = [];
  if (good.length) {
    const images = imagesToTensor(
      good.map((g) => g.pixels),
      size,
    );
    try {
      const imageSeeds =
        decode.strategy === 'sample' ? good.map((g) => imageSeed(decode.seed ?? 0, g.file.path)) : undefined;
      results = captionImages(model, images, imageSeeds ? { ...decode, imageSeeds } : decode);
      judged = familiarity?.assess(model.encoder, images) ?? [];
    } finally {
      images.dispose();
    }
  }
  let r = 0;
  return loaded.map((l, i) => {
    if (!('pixels' in l)) return { path: l.path, realPath: files[i]!.realPath, error: l.error };
    const k = r++;
    return recordFor(files[i]!, results[k]!, decode.nBest, attention, judged[k]);
  });
}

/** Runs a batch captioning as the module comment describes; the caller closes the output. */
export async function captionFiles(opts: BatchOptions): Promise<BatchSummary> {
  const todo = opts.files.filter((f) => !opts.output.done.has(f.realPath));
  const unreadable = opts.unreadable ?? [];
  const start = performance.now();
  let captioned = 0;
  let unfamiliar = 0;
  let failed = unreadable.length;
  if (unreadable.length) await opts.output.sink.write(unreadable.map(({ path, error }) => ({ path, error })));
  const prefetch = new Prefetcher(
    todo.map((f) => f.path),
    {
      size: opts.model.config.imageSize,
      maxPixels: opts.maxPixels,
      budgetBytes: opts.decodeBudgetBytes,
      lookahead: opts.batchSize,
    },
  );
  if (todo.length) opts.progress?.(0, todo.length);
  let processed = 0;
  try {
    while (processed < todo.length && !opts.signal?.aborted) {
      const files = todo.slice(processed, processed + opts.batchSize);
      const loaded = await prefetch.take(files.length);
      const records = captionBatch(opts.model, files, loaded, {
        decode: opts.decode,
        attention: opts.attention ?? false,
        familiarity: opts.familiarity ?? null,
      });
      await opts.output.sink.write(records);
      processed += files.length;
      const errors = records.filter((r) => r.error !== undefined).length;
      captioned += files.length - errors;
      failed += errors;
      unfamiliar += records.filter((rec) => rec.familiarity?.familiar === false).length;
      opts.progress?.(processed, todo.length);
    }
  } finally {
    await prefetch.settle(); // loads started for a batch not run (interrupted) end before we go
  }
  const seconds = (performance.now() - start) / 1000;
  return {
    captioned,
    unfamiliar,
    failed,
    skipped: opts.files.length - todo.length,
    interrupted: processed < todo.length,
    left: todo.length - processed,
    imagesPerSecond: processed / Math.max(seconds, 1e-9),
    seconds,
  };
}
