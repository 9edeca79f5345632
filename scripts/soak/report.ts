/** The soak test's figures as a table for people (scripts/soak.ts prints them; `--json` prints the object). */
import type { Sample, Verdict } from './verdict.ts';

export interface SoakReport {
  command: string;
  startedAt: string;
  /** The machine's 1, 5 and 15 minute load averages at the start and the end. */
  loadAverage: { start: number[]; end: number[] };
  server: {
    model: string;
    url: string;
    workers: number;
    queue: number;
    beam: number;
    backend: string;
    /** The server's exit code after SIGTERM (0: a graceful stop). */
    exitCode: number | null;
  };
  traffic: { clients: number; burstSize: number; burstEveryS: number; seed: number };
  durationS: number;
  warmupEndS: number;
  kinds: { name: string; group: string; describe: string; expected: readonly string[] }[];
  /** Answers by kind, then status (an HTTP code, `cut`: the client hung up on purpose, `error`: no answer). */
  answers: Record<string, Record<string, number>>;
  problems: Record<string, number>;
  /** The first few requests that got no answer, with why. */
  errors: string[];
  /** What the server counted (/metrics captioner_http_requests_total), by route and status. */
  serverCounts: Record<string, Record<string, number>>;
  rss: { startMB: number; peakMB: number; endMB: number };
  eventLoopDelayMs: { p50: number; p99: number; max: number };
  samples: Sample[];
  verdict: Verdict;
}

const pad = (s: string, n: number) => s.padEnd(n);
const lpad = (s: string, n: number) => s.padStart(n);

/** A table of counts: one row per key, one column per status seen anywhere. */
function countTable(rows: [string, string, Record<string, number>][], firstHeader: string): string[] {
  const statuses = [...new Set(rows.flatMap(([, , c]) => Object.keys(c)))].sort((a, b) => {
    const [na, nb] = [Number(a), Number(b)];
    if (Number.isNaN(na) || Number.isNaN(nb))
      return Number.isNaN(na) ? (Number.isNaN(nb) ? a.localeCompare(b) : 1) : -1;
    return na - nb;
  });
  const nameWidth = Math.max(firstHeader.length, ...rows.map(([n]) => n.length)) + 2;
  const widths = statuses.map((s) => Math.max(5, s.length + 1));
  const lines = [
    `  ${pad(firstHeader, nameWidth)}${pad('group', 12)}${lpad('total', 7)}` +
      statuses.map((s, i) => lpad(s, widths[i]!)).join(''),
  ];
  for (const [name, group, counts] of rows) {
    const total = Object.values(counts).reduce((a, b) => a + b, 0);
    lines.push(
      `  ${pad(name, nameWidth)}${pad(group, 12)}${lpad(String(total), 7)}` +
        statuses.map((s, i) => lpad(counts[s] ? String(counts[s]) : '·', widths[i]!)).join(''),
    );
  }
  return lines;
}

/** Values of a per-worker series at about `points` evenly spaced times. */
function tensorSeries(samples: readonly Sample[], points = 6): string[] {
  const workers = [...new Set(samples.flatMap((s) => Object.keys(s.tensors)))];
  return workers.map((w) => {
    const own = samples.filter((s) => s.tensors[w] !== undefined);
    const picks = Array.from(
      { length: Math.min(points, own.length) },
      (_, i) => own[Math.round((i * (own.length - 1)) / Math.max(1, points - 1))]!,
    );
    return `  worker ${w}: ${picks.map((s) => `${s.tensors[w]} @${(s.t / 60).toFixed(1)} min`).join(', ')}`;
  });
}

export function formatReport(r: SoakReport): string {
  const v = r.verdict;
  const minutes = (s: number) => `${(s / 60).toFixed(1)} min`;
  const lines = [
    `soak: ${minutes(r.durationS)} against ${r.server.model} on ${r.server.url} (${r.server.backend} backend, ` +
      `${r.server.workers} worker${r.server.workers === 1 ? '' : 's'}, queue ${r.server.queue}, beam ${r.server.beam})`,
    `  ${r.traffic.clients} clients of mixed traffic, bursts of ${r.traffic.burstSize} every ${r.traffic.burstEveryS} s, seed ${r.traffic.seed}; warm-up until ${minutes(r.warmupEndS)}`,
    `  started ${r.startedAt}; load average ${r.loadAverage.start.map((x) => x.toFixed(2)).join(' ')} at the start, ${r.loadAverage.end.map((x) => x.toFixed(2)).join(' ')} at the end`,
    `  command: ${r.command}`,
    '',
    'requests by kind and status (cut: the client hung up on purpose; error: no answer)',
    ...countTable(
      r.kinds.map((k) => [k.name, k.group, r.answers[k.name] ?? {}]),
      'kind',
    ),
    '',
    'as the server counted them (/metrics; 499: the client left before the answer)',
    ...countTable(
      Object.entries(r.serverCounts).map(([route, counts]) => [route, '', counts]),
      'route',
    ),
    '',
    `resident memory (server process, worker threads included): start ${r.rss.startMB.toFixed(0)} MB, ` +
      `peak ${r.rss.peakMB.toFixed(0)} MB, end ${r.rss.endMB.toFixed(0)} MB`,
    v.rss
      ? `  slope over the second half after warm-up (${minutes(v.rss.fromS)} to ${minutes(v.rss.toS)}, ${v.rss.samples} samples, Theil–Sen): ` +
        `${v.rss.slopeMBPerMin >= 0 ? '+' : ''}${v.rss.slopeMBPerMin.toFixed(2)} MB/min (${v.rss.growthMB >= 0 ? '+' : ''}${v.rss.growthMB.toFixed(1)} MB over it)`
      : '  slope: too few samples after warm-up',
    `event-loop delay (server main thread, beyond a 10 ms timer): p50 ${r.eventLoopDelayMs.p50.toFixed(1)} ms, ` +
      `p99 ${r.eventLoopDelayMs.p99.toFixed(1)} ms, max ${r.eventLoopDelayMs.max.toFixed(1)} ms`,
    'live tensors per worker (after each job), over time',
    ...tensorSeries(r.samples),
    '',
    v.pass ? 'verdict: PASS' : `verdict: FAIL\n${v.failures.map((f) => `  - ${f}`).join('\n')}`,
  ];
  if (r.errors.length) lines.push('', 'requests without an answer (first few):', ...r.errors.map((e) => `  ${e}`));
  return lines.join('\n') + '\n';
}
