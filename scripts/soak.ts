/**
 * `npm run soak [-- --minutes 5] [--model models/default] [--clients 4] [--json]`
 *
 * A bounded soak test on loopback: starts `captioner serve` as a child process on a free port and
 * sends it mixed traffic for `--minutes` — good images (JSON, stream, the no-JavaScript form,
 * pages), every hostile kind the server defends against, clients that hang up mid-upload,
 * mid-decode and mid-stream, and bursts past the queue — while it samples the server's resident
 * memory, event-loop delay and the workers' live tensor counts from /metrics. It prints the
 * figures and a verdict (scripts/soak/verdict.ts says what fails a run) and exits 0 on a pass, 1
 * on a fail, 2 for bad options (a target that is not loopback), 3 when the server does not start.
 * Progress goes to stderr; `--json` prints the report as one JSON object on stdout.
 */
import { spawn } from 'node:child_process';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { DEFAULT_IMAGE_LIMITS } from '../server/upload.ts';
import { Rng } from '../model/util/rng.ts';
import { rawRequest } from '../test/helpers/http-fixtures.ts';
import { formatReport, type SoakReport } from './soak/report.ts';
import {
  isLoopbackHost,
  makePayloads,
  trafficKinds,
  type Answer,
  type Target,
  type TrafficKind,
} from './soak/traffic.ts';
import { DEFAULT_THRESHOLDS, judge, type Sample } from './soak/verdict.ts';

const EXIT = { pass: 0, fail: 1, usage: 2, server: 3 } as const;

const argv = await yargs(hideBin(process.argv))
  .scriptName('npm run soak --')
  .usage('$0 [options]\n\nMixed good, hostile and abandoned traffic against a server of its own on loopback.')
  .option('minutes', { type: 'number', default: 5, describe: 'how long to send traffic (fractions allowed)' })
  .option('model', { type: 'string', default: 'models/default', describe: 'model directory the server loads' })
  .option('host', {
    type: 'string',
    default: '127.0.0.1',
    describe: 'loopback address the server listens on (any other is refused)',
  })
  .option('port', { type: 'number', describe: 'port for the server [default: $PORT, else a free one]' })
  .option('workers', { type: 'number', describe: "server's caption worker threads [default: serve's, cores - 1]" })
  .option('queue', { type: 'number', default: 16, describe: "server's caption queue (serve --queue)" })
  .option('beam', { type: 'number', default: 3, describe: "server's default beam width (serve --beam)" })
  .option('clients', { type: 'number', default: 4, describe: 'clients sending mixed traffic at once' })
  .option('burst-every', { type: 'number', default: 30, describe: 'seconds between bursts past the queue' })
  .option('sample-every', { type: 'number', default: 1, describe: 'seconds between samples of /metrics' })
  .option('warmup', {
    type: 'number',
    default: 0.25,
    describe: 'fraction of the run (after one request of every kind) left out of the memory and tensor trends',
  })
  .option('max-rss-slope', {
    type: 'number',
    default: DEFAULT_THRESHOLDS.maxRssSlopeMBPerMin,
    describe: 'MB/min of resident memory growth over the second half after warm-up that fails the run',
  })
  .option('rss-noise', {
    type: 'number',
    default: DEFAULT_THRESHOLDS.rssNoiseMB,
    describe: 'MB of growth over that half below which a slope is taken for noise',
  })
  .option('seed', { type: 'number', default: 1, describe: 'seed of the traffic mix' })
  .option('json', { type: 'boolean', default: false, describe: 'print the report as JSON on stdout' })
  .check((a) => {
    if (!(a.minutes > 0)) throw new Error(`--minutes must be more than 0, got ${a.minutes}`);
    if (!isLoopbackHost(a.host))
      throw new Error(
        `--host ${a.host} is not a loopback address: the soak sends hostile traffic and stays on this machine (127.0.0.1, ::1, localhost)`,
      );
    for (const k of ['clients', 'burst-every', 'sample-every'] as const)
      if (!(a[k] > 0)) throw new Error(`--${k} must be more than 0, got ${a[k]}`);
    if (!(a.warmup >= 0 && a.warmup < 1)) throw new Error(`--warmup must be in [0, 1), got ${a.warmup}`);
    return true;
  })
  .strict()
  .help()
  .fail((message, err) => {
    process.stderr.write(`error: ${err?.message ?? message}\n(npm run soak -- --help lists the options)\n`);
    process.exit(EXIT.usage);
  })
  .parseAsync();

const launched = performance.now();
const log = (line: string) =>
  process.stderr.write(`soak [${((performance.now() - launched) / 1000).toFixed(1)} s]: ${line}\n`);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
/** A time limit for a race: its timer does not keep the process alive once the race is won. */
const limit = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());
const startedAt = new Date();
const loadStart = loadavg();

// ── The bodies, then the server ─────────────────────────────────────────────────────────────
log('making the request bodies (a 6000×6000 16-bit PNG takes a few seconds)…');
const maxUploadBytes = DEFAULT_IMAGE_LIMITS.maxBytes;
const payloads = await makePayloads(maxUploadBytes);
const kinds = trafficKinds(payloads);

const port = argv.port ?? (process.env.PORT ? Number(process.env.PORT) : 0);
const bin = fileURLToPath(new URL('../bin/captioner.js', import.meta.url));
const serveArgs = ['serve', '--model', argv.model, '--host', argv.host, '--port', String(port)];
serveArgs.push('--queue', String(argv.queue), '--beam', String(argv.beam));
if (argv.workers !== undefined) serveArgs.push('--workers', String(argv.workers));
log(`starting captioner ${serveArgs.join(' ')}`);
const server = spawn(process.execPath, [bin, ...serveArgs], { stdio: ['ignore', 'ignore', 'pipe'] });
let serverLog = '';
server.stderr.setEncoding('utf8');
server.stderr.on('data', (chunk: string) => {
  serverLog = (serverLog + chunk).slice(-20_000);
});
const serverExit = new Promise<number | null>((resolve) => server.on('exit', (code) => resolve(code)));
let serverExited = false;
void serverExit.then(() => (serverExited = true));

const url = await Promise.race([
  (async () => {
    for (;;) {
      const found = /listening on (http:\/\/\S+)/.exec(serverLog)?.[1];
      if (found) return found;
      if (serverExited) return null;
      await sleep(50);
    }
  })(),
  limit(180_000).then(() => null),
]);
if (!url) {
  process.stderr.write(`error: the server did not start:\n${serverLog}\n`);
  server.kill('SIGKILL');
  process.exit(EXIT.server);
}
const backend = /on the (\S+) backend/.exec(serverLog)?.[1] ?? 'unknown';
const readyz = JSON.parse((await rawRequest(url, { path: '/readyz' })).body) as { workers: number; maxQueue: number };
const target: Target = {
  url,
  workers: readyz.workers,
  queue: readyz.maxQueue,
  maxUploadBytes,
  requestTimeoutMs: 60_000,
};
log(`server ready on ${url}: ${target.workers} worker(s), queue ${target.queue}, ${backend} backend`);

// ── Recording ───────────────────────────────────────────────────────────────────────────────
const t0 = performance.now();
const now = () => (performance.now() - t0) / 1000;
const durationS = argv.minutes * 60;
const answers: Record<string, Record<string, number>> = {};
const problems: Record<string, number> = {};
const errors: string[] = [];
function record(kind: TrafficKind, list: Answer[]): void {
  const counts = (answers[kind.name] ??= {});
  for (const a of list) {
    counts[a.status] = (counts[a.status] ?? 0) + 1;
    if (a.problem) problems[a.problem] = (problems[a.problem] ?? 0) + 1;
    if (a.error && errors.length < 10) errors.push(`${kind.name} at ${now().toFixed(1)} s: ${a.error}`);
  }
}
const total = () => Object.values(answers).reduce((s, c) => s + Object.values(c).reduce((a, b) => a + b, 0), 0);

interface Scrape {
  sample: Sample;
  delay: Record<string, number>;
  requests: Record<string, Record<string, number>>;
}
/** Reads /metrics: resident memory, tensors per worker, event-loop delay, requests by route and status. */
async function scrape(): Promise<Scrape> {
  const { body } = await rawRequest(url!, { path: '/metrics', timeoutMs: 30_000 });
  const t = now();
  const rssBytes = Number(/^process_resident_memory_bytes (\S+)$/m.exec(body)?.[1]);
  const tensors: Record<string, number> = {};
  for (const [, w, n] of body.matchAll(/^captioner_worker_tensors\{worker="(\d+)"\} (\S+)$/gm)) tensors[w!] = Number(n);
  const delay: Record<string, number> = {};
  for (const [, q, v] of body.matchAll(/^nodejs_eventloop_delay_seconds\{quantile="([\d.]+)"\} (\S+)$/gm))
    delay[q!] = Number(v) * 1000;
  const requests: Record<string, Record<string, number>> = {};
  for (const [, route, status, n] of body.matchAll(
    /^captioner_http_requests_total\{method="[A-Z]+",route="([^"]+)",status="(\d+)"\} (\d+)$/gm,
  )) {
    const byStatus = (requests[route!] ??= {});
    byStatus[status!] = (byStatus[status!] ?? 0) + Number(n);
  }
  return { sample: { t, rssBytes, tensors }, delay, requests };
}

const samples: Sample[] = [];
let last: Scrape | null = null;
let stopping = false;
const sampler = (async () => {
  while (!stopping && !serverExited) {
    try {
      last = await scrape();
      samples.push(last.sample);
    } catch (err) {
      problems['a /metrics sample got no answer'] = (problems['a /metrics sample got no answer'] ?? 0) + 1;
      if (errors.length < 10) errors.push(`/metrics at ${now().toFixed(1)} s: ${(err as Error).message}`);
    }
    await sleep(argv['sample-every'] * 1000);
  }
})();

// ── Traffic ─────────────────────────────────────────────────────────────────────────────────
const rng = new Rng(argv.seed);
const pick = <T>(xs: readonly T[]): T => xs[rng.int(xs.length)]!;
const weighted = kinds.filter((k) => k.weight > 0);
const weightSum = weighted.reduce((s, k) => s + k.weight, 0);
function pickKind(): TrafficKind {
  let r = rng.next() * weightSum;
  for (const k of weighted) if ((r -= k.weight) < 0) return k;
  return weighted[weighted.length - 1]!;
}
const burst = kinds.find((k) => k.name === 'burst')!;
const run = async (kind: TrafficKind) => record(kind, await kind.run(target, pick));

// Warm-up starts with one request of every kind, one at a time.
for (const kind of kinds) await run(kind);
const firstPassS = now();
const warmupEndS = Math.max(firstPassS, argv.warmup * durationS);
log(`every kind sent once in ${firstPassS.toFixed(1)} s; warm-up until ${(warmupEndS / 60).toFixed(1)} min`);

const clients = Array.from({ length: argv.clients }, async () => {
  while (now() < durationS && !serverExited) await run(pickKind());
});
const bursts = (async () => {
  for (let next = now() + argv['burst-every']; now() < durationS && !serverExited;) {
    await sleep(Math.min(1000, Math.max(0, (next - now()) * 1000)));
    if (now() >= next && now() < durationS) {
      await run(burst);
      next = now() + argv['burst-every'];
    }
  }
})();
const progress = setInterval(
  () => {
    const s = samples[samples.length - 1];
    log(
      `${(now() / 60).toFixed(1)}/${argv.minutes} min: ${total()} requests; RSS ${s ? (s.rssBytes / 2 ** 20).toFixed(0) : '?'} MB; ` +
        `tensors ${s ? Object.values(s.tensors).join(', ') : '?'}`,
    );
  },
  Math.max(5_000, Math.min(30_000, (durationS * 1000) / 10)),
);

await Promise.all([...clients, bursts]);
clearInterval(progress);
if (serverExited) problems['the server exited during the soak'] = 1;
// A last sample once the traffic has settled (every worker idle), then the graceful stop.
await sleep(500);
stopping = true;
await sampler;
try {
  last = await scrape();
  samples.push(last.sample);
} catch (err) {
  problems['a /metrics sample got no answer'] = (problems['a /metrics sample got no answer'] ?? 0) + 1;
  errors.push(`/metrics at the end: ${(err as Error).message}`);
}
const endS = now();
server.kill('SIGTERM');
const exitCode = await Promise.race([serverExit, limit(30_000).then(() => 'timeout' as const)]);
if (exitCode === 'timeout') {
  server.kill('SIGKILL');
  problems['the server did not stop within 30 s of SIGTERM'] = 1;
} else if (exitCode !== 0) problems[`the server exited with code ${exitCode} after SIGTERM`] = 1;

// ── Verdict and figures ─────────────────────────────────────────────────────────────────────
const verdict = judge({
  kinds,
  answers,
  samples,
  warmupEndS,
  problems,
  thresholds: { maxRssSlopeMBPerMin: argv['max-rss-slope'], rssNoiseMB: argv['rss-noise'] },
});
const rssMB = samples.map((s) => s.rssBytes / 2 ** 20);
const scraped = last as Scrape | null;
const report: SoakReport = {
  command: ['npm run soak --', ...hideBin(process.argv)].join(' '),
  startedAt: startedAt.toISOString(),
  loadAverage: { start: loadStart, end: loadavg() },
  server: {
    model: argv.model,
    url,
    workers: target.workers,
    queue: target.queue,
    beam: argv.beam,
    backend,
    exitCode: exitCode === 'timeout' ? null : exitCode,
  },
  traffic: {
    clients: argv.clients,
    burstSize: target.workers + target.queue + 8,
    burstEveryS: argv['burst-every'],
    seed: argv.seed,
  },
  durationS: endS,
  warmupEndS,
  kinds: kinds.map(({ name, group, describe, expected }) => ({ name, group, describe, expected })),
  answers,
  problems,
  errors,
  serverCounts: scraped?.requests ?? {},
  rss: {
    startMB: rssMB[0] ?? NaN,
    peakMB: Math.max(...rssMB),
    endMB: rssMB[rssMB.length - 1] ?? NaN,
  },
  eventLoopDelayMs: {
    p50: scraped?.delay['0.5'] ?? NaN,
    p99: scraped?.delay['0.99'] ?? NaN,
    max: scraped?.delay['1'] ?? NaN,
  },
  samples,
  verdict,
};
process.stdout.write(argv.json ? JSON.stringify(report) + '\n' : formatReport(report));
if (!verdict.pass && serverLog.includes('error')) log(`the server's log ends:\n${serverLog.slice(-4000)}`);
process.exitCode = verdict.pass ? EXIT.pass : EXIT.fail;
