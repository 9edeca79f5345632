/**
 * A run's metrics.jsonl: one JSON record a line, a 'step' record every `logEvery` steps and an
 * 'epoch' record at each validation. A resumed run first cuts the file back to its checkpoint,
 * so that every step is logged once.
 */
import { appendFile, readFile } from 'node:fs/promises';
import { writeFileAtomic } from '../io/fsutil.ts';

/** Appends one record as a line. */
export async function appendMetrics(path: string, record: Record<string, unknown>): Promise<void> {
  await appendFile(path, JSON.stringify(record) + '\n');
}

/**
 * Keeps only the metric lines at or before `step` (a missing file becomes an empty one): a
 * resumed run rewrites what came after.
 */
export async function truncateMetrics(path: string, step: number): Promise<void> {
  let text = '';
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const kept = text.split('\n').filter((line) => {
    if (!line.trim()) return false;
    try {
      return (JSON.parse(line) as { step?: number }).step! <= step;
    } catch {
      return false; // a line cut short by a kill
    }
  });
  await writeFileAtomic(path, kept.map((l) => l + '\n').join(''));
}

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
