/**
 * `captioner worker` and `caption --queue` against a real Redis server (test/helpers/redis.ts):
 * the records of a queued run over two worker processes equal the in-process run's, attention
 * maps and familiarity included; of three workers, one killed with SIGKILL mid-run, nothing is
 * lost and nothing captioned twice; Redis crashing mid-run (AOF persistence) loses no finished
 * record; a worker whose model does not load takes no job; a poison image ends as an error
 * record after JOB_ATTEMPTS attempts; `--shard i/n` runs cover every image exactly once; small
 * images travel as bytes, so that a worker that cannot see the files captions them; the workers'
 * model's decoding.json decodes what the flags leave out, as in-process. The web tier's side
 * (`serve --queue`) is in serve.test.ts.
 */
import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, beforeEach, test } from 'node:test';
import { Job, Queue } from 'bullmq';
import { Redis } from 'ioredis';
import type { CaptionRecord } from '../../batch/records.ts';
import { ifExists } from '../../model/io/fsutil.ts';
import { readCheckpointConfig } from '../../model/io/checkpoint.ts';
import { writeRecommendedDecoding } from '../../model/io/decoding-file.ts';
import { captionJobId, JOB_ATTEMPTS, QUEUE_NAME, type CaptionJobData } from '../../queue/jobs.ts';
import { runCli, startCli, type CliResult } from '../helpers/cli.ts';
import { startRedis, type RedisServer } from '../helpers/redis.ts';
import { makeTinyDataset } from '../helpers/tiny-data.ts';
import { trainTinyModel } from '../helpers/tiny-model.ts';
import { waitFor } from '../server/helpers.ts';

let work = '';
let modelDir = '';
let images = '';
let redis: RedisServer;
let reference: CaptionRecord[] = [];
/** The in-process run with --attention. */
let attentionReference: CaptionRecord[] = [];
/** The in-process run's summary of unfamiliar images, "(N unfamiliar". */
let unfamiliarNote = '';
const IMAGES = 40;
/** The test model's decoding.json. */
const RECOMMENDED = { strategy: 'beam', beamWidth: 4, lengthPenalty: 1.5 } as const;
/** Flags that choose the decoding instead of the recommendation. */
const GREEDY = ['--greedy', '--max-length', '5'];

const parseJsonl = (text: string): CaptionRecord[] =>
  text
    .trim()
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as CaptionRecord);

const byPath = (records: CaptionRecord[]) => [...records].sort((a, b) => (a.path < b.path ? -1 : 1));

/**
 * Records reduced to what both runs must agree on exactly: their fields, path, real path, caption,
 * alternatives, error, whether the image looks familiar, the attention grid. Numbers (logProb,
 * the familiarity score, attention weights) are compared by `assertSameRecords` to float32
 * rounding, which depends on the batch an image was decoded with (the in-process run's copies of
 * one image differ in the 7th digit too).
 */
const comparable = (records: CaptionRecord[]) =>
  byPath(records).map((r) => ({
    fields: Object.keys(r)
      .filter((k) => r[k as keyof CaptionRecord] !== undefined)
      .sort(),
    path: r.path,
    realPath: r.realPath,
    caption: r.caption,
    alternatives: r.nbest?.map((h) => h.caption),
    error: r.error,
    familiar: r.familiarity?.familiar,
    threshold: r.familiarity?.threshold,
    grid: r.attention?.grid,
    words: r.attention?.weights.length,
  }));

/** The numbers of a record, in a fixed order, for comparison within a tolerance. */
const numbers = (r: CaptionRecord): number[] => [
  r.logProb ?? NaN,
  ...(r.nbest?.map((h) => h.logProb) ?? []),
  r.familiarity?.score ?? NaN,
  ...(r.attention?.weights.flat() ?? []),
];

/** `actual` holds the records of `expected`: the same fields, numbers equal to float32 rounding. */
function assertSameRecords(actual: CaptionRecord[], expected: CaptionRecord[]): void {
  assert.deepEqual(comparable(actual), comparable(expected));
  const [a, e] = [byPath(actual), byPath(expected)];
  a.forEach((r, i) => {
    const [x, y] = [numbers(r), numbers(e[i]!)];
    assert.equal(x.length, y.length, r.path);
    x.forEach((v, k) => {
      if (Number.isNaN(v) && Number.isNaN(y[k])) return;
      assert.ok(Math.abs(v - y[k]!) <= 1e-4 * Math.max(1, Math.abs(y[k]!)), `${r.path}: number ${k}: ${v} ≠ ${y[k]}`);
    });
  });
}

/** Worker flags that make stalled-job recovery take seconds, not the default minute. */
const FAST_RECOVERY = ['--lock-duration', '2000', '--stalled-interval', '1000'];

/** Processes started and not yet seen to exit: killed after the tests, whatever failed. */
const live = new Set<ReturnType<typeof startCli>>();

function track(p: ReturnType<typeof startCli>): ReturnType<typeof startCli> {
  live.add(p);
  void p.done.then(() => live.delete(p));
  return p;
}

function startWorker(
  extra: string[] = [],
  url = redis.url,
  { model = modelDir, cwd = undefined as string | undefined } = {},
) {
  const args = ['worker', '--queue', url, '--model', model, '--batch-size', '4', '--serve-concurrency', '0'];
  return track(startCli([...args, ...FAST_RECOVERY, ...extra], {}, cwd));
}

async function stopWorker(w: ReturnType<typeof startWorker>): Promise<CliResult> {
  w.child.kill('SIGTERM');
  return w.done;
}

before(async () => {
  redis = await startRedis();
  work = await mkdtemp(join(tmpdir(), 'captioner-queue-'));
  const { dir: data } = await makeTinyDataset({ dir: join(work, 'data') });
  // A model with attention (maps to carry) and, as tiny models are by default, a familiarity calibration.
  modelDir = await trainTinyModel(data, 3, {
    out: join(work, 'model'),
    valSamples: 0,
    featureInput: 'attention',
    encoderPooling: 'grid',
  });
  // It recommends beam search with a length penalty (decoding.json): runs without a strategy flag use it.
  await writeRecommendedDecoding((await readCheckpointConfig(modelDir)).dir, RECOMMENDED);
  images = join(work, 'images');
  await mkdir(images);
  for (let i = 0; i < IMAGES; i++)
    await copyFile(join(data, 'images', `${i % 6}.png`), join(images, `img-${String(i).padStart(2, '0')}.png`));
  await writeFile(join(images, 'poison.png'), (await readFile(join(data, 'images', '0.png'))).subarray(0, 60));
  const ref = await runCli(['caption', images, '--model', modelDir, '--out', join(work, 'reference.jsonl')]);
  assert.equal(ref.code, 1, ref.stderr); // the poison image failed
  reference = parseJsonl(await readFile(join(work, 'reference.jsonl'), 'utf8'));
  assert.equal(reference.length, IMAGES + 1);
  assert.ok(reference[0]!.familiarity, 'the tiny model has a familiarity calibration');
  unfamiliarNote = /\(\d+ unfamiliar/.exec(ref.stderr)![0];
  const withMaps = join(work, 'attention.jsonl');
  const refMaps = await runCli(['caption', images, '--model', modelDir, ...GREEDY, '--attention', '--out', withMaps]);
  assert.equal(refMaps.code, 1, refMaps.stderr);
  attentionReference = parseJsonl(await readFile(withMaps, 'utf8'));
  assert.ok(attentionReference[0]!.attention, 'the reference has attention maps');
  // The recommendation changes the records (or the tests of it would prove nothing).
  const greedy = byPath(attentionReference);
  assert.ok(
    byPath(reference).some(
      (r, i) => r.caption !== greedy[i]!.caption || Math.abs(r.logProb! - greedy[i]!.logProb!) > 1e-3,
    ),
    'the recommended decoding captions as --greedy does',
  );
});

beforeEach(async () => {
  const client = new Redis(redis.url);
  await client.flushdb();
  client.disconnect();
});

after(async () => {
  for (const w of live) w.child.kill('SIGKILL');
  await Promise.all([...live].map((w) => w.done));
  await redis.stop();
  await rm(work, { recursive: true, force: true });
});

/** A BullMQ handle on the test's queue, closed by the caller. */
const openQueue = () => new Queue<CaptionJobData>(QUEUE_NAME, { connection: { host: '127.0.0.1', port: redis.port } });

test(
  "caption --queue over 2 worker processes that cannot see the image files (small ones travel in their jobs) writes the in-process records: the model's recommended decoding, or the flags', attention maps and familiarity included; the poison image fails after JOB_ATTEMPTS",
  { timeout: 240_000 },
  async () => {
    const out = join(work, 'queued.jsonl');
    // No worker yet: the jobs wait, each with its image's bytes (all far below BYTES_THRESHOLD).
    const run = track(startCli(['caption', images, '--queue', redis.url, '--out', out]));
    const queue = openQueue();
    const hidden = join(work, 'hidden-images');
    const elsewhere = await mkdtemp(join(tmpdir(), 'captioner-worker-cwd-'));
    try {
      await waitFor(async () => (await queue.getWaitingCount()) === IMAGES + 1, 60_000, 'the jobs to be queued');
      for (const job of await queue.getWaiting(0, -1))
        assert.deepEqual(Buffer.from(job.data.bytes ?? '', 'base64'), await readFile(job.data.realPath), job.data.path);
      // The files leave every path the jobs name; the workers run in a directory of their own.
      await rename(images, hidden);
      await assert.rejects(stat(join(images, 'img-00.png')), { code: 'ENOENT' });
      const workers = [1, 2].map(() => startWorker(['--concurrency', '8'], redis.url, { cwd: elsewhere }));
      const result = await run.done;
      assert.equal(result.code, 1, result.stderr);
      assert.match(result.stderr, new RegExp(`images sent to the workers: ${IMAGES + 1} as bytes, 0 by path`));
      // The summary counts the unfamiliar images as the in-process run does.
      assert.ok(result.stderr.includes(`done: ${IMAGES} captioned ${unfamiliarNote}`), result.stderr);
      const records = parseJsonl(await readFile(out, 'utf8'));
      assertSameRecords(records, reference);
      assert.match(records.find((r) => r.path.endsWith('poison.png'))!.error!, /cannot decode image/);

      const failedJobs = await queue.getFailed();
      assert.deepEqual(
        failedJobs.map((j) => [j.data.path, j.attemptsMade]),
        [[join(images, 'poison.png'), JOB_ATTEMPTS]],
      );
      assert.equal(await queue.getCompletedCount(), IMAGES);
      // Collected jobs keep their results, not their images; the failed one keeps its bytes for a rerun.
      for (const job of await queue.getCompleted(0, -1)) assert.equal(job.data.bytes, undefined, job.data.path);
      assert.ok(failedJobs[0]!.data.bytes, 'the failed job lost its bytes');

      await rename(hidden, images); // the files are back: the rerun lists them
      // A rerun resumes: nothing is captioned again but the failure, which is retried and fails again.
      const rerun = await runCli(['caption', images, '--queue', redis.url, '--out', out]);
      assert.equal(rerun.code, 1, rerun.stderr);
      assert.match(
        rerun.stderr,
        new RegExp(`resuming .*: ${IMAGES} images already captioned, 1 that failed will be retried`),
      );
      assert.match(rerun.stderr, new RegExp(`done: 0 captioned, 1 failed, ${IMAGES} skipped`));
      assertSameRecords(parseJsonl(await readFile(out, 'utf8')), reference);

      // Flags that choose the decoding, --attention (other jobs: the maps are part of the result),
      // images by path: the workers read the files.
      const withMaps = join(work, 'queued-attention.jsonl');
      const mapped = await runCli([
        'caption',
        images,
        '--queue',
        redis.url,
        ...GREEDY,
        '--attention',
        '--images-by',
        'path',
        '--out',
        withMaps,
      ]);
      assert.equal(mapped.code, 1, mapped.stderr);
      assert.match(mapped.stderr, new RegExp(`images sent to the workers: 0 as bytes, ${IMAGES + 1} by path`));
      assertSameRecords(parseJsonl(await readFile(withMaps, 'utf8')), attentionReference);
      const stopped = await Promise.all(workers.map(stopWorker));
      for (const w of stopped) assert.equal(w.code, 0, w.stderr);
    } finally {
      await queue.close();
      await rename(hidden, images).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') throw err;
      });
      await rm(elsewhere, { recursive: true, force: true });
    }
  },
);

/** The workers whose heartbeat is live (queue/registry.ts). */
async function liveWorkerCount(url: string): Promise<number> {
  const client = new Redis(url);
  try {
    return (await client.keys('captioner:worker:*')).length;
  } finally {
    client.disconnect();
  }
}

test(
  'three worker processes, one killed with SIGKILL mid-run: its jobs are taken again, every image captioned exactly once',
  { timeout: 240_000 },
  async () => {
    // One job at a time each, so that the run lasts long enough for a worker to die in it.
    const workers = [1, 2, 3].map(() => startWorker(['--concurrency', '1']));
    await waitFor(async () => (await liveWorkerCount(redis.url)) === 3, 60_000, 'the three workers to be up');
    const out = join(work, 'killed.jsonl');
    const run = track(startCli(['caption', images, '--queue', redis.url, '--out', out]));
    const queue = openQueue();
    try {
      await waitFor(async () => (await queue.getCompletedCount()) >= 4, 60_000, 'the workers to caption a few images');
      // Kill a worker that holds a job now (or the test proves nothing). It is frozen (SIGSTOP)
      // before its jobs are listed, so that none of them can finish between the list and the kill.
      let doomed: (typeof workers)[number] | undefined;
      let doomedJobs: Job[] = [];
      for (let tries = 0; tries < 20 && doomedJobs.length === 0; tries++) {
        const held = (await queue.getActive()).map((j) => j.processedBy ?? '');
        doomed = workers.find((w) => held.includes(`${hostname()}:${w.child.pid}`));
        if (!doomed) continue;
        doomed.child.kill('SIGSTOP');
        doomedJobs = (await queue.getActive()).filter((j) => j.processedBy === `${hostname()}:${doomed!.child.pid}`);
        if (doomedJobs.length === 0) doomed.child.kill('SIGCONT'); // it finished them meanwhile: again
      }
      assert.ok(doomed && doomedJobs.length > 0, 'no worker held a job');
      doomed.child.kill('SIGKILL');
      assert.equal((await doomed.done).signal, 'SIGKILL');
      assert.ok((await queue.getCompletedCount()) < IMAGES, 'the run ended before the kill');
      const result = await run.done;
      assert.equal(result.code, 1, result.stderr);
      assert.match(result.stderr, /the workers' model recommends beam search, width 4, length penalty α 1\.5/);
      const records = parseJsonl(await readFile(out, 'utf8'));
      assert.equal(new Set(records.map((r) => r.path)).size, records.length, 'an image recorded twice');
      assertSameRecords(records, reference);
      assert.equal(await queue.getCompletedCount(), IMAGES);
      // The jobs the killed worker held were finished by another.
      for (const j of doomedJobs) {
        const after = (await Job.fromId(queue, j.id!))!;
        assert.ok(after.finishedOn, `job ${j.id} never finished`);
        assert.notEqual(after.processedBy, j.processedBy);
      }
      for (const w of workers.filter((w) => w !== doomed)) assert.equal((await stopWorker(w)).code, 0);
    } finally {
      await queue.close();
    }
  },
);

test(
  'Redis crashing mid-run (AOF persistence, appendfsync always) loses no finished record; the run completes',
  { timeout: 240_000 },
  async () => {
    const persistent = await startRedis({ appendOnly: true });
    try {
      const workers = [1, 2].map(() => startWorker(['--concurrency', '2'], persistent.url));
      // Both up before the crash (a worker that finds no Redis at its start exits 5, as it should).
      await waitFor(async () => (await liveWorkerCount(persistent.url)) === 2, 60_000, 'the two workers to be up');
      const out = join(work, 'restarted.jsonl');
      const run = track(startCli(['caption', images, '--queue', persistent.url, '--out', out]));
      await waitFor(
        async () => parseJsonl((await ifExists(readFile(out, 'utf8'))) ?? '').length >= 8,
        60_000,
        () => `some records to be written (workers: ${workers.map((w) => w.stderrSoFar()).join(' | ')})`,
      );
      const beforeCrash = parseJsonl(await readFile(out, 'utf8'));
      await persistent.crashAndRestart();
      const result = await run.done;
      assert.equal(result.code, 1, result.stderr);
      const records = parseJsonl(await readFile(out, 'utf8'));
      assert.ok(beforeCrash.length < records.length, 'the run ended before the crash');
      assert.equal(new Set(records.map((r) => r.path)).size, records.length, 'an image recorded twice');
      assertSameRecords(records, reference);
      const queue = new Queue(QUEUE_NAME, { connection: { host: '127.0.0.1', port: persistent.port } });
      try {
        assert.equal(await queue.getCompletedCount(), IMAGES, 'Redis lost finished jobs');
      } finally {
        await queue.close();
      }
      for (const w of workers) assert.equal((await stopWorker(w)).code, 0);
    } finally {
      await persistent.stop();
    }
  },
);

test(
  'a worker whose model fails to load says so, exits 3 and takes no job; bad or unreachable queues exit 2 and 5',
  { timeout: 120_000 },
  async () => {
    const queue = openQueue();
    try {
      const realPath = join(images, 'img-00.png');
      const data: CaptionJobData = { path: realPath, realPath, settings: { strategy: 'greedy' }, maxPixels: 1e6 };
      await queue.add('caption', data, { jobId: captionJobId(realPath, data.settings, data.maxPixels) });
      const missing = join(work, 'no-such-model');
      const bad = await runCli(['worker', '--queue', redis.url, '--model', missing]);
      assert.equal(bad.code, 3, bad.stderr);
      assert.match(bad.stderr, new RegExp(`error: .*${missing}`));
      assert.equal(await queue.getWaitingCount(), 1);
      const [job] = await queue.getWaiting();
      assert.equal((await Job.fromId(queue, job!.id!))!.attemptsStarted, 0);
    } finally {
      await queue.close();
    }
    const badUrl = await runCli(['worker', '--queue', 'http://127.0.0.1/0', '--model', modelDir]);
    assert.equal(badUrl.code, 2, badUrl.stderr);
    assert.match(badUrl.stderr, /--queue "http:\/\/127\.0\.0\.1\/0": expected a redis:\/\/ URL/);
    const unreachable = await runCli(['caption', images, '--queue', 'redis://127.0.0.1:1/0']);
    assert.equal(unreachable.code, 5, unreachable.stderr);
    assert.match(unreachable.stderr, /cannot reach Redis at redis:\/\/127\.0\.0\.1:1\/0/);
  },
);

test('--shard i/n: the n runs caption every image exactly once, as one run does', { timeout: 240_000 }, async () => {
  const shards: CaptionRecord[][] = [];
  for (const i of [1, 2, 3]) {
    const out = join(work, `shard-${i}.jsonl`);
    const r = await runCli(['caption', images, '--model', modelDir, '--shard', `${i}/3`, '--out', out]);
    assert.ok(r.code === 0 || r.code === 1, r.stderr);
    shards.push(parseJsonl(await readFile(out, 'utf8')));
  }
  for (const s of shards) assert.ok(s.length > 0 && s.length < IMAGES, `a shard of ${s.length} images`);
  assertSameRecords(shards.flat(), reference);
  const bad = await runCli(['caption', images, '--model', modelDir, '--shard', '4/3']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--shard "4\/3": expected i\/n with 1 ≤ i ≤ n/);
});
