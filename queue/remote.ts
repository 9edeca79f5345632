/**
 * `serve --queue`: the web app's caption service (server/context.ts CaptionService) on remote
 * `captioner worker` processes instead of its own worker threads. Each request is a job on the
 * web queue of the served model (queue/serve-jobs.ts); its words and result come back on the
 * job's pub/sub channel.
 *
 * Admission, as the thread pool's: at most `maxJobs` requests are read, decoded, queued or
 * captioned at once; past that 503 + Retry-After at once (QueueFullError). With `maxWaiting`, a
 * bound across every web replica of the model too: while that many of the queue's jobs wait for a
 * worker (whichever replica added them), a new request is refused the same way, at admission from
 * the count looked up every `refreshMs`, and again just before its job is added. While no worker with
 * this model is alive (queue/registry.ts heartbeats, looked at every `refreshMs`), requests are
 * refused at once (UnavailableError) and /readyz answers 503. The time limit (504) and a client
 * that leaves cancel the job: removed if it waits, stopped at its next decoder step if it runs.
 *
 * A worker that dies mid-job (its heartbeat expires) fails the requests it held with a
 * WorkerError (500), as the thread pool does when a thread dies: the job is not run again
 * elsewhere, since part of its stream may have reached the client, and a stream that started
 * over would show words the caption does not have. The client may send the image again.
 */
import { randomUUID } from 'node:crypto';
import { Queue } from 'bullmq';
import * as tf from '@tensorflow/tfjs';
import type { Redis } from 'ioredis';
import { loadModel } from '../model/io/load.ts';
import type { CaptionService } from '../server/context.ts';
import {
  CancelledError,
  HttpError,
  QueueFullError,
  TimeoutError,
  UnavailableError,
  WorkerError,
} from '../server/errors.ts';
import {
  ReservedPlaces,
  type CaptionOutcome,
  type CaptionRequest,
  type PoolModelInfo,
  type PoolStats,
  type Reservation,
} from '../server/workers.ts';
import { checkRedis, redisOptions, type QueueLocation } from './connection.ts';
import { liveWorkers, modelFingerprint, redisClient, type WorkerInfo } from './registry.ts';
import {
  CANCEL_CHANNEL,
  serveChannel,
  serveQueueName,
  type ServeJobData,
  type ServeJobResult,
  type ServeMessage,
} from './serve-jobs.ts';

/** Finished web jobs kept in Redis: the last thousand, for an hour at most. */
const KEEP_JOBS = { age: 3600, count: 1000 };

export interface RemoteOptions {
  location: QueueLocation;
  /** The model directory the workers serve: read here for the page and the upload size, and fingerprinted. */
  modelDir: string;
  /** Requests in progress at once (reading, decoding, queued, captioning); past it, 503. */
  maxJobs: number;
  /**
   * Jobs that may wait on the model's web queue, counted across every web process that adds to it;
   * past it, 503. Undefined: no bound but `maxJobs` per process.
   */
  maxWaiting?: number;
  /** Time limit per request from its job's creation to its result, ms. */
  timeoutMs: number;
  /** How often the live workers are looked up, ms. */
  refreshMs?: number;
  log?: (line: string) => void;
}

interface Pending {
  request: CaptionRequest;
  arrived: number;
  started: number | null;
  /** The worker that took the job (its `started` message), once it has. */
  worker: string | null;
  settled: boolean;
  timer: NodeJS.Timeout;
  onAbort: () => void;
  resolve(outcome: CaptionOutcome): void;
  reject(err: Error): void;
}

/** Figures `serve --queue` adds to /readyz. */
export interface RemoteStats extends PoolStats {
  queue: string;
  /** Live workers that loaded another model (their fingerprints differ): they take none of these jobs. */
  otherModelWorkers: number;
}

export class RemoteCaptioning implements CaptionService {
  private readonly pending = new Map<string, Pending>();
  private workers: WorkerInfo[] = [];
  private closing = false;
  private readonly reserved = new ReservedPlaces();
  private accepted = 0;
  private cancelledInWorker = 0;
  private avgDecodeMs = 200;
  /** The web queue's waiting jobs, all replicas' (with `maxWaiting`: looked up at each refresh). */
  private waiting = 0;
  private refreshTimer: NodeJS.Timeout | null = null;
  private lastRefreshError = '';
  private refreshing = false;

  private constructor(
    private readonly opts: RemoteOptions,
    readonly info: PoolModelInfo,
    private readonly fingerprint: string,
    private readonly queue: Queue<ServeJobData, ServeJobResult>,
    private readonly publisher: Redis,
    private readonly subscriber: Redis,
  ) {}

  /**
   * Checks that Redis answers, reads the model (for the page, the upload's size and the
   * fingerprint), subscribes for answers and starts looking up the live workers. Workers need
   * not be up yet: until one is, requests get 503.
   */
  static async start(opts: RemoteOptions): Promise<RemoteCaptioning> {
    await checkRedis(opts.location);
    tf.env().set('PROD', true); // no "install tfjs-node" banner: this process only reads the model
    const { model } = await loadModel(opts.modelDir);
    const info: PoolModelInfo = {
      backend: 'queue',
      backendDetail: `captioned by captioner worker processes on ${opts.location.display}`,
      config: model.config,
      vocabSize: model.vocab.size,
      attentionGrid: model.attentionGrid,
    };
    model.dispose();
    const fingerprint = await modelFingerprint(opts.modelDir);
    const queue = new Queue<ServeJobData, ServeJobResult>(serveQueueName(fingerprint), {
      connection: redisOptions(opts.location),
    });
    const publisher = redisClient(opts.location);
    const subscriber = redisClient(opts.location);
    const remote = new RemoteCaptioning(opts, info, fingerprint, queue, publisher, subscriber);
    const log = opts.log ?? (() => {});
    for (const c of [publisher, subscriber]) c.on('error', (err: Error) => log(`queue: ${err.message}`));
    queue.on('error', (err) => log(`queue: ${err.message}`));
    subscriber.on('message', (channel: string, text: string) => remote.onMessage(channel, text));
    await remote.refresh();
    remote.refreshTimer = setInterval(() => void remote.refresh(), opts.refreshMs ?? 1000);
    return remote;
  }

  private async refresh(): Promise<void> {
    if (this.refreshing) return;
    this.refreshing = true;
    try {
      const before = new Set(this.workers.map((w) => w.id));
      this.workers = await liveWorkers(this.publisher);
      if (this.opts.maxWaiting !== undefined) this.waiting = await this.queue.getWaitingCount();
      this.lastRefreshError = '';
      await this.failOrphans(before);
    } catch (err) {
      // Redis unreachable: no worker can be reached either.
      this.workers = [];
      const message = (err as Error).message;
      if (message !== this.lastRefreshError) this.opts.log?.(`queue: cannot list the workers: ${message}`);
      this.lastRefreshError = message;
    } finally {
      this.refreshing = false;
    }
  }

  /**
   * Fails the requests whose worker is gone (its heartbeat expired: killed, or cut off from
   * Redis): those it said it took, and those that a worker gone since the last look (`before`)
   * took without saying so yet (BullMQ's processedBy).
   */
  private async failOrphans(before: ReadonlySet<string>): Promise<void> {
    const alive = new Set(this.workers.map((w) => w.id));
    const gone = [...before].filter((id) => !alive.has(id));
    for (const [jobId, job] of this.pending) {
      let worker = job.worker;
      if (worker === null && gone.length > 0) worker = (await this.queue.getJob(jobId))?.processedBy ?? null;
      if (worker === null || alive.has(worker)) continue;
      this.opts.log?.(`queue: worker ${worker} stopped while captioning job ${jobId}; its request fails`);
      this.cancel(
        jobId,
        new WorkerError(`the captioner worker ${worker} stopped while captioning this image; send it again`),
      );
    }
  }

  /** The live workers that serve this model's web jobs. */
  private serving(): WorkerInfo[] {
    return this.workers.filter((w) => w.model === this.fingerprint && w.serveConcurrency > 0 && !w.draining);
  }

  get isReady(): boolean {
    return !this.closing && this.serving().length > 0;
  }

  stats(): RemoteStats {
    const serving = this.serving().length;
    const jobs = [...this.pending.values()];
    return {
      workers: serving,
      ready: serving,
      busy: jobs.filter((p) => p.started !== null).length,
      queued: jobs.filter((p) => p.started === null).length,
      maxQueue: this.opts.maxJobs,
      workerTensors: [],
      tensorsByWorker: [],
      restarts: 0,
      cancelledInWorker: this.cancelledInWorker,
      accepted: this.accepted,
      reserved: this.reserved.count,
      starting: 0,
      startFailures: 0,
      queue: this.opts.location.display,
      otherModelWorkers: this.workers.filter((w) => w.model !== this.fingerprint).length,
    };
  }

  private checkAvailable(): void {
    if (this.closing) throw new UnavailableError('the server is shutting down');
    if (this.serving().length === 0)
      throw new UnavailableError(
        `no captioner worker with this model is alive on ${this.opts.location.display}; try again shortly`,
      );
  }

  /**
   * Seconds a client should wait before retrying: the work ahead (this process's requests, or the
   * jobs waiting on the queue) over the live workers' concurrency.
   */
  private retryAfterSeconds(ahead = this.pending.size): number {
    const slots = this.serving().reduce((n, w) => n + w.serveConcurrency, 0);
    return Math.max(1, Math.ceil((ahead * this.avgDecodeMs) / Math.max(1, slots) / 1000));
  }

  /** Refuses a request while the web queue holds `maxWaiting` waiting jobs (any replica's). */
  private checkWaiting(waiting: number): void {
    const bound = this.opts.maxWaiting;
    if (bound !== undefined && waiting >= bound)
      throw new QueueFullError(
        this.retryAfterSeconds(waiting),
        `${waiting} caption job${waiting === 1 ? ' waits' : 's wait'} on the queue for a worker, the bound of every web process`,
      );
  }

  reserve(): Reservation {
    this.checkAvailable();
    this.checkWaiting(this.waiting);
    return this.reserved.take(this.opts.maxJobs, () => this.retryAfterSeconds());
  }

  caption(request: CaptionRequest): Promise<CaptionOutcome> {
    try {
      this.checkAvailable();
      if (!request.reservation && this.reserved.count + this.pending.size >= this.opts.maxJobs)
        throw new QueueFullError(this.retryAfterSeconds());
    } catch (err) {
      return Promise.reject(err as Error);
    }
    if (request.signal?.aborted) return Promise.reject(new CancelledError());
    const jobId = randomUUID();
    const promise = new Promise<CaptionOutcome>((resolve, reject) => {
      const job: Pending = {
        request,
        arrived: performance.now(),
        started: null,
        worker: null,
        settled: false,
        timer: setTimeout(() => this.cancel(jobId, new TimeoutError(this.opts.timeoutMs)), this.opts.timeoutMs),
        onAbort: () => this.cancel(jobId, new CancelledError('the client disconnected')),
        resolve,
        reject,
      };
      this.pending.set(jobId, job);
      request.signal?.addEventListener('abort', job.onAbort, { once: true });
    });
    this.accepted += 1;
    void this.enqueue(jobId, request);
    return promise;
  }

  /** Subscribes to the job's channel, then adds the job (so that no word is published unheard). */
  private async enqueue(jobId: string, request: CaptionRequest): Promise<void> {
    try {
      await this.subscriber.subscribe(serveChannel(jobId));
      if (!this.pending.has(jobId)) return; // cancelled meanwhile
      if (this.opts.maxWaiting !== undefined) {
        // The count at admission may be up to refreshMs old, and other replicas add jobs too.
        this.waiting = await this.queue.getWaitingCount();
        try {
          this.checkWaiting(this.waiting);
        } catch (err) {
          this.settle(jobId, err as Error);
          return;
        }
      }
      const { prior: _, ...options } = request.options;
      await this.queue.add(
        'caption',
        { pixels: Buffer.from(request.pixels).toString('base64'), options, stream: !!request.onEvent },
        // The last jobs are kept a while (their result is only {cancelled, ms}) for operators to look at.
        { jobId, attempts: 1, removeOnComplete: KEEP_JOBS, removeOnFail: KEEP_JOBS },
      );
    } catch (err) {
      this.settle(jobId, new UnavailableError(`cannot queue the caption job: ${(err as Error).message}`));
    }
  }

  private onMessage(channel: string, text: string): void {
    const jobId = channel.slice(serveChannel('').length);
    const job = this.pending.get(jobId);
    if (!job || job.settled) return;
    const msg = JSON.parse(text) as ServeMessage;
    if (msg.type === 'started') {
      job.started = performance.now();
      job.worker = msg.worker;
    } else if (msg.type === 'event') job.request.onEvent?.(msg.event);
    else if (msg.type === 'result') {
      this.avgDecodeMs = 0.8 * this.avgDecodeMs + 0.2 * msg.ms;
      this.settle(jobId, null, {
        result: msg.result,
        ...(msg.familiarity ? { familiarity: msg.familiarity } : {}),
        decodeMs: msg.ms,
        queueMs: (job.started ?? job.arrived) - job.arrived,
      });
    } else if (msg.type === 'error') {
      // DecodeOptionsError: options the decoder refused (a 400), as from the thread pool.
      const err =
        msg.name === 'DecodeOptionsError'
          ? new HttpError(400, msg.message)
          : new WorkerError(`${msg.name}: ${msg.message}`);
      this.settle(jobId, err);
    } else {
      this.cancelledInWorker += 1;
      this.settle(jobId, new CancelledError());
    }
  }

  private settle(jobId: string, err: Error | null, outcome?: CaptionOutcome): void {
    const job = this.pending.get(jobId);
    if (!job || job.settled) return;
    job.settled = true;
    this.pending.delete(jobId);
    clearTimeout(job.timer);
    job.request.signal?.removeEventListener('abort', job.onAbort);
    // A late 'cancelled' is not waited for: the answer has gone.
    this.subscriber
      .unsubscribe(serveChannel(jobId))
      .catch((e: Error) => this.opts.log?.(`queue: unsubscribing from job ${jobId}: ${e.message}`));
    if (err) job.reject(err);
    else job.resolve(outcome!);
  }

  /**
   * Stops a job: removed from the queue if it waits (BullMQ refuses to remove a job a worker
   * holds), else named on the cancel channel so its worker stops at the next step.
   */
  private cancel(jobId: string, err: Error): void {
    const job = this.pending.get(jobId);
    if (!job || job.settled) return;
    this.settle(jobId, err);
    void (async () => {
      try {
        const removed = await this.queue.remove(jobId);
        if (removed === 0) await this.publisher.publish(CANCEL_CHANNEL, jobId);
      } catch (e) {
        this.opts.log?.(`queue: cancelling job ${jobId}: ${(e as Error).message}`);
      }
    })();
  }

  /**
   * Graceful stop: refuse new requests, give those in flight up to `graceMs`, cancel what is
   * left, and disconnect.
   */
  async close(graceMs = 10_000): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    const deadline = performance.now() + graceMs;
    while (this.pending.size > 0 && performance.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    for (const jobId of [...this.pending.keys()])
      this.cancel(jobId, new UnavailableError('the server is shutting down'));
    if (this.refreshTimer) clearInterval(this.refreshTimer);
    // Let the cancels reach Redis before the connections go.
    await new Promise((r) => setTimeout(r, 50));
    await this.queue.close();
    this.subscriber.disconnect();
    this.publisher.disconnect();
  }
}
