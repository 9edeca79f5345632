/**
 * The soak test's verdict (scripts/soak.ts), as pure functions of what it recorded: the answers by
 * traffic kind and status, and the server's samples over time (resident memory, live tensors per
 * worker). A run fails when
 *
 * - memory grows without bound: the Theil–Sen slope of resident memory over the second half of the
 *   run after warm-up is above `maxRssSlopeMBPerMin`, and the growth it predicts over that half is
 *   above `rssNoiseMB` (a short run's garbage-collection swings are not a trend);
 * - any answer is a 5xx other than 503 (busy) or 504 (over the time limit);
 * - any hostile request is answered 200, or any request gets an answer its kind does not expect;
 * - a worker's live tensor count, read after each of its jobs, rises above its count at the end of
 *   warm-up (its first sample, for a worker started later);
 * - the traffic saw a problem of its own (a page echoing markup unescaped, a file served from
 *   outside the static folder, a request with no answer that was not cut on purpose).
 */

/** One look at the server: seconds since the soak started, its resident memory, tensors per worker thread. */
export interface Sample {
  t: number;
  rssBytes: number;
  /** Live tensors in each ready worker after its last job, by worker thread id. */
  tensors: Record<string, number>;
}

/**
 * What a traffic kind is and which answers are right for it. Statuses are HTTP codes as strings,
 * or `cut` (the soak client hung up on purpose before the answer was complete).
 */
export interface KindSpec {
  name: string;
  group: 'good' | 'hostile' | 'disconnect' | 'burst';
  expected: readonly string[];
}

export interface Thresholds {
  /** Resident memory slope over the second half after warm-up, in MB per minute, that fails the run. */
  maxRssSlopeMBPerMin: number;
  /** Growth over that half (slope × its length) below which a slope is noise. */
  rssNoiseMB: number;
}

export const DEFAULT_THRESHOLDS: Thresholds = { maxRssSlopeMBPerMin: 2, rssNoiseMB: 24 };

export interface VerdictInput {
  kinds: readonly KindSpec[];
  /** Answers by kind, then by status. */
  answers: Record<string, Record<string, number>>;
  samples: readonly Sample[];
  /** Seconds since the start at which warm-up ended. */
  warmupEndS: number;
  /** Problems the traffic itself found, each with a count. */
  problems: Record<string, number>;
  thresholds?: Thresholds;
}

export interface RssTrend {
  /** Samples in the window the slope is measured on. */
  samples: number;
  fromS: number;
  toS: number;
  slopeMBPerMin: number;
  /** slope × window length. */
  growthMB: number;
}

export interface TensorTrend {
  worker: string;
  /** Its count at the end of warm-up (or when it first appeared), and the highest and last after. */
  baseline: number;
  max: number;
  last: number;
}

export interface Verdict {
  pass: boolean;
  failures: string[];
  rss: RssTrend | null;
  tensors: TensorTrend[];
}

const MB = 1024 * 1024;

/**
 * The Theil–Sen estimator of the slope of y against x: the median of the slopes of every pair of
 * points (Sen 1968). Garbage-collection swings and one-off spikes move it little, unlike least
 * squares. NaN with fewer than two distinct x.
 */
export function theilSenSlope(points: readonly { x: number; y: number }[]): number {
  const slopes: number[] = [];
  for (let i = 0; i < points.length; i++)
    for (let j = i + 1; j < points.length; j++) {
      const dx = points[j]!.x - points[i]!.x;
      if (dx !== 0) slopes.push((points[j]!.y - points[i]!.y) / dx);
    }
  return quantile(slopes, 0.5);
}

/** The q-quantile (0 to 1) of xs by linear interpolation between order statistics; NaN when empty. */
export function quantile(xs: readonly number[], q: number): number {
  if (xs.length === 0) return NaN;
  const sorted = [...xs].sort((a, b) => a - b);
  const at = q * (sorted.length - 1);
  const lo = Math.floor(at);
  const hi = Math.ceil(at);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (at - lo);
}

/**
 * Resident memory's trend over the second half of the run after warm-up, or null when fewer than
 * four samples fall in it (too short a run to say).
 */
export function rssTrend(samples: readonly Sample[], warmupEndS: number): RssTrend | null {
  const after = samples.filter((s) => s.t >= warmupEndS);
  if (after.length === 0) return null;
  const end = after[after.length - 1]!.t;
  const mid = warmupEndS + (end - warmupEndS) / 2;
  const window = after.filter((s) => s.t >= mid);
  if (window.length < 4) return null;
  const slopePerS = theilSenSlope(window.map((s) => ({ x: s.t, y: s.rssBytes / MB })));
  const fromS = window[0]!.t;
  const toS = window[window.length - 1]!.t;
  return { samples: window.length, fromS, toS, slopeMBPerMin: slopePerS * 60, growthMB: slopePerS * (toS - fromS) };
}

/** Each worker's tensor count after warm-up against its count at the end of warm-up. */
export function tensorTrends(samples: readonly Sample[], warmupEndS: number): TensorTrend[] {
  const trends = new Map<string, TensorTrend>();
  for (const s of samples) {
    if (s.t < warmupEndS) continue;
    for (const [worker, n] of Object.entries(s.tensors)) {
      const trend = trends.get(worker);
      if (!trend) trends.set(worker, { worker, baseline: n, max: n, last: n });
      else {
        trend.max = Math.max(trend.max, n);
        trend.last = n;
      }
    }
  }
  return [...trends.values()];
}

/** Judges a soak run; `failures` says why in words, one line per reason. */
export function judge(input: VerdictInput): Verdict {
  const thresholds = input.thresholds ?? DEFAULT_THRESHOLDS;
  const failures: string[] = [];
  const byName = new Map(input.kinds.map((k) => [k.name, k]));

  for (const [kind, statuses] of Object.entries(input.answers)) {
    const spec = byName.get(kind);
    for (const [status, count] of Object.entries(statuses)) {
      if (count === 0) continue;
      const code = Number(status);
      if (code >= 500 && code !== 503 && code !== 504) failures.push(`${kind}: ${count} answer(s) ${status}`);
      else if (spec?.group === 'hostile' && code === 200)
        failures.push(`${kind}: a hostile request answered 200 (${count}×)`);
      else if (spec && !spec.expected.includes(status))
        failures.push(`${kind}: ${count} answer(s) ${status}; expected ${spec.expected.join(' or ')}`);
    }
  }

  for (const [problem, count] of Object.entries(input.problems)) if (count > 0) failures.push(`${problem} (${count}×)`);

  const rss = rssTrend(input.samples, input.warmupEndS);
  if (!rss) failures.push('too few memory samples after warm-up to judge the trend (a longer run is needed)');
  else if (rss.slopeMBPerMin > thresholds.maxRssSlopeMBPerMin && rss.growthMB > thresholds.rssNoiseMB)
    failures.push(
      `resident memory grows: ${rss.slopeMBPerMin.toFixed(1)} MB/min over the second half after warm-up ` +
        `(${rss.growthMB.toFixed(0)} MB in ${((rss.toS - rss.fromS) / 60).toFixed(1)} min; ` +
        `the bound is ${thresholds.maxRssSlopeMBPerMin} MB/min beyond ${thresholds.rssNoiseMB} MB of noise)`,
    );

  const tensors = tensorTrends(input.samples, input.warmupEndS);
  if (tensors.length === 0) failures.push('no worker tensor counts were sampled after warm-up');
  for (const t of tensors)
    if (t.max > t.baseline)
      failures.push(`worker ${t.worker}: live tensors grew from ${t.baseline} to ${t.max} (last ${t.last})`);

  return { pass: failures.length === 0, failures, rss, tensors };
}
