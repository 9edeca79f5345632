/**
 * A captioning worker: takes jobs from the BullMQ queue (queue/jobs.ts), up to `concurrency` at
 * once, decodes their images as they arrive and captions them in batches of up to `batchSize`
 * with the same code as the in-process run (batch/prefetch.ts loadImage, batch/run.ts
 * captionBatch), and answers each job with its caption.
 *
 * Attention maps (when a job asks) and familiarity (when the model is calibrated) go into the
 * result as they go into an in-process record. A job that carries its image's bytes is decoded
 * from them (written to a temporary file first, so that a broken image's error reads as the
 * in-process run's, which decodes from a file); the model's recommended decoding (decoding.json)
 * fills in what the job's settings leave out, as in-process, when the job asks (queue/jobs.ts
 * RecommendedPart).
 *
 * Failure: an image that cannot be captioned fails its job, which BullMQ retries (JOB_ATTEMPTS,
 * with backoff) before the failure is final; a worker killed mid-job holds locks that expire, and
 * another worker's stalled-job check puts the job back to wait (`maxStalledCount` times, then the
 * job fails: an image that kills every worker that takes it ends as an error, not a loop).
 */
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UnrecoverableError, Worker, type Job } from 'bullmq';
import type { Captioner } from '../model/nn/captioner.ts';
import type { LanguagePrior } from '../model/decode/prior.ts';
import type { FamiliarityModel } from '../model/familiarity/familiarity.ts';
import { resolveDecodeOptions, type DecodeOptions } from '../model/decode/options.ts';
import { applyRecommendation, type RecommendedDecoding } from '../model/decode/recommended.ts';
import { ByteBudget } from '../model/util/byte-budget.ts';
import { loadImage, type LoadedImage, type PrefetchOptions } from '../batch/prefetch.ts';
import { captionBatch } from '../batch/run.ts';
import type { InputFile } from '../batch/inputs.ts';
import { redisOptions, type QueueLocation } from './connection.ts';
import { workerId } from './registry.ts';
import { QUEUE_NAME, settingsKey, type CaptionJobData, type CaptionJobResult } from './jobs.ts';

export interface WorkerOptions {
  model: Captioner;
  prior: LanguagePrior | null;
  /** The model's familiarity calibration (model/io/load.ts), or null: results then carry none. */
  familiarity: FamiliarityModel | null;
  /** The model's recommended decoding (its decoding.json), or null: jobs that ask for it get the decoder's defaults. */
  recommended: RecommendedDecoding | null;
  location: QueueLocation;
  /** Jobs held at once (taken from the queue, decoding or captioning). */
  concurrency: number;
  /** Images captioned together, at most. */
  batchSize: number;
  /** Estimated decode memory the images decoding at once may hold, bytes. */
  decodeBudgetBytes: number;
  /** How long a job's lock lasts without renewal, ms: a dead worker's jobs wait this long. */
  lockDurationMs: number;
  /** How often this worker looks for stalled jobs (their worker gone), ms. */
  stalledIntervalMs: number;
  /** Times a job may stall (its worker die) and be taken again before it fails. */
  maxStalledCount: number;
  /** Called after each batch with the number of jobs captioned and failed in it. */
  onBatch?(captioned: number, failed: number): void;
  /** Connection and other errors the worker recovers from, for a log line. */
  onError?(err: Error): void;
}

export interface RunningWorker {
  /** Stops taking jobs, lets the jobs held finish, and disconnects. */
  close(): Promise<void>;
}

interface Pending {
  file: InputFile;
  decode: DecodeOptions;
  attention: boolean;
  /** Jobs with equal keys (settings, attention) are captioned together. */
  key: string;
  loaded: Promise<LoadedImage>;
  resolve(result: CaptionJobResult): void;
  reject(err: Error): void;
}

/**
 * Collects the jobs a worker holds into batches: a batch starts when `batchSize` jobs wait, or
 * when no job has arrived for a moment; batches run one at a time (captioning holds the thread).
 */
class Batcher {
  private pending: Pending[] = [];
  private running: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly opts: WorkerOptions,
    private readonly lingerMs = 5,
  ) {}

  add(p: Pending): void {
    this.pending.push(p);
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.pending.length >= this.opts.batchSize) this.kick();
    else this.timer = setTimeout(() => this.kick(), this.lingerMs);
  }

  private kick(): void {
    if (this.running || this.pending.length === 0) return;
    const batch = this.pending.splice(0, this.opts.batchSize);
    this.running = this.run(batch).finally(() => {
      this.running = null;
      if (this.pending.length) this.kick();
    });
  }

  private async run(batch: Pending[]): Promise<void> {
    const groups = new Map<string, Pending[]>();
    for (const p of batch) groups.set(p.key, [...(groups.get(p.key) ?? []), p]);
    let captioned = 0;
    let failed = 0;
    for (const group of groups.values()) {
      const loaded = await Promise.allSettled(group.map((p) => p.loaded));
      const ok = group.flatMap((p, i) => {
        const l = loaded[i]!;
        if (l.status === 'fulfilled') return [{ p, l: l.value }];
        p.reject(l.reason instanceof Error ? l.reason : new Error(String(l.reason)));
        failed++;
        return [];
      });
      if (ok.length === 0) continue;
      try {
        const records = captionBatch(
          this.opts.model,
          ok.map((o) => o.p.file),
          ok.map((o) => o.l),
          { decode: ok[0]!.p.decode, attention: ok[0]!.p.attention, familiarity: this.opts.familiarity },
        );
        records.forEach((r, i) => {
          const p = ok[i]!.p;
          if (r.error !== undefined || r.caption === undefined || r.logProb === undefined) {
            p.reject(new Error(r.error ?? 'no caption'));
            failed++;
            return;
          }
          const result: CaptionJobResult = { caption: r.caption, logProb: r.logProb };
          if (r.nbest) result.nbest = r.nbest;
          if (r.attention) result.attention = r.attention;
          if (r.familiarity) result.familiarity = r.familiarity;
          p.resolve(result);
          captioned++;
        });
      } catch (err) {
        for (const o of ok) o.p.reject(err as Error);
        failed += ok.length;
      }
    }
    this.opts.onBatch?.(captioned, failed);
  }
}

/**
 * Loads an image sent as bytes as `loadImage` loads a file: through a temporary file in `dir`
 * (sharp's messages name their input, "Input file" or "Input buffer"), its name in any error
 * replaced by `path`, the image's name.
 */
async function loadImageBytes(
  bytes: Buffer,
  path: string,
  dir: Promise<string>,
  options: PrefetchOptions,
  budget: ByteBudget,
): Promise<LoadedImage> {
  const file = join(await dir, randomUUID());
  await writeFile(file, bytes);
  try {
    const loaded = await loadImage(file, options, budget);
    return 'error' in loaded ? { path, error: loaded.error.replaceAll(file, path) } : { path, pixels: loaded.pixels };
  } finally {
    await rm(file, { force: true });
  }
}

/** Starts a worker on the queue at `opts.location`; it runs until closed. */
export function startCaptionWorker(opts: WorkerOptions): RunningWorker {
  const budget = new ByteBudget(opts.decodeBudgetBytes);
  const batcher = new Batcher(opts);
  const decodeFor = new Map<string, DecodeOptions>();
  const size = opts.model.config.imageSize;
  // Where images sent as bytes are decoded from, made when the first arrives.
  let bytesDir: Promise<string> | null = null;

  const processJob = (job: Job<CaptionJobData, CaptionJobResult>): Promise<CaptionJobResult> => {
    const { path, realPath, settings, maxPixels, recommended } = job.data;
    const attention = job.data.attention === true;
    if (attention && !opts.model.attentionGrid)
      return Promise.reject(
        new UnrecoverableError(
          `--attention: the workers' model has no attention (featureInput "${opts.model.config.featureInput}"), so no maps to write`,
        ),
      );
    const settingsText = `${settingsKey(settings)}${recommended ? ` recommended:${recommended}` : ''}`;
    const key = `${settingsText}${attention ? ' attention' : ''}`;
    let decode = decodeFor.get(settingsText);
    if (!decode) {
      const chosen = recommended
        ? applyRecommendation(opts.recommended, settings, recommended === 'settings')
        : settings;
      decode = { ...chosen, prior: opts.prior };
      try {
        resolveDecodeOptions(opts.model, decode);
      } catch (err) {
        // Settings this worker's model refuses fail the same way on every attempt.
        return Promise.reject(new UnrecoverableError((err as Error).message));
      }
      decodeFor.set(settingsText, decode);
    }
    const loadOptions = { size, maxPixels, budgetBytes: opts.decodeBudgetBytes, lookahead: 0 };
    let loaded: Promise<LoadedImage>;
    if (job.data.bytes === undefined) loaded = loadImage(realPath, loadOptions, budget);
    else {
      bytesDir ??= mkdtemp(join(tmpdir(), 'captioner-worker-'));
      loaded = loadImageBytes(Buffer.from(job.data.bytes, 'base64'), path, bytesDir, loadOptions, budget);
    }
    loaded.then(undefined, () => undefined); // rejected loads are reported through the job
    return new Promise((resolve, reject) =>
      batcher.add({ file: { path, realPath }, decode, attention, key, loaded, resolve, reject }),
    );
  };

  const worker = new Worker<CaptionJobData, CaptionJobResult>(QUEUE_NAME, processJob, {
    connection: redisOptions(opts.location),
    name: workerId(), // each job's processedBy: which worker holds or held it
    concurrency: opts.concurrency,
    lockDuration: opts.lockDurationMs,
    stalledInterval: opts.stalledIntervalMs,
    maxStalledCount: opts.maxStalledCount,
  });
  // ioredis reconnects by itself (a Redis restart): the error is worth a line, not a crash.
  worker.on('error', (err) => opts.onError?.(err));
  return {
    async close() {
      await worker.close();
      if (bytesDir) await rm(await bytesDir, { recursive: true, force: true });
    },
  };
}
