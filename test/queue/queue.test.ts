/**
 * `captioner worker` and `caption --queue` against a real Redis server (test/helpers/redis.ts):
 * the records of a queued run over two worker processes equal the in-process run's; a worker
 * killed with SIGKILL mid-run loses nothing and captions nothing twice; a worker whose model does
 * not load takes no job; a poison image ends as an error record after JOB_ATTEMPTS attempts;
 * `--shard i/n` runs cover every image exactly once.
 */
import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, beforeEach, test } from 'node:test';
import { Job, Queue } from 'bullmq';
import { Redis } from 'ioredis';
import type { CaptionRecord } from '../../batch/records.ts';
import { captionJobId, JOB_ATTEMPTS, QUEUE_NAME, type CaptionJobData } from '../../queue/jobs.ts';
import { runCli, startCli, type CliResult } from '../helpers/cli.ts';
import { startRedis, type RedisServer } from '../helpers/redis.ts';
import { makeTinyDataset } from '../helpers/tiny-data.ts';
import { trainTinyModel } from '../helpers/tiny-model.ts';

let work = '';
let modelDir = '';
let images = '';
let redis: RedisServer;
let reference: CaptionRecord[] = [];
const IMAGES = 40;

const parseJsonl = (text: string): CaptionRecord[] =>
  text
    .trim()
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as CaptionRecord);

const byPath = (records: CaptionRecord[]) => [...records].sort((a, b) => (a.path < b.path ? -1 : 1));

/**
 * Records reduced to what both runs must agree on: path, caption and error exactly; logProb to
 * float32 rounding, which depends on the batch an image was decoded with (the in-process run's
 * copies of one image differ in the 7th digit too).
 */
const comparable = (records: CaptionRecord[]) =>
  byPath(records).map(({ path, caption, logProb, error }) => ({
    path,
    caption,
    logProb: logProb === undefined ? undefined : Number(logProb.toPrecision(5)),
    error,
  }));

/** Worker flags that make stalled-job recovery take seconds, not the default minute. */
const FAST_RECOVERY = ['--lock-duration', '2000', '--stalled-interval', '1000'];

/** Processes started and not yet seen to exit: killed after the tests, whatever failed. */
const live = new Set<ReturnType<typeof startCli>>();

function track(p: ReturnType<typeof startCli>): ReturnType<typeof startCli> {
  live.add(p);
  void p.done.then(() => live.delete(p));
  return p;
}

function startWorker(extra: string[] = []) {
  const args = ['worker', '--queue', redis.url, '--model', modelDir, '--batch-size', '4'];
  return track(startCli([...args, ...FAST_RECOVERY, ...extra]));
}

async function stopWorker(w: ReturnType<typeof startWorker>): Promise<CliResult> {
  w.child.kill('SIGTERM');
  return w.done;
}

async function waitFor(what: () => string, check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const start = Date.now();
  while (!(await check())) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what()}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

before(async () => {
  redis = await startRedis();
  work = await mkdtemp(join(tmpdir(), 'captioner-queue-'));
  const { dir: data } = await makeTinyDataset({ dir: join(work, 'data') });
  modelDir = await trainTinyModel(data, 3, { out: join(work, 'model'), valSamples: 0 });
  images = join(work, 'images');
  await mkdir(images);
  for (let i = 0; i < IMAGES; i++)
    await copyFile(join(data, 'images', `${i % 6}.png`), join(images, `img-${String(i).padStart(2, '0')}.png`));
  await writeFile(join(images, 'poison.png'), (await readFile(join(data, 'images', '0.png'))).subarray(0, 60));
  const ref = await runCli(['caption', images, '--model', modelDir, '--out', join(work, 'reference.jsonl')]);
  assert.equal(ref.code, 1, ref.stderr); // the poison image failed
  reference = parseJsonl(await readFile(join(work, 'reference.jsonl'), 'utf8'));
  assert.equal(reference.length, IMAGES + 1);
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
  'caption --queue over 2 worker processes writes the in-process records; the poison image fails after JOB_ATTEMPTS',
  { timeout: 240_000 },
  async () => {
    const workers = [startWorker(['--concurrency', '8']), startWorker(['--concurrency', '8'])];
    const out = join(work, 'queued.jsonl');
    const run = await runCli(['caption', images, '--queue', redis.url, '--out', out]);
    assert.equal(run.code, 1, run.stderr);
    assert.match(run.stderr, new RegExp(`done: ${IMAGES} captioned, 1 failed`));
    const records = parseJsonl(await readFile(out, 'utf8'));
    assert.deepEqual(comparable(records), comparable(reference));
    assert.match(records.find((r) => r.path.endsWith('poison.png'))!.error!, /cannot decode image/);

    const queue = openQueue();
    try {
      const failedJobs = await queue.getFailed();
      assert.deepEqual(
        failedJobs.map((j) => [j.data.path, j.attemptsMade]),
        [[join(images, 'poison.png'), JOB_ATTEMPTS]],
      );
      assert.equal(await queue.getCompletedCount(), IMAGES);
    } finally {
      await queue.close();
    }

    // A rerun resumes: nothing is captioned again but the failure, which is retried and fails again.
    const rerun = await runCli(['caption', images, '--queue', redis.url, '--out', out]);
    const stopped = await Promise.all(workers.map(stopWorker));
    for (const w of stopped) assert.equal(w.code, 0, w.stderr);
    assert.equal(rerun.code, 1, rerun.stderr);
    assert.match(
      rerun.stderr,
      new RegExp(`resuming .*: ${IMAGES} images already captioned, 1 that failed will be retried`),
    );
    assert.match(rerun.stderr, new RegExp(`done: 0 captioned, 1 failed, ${IMAGES} skipped`));
    assert.deepEqual(comparable(parseJsonl(await readFile(out, 'utf8'))), comparable(reference));
  },
);

test(
  'a worker killed with SIGKILL mid-run: its jobs are taken again, every image captioned exactly once',
  { timeout: 240_000 },
  async () => {
    const out = join(work, 'killed.jsonl');
    const run = track(startCli(['caption', images, '--queue', redis.url, '--out', out]));
    const queue = openQueue();
    try {
      await waitFor(
        () => 'the jobs to be queued',
        async () => (await queue.getWaitingCount()) === IMAGES + 1,
      );
      const doomed = startWorker(['--concurrency', '2']);
      // Killed once it has captioned a few images: mid-run, holding the next ones.
      await waitFor(
        () => `the first worker to caption (its stderr: ${doomed.stderrSoFar()})`,
        async () => (await queue.getCompletedCount()) >= 4,
      );
      doomed.child.kill('SIGKILL');
      const killed = await doomed.done;
      assert.equal(killed.signal, 'SIGKILL');
      // It died holding jobs (or the test proves nothing): they are still active, their locks expiring.
      assert.ok((await queue.getActiveCount()) > 0, 'the killed worker held no job');
      assert.ok((await queue.getCompletedCount()) < IMAGES, 'the killed worker finished the run');
      const rescuer = startWorker(['--concurrency', '8']);
      const result = await run.done;
      assert.equal((await stopWorker(rescuer)).code, 0);
      assert.equal(result.code, 1, result.stderr);
      const records = parseJsonl(await readFile(out, 'utf8'));
      assert.equal(new Set(records.map((r) => r.path)).size, records.length, 'an image recorded twice');
      assert.deepEqual(comparable(records), comparable(reference));
      assert.equal(await queue.getCompletedCount(), IMAGES);
    } finally {
      await queue.close();
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
  assert.deepEqual(comparable(shards.flat()), comparable(reference));
  const bad = await runCli(['caption', images, '--model', modelDir, '--shard', '4/3']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--shard "4\/3": expected i\/n with 1 ≤ i ≤ n/);
});
