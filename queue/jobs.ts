/**
 * A captioning job as it travels through the queue: what the batch CLI enqueues (the image's
 * bytes when it is small, else its path, which every worker must then read on a shared file
 * system), what a worker answers, and the job's id.
 *
 * The id is a hash of the image's real path, the decoding settings and the pixel limit, so that
 * enqueueing an image twice (a rerun, two runs at once, a worker that died mid-job) is one job
 * with one result: BullMQ does not add a job whose id it already holds. Whether the bytes travel
 * is not part of it: they are the file's, and the result is the same.
 */
import { createHash } from 'node:crypto';
import type { AttentionMaps } from '../model/decode/decode.ts';
import type { DecodeSettings } from '../model/decode/options.ts';
import type { Familiarity } from '../model/familiarity/familiarity.ts';

/** The BullMQ queue every `caption --queue` and `worker` of one Redis database share. */
export const QUEUE_NAME = 'captioner-caption';

/** Attempts a job gets before its failure is final (the image's error record). */
export const JOB_ATTEMPTS = 3;

/** Delay before the second attempt, ms; each later one waits twice as long. */
export const RETRY_DELAY_MS = 500;

/**
 * How `caption --queue` sends images (`--images-by`): `auto` puts a file of at most
 * BYTES_THRESHOLD bytes into its job and sends a larger one by path; `bytes` and `path` force one.
 */
export const IMAGE_TRANSPORTS = ['auto', 'bytes', 'path'] as const;
export type ImageTransport = (typeof IMAGE_TRANSPORTS)[number];

/**
 * The largest file `--images-by auto` puts into its job: 1 MiB, 1.33 MiB as base64 in Redis.
 * Web-sized photos (JPEG at a few hundred KB, the COCO images average 160 KB) and thumbnails go
 * as bytes; camera originals (2 to 10 MB) by path, since every byte of a job passes through
 * Redis's one thread and sits in its memory until the run collects the result.
 */
export const BYTES_THRESHOLD = 2 ** 20;

/**
 * Bytes of images that jobs not yet collected may hold in Redis at once (their base64 is a third
 * more): jobs with bytes are added as earlier ones finish, so that a run of a million small
 * images does not put them all into Redis's memory. Bytes are removed from a job once its
 * result is written.
 */
export const BYTES_IN_FLIGHT = 64 * 2 ** 20;

/**
 * Where a job's decoding settings come from besides `settings` (what `caption`'s flags gave): the
 * workers' model's recommended decoding (its decoding.json, model/decode/recommended.ts) fills in
 * the settings the flags left out (`settings`), and the strategy too when no flag chose one
 * (`all`), as an in-process `caption` does with its model's. Absent: `settings` alone.
 */
export type RecommendedPart = 'settings' | 'all';

export interface CaptionJobData {
  /** The image's path as the enqueueing run named it (its sampling seed depends on it, as in-process). */
  path: string;
  /** Absolute, links resolved: the path the worker reads, on the shared file system (unless `bytes`). */
  realPath: string;
  /** The file's content, base64: the worker decodes it instead of reading `realPath`. */
  bytes?: string;
  settings: DecodeSettings;
  /** What the workers' model's decoding.json adds to `settings` (RecommendedPart). */
  recommended?: RecommendedPart;
  /** Largest image, width × height; a larger one fails without being decoded. */
  maxPixels: number;
  /** Put the caption's attention maps in the result (`caption --attention`; a model with attention). */
  attention?: boolean;
}

/**
 * What a worker writes back: the caption (and alternatives), with the attention maps when asked
 * and how familiar the image looks when the workers' model is calibrated: the fields of the
 * in-process record (batch/records.ts CaptionRecord).
 */
export interface CaptionJobResult {
  caption: string;
  logProb: number;
  nbest?: { caption: string; logProb: number }[];
  attention?: AttentionMaps;
  familiarity?: Familiarity;
}

/** The settings as canonical JSON: keys sorted, unset ones left out, so equal settings hash equal. */
export function settingsKey(settings: DecodeSettings): string {
  const entries = Object.entries(settings)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return JSON.stringify(Object.fromEntries(entries));
}

/**
 * The job id of captioning `realPath` with `settings` (and the part of the workers' model's
 * recommendation it takes) under `maxPixels`, with attention maps or without (see the module comment).
 */
export function captionJobId(
  realPath: string,
  settings: DecodeSettings,
  maxPixels: number,
  attention = false,
  recommended?: RecommendedPart,
): string {
  const key = [
    realPath,
    settingsKey(settings),
    maxPixels,
    ...(attention ? ['attention'] : []),
    ...(recommended ? [`recommended:${recommended}`] : []),
  ];
  const hash = createHash('sha256').update(JSON.stringify(key));
  return `img-${hash.digest('hex').slice(0, 40)}`;
}
