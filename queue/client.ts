/**
 * The batch CLI's side of the queue: enqueue one job per image (queue/jobs.ts; an image already
 * enqueued with the same settings is the same job, not a new one), then follow the jobs to their
 * ends and write a record for each as it finishes: its caption, or, after the job's last attempt,
 * its error. Interrupted, it stops following and returns: the records written are whole, the jobs
 * stay on the queue, and a rerun on the same record file collects their results.
 */
import { Job, Queue } from 'bullmq';
import type { InputFile } from '../batch/inputs.ts';
import type { RecordSink } from '../batch/output.ts';
import type { CaptionRecord } from '../batch/records.ts';
import type { DecodeSettings } from '../model/decode/options.ts';
import { redisOptions, type QueueLocation } from './connection.ts';
import {
  JOB_ATTEMPTS,
  QUEUE_NAME,
  RETRY_DELAY_MS,
  captionJobId,
  type CaptionJobData,
  type CaptionJobResult,
} from './jobs.ts';

export interface QueueRunOptions {
  location: QueueLocation;
  /** The images to caption (those the record file already holds left out by the caller). */
  files: readonly InputFile[];
  settings: DecodeSettings;
  maxPixels: number;
  /** Ask the workers for each caption's attention maps (`caption --attention`). */
  attention?: boolean;
  sink: RecordSink;
  /** Aborted: stop following (the jobs stay queued). */
  signal?: AbortSignal;
  /** Images done of `files.length`: called with 0 once enqueued, then as jobs finish. */
  progress?(done: number, total: number): void;
  /** How often the unfinished jobs are looked at, ms. */
  pollMs?: number;
}

export interface QueueRunSummary {
  captioned: number;
  failed: number;
  /** Captioned images whose result says they look unlike the model's training images. */
  unfamiliar: number;
  /** Whether any result carried familiarity (the workers' model is calibrated). */
  calibrated: boolean;
  interrupted: boolean;
  /** Images whose job had not finished when following stopped. */
  left: number;
}

/** Jobs looked at per poll: the oldest unfinished ones (jobs finish roughly in the order queued). */
const POLL_WINDOW = 500;
/** Jobs added per call. */
const ADD_CHUNK = 1000;

type Finished = { result: CaptionJobResult } | { error: string } | null;

/** The end a job came to, or null while it runs or waits (a failure with attempts left is not an end). */
function finished(job: Job<CaptionJobData, CaptionJobResult> | undefined, id: string): Finished {
  if (!job) return { error: `job ${id} vanished from the queue (removed by hand, or Redis lost it)` };
  if (!job.finishedOn) return null;
  if (job.returnvalue) return { result: job.returnvalue };
  return { error: job.failedReason || 'failed' };
}

function recordFor(file: InputFile, end: Exclude<Finished, null>): CaptionRecord {
  if ('error' in end) return { path: file.path, realPath: file.realPath, error: end.error };
  const rec: CaptionRecord = { path: file.path, realPath: file.realPath, ...end.result };
  return rec;
}

/** Enqueues `opts.files` and follows their jobs to the end, as the module comment says. */
export async function captionOnQueue(opts: QueueRunOptions): Promise<QueueRunSummary> {
  const queue = new Queue<CaptionJobData, CaptionJobResult>(QUEUE_NAME, { connection: redisOptions(opts.location) });
  try {
    const pending = new Map<string, InputFile>();
    const attention = opts.attention === true;
    for (const file of opts.files)
      pending.set(captionJobId(file.realPath, opts.settings, opts.maxPixels, attention), file);
    await retryEarlierFailures(queue, [...pending.keys()]);
    const ids = [...pending];
    for (let i = 0; i < ids.length; i += ADD_CHUNK) {
      await queue.addBulk(
        ids.slice(i, i + ADD_CHUNK).map(([jobId, file]) => ({
          name: 'caption',
          data: {
            path: file.path,
            realPath: file.realPath,
            settings: opts.settings,
            maxPixels: opts.maxPixels,
            ...(attention ? { attention } : {}),
          },
          opts: {
            jobId,
            attempts: JOB_ATTEMPTS,
            backoff: { type: 'exponential', delay: RETRY_DELAY_MS },
            // Results stay in Redis: a rerun, or a second run over the same images, reads them.
            removeOnComplete: false,
            removeOnFail: false,
          },
        })),
      );
    }
    const total = pending.size;
    let captioned = 0;
    let failed = 0;
    let unfamiliar = 0;
    let calibrated = false;
    opts.progress?.(0, total);
    while (pending.size > 0 && !opts.signal?.aborted) {
      const window = [...pending.keys()].slice(0, POLL_WINDOW);
      const jobs = await Promise.all(window.map((id) => Job.fromId<CaptionJobData, CaptionJobResult>(queue, id)));
      const records: CaptionRecord[] = [];
      jobs.forEach((job, i) => {
        const id = window[i]!;
        const end = finished(job, id);
        if (!end) return;
        records.push(recordFor(pending.get(id)!, end));
        pending.delete(id);
        if ('error' in end) failed++;
        else {
          captioned++;
          if (end.result.familiarity) calibrated = true;
          if (end.result.familiarity?.familiar === false) unfamiliar++;
        }
      });
      if (records.length) {
        await opts.sink.write(records);
        opts.progress?.(total - pending.size, total);
      } else await sleep(opts.pollMs ?? 100, opts.signal);
    }
    return { captioned, failed, unfamiliar, calibrated, interrupted: pending.size > 0, left: pending.size };
  } finally {
    await queue.close();
  }
}

/**
 * Jobs among `ids` that failed for good in an earlier run are retried, as an in-process rerun
 * retries the images whose records were errors (the record file dropped those records).
 */
async function retryEarlierFailures(queue: Queue<CaptionJobData, CaptionJobResult>, ids: readonly string[]) {
  for (let i = 0; i < ids.length; i += POLL_WINDOW) {
    const jobs = await Promise.all(ids.slice(i, i + POLL_WINDOW).map((id) => Job.fromId(queue, id)));
    for (const job of jobs) {
      if (job?.finishedOn && !job.returnvalue)
        await job.retry('failed', { resetAttemptsMade: true, resetAttemptsStarted: true });
    }
  }
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
