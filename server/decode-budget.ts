/**
 * The memory that image decodes in progress may hold together. Each decode asks for its
 * estimated bytes (server/upload.ts `decodeMemoryBytes`) and waits, first come first served,
 * until they fit; a request whose client leaves while it waits is dropped without decoding.
 * How many decodes can wait is bounded by the admission limit (server/workers.ts `reserve`), so
 * the wait is bounded too.
 */
import { CancelledError } from './errors.ts';

interface Waiter {
  bytes: number;
  start(): void;
}

export interface DecodeBudgetStats {
  /** Decodes running now. */
  decoding: number;
  /** Decodes waiting for memory. */
  waiting: number;
  /** Bytes the running decodes hold (by their estimates). */
  bytes: number;
  /** The most bytes held at once since the server started. */
  peakBytes: number;
}

export class DecodeBudget {
  private held = 0;
  private running = 0;
  private peak = 0;
  private readonly waiters: Waiter[] = [];

  constructor(readonly capacityBytes: number) {
    if (!(capacityBytes > 0)) throw new RangeError(`the decode memory budget must be positive, got ${capacityBytes}`);
  }

  /**
   * Runs `decode` once `bytes` fit in the budget (at once if nothing else is decoding: a single
   * image larger than the budget has been refused before it gets here). Rejects with
   * CancelledError, without running `decode`, if `signal` aborts first.
   */
  async run<T>(bytes: number, signal: AbortSignal | undefined, decode: () => Promise<T>): Promise<T> {
    const need = Math.min(Math.max(0, bytes), this.capacityBytes);
    await this.acquire(need, signal);
    try {
      return await decode();
    } finally {
      this.release(need);
    }
  }

  stats(): DecodeBudgetStats {
    return { decoding: this.running, waiting: this.waiters.length, bytes: this.held, peakBytes: this.peak };
  }

  private fits(bytes: number): boolean {
    return this.running === 0 || this.held + bytes <= this.capacityBytes;
  }

  private take(bytes: number): void {
    this.held += bytes;
    this.running += 1;
    this.peak = Math.max(this.peak, this.held);
  }

  private acquire(bytes: number, signal: AbortSignal | undefined): Promise<void> {
    if (signal?.aborted) return Promise.reject(new CancelledError('the client disconnected'));
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
        reject(new CancelledError('the client disconnected'));
        this.startWaiters(); // the head may have been what held the others back
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(waiter);
    });
  }

  private release(bytes: number): void {
    this.held -= bytes;
    this.running -= 1;
    this.startWaiters();
  }

  /** Starts waiting decodes in arrival order while the next one fits. */
  private startWaiters(): void {
    while (this.waiters.length > 0 && this.fits(this.waiters[0]!.bytes)) this.waiters.shift()!.start();
  }
}
