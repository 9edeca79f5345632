/**
 * The batch CLI's side of the queue: enqueue one job per image (queue/jobs.ts; an image already
 * enqueued with the same settings is the same job, not a new one), then follow the jobs to their
 * ends and write a record for each as it finishes: its caption, or, after the job's last attempt,
 * its error. Interrupted, it stops following and returns: the records written are whole, the jobs
 * stay on the queue, and a rerun on the same record file collects their results.
 *
 * Small images travel as bytes (`transport`, BYTES_THRESHOLD): those jobs are added as earlier
 * ones finish, within BYTES_IN_FLIGHT, and lose their bytes once their record is written.
 */
import { readFile, stat } from 'node:fs/promises';
import { Job, Queue } from 'bullmq';
import type { InputFile } from '../batch/inputs.ts';
import type { RecordSink } from '../batch/output.ts';
import type { CaptionRecord } from '../batch/records.ts';
import type { DecodeSettings } from '../model/decode/options.ts';
import { redisOptions, type QueueLocation } from './connection.ts';
import { redisClient } from './registry.ts';
import {
  BYTES_IN_FLIGHT,
  BYTES_THRESHOLD,
  JOB_ATTEMPTS,
  QUEUE_NAME,
  RETRY_DELAY_MS,
  captionJobId,
  type CaptionJobData,
  type CaptionJobResult,
  type ImageTransport,
  type RecommendedPart,
} from './jobs.ts';

export interface QueueRunOptions {
  location: QueueLocation;
  /** The images to caption (those the record file already holds left out by the caller). */
  files: readonly InputFile[];
  settings: DecodeSettings;
  /** What the workers' model's decoding.json adds to `settings` (queue/jobs.ts RecommendedPart). */
  recommended?: RecommendedPart;
  maxPixels: number;
  /** Ask the workers for each caption's attention maps (`caption --attention`). */
  attention?: boolean;
  /** Images as bytes or by path (queue/jobs.ts ImageTransport); default `auto`. */
  transport?: ImageTransport;
  /** Largest file `auto` sends as bytes; default BYTES_THRESHOLD. */
  bytesThreshold?: number;
  /** Bytes the uncollected jobs may hold in Redis; default BYTES_IN_FLIGHT. */
  bytesInFlight?: number;
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
  /** Jobs added with the image's bytes, and with its path only. */
  sent: { bytes: number; path: number };
}

/** Jobs looked at per poll: the oldest unfinished ones (jobs finish roughly in the order queued). */
const POLL_WINDOW = 500;
/** Jobs added per call. */
const ADD_CHUNK = 1000;

type Finished = { result: CaptionJobResult } | { error: string } | null;

/** The fields of a job's hash (BullMQ's layout) the follower reads: not its data, which may hold an image. */
const END_FIELDS = ['timestamp', 'finishedOn', 'returnvalue', 'failedReason'] as const;

/**
 * The end a job came to, from its END_FIELDS, or null while it runs or waits (a failure with
 * attempts left is not an end). Read as BullMQ's Job.fromJSON reads them.
 */
function finished(fields: (string | null)[], id: string): Finished {
  const [timestamp, finishedOn, returnvalue, failedReason] = fields;
  if (!timestamp) return { error: `job ${id} vanished from the queue (removed by hand, or Redis lost it)` };
  if (!finishedOn) return null;
  const result = returnvalue ? (JSON.parse(returnvalue) as CaptionJobResult | null) : null;
  if (result) return { result };
  return { error: failedReason || 'failed' };
}

function recordFor(file: InputFile, end: Exclude<Finished, null>): CaptionRecord {
  if ('error' in end) return { path: file.path, realPath: file.realPath, error: end.error };
  const rec: CaptionRecord = { path: file.path, realPath: file.realPath, ...end.result };
  return rec;
}

/** A job to add: its id, its image, and the size of the file when it goes as bytes. */
interface Planned {
  jobId: string;
  file: InputFile;
  /** The file's size when it travels as bytes; null: by path. */
  bytes: number | null;
}

/** What `io` gives, or null when the file is missing or may not be read (any other error is thrown). */
async function readable<T>(io: Promise<T>): Promise<T | null> {
  try {
    return await io;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'EACCES') return null;
    throw err;
  }
}

/**
 * Whether `file` travels as bytes under `transport`: its size if so, else null. A file that
 * cannot be read here goes by path (the worker's attempt then reports what is wrong, as in-process).
 */
async function sizeToSend(file: InputFile, transport: ImageTransport, threshold: number): Promise<number | null> {
  if (transport === 'path') return null;
  const info = await readable(stat(file.realPath));
  if (!info) return null;
  return transport === 'bytes' || info.size <= threshold ? info.size : null;
}

/** Enqueues `opts.files` and follows their jobs to the end, as the module comment says. */
export async function captionOnQueue(opts: QueueRunOptions): Promise<QueueRunSummary> {
  const queue = new Queue<CaptionJobData, CaptionJobResult>(QUEUE_NAME, { connection: redisOptions(opts.location) });
  // Reads the jobs' ends a pipeline at a time (BullMQ's API makes a request per job, and reads its data).
  const client = redisClient(opts.location);
  try {
    const attention = opts.attention === true;
    const transport = opts.transport ?? 'auto';
    const threshold = opts.bytesThreshold ?? BYTES_THRESHOLD;
    const budget = opts.bytesInFlight ?? BYTES_IN_FLIGHT;
    const jobData = (file: InputFile): CaptionJobData => ({
      path: file.path,
      realPath: file.realPath,
      settings: opts.settings,
      ...(opts.recommended ? { recommended: opts.recommended } : {}),
      maxPixels: opts.maxPixels,
      ...(attention ? { attention } : {}),
    });
    const plan: Planned[] = [];
    const seen = new Set<string>();
    for (const file of opts.files) {
      const jobId = captionJobId(file.realPath, opts.settings, opts.maxPixels, attention, opts.recommended);
      if (seen.has(jobId)) continue;
      seen.add(jobId);
      plan.push({ jobId, file, bytes: await sizeToSend(file, transport, threshold) });
    }
    // A failed job is retried with this run's data: its bytes, when it went by path before.
    const byId = new Map(plan.map((p) => [p.jobId, p]));
    await retryEarlierFailures(queue, [...seen], async (id) => {
      const p = byId.get(id)!;
      const data = jobData(p.file);
      const bytes = p.bytes === null ? null : await readable(readFile(p.file.realPath));
      return bytes ? { ...data, bytes: bytes.toString('base64') } : data;
    });
    // Jobs by path are added at once; jobs with bytes as the bytes of those not collected allow.
    plan.sort((a, b) => Number(a.bytes !== null) - Number(b.bytes !== null));
    const pending = new Map<string, Planned>();
    let added = 0;
    let bytesHeld = 0;
    const sent = { bytes: 0, path: 0 };
    const addMore = async () => {
      while (added < plan.length) {
        const chunk: { name: string; data: CaptionJobData; opts: object }[] = [];
        while (added < plan.length && chunk.length < ADD_CHUNK) {
          const p = plan[added]!;
          if (p.bytes !== null && bytesHeld > 0 && bytesHeld + p.bytes > budget) break;
          const data = jobData(p.file);
          if (p.bytes !== null) {
            const bytes = await readable(readFile(p.file.realPath));
            if (bytes) {
              data.bytes = bytes.toString('base64');
              bytesHeld += p.bytes;
            } else p.bytes = null; // gone or unreadable since: by path, and its worker says what is wrong
          }
          sent[p.bytes === null ? 'path' : 'bytes']++;
          pending.set(p.jobId, p);
          chunk.push({ name: 'caption', data, opts: jobOptions(p.jobId) });
          added++;
        }
        if (chunk.length === 0) return;
        await queue.addBulk(chunk);
      }
    };
    await addMore();
    const total = plan.length;
    let done = 0;
    let captioned = 0;
    let failed = 0;
    let unfamiliar = 0;
    let calibrated = false;
    opts.progress?.(0, total);
    while (pending.size > 0 && !opts.signal?.aborted) {
      const window = [...pending.keys()].slice(0, POLL_WINDOW);
      const reads = client.pipeline();
      for (const id of window) reads.hmget(queue.toKey(id), ...END_FIELDS);
      const replies = (await reads.exec()) ?? [];
      const records: CaptionRecord[] = [];
      const ended: Planned[] = [];
      const captionedNow: Planned[] = [];
      replies.forEach(([err, fields]: [Error | null, unknown], i: number) => {
        if (err) throw err;
        const id = window[i]!;
        const end = finished(fields as (string | null)[], id);
        if (!end) return;
        const p = pending.get(id)!;
        records.push(recordFor(p.file, end));
        ended.push(p);
        pending.delete(id);
        if ('error' in end) failed++;
        else {
          captioned++;
          captionedNow.push(p);
          if (end.result.familiarity) calibrated = true;
          if (end.result.familiarity?.familiar === false) unfamiliar++;
        }
      });
      if (records.length) {
        await opts.sink.write(records);
        done += records.length;
        await dropBytes(queue, captionedNow, jobData);
        for (const p of ended) if (p.bytes !== null) bytesHeld -= p.bytes;
        await addMore();
        opts.progress?.(done, total);
      } else await sleep(opts.pollMs ?? 100, opts.signal);
    }
    const left = total - done;
    return { captioned, failed, unfamiliar, calibrated, interrupted: left > 0, left, sent };
  } finally {
    client.disconnect();
    await queue.close();
  }
}

/** BullMQ options of a batch job. */
function jobOptions(jobId: string) {
  return {
    jobId,
    attempts: JOB_ATTEMPTS,
    backoff: { type: 'exponential', delay: RETRY_DELAY_MS },
    // Results stay in Redis: a rerun, or a second run over the same images, reads them.
    removeOnComplete: false,
    removeOnFail: false,
  };
}

/**
 * The completed jobs among `captioned` that carried bytes keep their result but lose their bytes
 * (Redis would hold every image of the run otherwise). A failed job keeps them: a rerun retries it.
 */
async function dropBytes(
  queue: Queue<CaptionJobData, CaptionJobResult>,
  captioned: readonly Planned[],
  jobData: (file: InputFile) => CaptionJobData,
): Promise<void> {
  await Promise.all(
    captioned
      .filter((p) => p.bytes !== null)
      .map((p) => {
        const data = jobData(p.file);
        return new Job(queue, 'caption', data, {}, p.jobId).updateData(data);
      }),
  );
}

/**
 * Jobs among `ids` that failed for good in an earlier run are retried, as an in-process rerun
 * retries the images whose records were errors (the record file dropped those records), with the
 * data `dataFor` gives (this run's way of sending the image).
 */
async function retryEarlierFailures(
  queue: Queue<CaptionJobData, CaptionJobResult>,
  ids: readonly string[],
  dataFor: (id: string) => Promise<CaptionJobData>,
) {
  for (let i = 0; i < ids.length; i += POLL_WINDOW) {
    const jobs = await Promise.all(ids.slice(i, i + POLL_WINDOW).map((id) => Job.fromId(queue, id)));
    for (const job of jobs) {
      if (job?.finishedOn && !job.returnvalue) {
        await job.updateData(await dataFor(job.id!));
        await job.retry('failed', { resetAttemptsMade: true, resetAttemptsStarted: true });
      }
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
