/**
 * A captioning job as it travels through the queue: what the batch CLI enqueues (the image by a
 * path every worker can read: a shared file system), what a worker answers, and the job's id.
 *
 * The id is a hash of the image's real path, the decoding settings and the pixel limit, so that
 * enqueueing an image twice (a rerun, two runs at once, a worker that died mid-job) is one job
 * with one result: BullMQ does not add a job whose id it already holds.
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

export interface CaptionJobData {
  /** The image's path as the enqueueing run named it (its sampling seed depends on it, as in-process). */
  path: string;
  /** Absolute, links resolved: the path the worker reads, on the shared file system. */
  realPath: string;
  settings: DecodeSettings;
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
 * The job id of captioning `realPath` with `settings` under `maxPixels`, with attention maps or
 * without (see the module comment).
 */
export function captionJobId(realPath: string, settings: DecodeSettings, maxPixels: number, attention = false): string {
  const key = [realPath, settingsKey(settings), maxPixels, ...(attention ? ['attention'] : [])];
  const hash = createHash('sha256').update(JSON.stringify(key));
  return `img-${hash.digest('hex').slice(0, 40)}`;
}
