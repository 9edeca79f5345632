/**
 * The training loop's throughput figures for metrics.jsonl's step records (the log itself is read
 * and written by model/io/metrics-log.ts).
 */

/**
 * Throughput since the last 'step' record: tokens and images trained on, and the time spent
 * waiting for pixels, over the wall time since `reset`.
 */
export class ThroughputWindow {
  private tokens = 0;
  private images = 0;
  private started = performance.now();
  /** Milliseconds the loop waited for batch pixels in this window. */
  waitMs = 0;

  add(tokens: number, images: number): void {
    this.tokens += tokens;
    this.images += images;
  }

  /** Tokens and images per second so far in this window. */
  rates(): { tokensPerSecond: number; imagesPerSecond: number } {
    const seconds = Math.max((performance.now() - this.started) / 1000, 1e-9);
    return { tokensPerSecond: this.tokens / seconds, imagesPerSecond: this.images / seconds };
  }

  reset(): void {
    this.tokens = 0;
    this.images = 0;
    this.waitMs = 0;
    this.started = performance.now();
  }
}
