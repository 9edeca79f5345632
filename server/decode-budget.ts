/**
 * The memory that image decodes in progress may hold together: the model's first-come-first-served
 * byte budget (model/util/byte-budget.ts), each decode asking for its estimate
 * (model/data/image-header.ts `decodeMemoryBytes`). A request whose client leaves while it waits is
 * dropped without decoding, as the server's CancelledError. How many decodes can wait is bounded by
 * the admission limit (server/workers.ts `reserve`), so the wait is bounded too.
 */
import { BudgetWaitCancelledError, ByteBudget } from '../model/util/byte-budget.ts';
import { CancelledError } from './errors.ts';

/** What /metrics reads (captioner_image_decodes*). */
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
  private readonly budget: ByteBudget;

  constructor(readonly capacityBytes: number) {
    this.budget = new ByteBudget(capacityBytes);
  }

  /**
   * Runs `decode` once `bytes` fit in the budget (at once if nothing else is decoding: a single
   * image larger than the budget has been refused before it gets here). Rejects with
   * CancelledError, without running `decode`, if `signal` aborts first.
   */
  async run<T>(bytes: number, signal: AbortSignal | undefined, decode: () => Promise<T>): Promise<T> {
    try {
      return await this.budget.run(bytes, signal, decode);
    } catch (err) {
      if (err instanceof BudgetWaitCancelledError) throw new CancelledError('the client disconnected');
      throw err;
    }
  }

  stats(): DecodeBudgetStats {
    const { running, ...rest } = this.budget.stats();
    return { decoding: running, ...rest };
  }
}
