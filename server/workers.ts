/**
 * A pool of caption worker threads with a bounded queue. Inference runs off the event loop:
 * each worker (server/worker.ts) loads the model once and captions one image at a time, so
 * uploads, pages and health checks stay responsive while captions are generated.
 *
 * Admission control: a job goes to an idle worker, else waits in a queue of at most `maxQueue`
 * jobs; past that `caption()` fails at once with QueueFullError (503 + Retry-After) — there is
 * never an unbounded backlog. The server reserves a place (`reserve()`) before it reads and
 * decodes an upload, so that at most `workers + maxQueue` requests are being read, decoded,
 * queued or captioned at once. Every job has a time limit counted from its arrival (queue wait
 * included), and an AbortSignal (the client disconnecting) cancels it: a queued job is dropped,
 * a running one is told to stop at its next decoder step. A worker that does not stop within
 * `cancelGraceMs` is terminated and replaced; a replacement that cannot load the model is retried
 * with a growing delay, each failure logged, and while no worker is ready every request is
 * refused at once (UnavailableError, 503) rather than left to time out.
 */
import { Worker } from 'node:worker_threads';
import { BackendError } from '../model/runtime/backend.ts';
import type { ModelConfig } from '../model/nn/captioner.ts';
import { CheckpointError } from '../model/io/checkpoint.ts';
import type { CaptionResult, DecodeOptions, StreamEvent } from '../model/decode/decode.ts';
import type { Familiarity } from '../model/familiarity/familiarity.ts';
import { CancelledError, HttpError, QueueFullError, TimeoutError, UnavailableError, WorkerError } from './errors.ts';

/** What a worker thread is started with. */
export interface WorkerInit {
  modelDir: string;
  backend?: string;
}

/** Messages to a worker. `pixels`: size × size × 3 RGB bytes from model/data/image.ts. */
export type ToWorker =
  | { type: 'run'; id: number; pixels: Uint8Array; options: DecodeOptions; stream: boolean }
  | { type: 'cancel'; id: number };

/** Messages from a worker. */
export type FromWorker =
  | {
      type: 'ready';
      backend: string;
      backendDetail: string;
      model: { config: ModelConfig; vocabSize: number; attentionGrid: [number, number] | null };
      numTensors: number;
    }
  | { type: 'fatal'; name: string; message: string }
  | { type: 'event'; id: number; event: Exclude<StreamEvent, { type: 'done' }> }
  // numTensors: the worker's live tensors once the job's own are freed (it should not grow).
  | { type: 'result'; id: number; result: CaptionResult; familiarity?: Familiarity; ms: number; numTensors: number }
  | { type: 'error'; id: number; name: string; message: string; numTensors: number }
  | { type: 'cancelled'; id: number; numTensors: number };

export interface PoolOptions {
  modelDir: string;
  /** Worker threads, each with its own copy of the model. */
  workers: number;
  /** Jobs that may wait for a worker; beyond this, QueueFullError. */
  maxQueue: number;
  /** Time limit per job in ms, from arrival to result. */
  timeoutMs: number;
  /** Force a TF.js backend in the workers (see model/runtime/backend.ts). */
  backend?: string;
  /** How long a cancelled worker may take to stop before it is terminated (default 2000 ms). */
  cancelGraceMs?: number;
  /**
   * The delay before retrying a replacement worker that could not load the model: `initialMs`,
   * doubling after each failure up to `maxMs` (default 1 s to 30 s).
   */
  restartBackoff?: { initialMs: number; maxMs: number };
  /** Log lines: a worker that died, a replacement that could not load the model. */
  log?: (line: string) => void;
}

/** What the loaded model is, as reported by a worker. */
export interface PoolModelInfo {
  backend: string;
  /** For the CPU backend: whether the native kernels (model/runtime/native.ts) are on. */
  backendDetail: string;
  config: ModelConfig;
  vocabSize: number;
  /** For a model with attention, the [rows, columns] of the grid its weights are over; else null. */
  attentionGrid: [number, number] | null;
}

export interface CaptionOutcome {
  result: CaptionResult;
  /** How familiar the image looks to the model (model/familiarity/); absent for a model never calibrated. */
  familiarity?: Familiarity;
  /** Time the worker spent decoding, and the time the job waited in the queue, in ms. */
  decodeMs: number;
  queueMs: number;
}

export interface CaptionRequest {
  pixels: Uint8Array;
  options: DecodeOptions;
  /** Aborting it cancels the job (e.g. the client disconnected). */
  signal?: AbortSignal;
  /** Receives `word` and `hypothesis` events as the worker decodes (streaming). */
  onEvent?: (event: Exclude<StreamEvent, { type: 'done' }>) => void;
  /** The place `reserve()` gave this request: its queue place is already counted. */
  reservation?: Reservation;
}

export interface PoolStats {
  workers: number;
  ready: number;
  busy: number;
  queued: number;
  maxQueue: number;
  /** Live tensors in each ready worker after its last job (it should not grow). */
  workerTensors: number[];
  /** The same by worker thread id, so that a series follows one worker across replacements. */
  tensorsByWorker: { threadId: number; numTensors: number }[];
  restarts: number;
  /** Jobs a worker stopped part-way on being cancelled (timeout, disconnect). */
  cancelledInWorker: number;
  /** Jobs accepted (queued or started) since the pool started. */
  accepted: number;
  /** Places reserved by requests being read, decoded, queued or captioned (see `reserve`). */
  reserved: number;
  /** Replacement workers loading the model now or waiting to try again. */
  starting: number;
  /** Replacement workers that could not load the model, since the pool started. */
  startFailures: number;
}

/** A place held for one request from before its upload is read until its response ends. */
export interface Reservation {
  /** Frees the place; safe to call more than once. */
  release(): void;
}

/** The places held by reservations: a caption service's admission counter. */
export class ReservedPlaces {
  count = 0;

  /** Takes a place, or throws QueueFullError (retry after `retryAfter()` seconds) when `bound` are held. */
  take(bound: number, retryAfter: () => number): Reservation {
    if (this.count >= bound) throw new QueueFullError(retryAfter());
    this.count += 1;
    let held = true;
    return {
      release: () => {
        if (held) this.count -= 1;
        held = false;
      },
    };
  }
}

interface Job {
  id: number;
  request: CaptionRequest;
  arrived: number;
  started: number;
  settled: boolean;
  timer: NodeJS.Timeout;
  onAbort: () => void;
  resolve(outcome: CaptionOutcome): void;
  reject(err: Error): void;
}

interface Slot {
  worker: Worker;
  ready: boolean;
  job: Job | null;
  /** Set when the job was cancelled and the worker must stop within the grace period. */
  watchdog: NodeJS.Timeout | null;
  numTensors: number;
}

const ENTRY = new URL('./worker-entry.js', import.meta.url);

export class WorkerPool {
  private readonly slots: Slot[] = [];
  private readonly queue: Job[] = [];
  private nextId = 1;
  private closing = false;
  private restarts = 0;
  private cancelledInWorker = 0;
  private accepted = 0;
  private readonly reserved = new ReservedPlaces();
  private startFailures = 0;
  /** Replacements waiting for their retry delay. */
  private readonly retryTimers = new Set<NodeJS.Timeout>();
  /** Exponential moving average of decode time, for Retry-After. */
  private avgDecodeMs = 200;
  private modelInfo: PoolModelInfo | null = null;

  private constructor(private readonly opts: PoolOptions) {}

  /** Starts `opts.workers` workers and resolves once every one has loaded the model. */
  static async start(opts: PoolOptions): Promise<WorkerPool> {
    if (!(opts.workers >= 1)) throw new Error(`workers must be at least 1, got ${opts.workers}`);
    const pool = new WorkerPool(opts);
    try {
      await Promise.all(Array.from({ length: opts.workers }, () => pool.spawn()));
    } catch (err) {
      await pool.terminateAll();
      throw err;
    }
    return pool;
  }

  /** The model and backend the workers loaded. */
  get info(): PoolModelInfo {
    if (!this.modelInfo) throw new Error('the pool has not started');
    return this.modelInfo;
  }

  stats(): PoolStats {
    const ready = this.slots.filter((s) => s.ready);
    return {
      workers: this.opts.workers,
      ready: ready.length,
      busy: this.slots.filter((s) => s.job).length,
      queued: this.queue.length,
      maxQueue: this.opts.maxQueue,
      workerTensors: ready.map((s) => s.numTensors),
      tensorsByWorker: ready.map((s) => ({ threadId: s.worker.threadId, numTensors: s.numTensors })),
      restarts: this.restarts,
      cancelledInWorker: this.cancelledInWorker,
      accepted: this.accepted,
      reserved: this.reserved.count,
      starting: this.slots.filter((s) => !s.ready).length + this.retryTimers.size,
      startFailures: this.startFailures,
    };
  }

  /** True while the pool accepts work and has a worker with the model loaded. */
  get isReady(): boolean {
    return !this.closing && this.slots.some((s) => s.ready);
  }

  private spawn(): Promise<void> {
    const init: WorkerInit = {
      modelDir: this.opts.modelDir,
      ...(this.opts.backend ? { backend: this.opts.backend } : {}),
    };
    const worker = new Worker(ENTRY, { workerData: init });
    const slot: Slot = { worker, ready: false, job: null, watchdog: null, numTensors: 0 };
    this.slots.push(slot);
    const loaded = new Promise<void>((resolve, reject) => {
      let started = false;
      worker.on('message', (msg: FromWorker) => {
        if (msg.type === 'ready') {
          started = true;
          slot.ready = true;
          slot.numTensors = msg.numTensors;
          this.modelInfo ??= {
            backend: msg.backend,
            backendDetail: msg.backendDetail,
            config: msg.model.config,
            vocabSize: msg.model.vocabSize,
            attentionGrid: msg.model.attentionGrid,
          };
          resolve();
          this.dispatch();
        } else if (msg.type === 'fatal') {
          // The library's typed errors keep their type, so the CLI maps them to its exit codes.
          if (msg.name === 'CheckpointError') reject(new CheckpointError(msg.message));
          else if (msg.name === 'BackendError') reject(new BackendError(msg.message));
          else reject(new WorkerError(`a caption worker could not start: ${msg.name}: ${msg.message}`));
        } else {
          this.onJobMessage(slot, msg);
        }
      });
      worker.on('error', (err) => {
        if (!started) reject(new WorkerError(`a caption worker could not start: ${err.message}`));
        else this.failSlot(slot, new WorkerError(`the caption worker crashed: ${err.message}`));
      });
      worker.on('exit', (code) => {
        if (!started) reject(new WorkerError(`a caption worker exited with code ${code} before loading the model`));
        else this.failSlot(slot, new WorkerError(`the caption worker exited (code ${code})`));
      });
    });
    // A worker that could not load the model holds no place in the pool.
    return loaded.catch(async (err: unknown) => {
      const i = this.slots.indexOf(slot);
      if (i >= 0) this.slots.splice(i, 1);
      await worker.terminate();
      throw err;
    });
  }

  /** A worker died or was terminated: fail its job, replace it (unless closing). */
  private failSlot(slot: Slot, err: Error): void {
    const i = this.slots.indexOf(slot);
    if (i < 0) return;
    this.slots.splice(i, 1);
    if (slot.watchdog) clearTimeout(slot.watchdog);
    if (slot.job) this.settle(slot.job, err);
    slot.job = null;
    if (this.closing) return;
    this.restarts += 1;
    this.opts.log?.(`worker: ${err.message}; starting a replacement`);
    this.replace(1);
  }

  /**
   * Starts a replacement worker; if it cannot load the model (its directory changed since the
   * start, say), logs why and tries again after a delay that doubles up to `restartBackoff.maxMs`.
   * While no worker is ready, queued jobs are refused rather than left to time out.
   */
  private replace(attempt: number): void {
    this.spawn().then(
      () => {
        if (attempt > 1) this.opts.log?.(`worker: a replacement loaded the model (attempt ${attempt})`);
      },
      (err: unknown) => {
        if (this.closing) return;
        this.startFailures += 1;
        const { initialMs, maxMs } = this.opts.restartBackoff ?? { initialMs: 1000, maxMs: 30_000 };
        const delay = Math.min(maxMs, initialMs * 2 ** (attempt - 1));
        this.opts.log?.(
          `worker: a replacement could not load the model (attempt ${attempt}): ${(err as Error).message}; retrying in ${delay} ms`,
        );
        if (!this.slots.some((s) => s.ready)) {
          for (const job of this.queue.splice(0)) this.settle(job, this.unavailable());
        }
        const timer = setTimeout(() => {
          this.retryTimers.delete(timer);
          if (!this.closing) this.replace(attempt + 1);
        }, delay);
        this.retryTimers.add(timer);
      },
    );
  }

  private unavailable(): UnavailableError {
    return new UnavailableError('no caption worker has the model loaded; try again shortly');
  }

  private onJobMessage(slot: Slot, msg: Exclude<FromWorker, { type: 'ready' | 'fatal' }>): void {
    const job = slot.job;
    if (!job || job.id !== msg.id) return; // a late message for a job already replaced
    if (msg.type === 'event') {
      if (!job.settled) job.request.onEvent?.(msg.event);
      return;
    }
    // result, error or cancelled: the worker is free again.
    slot.job = null;
    if (slot.watchdog) clearTimeout(slot.watchdog);
    slot.watchdog = null;
    slot.numTensors = msg.numTensors;
    if (msg.type === 'result') {
      this.avgDecodeMs = 0.8 * this.avgDecodeMs + 0.2 * msg.ms;
      this.settle(job, null, {
        result: msg.result,
        ...(msg.familiarity ? { familiarity: msg.familiarity } : {}),
        decodeMs: msg.ms,
        queueMs: job.started - job.arrived,
      });
    } else if (msg.type === 'error') {
      // DecodeOptionsError: options the decoder refused (a 400).
      const status = msg.name === 'DecodeOptionsError' ? 400 : 500;
      this.settle(
        job,
        status === 400 ? new HttpError(400, msg.message) : new WorkerError(`${msg.name}: ${msg.message}`),
      );
    } else {
      this.cancelledInWorker += 1;
      this.settle(job, new CancelledError());
    }
    this.dispatch();
  }

  private settle(job: Job, err: Error | null, outcome?: CaptionOutcome): void {
    if (job.settled) return;
    job.settled = true;
    clearTimeout(job.timer);
    job.request.signal?.removeEventListener('abort', job.onAbort);
    if (err) job.reject(err);
    else job.resolve(outcome!);
  }

  private dispatch(): void {
    for (const slot of this.slots) {
      if (!slot.ready || slot.job) continue;
      const job = this.queue.shift();
      if (!job) return;
      slot.job = job;
      job.started = performance.now();
      const msg: ToWorker = {
        type: 'run',
        id: job.id,
        pixels: job.request.pixels,
        options: job.request.options,
        stream: !!job.request.onEvent,
      };
      slot.worker.postMessage(msg);
    }
  }

  /** Stops a job: drops it from the queue, or tells its worker to stop (terminating it if it will not). */
  private cancel(job: Job, err: Error): void {
    this.settle(job, err);
    const q = this.queue.indexOf(job);
    if (q >= 0) {
      this.queue.splice(q, 1);
      return;
    }
    const slot = this.slots.find((s) => s.job === job);
    if (!slot || slot.watchdog) return;
    slot.worker.postMessage({ type: 'cancel', id: job.id } satisfies ToWorker);
    slot.watchdog = setTimeout(() => {
      if (slot.job === job) void slot.worker.terminate(); // 'exit' → failSlot replaces it
    }, this.opts.cancelGraceMs ?? 2000);
  }

  /** Seconds a client should wait before retrying when the queue is full. */
  private retryAfterSeconds(): number {
    const ahead = this.queue.length + this.slots.filter((s) => s.job).length;
    return Math.max(1, Math.ceil((ahead * this.avgDecodeMs) / Math.max(1, this.slots.length) / 1000));
  }

  /**
   * Throws what `caption()` would refuse a job with now (QueueFullError, UnavailableError), so
   * that a request can be turned away before its upload is read and decoded.
   */
  checkAdmission(): void {
    this.checkAvailable();
    const idle = this.slots.some((s) => s.ready && !s.job);
    if (!idle && this.queue.length >= this.opts.maxQueue) throw new QueueFullError(this.retryAfterSeconds());
  }

  /** Throws UnavailableError while shutting down or while no worker has the model loaded. */
  private checkAvailable(): void {
    if (this.closing) throw new UnavailableError('the server is shutting down');
    // A worker being replaced (after a crash or a forced stop) takes jobs once it is ready.
    if (!this.slots.some((s) => s.ready)) throw this.unavailable();
  }

  /**
   * Reserves a place for one request before its upload is read and decoded, so that decoding is
   * inside the admission limit: at most `workers + maxQueue` places. Throws QueueFullError past
   * that, UnavailableError when no worker is ready. The caller releases the place when its
   * response ends, and passes it to `caption()`, which then skips the queue-length check.
   */
  reserve(): Reservation {
    this.checkAvailable();
    return this.reserved.take(this.opts.workers + this.opts.maxQueue, () => this.retryAfterSeconds());
  }

  /**
   * Captions one image (its pixels from model/data/image.ts). Rejects at once with QueueFullError
   * when every worker is busy and the queue is full (unless the request holds a reservation),
   * UnavailableError while shutting down or with no worker ready; later with TimeoutError past the
   * time limit, CancelledError when `signal` aborts.
   */
  caption(request: CaptionRequest): Promise<CaptionOutcome> {
    try {
      if (request.reservation) this.checkAvailable();
      else this.checkAdmission();
    } catch (err) {
      return Promise.reject(err as Error);
    }
    if (request.signal?.aborted) return Promise.reject(new CancelledError());
    return new Promise<CaptionOutcome>((resolve, reject) => {
      const now = performance.now();
      const job: Job = {
        id: this.nextId++,
        request,
        arrived: now,
        started: now,
        settled: false,
        timer: setTimeout(() => this.cancel(job, new TimeoutError(this.opts.timeoutMs)), this.opts.timeoutMs),
        onAbort: () => this.cancel(job, new CancelledError('the client disconnected')),
        resolve,
        reject,
      };
      request.signal?.addEventListener('abort', job.onAbort, { once: true });
      this.accepted += 1;
      this.queue.push(job);
      this.dispatch();
    });
  }

  /**
   * Graceful stop: refuse new work and drop queued jobs (UnavailableError), give running jobs
   * up to `graceMs` to finish, cancel what is left, then end the worker threads.
   */
  async close(graceMs = 10_000): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    for (const job of this.queue.splice(0)) this.settle(job, new UnavailableError('the server is shutting down'));
    const deadline = performance.now() + graceMs;
    while (this.slots.some((s) => s.job) && performance.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    for (const slot of this.slots)
      if (slot.job) this.settle(slot.job, new UnavailableError('the server is shutting down'));
    await this.terminateAll();
  }

  private async terminateAll(): Promise<void> {
    this.closing = true;
    for (const timer of this.retryTimers) clearTimeout(timer);
    this.retryTimers.clear();
    const slots = this.slots.splice(0);
    for (const s of slots) if (s.watchdog) clearTimeout(s.watchdog);
    await Promise.all(slots.map((s) => s.worker.terminate()));
  }
}
