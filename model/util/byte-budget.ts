/**
 * A budget of bytes shared first come first served: each task asks for its bytes and waits, in
 * arrival order, until they fit beside what the running tasks hold. A task larger than the whole
 * budget runs alone rather than never. The server bounds the memory of the uploads it decodes
 * with it (server/decode-budget.ts), batch captioning the images it loads ahead
 * (batch/prefetch.ts); the bytes are each decode's estimate (model/data/image-header.ts
 * `decodeMemoryBytes`).
 */

/** A wait for room given up because its AbortSignal aborted; the task never ran. */
export class BudgetWaitCancelledError extends Error {
  override name = 'BudgetWaitCancelledError';
}

export interface ByteBudgetStats {
  /** Tasks holding bytes now. */
  running: number;
  /** Tasks waiting for room. */
  waiting: number;
  /** Bytes the running tasks hold. */
  bytes: number;
  /** The most bytes held at once so far. */
  peakBytes: number;
}

interface Waiter {
  bytes: number;
  start(): void;
}

export class ByteBudget {
  private held = 0;
  private running = 0;
  private peak = 0;
  private readonly waiters: Waiter[] = [];

  constructor(readonly capacityBytes: number) {
    if (!(capacityBytes > 0)) throw new RangeError(`a byte budget must be positive, got ${capacityBytes}`);
  }

  /**
   * Runs `task` once `bytes` fit in the budget, and gives them back when it settles. Rejects with
   * BudgetWaitCancelledError, without running `task`, if `signal` aborts first.
   */
  async run<T>(bytes: number, signal: AbortSignal | undefined, task: () => Promise<T>): Promise<T> {
    await this.acquire(bytes, signal);
    try {
      return await task();
    } finally {
      this.release(bytes);
    }
  }

  /**
   * Resolves once `bytes` are held for the caller: at once if nothing waits and they fit (or
   * nothing runs), else when the waiters before it have started and they fit. Each acquire is
   * followed by one `release` of the same bytes. Rejects with BudgetWaitCancelledError if
   * `signal` aborts first.
   */
  acquire(bytes: number, signal?: AbortSignal): Promise<void> {
    if (!(bytes >= 0 && Number.isFinite(bytes))) {
      return Promise.reject(new RangeError(`bytes must be finite and ≥ 0, got ${bytes}`));
    }
    const cancelled = () => new BudgetWaitCancelledError(`cancelled while waiting for ${bytes} bytes`);
    if (signal?.aborted) return Promise.reject(cancelled());
    if (this.waiters.length === 0 && this.fits(bytes)) {
      this.take(bytes);
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter = {
        bytes,
        start: () => {
          signal?.removeEventListener('abort', onAbort);
          this.take(bytes);
          resolve();
        },
      };
      const onAbort = () => {
        const i = this.waiters.indexOf(waiter);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(cancelled());
        this.startWaiters(); // the head may have been what held the others back
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(waiter);
    });
  }

  /** Gives back bytes an `acquire` took, and starts the waiters that now fit. */
  release(bytes: number): void {
    this.held -= bytes;
    this.running -= 1;
    this.startWaiters();
  }

  stats(): ByteBudgetStats {
    return { running: this.running, waiting: this.waiters.length, bytes: this.held, peakBytes: this.peak };
  }

  private fits(bytes: number): boolean {
    return this.running === 0 || this.held + bytes <= this.capacityBytes;
  }

  private take(bytes: number): void {
    this.held += bytes;
    this.running += 1;
    this.peak = Math.max(this.peak, this.held);
  }

  /** Starts waiters in arrival order while the next one fits. */
  private startWaiters(): void {
    while (this.waiters.length > 0 && this.fits(this.waiters[0]!.bytes)) this.waiters.shift()!.start();
  }
}
