/**
 * `npm run queue-throughput -- --images DIR [--count 600] [--model models/default] [--workers 1,2,3] [--rounds 2]`
 *
 * The figures of docs/scale.md, in one command: the images/s of an in-process `captioner caption`
 * and of `caption --queue` with 1, 2 and 3 `captioner worker` processes, each run as a user runs
 * it (child processes of bin/captioner.js), and the queue's overhead per image against the
 * in-process run. It starts its own redis-server on a free loopback port (AOF, appendfsync
 * everysec, as docs/scale.md recommends) and flushes it before each queued run; the workers are
 * started and registered before the run is timed. The figure of a run is its own summary line
 * (images over seconds from its start to its last record, enqueueing included). Every run must
 * write the in-process run's records (path and caption), or the script fails (exit 1).
 *
 * The first `--count` images of DIR (by name) are copied to a temp directory. The 1-minute load
 * average before each run is reported beside it: on a shared machine the figures mean little.
 */
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { hasImageExtension } from '../batch/inputs.ts';
import { liveWorkers } from '../queue/registry.ts';
import { startRedis } from '../test/helpers/redis.ts';
import { BIN, startCli } from '../test/helpers/cli.ts';

const argv = await yargs(hideBin(process.argv))
  .scriptName('npm run queue-throughput --')
  .option('images', { type: 'string', demandOption: true, describe: 'folder of images (the first --count by name)' })
  .option('count', { type: 'number', default: 600, describe: 'images per run' })
  .option('model', { type: 'string', default: 'models/default', describe: 'model directory' })
  .option('workers', { type: 'string', default: '1,2,3', describe: 'worker counts to measure, comma-separated' })
  .option('rounds', { type: 'number', default: 2, describe: 'rounds of all the runs, one after another' })
  .option('images-by', {
    type: 'string',
    choices: ['auto', 'bytes', 'path'],
    default: 'auto',
    describe: 'how the queued runs send images (caption --images-by)',
  })
  .option('json', { type: 'string', describe: 'also write the figures to this JSON file' })
  .strict()
  .help()
  .parseAsync();

const log = (line: string) => process.stderr.write(`${line}\n`);
const workerCounts = argv.workers.split(',').map(Number);
if (workerCounts.some((n) => !Number.isInteger(n) || n < 1))
  throw new Error(`--workers ${argv.workers}: expected counts ≥ 1`);

interface Run {
  round: number;
  run: string;
  load: number;
  imagesPerSecond: number;
}

/** Runs the CLI to its end; fails unless it exits 0. */
async function cli(args: string[]): Promise<string> {
  const { done } = startCli(args);
  const r = await done;
  if (r.code !== 0) throw new Error(`captioner ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r.stderr;
}

/** The images/s of a run's summary line. */
function rate(stderr: string): number {
  const m = /\(([\d.]+) images\/s\)\s*$/.exec(stderr.trim());
  if (!m) throw new Error(`no summary line in: ${stderr}`);
  return Number(m[1]);
}

/** Path → caption of a record file. */
async function captions(file: string): Promise<Map<string, string>> {
  const lines = (await readFile(file, 'utf8')).trim().split('\n');
  return new Map(
    lines.map((l) => {
      const r = JSON.parse(l) as { path: string; caption?: string; error?: string };
      return [r.path, r.caption ?? `error: ${r.error}`];
    }),
  );
}

function sameRecords(a: Map<string, string>, b: Map<string, string>, what: string): void {
  const differ = [...a].filter(([p, c]) => b.get(p) !== c).length;
  if (a.size !== b.size || differ > 0)
    throw new Error(`${what}: ${b.size} records, ${differ} differ from the in-process run's ${a.size}`);
}

const work = await mkdtemp(join(tmpdir(), 'captioner-queue-throughput-'));
const redis = await startRedis({ appendOnly: true, fsync: 'everysec' });
const client = new Redis(redis.url);
const runs: Run[] = [];
try {
  const images = join(work, 'images');
  const names = (await readdir(argv.images)).filter(hasImageExtension).sort().slice(0, argv.count);
  if (names.length < argv.count)
    throw new Error(`${argv.images}: ${names.length} images, fewer than --count ${argv.count}`);
  await mkdir(images);
  for (const name of names) await copyFile(join(argv.images, name), join(images, name));
  log(`${names.length} images of ${argv.images}; model ${argv.model}; ${cpus().length} cores; redis on ${redis.url}`);

  let reference: Map<string, string> | null = null;
  for (let round = 1; round <= argv.rounds; round++) {
    const inProcess = join(work, `in-process-${round}.jsonl`);
    const load = loadavg()[0]!;
    const r = rate(await cli(['caption', images, '--model', argv.model, '--out', inProcess]));
    runs.push({ round, run: 'in-process CLI', load, imagesPerSecond: r });
    log(`round ${round}: in-process CLI: load ${load.toFixed(1)} → ${r} images/s`);
    reference ??= await captions(inProcess);
    sameRecords(reference, await captions(inProcess), `round ${round} in-process`);

    for (const n of workerCounts) {
      await client.flushdb();
      const workers = Array.from({ length: n }, () =>
        startCli(['worker', '--queue', redis.url, '--model', argv.model, '--serve-concurrency', '0']),
      );
      try {
        for (let t = 0; (await liveWorkers(client)).length < n; t++) {
          if (t > 1200) throw new Error(`the ${n} workers did not register in 2 minutes`);
          if (workers.some((w) => w.child.exitCode !== null))
            throw new Error(`a worker exited: ${workers.map((w) => w.stderrSoFar()).join('\n')}`);
          await new Promise((res) => setTimeout(res, 100));
        }
        const out = join(work, `queue-${n}-${round}.jsonl`);
        const loadQ = loadavg()[0]!;
        const q = rate(
          await cli(['caption', images, '--queue', redis.url, '--images-by', argv['images-by'], '--out', out]),
        );
        const name = `queue, ${n} worker${n > 1 ? 's' : ''}`;
        runs.push({ round, run: name, load: loadQ, imagesPerSecond: q });
        log(`round ${round}: ${name}: load ${loadQ.toFixed(1)} → ${q} images/s`);
        sameRecords(reference, await captions(out), `round ${round} ${name}`);
      } finally {
        for (const w of workers) w.child.kill('SIGTERM');
        await Promise.all(workers.map((w) => w.done));
      }
    }
  }

  const mean = (name: string) => {
    const xs = runs.filter((r) => r.run === name).map((r) => r.imagesPerSecond);
    return xs.reduce((a, b) => a + b, 0) / xs.length;
  };
  const names2 = [...new Set(runs.map((r) => r.run))];
  const lines = [
    '| run | ' +
      Array.from({ length: argv.rounds }, (_, i) => `round ${i + 1}: load → images/s`).join(' | ') +
      ' | mean images/s |',
  ];
  lines.push('| --- |' + ' --- |'.repeat(argv.rounds + 1));
  for (const name of names2) {
    const cells = runs
      .filter((r) => r.run === name)
      .map((r) => `${r.load.toFixed(1)} → ${r.imagesPerSecond.toFixed(1)}`);
    lines.push(`| ${name} | ${cells.join(' | ')} | ${mean(name).toFixed(1)} |`);
  }
  const inProc = mean('in-process CLI');
  const one = mean('queue, 1 worker');
  const overheadMs = workerCounts.includes(1) ? (1 / one - 1 / inProc) * 1000 : null;
  process.stdout.write(`${lines.join('\n')}\n`);
  if (overheadMs !== null)
    process.stdout.write(
      `\nqueue overhead per image (1 worker against in-process, from the means): ${overheadMs.toFixed(1)} ms\n`,
    );
  if (argv.json) {
    await writeFile(
      argv.json,
      JSON.stringify(
        {
          date: new Date().toISOString(),
          cores: cpus().length,
          bin: BIN,
          count: argv.count,
          model: argv.model,
          imagesBy: argv['images-by'],
          runs,
          overheadMs,
        },
        null,
        2,
      ) + '\n',
    );
  }
} finally {
  client.disconnect();
  await redis.stop();
  await rm(work, { recursive: true, force: true });
}
