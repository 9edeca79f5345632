/**
 * `npm run load [-- --model DIR] [--connections 32] [--seconds 10] [--workers N] [--queue N] [--json]`
 *
 * A bounded load test on loopback: starts the server in-process (127.0.0.1, a free port), fires
 * caption uploads at it with autocannon for a fixed time at a fixed concurrency, and meanwhile
 * times /healthz. Reports requests/s, p50/p99 latency and the answers by status: past capacity
 * the server should answer 503 (queue full, with Retry-After) — any other error or a connection
 * failure makes the run fail (exit 1). Without --model it trains the tiny test model in a temp
 * dir first and removes it after.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import sharp from 'sharp';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import * as tf from '@tensorflow/tfjs';
import { startServer } from '../server/listen.ts';
import { resolveTrainConfig, train } from '../model/train/trainer.ts';
import { makeTinyDataset } from '../test/helpers/tiny-data.ts';
import { TINY_TRAINING } from '../test/helpers/tiny-model.ts';

tf.env().set('PROD', true);
const argv = await yargs(hideBin(process.argv))
  .scriptName('npm run load --')
  .option('model', { type: 'string', describe: 'model directory (default: train the tiny test model in a temp dir)' })
  .option('connections', { type: 'number', default: 32, describe: 'concurrent connections' })
  .option('seconds', { type: 'number', default: 10, describe: 'how long to fire requests' })
  .option('workers', {
    type: 'number',
    default: Math.max(1, availableParallelism() - 1),
    describe: 'caption worker threads',
  })
  .option('queue', { type: 'number', default: 8, describe: 'caption queue bound (503 past it)' })
  .option('strategy', {
    type: 'string',
    default: 'beam',
    choices: ['greedy', 'beam', 'sample'],
    describe: 'decoding strategy of each request',
  })
  .option('json', { type: 'boolean', describe: 'print the report as JSON on stdout' })
  .strict()
  .help()
  .parseAsync();

const log = (line: string) => process.stderr.write(`${line}\n`);
const cleanup: string[] = [];
let modelDir = argv.model;
if (!modelDir) {
  const { dir: data } = await makeTinyDataset();
  const out = await mkdtemp(join(tmpdir(), 'captioner-load-model-'));
  cleanup.push(data, out);
  log('training the tiny test model (30 steps)…');
  await train(
    await resolveTrainConfig([
      { source: 'load', values: { ...TINY_TRAINING, data, out, epochs: 30, validateEvery: 30 } },
    ]),
  );
  modelDir = out;
}

const server = await startServer({
  modelDir,
  port: 0,
  host: '127.0.0.1',
  workers: argv.workers,
  maxQueue: argv.queue,
  timeoutMs: 30_000,
  graceMs: 5_000,
});
log(`server ${server.url}: ${argv.workers} worker(s), queue ${argv.queue}, ${server.pool.info.backend} backend`);

// One multipart body, built once: a 96×96 PNG in the field "image" and the strategy.
const png = await sharp({ create: { width: 96, height: 96, channels: 3, background: '#e02020' } })
  .png()
  .toBuffer();
const boundary = 'captioner-load-boundary';
const body = Buffer.concat([
  Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="strategy"\r\n\r\n${argv.strategy}\r\n`),
  Buffer.from(
    `--${boundary}\r\nContent-Disposition: form-data; name="image"; filename="load.png"\r\nContent-Type: image/png\r\n\r\n`,
  ),
  png,
  Buffer.from(`\r\n--${boundary}--\r\n`),
]);

// Health checks while the captions load the server: they should stay fast.
const health: number[] = [];
let probing = true;
const prober = (async () => {
  while (probing) {
    const t = performance.now();
    await fetch(`${server.url}/healthz`).then((r) => r.arrayBuffer());
    health.push(performance.now() - t);
    await new Promise((r) => setTimeout(r, 100));
  }
})();

let result: autocannon.Result;
try {
  result = await autocannon({
    url: `${server.url}/api/captions`,
    method: 'POST',
    headers: { 'content-type': `multipart/form-data; boundary=${boundary}` },
    body,
    connections: argv.connections,
    duration: argv.seconds,
    timeout: 30,
  });
} finally {
  probing = false;
  await prober;
  await server.close();
  for (const dir of cleanup) await rm(dir, { recursive: true, force: true });
}

const codes = Object.fromEntries(Object.entries(result.statusCodeStats ?? {}).map(([code, s]) => [code, s.count ?? 0]));
const ok = codes['200'] ?? 0;
const busy = codes['503'] ?? 0;
const other = Object.entries(codes)
  .filter(([c]) => c !== '200' && c !== '503')
  .reduce((s, [, n]) => s + n, 0);
const sorted = [...health].sort((a, b) => a - b);
const pct = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;
const report = {
  connections: argv.connections,
  seconds: argv.seconds,
  workers: argv.workers,
  queue: argv.queue,
  strategy: argv.strategy,
  requestsPerSecond: result.requests.average,
  latencyMs: { p50: result.latency.p50, p99: result.latency.p99, max: result.latency.max },
  responses: { total: ok + busy + other, ok, busy503: busy, other },
  errors: result.errors,
  timeouts: result.timeouts,
  captionsPerSecond: ok / argv.seconds,
  healthzMs: { probes: sorted.length, p50: pct(0.5), p99: pct(0.99) },
};

if (argv.json) {
  process.stdout.write(JSON.stringify(report) + '\n');
} else {
  const r = report;
  process.stdout.write(
    [
      `load: ${r.connections} connections for ${r.seconds} s, ${r.workers} worker(s), queue ${r.queue}, ${r.strategy} decoding`,
      `  requests/s       ${r.requestsPerSecond.toFixed(1)} (captions/s ${r.captionsPerSecond.toFixed(1)})`,
      `  latency          p50 ${r.latencyMs.p50} ms, p99 ${r.latencyMs.p99} ms, max ${r.latencyMs.max} ms`,
      `  responses        ${r.responses.total}: 200 ×${r.responses.ok}, 503 ×${r.responses.busy503}, other ×${r.responses.other}`,
      `  errors           ${r.errors} (timeouts ${r.timeouts})`,
      `  /healthz         p50 ${r.healthzMs.p50.toFixed(1)} ms, p99 ${r.healthzMs.p99.toFixed(1)} ms over ${r.healthzMs.probes} probes during the load`,
      '',
    ].join('\n'),
  );
}
// Past capacity the answer must be 503, never a failure.
process.exitCode = report.errors === 0 && report.responses.other === 0 && ok > 0 ? 0 : 1;
