/**
 * The web tier's captioning jobs (`serve --queue`): one upload, captioned by a `captioner worker`
 * one decoder step at a time with model/decode/stream.ts `streamCaption`, as the server's own
 * worker threads do (server/worker.ts).
 *
 * - The job carries the decoded pixels (the model's input: imageSize² × 3 bytes, base64 in the
 *   job's JSON), not the upload: the web tier checks and decodes the upload as always, and a
 *   job's size is bounded by the model (12 KiB at 64 px, 147 KiB at 224 px) whatever was sent.
 * - Words, the result and errors travel back on a Redis pub/sub channel of the job's own
 *   (`captioner:serve:JOB`), which the web tier subscribes to before it adds the job.
 * - Cancelling: the web tier removes a job that waits; one already taken is named on the channel
 *   `captioner:serve:cancel`, and the worker running it stops at its next decoder step.
 * - The queue is named by the model's fingerprint (queue/registry.ts): a web tier's jobs go only
 *   to workers that loaded the same model files.
 * - A web job is not run twice: part of its caption may have reached the client already. A worker
 *   killed mid-job stops its heartbeat, and the web tier answers the request with an error
 *   (queue/remote.ts); the stalled job then fails instead of running again.
 */
import { UnrecoverableError, Worker, type Job } from 'bullmq';
import type * as tf from '@tensorflow/tfjs';
import { imagesToTensor } from '../model/data/image.ts';
import type { CaptionResult, DecodeOptions, StreamEvent } from '../model/decode/decode.ts';
import type { LanguagePrior } from '../model/decode/prior.ts';
import { streamCaption } from '../model/decode/stream.ts';
import type { Familiarity, FamiliarityModel } from '../model/familiarity/familiarity.ts';
import type { Captioner } from '../model/nn/captioner.ts';
import { redisOptions, type QueueLocation } from './connection.ts';
import { redisClient, workerId } from './registry.ts';

/** The BullMQ queue of the web tier's jobs for the model with this fingerprint. */
export function serveQueueName(fingerprint: string): string {
  return `captioner-serve-${fingerprint}`;
}

/** The channel a job's words and end are published on. */
export function serveChannel(jobId: string): string {
  return `captioner:serve:${jobId}`;
}

/** The channel that names jobs to stop. */
export const CANCEL_CHANNEL = 'captioner:serve:cancel';

export interface ServeJobData {
  /** The model's input, imageSize × imageSize × 3 RGB bytes (model/data/image.ts), base64. */
  pixels: string;
  /** The request's decoding options (without the prior: the worker's model brings its own). */
  options: DecodeOptions;
  /** Publish each word and hypothesis as it is decoded. */
  stream: boolean;
}

/** What a worker publishes on a job's channel. */
export type ServeMessage =
  | { type: 'started'; worker: string }
  | { type: 'event'; event: Exclude<StreamEvent, { type: 'done' }> }
  | { type: 'result'; result: CaptionResult; familiarity?: Familiarity; ms: number }
  | { type: 'error'; name: string; message: string }
  | { type: 'cancelled' };

/** What a web job's BullMQ result holds (the answer itself went on the channel). */
export interface ServeJobResult {
  cancelled: boolean;
  ms: number;
}

export interface ServeWorkerOptions {
  model: Captioner;
  prior: LanguagePrior | null;
  familiarity: FamiliarityModel | null;
  fingerprint: string;
  location: QueueLocation;
  /** Web jobs decoded at once (they take turns step by step). */
  concurrency: number;
  lockDurationMs: number;
  stalledIntervalMs: number;
  onError?(err: Error): void;
}

export interface RunningServeWorker {
  /** Jobs cancelled part-way since the start. */
  readonly cancelled: number;
  close(): Promise<void>;
}

/** Takes the web tier's jobs for `opts.fingerprint`'s model until closed (see the module comment). */
export async function startServeWorker(opts: ServeWorkerOptions): Promise<RunningServeWorker> {
  const { model, prior, familiarity } = opts;
  const size = model.config.imageSize;
  const publisher = redisClient(opts.location);
  const subscriber = redisClient(opts.location);
  for (const c of [publisher, subscriber]) c.on('error', (err) => opts.onError?.(err));
  const running = new Map<string, AbortController>();
  let cancelled = 0;
  subscriber.on('message', (_channel: string, jobId: string) => running.get(jobId)?.abort());
  await subscriber.subscribe(CANCEL_CHANNEL);

  const publish = (jobId: string, msg: ServeMessage) => publisher.publish(serveChannel(jobId), JSON.stringify(msg));

  const processJob = async (job: Job<ServeJobData, ServeJobResult>): Promise<ServeJobResult> => {
    const id = job.id!;
    const controller = new AbortController();
    running.set(id, controller);
    const started = performance.now();
    let image: tf.Tensor4D | null = null;
    try {
      await publish(id, { type: 'started', worker: workerId() });
      const pixels = Buffer.from(job.data.pixels, 'base64');
      if (pixels.length !== size * size * 3)
        throw new Error(
          `expected ${size}² RGB pixels, got ${pixels.length} bytes (web tier and worker models differ?)`,
        );
      // [1, size, size, 3] in [0, 1], scaled as in training.
      image = imagesToTensor([new Uint8Array(pixels)], size);
      for await (const event of streamCaption(model, image, { ...job.data.options, prior }, controller.signal)) {
        if (event.type === 'done') {
          const judged = familiarity?.assess(model.encoder, image)[0];
          const ms = performance.now() - started;
          await publish(id, { type: 'result', result: event.result, ...(judged ? { familiarity: judged } : {}), ms });
          return { cancelled: false, ms };
        }
        if (job.data.stream) await publish(id, { type: 'event', event });
      }
      throw new Error('the decoder ended without a result');
    } catch (err) {
      if (controller.signal.aborted) {
        cancelled++;
        await publish(id, { type: 'cancelled' });
        return { cancelled: true, ms: performance.now() - started };
      }
      await publish(id, { type: 'error', name: (err as Error).name, message: (err as Error).message });
      throw new UnrecoverableError((err as Error).message);
    } finally {
      image?.dispose();
      running.delete(id);
    }
  };

  const worker = new Worker<ServeJobData, ServeJobResult>(serveQueueName(opts.fingerprint), processJob, {
    connection: redisOptions(opts.location),
    name: workerId(),
    concurrency: opts.concurrency,
    lockDuration: opts.lockDurationMs,
    stalledInterval: opts.stalledIntervalMs,
    maxStalledCount: 0, // see the module comment: a web job is not run twice
  });
  worker.on('error', (err) => opts.onError?.(err));
  return {
    get cancelled() {
      return cancelled;
    },
    async close() {
      await worker.close();
      subscriber.disconnect();
      publisher.disconnect();
    },
  };
}
