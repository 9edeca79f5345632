/**
 * `captioner serve --queue redis://…` with a `captioner worker` process, against a real Redis
 * server (test/helpers/redis.ts): 503 and /readyz while no worker is alive; a caption and a stream
 * that equal the server's own worker threads' answers (attention and familiarity included); the
 * capacity bounds (503 + Retry-After), per web process and across replicas; a client that
 * disconnects cancels its job, removed from the queue while it waits, stopped in the worker while
 * it runs.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, test } from 'node:test';
import { Queue } from 'bullmq';
import * as tf from '@tensorflow/tfjs';
import { modelFingerprint } from '../../queue/registry.ts';
import { serveQueueName, type ServeJobResult } from '../../queue/serve-jobs.ts';
import { startServer } from '../../server/listen.ts';
import { launchChromium, watchProblems } from '../../scripts/chromium.ts';
import { startCli } from '../helpers/cli.ts';
import { form, readSse, type SseRecord } from '../helpers/http-fixtures.ts';
import { startRedis, type RedisServer } from '../helpers/redis.ts';
import { makeTinyDataset } from '../helpers/tiny-data.ts';
import { trainTinyModel } from '../helpers/tiny-model.ts';
import { waitFor } from '../server/helpers.ts';

tf.env().set('PROD', true); // no "install tfjs-node" banner in the test output

let work = '';
let modelDir = '';
let png: Buffer;
let redis: RedisServer;
let serveQueue: Queue;

const live = new Set<ReturnType<typeof startCli>>();
function track(p: ReturnType<typeof startCli>): ReturnType<typeof startCli> {
  live.add(p);
  void p.done.then(() => live.delete(p));
  return p;
}

/** `serve --queue` as a user starts it, on a free port; resolves with its address once it listens. */
async function startServe(extra: string[] = []) {
  const p = track(startCli(['serve', '--model', modelDir, '--queue', redis.url, '--port', '0', ...extra]));
  let url = '';
  await waitFor(
    () => {
      url = /listening on (http:\/\/\S+)/.exec(p.stderrSoFar())?.[1] ?? '';
      return url !== '' || p.child.exitCode !== null;
    },
    60_000,
    () => `serve to listen (its stderr: ${p.stderrSoFar()})`,
  );
  assert.ok(url, p.stderrSoFar());
  return { ...p, url };
}

/** A worker that takes web jobs; a long heartbeat, so that a worker stopped by SIGSTOP still counts as alive. */
function startWorker() {
  return track(
    startCli(['worker', '--queue', redis.url, '--model', modelDir, '--serve-concurrency', '1', '--heartbeat', '10000']),
  );
}

const readyz = async (url: string) => {
  const res = await fetch(`${url}/readyz`);
  return { status: res.status, body: (await res.json()) as { ready: boolean; workers: number; busy: number } };
};

before(async () => {
  redis = await startRedis();
  work = await mkdtemp(join(tmpdir(), 'captioner-serve-queue-'));
  const { dir: data } = await makeTinyDataset({ dir: join(work, 'data') });
  // Attention (maps to relay) and, as tiny models are by default, a familiarity calibration.
  modelDir = await trainTinyModel(data, 3, {
    out: join(work, 'model'),
    valSamples: 0,
    featureInput: 'attention',
    encoderPooling: 'grid',
  });
  png = await readFile(join(data, 'images', '0.png'));
  serveQueue = new Queue(serveQueueName(await modelFingerprint(modelDir)), {
    connection: { host: '127.0.0.1', port: redis.port },
  });
});

/** Processes a failed test left: killed, so that the next test has only its own. */
async function killLeftovers(): Promise<void> {
  for (const p of live) p.child.kill('SIGKILL');
  await Promise.all([...live].map((p) => p.done));
}

afterEach(killLeftovers);

after(async () => {
  await killLeftovers();
  await serveQueue?.close();
  await redis?.stop();
  await rm(work, { recursive: true, force: true });
});

/** The numbers of an answer that float32 rounding may change, and the rest. */
function split(answer: Record<string, unknown>) {
  const {
    logProb,
    wordProbs,
    nbest,
    attention,
    familiarity,
    timing: _t,
    backend: _b,
    ...exact
  } = answer as {
    logProb: number;
    wordProbs: number[];
    nbest: { logProb: number; prob: number }[];
    attention: { grid: number[]; weights: number[][] };
    familiarity: { score: number; familiar: boolean };
    timing: unknown;
    backend: unknown;
  };
  return {
    exact: { ...exact, grid: attention.grid, familiar: familiarity.familiar, nbest: nbest.length },
    numbers: [logProb, ...wordProbs, ...attention.weights.flat(), familiarity.score, ...nbest.map((h) => h.logProb)],
  };
}

test(
  'serve --queue: 503 until a worker is alive, then a caption and a stream equal to the worker threads’ answers, and the page',
  { timeout: 180_000 },
  async () => {
    const serve = await startServe();
    const noWorker = await readyz(serve.url);
    assert.equal(noWorker.status, 503);
    assert.equal(noWorker.body.ready, false);
    const refused = await fetch(`${serve.url}/api/captions`, { method: 'POST', body: form(png) });
    assert.equal(refused.status, 503);
    assert.ok(refused.headers.get('retry-after'));
    assert.match(await refused.text(), /no captioner worker with this model is alive/);

    const worker = startWorker();
    await waitFor(
      async () => {
        const r = await readyz(serve.url);
        return r.status === 200 && r.body.workers === 1;
      },
      60_000,
      () => `the worker to be ready (its stderr: ${worker.stderrSoFar()})`,
    );

    // The reference: the same requests to a server with its own worker thread.
    const local = await startServer({
      modelDir,
      port: 0,
      host: '127.0.0.1',
      workers: 1,
      maxQueue: 4,
      timeoutMs: 30_000,
      graceMs: 1000,
    });
    let expected: Record<string, unknown>;
    let expectedStream: SseRecord[];
    try {
      const res = await fetch(`${local.url}/api/captions`, { method: 'POST', body: form(png) });
      assert.equal(res.status, 200);
      expected = (await res.json()) as Record<string, unknown>;
      expectedStream = await readSse(
        await fetch(`${local.url}/api/captions/stream`, { method: 'POST', body: form(png) }),
      );
    } finally {
      await local.close();
    }
    const res = await fetch(`${serve.url}/api/captions`, { method: 'POST', body: form(png) });
    assert.equal(res.status, 200, await res.clone().text());
    const answer = (await res.json()) as Record<string, unknown>;
    assert.equal(answer.backend, 'queue');
    const [a, e] = [split(answer), split(expected)];
    assert.deepEqual(a.exact, e.exact);
    a.numbers.forEach((v, i) => assert.ok(Math.abs(v - e.numbers[i]!) <= 1e-4, `number ${i}: ${v} ≠ ${e.numbers[i]}`));

    // The stream: the hypotheses relayed from the worker as it decodes, as the worker thread
    // sends them, then the answer.
    const streamed = await fetch(`${serve.url}/api/captions/stream`, { method: 'POST', body: form(png) });
    assert.equal(streamed.status, 200);
    const records = await readSse(streamed);
    const steps = (rs: SseRecord[]) => rs.map((r) => [r.event, (r.data as { words?: string[] }).words]);
    assert.ok(records.filter((r) => r.event === 'hypothesis').length >= 1, 'no hypothesis relayed');
    assert.deepEqual(steps(records.slice(1, -1)), steps(expectedStream.slice(1, -1)));
    assert.deepEqual([records[0]!.event, records.at(-1)!.event], ['start', 'done']);
    assert.equal((records.at(-1)!.data as { caption: string }).caption, answer.caption);

    // The page, in a real Chromium (.ci/run installs it), over the queue: the caption streams in
    // and ends done, the API's sentence.
    const browser = await launchChromium();
    try {
      const page = await browser.newPage();
      const problems = watchProblems(page);
      await page.goto(serve.url);
      await page.selectOption('#strategy', 'greedy');
      await page.setInputFiles('#image-input', { name: 'x.png', mimeType: 'image/png', buffer: png });
      await page.waitForSelector('#caption[data-state="done"]', { timeout: 60_000 });
      const greedy = await fetch(`${serve.url}/api/captions`, {
        method: 'POST',
        body: form(png, 'x.png', 'image/png', { strategy: 'greedy' }),
      });
      const { sentence } = (await greedy.json()) as { sentence: string };
      assert.equal(((await page.textContent('#caption')) ?? '').trim(), sentence);
      assert.deepEqual(problems, []);
    } finally {
      await browser.close();
    }
    worker.child.kill('SIGTERM');
    assert.equal((await worker.done).code, 0);
    serve.child.kill('SIGTERM');
    assert.equal((await serve.done).code, 0);
  },
);

test(
  'serve --queue: past --max-jobs (and --max-waiting across replicas) 503 + Retry-After; a client that leaves cancels its job, waiting or running',
  { timeout: 180_000 },
  async () => {
    const serve = await startServe(['--max-jobs', '1']);
    const worker = startWorker();
    await waitFor(
      async () => (await readyz(serve.url)).status === 200,
      60_000,
      () => `the worker to be ready (its stderr: ${worker.stderrSoFar()})`,
    );
    const counts = () => serveQueue.getJobCounts('waiting', 'active', 'completed', 'failed');
    const before = await counts();

    // The worker stopped (SIGSTOP): a request's job waits on the queue and holds the one place.
    worker.child.kill('SIGSTOP');
    const leaving = new AbortController();
    const first = fetch(`${serve.url}/api/captions/stream`, {
      method: 'POST',
      body: form(png),
      signal: leaving.signal,
    }).catch((e: unknown) => e);
    await waitFor(async () => (await counts()).waiting === 1, 60_000, 'the first job to wait');
    const busy = await fetch(`${serve.url}/api/captions`, { method: 'POST', body: form(png) });
    assert.equal(busy.status, 503);
    assert.ok(Number(busy.headers.get('retry-after')) >= 1);
    assert.match(await busy.text(), /busy/);
    // A second web process (a replica) with room of its own but a bound across replicas: the
    // job the first one added counts against it.
    const replica = await startServe(['--max-waiting', '1']);
    const crowded = await fetch(`${replica.url}/api/captions`, { method: 'POST', body: form(png) });
    assert.equal(crowded.status, 503);
    assert.ok(Number(crowded.headers.get('retry-after')) >= 1);
    assert.match(await crowded.text(), /1 caption job waits on the queue for a worker/);
    assert.equal((await counts()).waiting, 1, 'the refused request added no job');
    replica.child.kill('SIGTERM');
    assert.equal((await replica.done).code, 0);
    // It leaves: its job is removed from the queue, so the worker never runs it.
    leaving.abort();
    assert.ok((await first) instanceof Error);
    await waitFor(async () => (await counts()).waiting === 0, 60_000, 'the abandoned job to be removed');
    worker.child.kill('SIGCONT');
    const after = await fetch(`${serve.url}/api/captions`, { method: 'POST', body: form(png) });
    assert.equal(after.status, 200, 'the place was freed');
    await waitFor(async () => (await counts()).active === 0, 60_000, 'the job to finish');
    assert.deepEqual(await counts(), { ...before, completed: before.completed! + 1 }, 'the abandoned job ran');

    // A client that leaves while its caption is being decoded: the worker stops at its next step.
    // How long a decode lasts depends on the machine: tried until the leaving lands mid-decode.
    let stopped = 0;
    for (let attempt = 0; attempt < 8 && stopped === 0; attempt++) {
      const client = new AbortController();
      const res = await fetch(`${serve.url}/api/captions/stream`, {
        method: 'POST',
        body: form(png, 'x.png', 'image/png', { strategy: 'beam', beamWidth: '10', maxLength: '40' }),
        signal: client.signal,
      });
      const seen: SseRecord[] = [];
      await readSse(res, (r) => {
        seen.push(r);
        if (r.event === 'hypothesis') client.abort();
      }).catch((e: unknown) => e);
      if (!seen.some((r) => r.event === 'done'))
        await waitFor(async () => (await counts()).active === 0, 60_000, 'the leaving job to end');
      const jobs = (await serveQueue.getCompleted()) as { returnvalue: ServeJobResult }[];
      stopped = jobs.filter((j) => j.returnvalue.cancelled).length;
    }
    assert.ok(stopped >= 1, 'no leaving client was caught mid-decode');
    worker.child.kill('SIGTERM');
    const ended = await worker.done;
    assert.equal(ended.code, 0);
    assert.match(ended.stderr, /[1-9]\d* web requests cancelled part-way/);
    serve.child.kill('SIGTERM');
    assert.equal((await serve.done).code, 0);
  },
);

test(
  'serve --queue: a worker killed mid-caption fails its request at once (500, an error event ending the stream), not at the time limit; one stopped by SIGTERM finishes it',
  { timeout: 180_000 },
  async () => {
    const serve = await startServe(['--timeout', '120000']);
    /** A worker whose death shows within a second (three missed 200 ms heartbeats). */
    const quickWorker = () =>
      track(
        startCli([
          'worker',
          '--queue',
          redis.url,
          '--model',
          modelDir,
          '--serve-concurrency',
          '1',
          '--heartbeat',
          '200',
        ]),
      );
    const ready = async (w: ReturnType<typeof quickWorker>) =>
      waitFor(
        async () => (await readyz(serve.url)).status === 200,
        60_000,
        () => `the worker to be ready (its stderr: ${w.stderrSoFar()})`,
      );
    /** A long caption, streamed; `onHypothesis` is called at its first hypothesis. */
    const longCaption = async (onHypothesis: () => void) => {
      const res = await fetch(`${serve.url}/api/captions/stream`, {
        method: 'POST',
        body: form(png, 'x.png', 'image/png', { strategy: 'beam', beamWidth: '10', maxLength: '40' }),
      });
      assert.equal(res.status, 200);
      let first = true;
      return readSse(res, (r) => {
        if (r.event === 'hypothesis' && first) {
          first = false;
          onHypothesis();
        }
      });
    };

    // SIGKILL at the first hypothesis; how long a decode lasts depends on the machine, so tried
    // until the kill lands mid-decode (the stream then does not end with 'done').
    let failed: SseRecord[] | null = null;
    for (let attempt = 0; attempt < 8 && !failed; attempt++) {
      const worker = quickWorker();
      await ready(worker);
      const records = await longCaption(() => worker.child.kill('SIGKILL'));
      assert.equal((await worker.done).signal, 'SIGKILL');
      if (records.at(-1)!.event !== 'done') failed = records;
    }
    assert.ok(failed, 'no kill landed mid-decode');
    assert.equal(failed[0]!.event, 'start');
    assert.ok(!failed.some((r) => r.event === 'done'), 'a caption was presented as complete');
    const last = failed.at(-1)!;
    assert.equal(last.event, 'error');
    assert.equal(last.data.status, 500, JSON.stringify(last.data)); // not 504: the time limit is two minutes
    assert.match(String(last.data.message), /the captioner worker \S+ stopped while captioning this image/);

    // A worker asked to stop (SIGTERM) mid-caption finishes it before it exits.
    const worker = quickWorker();
    await ready(worker);
    const records = await longCaption(() => worker.child.kill('SIGTERM'));
    assert.equal(records.at(-1)!.event, 'done', JSON.stringify(records.at(-1)));
    assert.equal((await worker.done).code, 0);
    serve.child.kill('SIGTERM');
    assert.equal((await serve.done).code, 0);
  },
);
