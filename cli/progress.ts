/**
 * Progress bars on stderr (stdout stays free for output that pipes). On a terminal the bar
 * redraws in place; elsewhere (CI, a log file) it prints a line every few seconds instead.
 */
import cliProgress from 'cli-progress';

export interface Bar {
  update(done: number, payload?: Record<string, string | number>): void;
  stop(): void;
}

/**
 * A bar for `total` units; `format` may use {bar} {value} {total} {percentage} {rate} {eta_formatted} and payload keys.
 * `startAt`: units already done before this process (a resumed run), left out of the rate and ETA.
 */
export function progressBar(
  total: number,
  format: string,
  unit = 'it',
  { startAt = 0, stream = process.stderr }: { startAt?: number; stream?: NodeJS.WritableStream } = {},
): Bar {
  const start = performance.now();
  const bar = new cliProgress.SingleBar(
    {
      format: `${format} | {rate} ${unit}/s | ETA {eta_formatted}`,
      stream,
      noTTYOutput: true,
      notTTYSchedule: 5000,
      etaBuffer: 50,
      hideCursor: true,
      barsize: 24,
    },
    cliProgress.Presets.shades_classic,
  );
  // Payload fields show "-" until the first update, rather than their raw {placeholders}.
  const blanks = Object.fromEntries([...format.matchAll(/\{(\w+)\}/g)].map((m) => [m[1]!, '-']));
  bar.start(total, startAt, { ...blanks, rate: '0' });
  return {
    update(done, payload = {}) {
      const seconds = (performance.now() - start) / 1000;
      bar.update(done, { rate: ((done - startAt) / Math.max(seconds, 1e-9)).toFixed(2), ...payload });
    },
    stop() {
      bar.stop();
    },
  };
}
