/**
 * The server against an attacker and a careless user (issue 18): clients that leave during the
 * upload or the decoding, decoding inside the admission limit and a memory budget, a replacement
 * worker that cannot load the model, DNS rebinding and cross-site posts, one set of decode
 * options for captioning and the preview, no absolute paths of the training machine, the
 * displayed size of a rotated image.
 */
import assert from 'node:assert/strict';
import { cp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { after, before, test } from 'node:test';
import type { Worker } from 'node:worker_threads';
import sharp from 'sharp';
import { readCheckpointConfig } from '../../model/io/checkpoint.ts';
import { DecodeBudget } from '../../server/decode-budget.ts';
import { CancelledError } from '../../server/errors.ts';
import { hostPolicy, isForeignRequest, isSameOrigin, normaliseHost } from '../../server/host-guard.ts';
import { resolveAllowedHosts, type RunningServer } from '../../server/listen.ts';
import { displayPath } from '../../server/public-paths.ts';
import { checkImage } from '../../server/upload.ts';
import {
  form,
  heavyPng,
  image,
  metricValue,
  multipartBytes,
  rawRequest,
  serve,
  startUpload,
  trainServerModel,
  waitFor,
  type TrainedModel,
} from './helpers.ts';

let model: TrainedModel;
let server: RunningServer;
let port: string;
/** 3000 × 3000, 16-bit RGBA: interlaced, it must be decoded whole (72 MB, about a second). */
let heavyInterlaced: Buffer;
/** The same without interlacing: read in strips. */
let heavyFlat: Buffer;

const GREEDY = { strategy: 'greedy' };

/** Where the training machine kept things, as a saved configuration records them. */
const TRAINING_MACHINE_CHECKPOINT = '/home/trainer/runs/v14-keep/ckpt-001000';

before(async () => {
  model = await trainServerModel();
  // A configuration naming the training machine's folders, as the bundled model's does.
  const { dir } = await readCheckpointConfig(model.modelDir);
  const config = JSON.parse(await readFile(`${dir}/config.json`, 'utf8')) as { train: Record<string, unknown> };
  config.train.initFrom = TRAINING_MACHINE_CHECKPOINT;
  await writeFile(`${dir}/config.json`, JSON.stringify(config, null, 2));
  server = await serve(model.modelDir, { allowedHosts: ['captions.test'] });
  port = new URL(server.url).port;
  [heavyInterlaced, heavyFlat] = await Promise.all([heavyPng(3000, 3000, true), heavyPng(3000, 3000, false)]);
});

after(async () => {
  await server?.close();
  await model?.cleanup();
});

const stats = async (url: string) =>
  (await (await fetch(`${url}/readyz`)).json()) as { accepted: number; reserved: number };

// ── 1. A client that leaves ────────────────────────────────────────────────────────────────

test('a client that leaves while its image is decoded never reaches a worker, and counts as 499', async () => {
  const before = await stats(server.url);
  const captions = await metricValue(server.url, 'captioner_captions_total');
  const left = await metricValue(server.url, 'captioner_http_requests_total', {
    route: '/api/captions/stream',
    status: '499',
  });
  const body = await multipartBytes(form(heavyInterlaced));
  const client = startUpload(server.url, '/api/captions/stream', body, body.body.length);
  await waitFor(
    async () => (await metricValue(server.url, 'captioner_image_decodes')) === 1,
    30_000,
    'the decode to start',
  );
  client.destroy();
  await client.response;
  await waitFor(
    async () => (await stats(server.url)).reserved === 0,
    30_000,
    'the decode to end and the request to let go of its place',
  );
  assert.equal((await stats(server.url)).accepted, before.accepted, 'no caption job was started');
  assert.equal(await metricValue(server.url, 'captioner_captions_total'), captions);
  assert.equal(
    await metricValue(server.url, 'captioner_http_requests_total', { route: '/api/captions/stream', status: '499' }),
    left + 1,
  );
  assert.equal(
    await metricValue(server.url, 'captioner_http_requests_total', { route: '/api/captions/stream', status: '200' }),
    0,
    'not counted as an answer',
  );
});

test('a client that leaves during its upload never reaches a worker, and counts as 499', async () => {
  const before = await stats(server.url);
  const byStatus = async (status: string) =>
    metricValue(server.url, 'captioner_http_requests_total', { route: '/api/captions', status });
  const [left, malformed] = [await byStatus('499'), await byStatus('400')];
  const body = await multipartBytes(form(heavyFlat));
  const client = startUpload(server.url, '/api/captions', body, Math.floor(body.body.length / 2));
  await waitFor(async () => (await stats(server.url)).reserved === 1, 30_000, 'the upload to be admitted');
  client.destroy();
  await client.response;
  await waitFor(async () => (await stats(server.url)).reserved === 0, 30_000, 'the request to let go of its place');
  assert.equal((await stats(server.url)).accepted, before.accepted, 'no caption job was started');
  assert.equal(await byStatus('499'), left + 1);
  assert.equal(await byStatus('400'), malformed, 'a cut-off upload is the client leaving, not a malformed request');
});

test('static files are counted under their route, not as unmatched', async () => {
  const before = await metricValue(server.url, 'captioner_http_requests_total', { route: '/static', status: '200' });
  const unmatched = await metricValue(server.url, 'captioner_http_requests_total', { route: 'unmatched' });
  assert.equal((await fetch(`${server.url}/static/app.js`)).status, 200);
  assert.equal((await fetch(`${server.url}/static/style.css`)).status, 200);
  await waitFor(
    async () =>
      (await metricValue(server.url, 'captioner_http_requests_total', { route: '/static', status: '200' })) ===
      before + 2,
    5_000,
    'the static files to be counted',
  );
  assert.equal(await metricValue(server.url, 'captioner_http_requests_total', { route: 'unmatched' }), unmatched);
});

// ── 2. Decoding inside the admission limit and a memory budget ─────────────────────────────

test('decoding is inside the admission limit: past it, 503 with Retry-After before anything is decoded', async () => {
  // One worker, no queue: one place. 50 MB of decode memory: the flat image (36 MB) fits.
  const tight = await serve(model.modelDir, { workers: 1, maxQueue: 0, limits: { maxDecodeBytes: 50 << 20 } });
  try {
    const small = await image('png');
    // A place held by an upload still arriving.
    const body = await multipartBytes(form(heavyFlat));
    const slow = startUpload(tight.url, '/api/captions', body, 1000);
    await waitFor(async () => (await stats(tight.url)).reserved === 1, 30_000, 'the slow upload to be admitted');
    const refused = await fetch(`${tight.url}/api/captions`, { method: 'POST', body: form(small) });
    assert.equal(refused.status, 503);
    assert.match(refused.headers.get('retry-after') ?? '', /^[1-9]\d*$/);
    assert.match(((await refused.json()) as { error: { message: string } }).error.message, /busy/);
    slow.destroy();
    await waitFor(async () => (await stats(tight.url)).reserved === 0, 30_000, 'the place to be freed');

    // A place held by an image being decoded.
    const decoding = fetch(`${tight.url}/api/captions`, { method: 'POST', body: form(heavyFlat) });
    await waitFor(
      async () => (await metricValue(tight.url, 'captioner_image_decodes')) === 1,
      30_000,
      'the decode to start',
    );
    const second = await fetch(`${tight.url}/api/captions`, { method: 'POST', body: form(small) });
    assert.equal(second.status, 503, 'refused while the first is decoded');
    assert.equal(await metricValue(tight.url, 'captioner_image_decodes'), 1, 'one decode at a time');
    assert.equal((await decoding).status, 200);
    assert.equal((await fetch(`${tight.url}/api/captions`, { method: 'POST', body: form(small) })).status, 200);
  } finally {
    await tight.close();
  }
});

test('decode memory is bounded from the header: bytes per sample, alpha and interlacing count', async () => {
  const limits = { maxBytes: 10 << 20, maxPixels: 40_000_000, maxDecodeBytes: 50 << 20 };
  // 9 megapixels × 4 channels × 2 bytes: whole when interlaced, half when read in strips.
  assert.equal((await checkImage(heavyInterlaced, limits).catch((e: Error) => e)).constructor.name, 'TooLargeError');
  assert.equal((await checkImage(heavyFlat, limits)).decodeBytes, (3000 * 3000 * 4 * 2) / 2);
  const rgb8 = await sharp({ create: { width: 3000, height: 3000, channels: 3, background: '#808080' } })
    .png()
    .toBuffer();
  assert.equal((await checkImage(rgb8, limits)).decodeBytes, (3000 * 3000 * 3) / 2);
  // A progressive JPEG holds its DCT coefficients, 2 bytes each; a baseline one is read in strips.
  const grey = sharp({ create: { width: 1000, height: 1000, channels: 3, background: '#808080' } });
  const progressive = await grey.clone().jpeg({ progressive: true }).toBuffer();
  const baseline = await grey.clone().jpeg().toBuffer();
  assert.equal((await checkImage(progressive, limits)).decodeBytes, 1000 * 1000 * 3 * 2);
  assert.equal((await checkImage(baseline, limits)).decodeBytes, (1000 * 1000 * 3) / 2);

  const tight = await serve(model.modelDir, { workers: 1, limits: { maxDecodeBytes: 50 << 20 } });
  try {
    const refused = await fetch(`${tight.url}/api/captions`, { method: 'POST', body: form(heavyInterlaced) });
    assert.equal(refused.status, 413);
    assert.match(
      ((await refused.json()) as { error: { message: string } }).error.message,
      /3000×3000, 4 channels of ushort, interlaced\) would take about 69 MB; the limit is 50 MB/,
    );
    assert.equal((await fetch(`${tight.url}/api/captions`, { method: 'POST', body: form(heavyFlat) })).status, 200);
  } finally {
    await tight.close();
  }
});

test('decodes wait for memory first come first served; one whose client leaves while waiting is dropped', async () => {
  const budget = new DecodeBudget(100);
  const order: string[] = [];
  let finishFirst = () => {};
  const first = budget.run(60, undefined, async () => {
    order.push('first');
    await new Promise<void>((resolve) => (finishFirst = resolve));
  });
  const leaving = new AbortController();
  const second = budget.run(60, leaving.signal, async () => {
    order.push('second');
  });
  const third = budget.run(30, undefined, async () => {
    order.push('third');
  });
  await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(order, ['first'], 'the second does not fit; the third waits its turn behind it');
  assert.deepEqual(budget.stats(), { decoding: 1, waiting: 2, bytes: 60, peakBytes: 60 });
  leaving.abort();
  await assert.rejects(second, CancelledError);
  await third;
  assert.deepEqual(order, ['first', 'third'], 'the third fits beside the first once the second has gone');
  finishFirst();
  await first;
  assert.deepEqual(budget.stats(), { decoding: 0, waiting: 0, bytes: 0, peakBytes: 90 });
});

// ── 3. A replacement worker that cannot load the model ─────────────────────────────────────

test('a replacement worker that cannot load the model is retried and logged; meanwhile 503 at once', async () => {
  const copy = `${model.modelDir}-copy`;
  await cp(model.modelDir, copy, { recursive: true });
  const lines: string[] = [];
  const flaky = await serve(copy, {
    workers: 1,
    timeoutMs: 20_000,
    restartBackoff: { initialMs: 100, maxMs: 400 },
    log: (line) => lines.push(line),
  });
  try {
    await rename(copy, `${copy}-away`); // the model directory changes under the running server
    // The worker dies, as a crash would end it.
    await (flaky.pool as unknown as { slots: { worker: Worker }[] }).slots[0]!.worker.terminate();
    await waitFor(
      () => lines.filter((l) => /could not load the model/.test(l)).length >= 2,
      60_000,
      'two failed attempts to be logged',
    );
    assert.match(lines.join('\n'), /worker: the caption worker exited \(code 1\); starting a replacement/);
    assert.match(lines.join('\n'), /\(attempt 1\): .*not a model directory.*; retrying in 100 ms/);
    assert.match(lines.join('\n'), /\(attempt 2\): .*; retrying in 200 ms/);
    assert.equal((await fetch(`${flaky.url}/readyz`)).status, 503);
    const started = performance.now();
    const refused = await fetch(`${flaky.url}/api/captions`, { method: 'POST', body: form(await image('png')) });
    assert.equal(refused.status, 503, 'refused, not left to time out');
    assert.ok(performance.now() - started < 5_000, 'at once');
    assert.equal(refused.headers.get('retry-after'), '5');
    assert.ok((await metricValue(flaky.url, 'captioner_worker_start_failures_total')) >= 2);

    await rename(`${copy}-away`, copy);
    await waitFor(async () => (await fetch(`${flaky.url}/readyz`)).status === 200, 60_000, 'a worker to be ready');
    assert.match(lines.join('\n'), /a replacement loaded the model \(attempt \d+\)/);
    const res = await fetch(`${flaky.url}/api/captions`, { method: 'POST', body: form(await image('png')) });
    assert.equal(res.status, 200);
  } finally {
    await flaky.close();
    await rm(copy, { recursive: true, force: true });
    await rm(`${copy}-away`, { recursive: true, force: true });
  }
});

// ── 4. DNS rebinding and cross-site posts ──────────────────────────────────────────────────

test('DNS rebinding: a Host the server does not answer to gets 421, on every route', async () => {
  for (const path of ['/', '/model', '/healthz', '/metrics', '/static/app.js']) {
    const res = await rawRequest(server.url, { path, headers: { host: `rebound.example:${port}` } });
    assert.equal(res.status, 421, path);
    assert.doesNotMatch(res.body, /hiddenSize|captioner_http/, `${path}: nothing of the page is shown`);
  }
  const { body, contentType } = await multipartBytes(form(await image('png')));
  const post = await rawRequest(server.url, {
    method: 'POST',
    path: '/api/captions',
    headers: { host: `rebound.example:${port}`, 'content-type': contentType },
    body,
  });
  assert.equal(post.status, 421);
  assert.match(post.body, /does not answer to the host name \\"rebound.example\\".*--allowed-host/);
  for (const host of [`localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`, 'captions.test', 'CAPTIONS.TEST.']) {
    assert.equal((await rawRequest(server.url, { path: '/healthz', headers: { host } })).status, 200, host);
  }
  assert.ok((await metricValue(server.url, 'captioner_http_requests_total', { status: '421' })) >= 6);
});

test('a POST from another origin gets 403; this origin, no Origin and an --allowed-host origin pass', async () => {
  const { body, contentType } = await multipartBytes(form(await image('png'), 'x.png', 'image/png', GREEDY));
  const postFrom = (origin: string | null, host = `127.0.0.1:${port}`) =>
    rawRequest(server.url, {
      method: 'POST',
      path: '/api/captions',
      headers: { host, 'content-type': contentType, ...(origin === null ? {} : { origin }) },
      body,
    });
  for (const origin of ['https://evil.example', 'null', `http://localhost:${Number(port) + 1}`, `http://127.0.0.1`]) {
    const res = await postFrom(origin);
    assert.equal(res.status, 403, origin);
    assert.match(res.body, /from another site/);
  }
  assert.equal((await postFrom(`http://127.0.0.1:${port}`)).status, 200);
  assert.equal((await postFrom(`http://localhost:${port}`, `localhost:${port}`)).status, 200);
  assert.equal((await postFrom(null)).status, 200, 'a client that sends no Origin (curl, scripts)');
  assert.equal((await postFrom('https://captions.test')).status, 200, 'the name given with --allowed-host');
  // A browser hides the Origin of a page whose referrer policy says so ("null"); its fetch
  // metadata, which no page can set, still tells this origin from another site.
  const postWith = (headers: Record<string, string>) =>
    rawRequest(server.url, {
      method: 'POST',
      path: '/api/captions',
      headers: { host: `127.0.0.1:${port}`, 'content-type': contentType, ...headers },
      body,
    });
  assert.equal((await postWith({ origin: 'null', 'sec-fetch-site': 'same-origin' })).status, 200);
  assert.equal((await postWith({ origin: 'null', 'sec-fetch-site': 'cross-site' })).status, 403);
  assert.equal((await postWith({ 'sec-fetch-site': 'same-site' })).status, 403, 'another port of this host');
  // The page itself: a GET from anywhere is no change of state.
  const get = await rawRequest(server.url, { path: '/', headers: { host: `127.0.0.1:${port}`, origin: 'null' } });
  assert.equal(get.status, 200);
});

test('host names: normalised; bound to every interface, the machine’s own addresses; the flag or the variable', () => {
  assert.equal(normaliseHost('LocalHost.:3000'), 'localhost');
  assert.equal(normaliseHost('[::1]:80'), '[::1]');
  assert.equal(normaliseHost('::1'), '[::1]');
  const loopback = hostPolicy('127.0.0.1');
  assert.deepEqual([...loopback.allowed].sort(), ['127.0.0.1', '[::1]', 'localhost']);
  const everywhere = hostPolicy('0.0.0.0', ['captions.example.org']);
  assert.ok(everywhere.allowed.has('127.0.0.1') && everywhere.allowed.has('captions.example.org'));
  assert.ok(!everywhere.allowed.has('0.0.0.0'));
  assert.ok(hostPolicy('192.0.2.7').allowed.has('192.0.2.7'), 'the bound address');
  assert.ok(isSameOrigin('http://localhost', 'localhost', loopback), 'default port on both sides');
  assert.ok(!isSameOrigin('http://localhost:8080', 'localhost:3000', loopback), 'another local server');
  assert.equal(isForeignRequest(undefined, undefined, 'localhost:3000', loopback), false, 'curl');
  assert.equal(isForeignRequest('null', undefined, 'localhost:3000', loopback), true);
  assert.equal(isForeignRequest('null', 'same-origin', 'localhost:3000', loopback), false);
  assert.equal(
    isForeignRequest('http://localhost:3000', 'cross-site', 'localhost:3000', loopback),
    false,
    'Origin decides',
  );
  assert.deepEqual(resolveAllowedHosts(['a.test', 'b.test,c.test'], 'env.test'), ['a.test', 'b.test', 'c.test']);
  assert.deepEqual(resolveAllowedHosts(undefined, 'x.test, y.test'), ['x.test', 'y.test']);
  assert.deepEqual(resolveAllowedHosts([], undefined), []);
});

// ── 5. One set of decode options ───────────────────────────────────────────────────────────

/** A JPEG with a restart marker in the middle of its scan data: libjpeg warns, and decodes it. */
async function jpegWithMarkerInScan(): Promise<Buffer> {
  const jpeg = await image('jpeg', 64, 64);
  let sos = -1;
  for (let i = 2; i < jpeg.length - 1 && sos < 0; i++) if (jpeg[i] === 0xff && jpeg[i + 1] === 0xda) sos = i;
  const scan = sos + 2 + jpeg.readUInt16BE(sos + 2);
  let at = Math.floor((scan + jpeg.length - 2) / 2);
  while (jpeg[at - 1] === 0xff || jpeg[at] === 0x00) at++; // not inside a stuffed FF 00
  return Buffer.concat([jpeg.subarray(0, at), Buffer.from([0xff, 0xd5]), jpeg.subarray(at)]);
}

test('a JPEG with a marker inside its scan data is captioned by the API and by the form without JavaScript', async () => {
  const jpeg = await jpegWithMarkerInScan();
  await assert.rejects(sharp(jpeg).toBuffer(), /Corrupt JPEG data/, "sharp's default (failOn warning) refuses it");
  const api = await fetch(`${server.url}/api/captions`, {
    method: 'POST',
    body: form(jpeg, 'x.jpg', 'image/jpeg', GREEDY),
  });
  assert.equal(api.status, 200);
  const page = await fetch(`${server.url}/`, {
    method: 'POST',
    body: form(jpeg, 'x.jpg', 'image/jpeg', GREEDY),
    headers: { accept: 'text/html' },
  });
  assert.equal(page.status, 200);
  assert.match(await page.text(), /<img id="preview"[^>]* src="data:image\/jpeg;base64,/);
});

// ── 7. No absolute paths of the training machine ───────────────────────────────────────────

test('the model page and the API show no absolute path: the model by name, saved paths relative or by name', async () => {
  const html = await (await fetch(`${server.url}/model`)).text();
  for (const path of [model.modelDir, model.dataDir, '/home/trainer', '/tmp/'])
    assert.ok(!html.includes(path), `the page shows ${path}`);
  const name = (p: string) => p.split('/').filter(Boolean).at(-1)!;
  assert.match(html, new RegExp(`<dt>Directory</dt><dd><code>${name(model.modelDir)}</code>`));
  assert.match(html, /<dt>Started from<\/dt><dd><code>ckpt-001000<\/code>/);
  assert.match(html, new RegExp(`&quot;data&quot;: &quot;${name(model.dataDir)}&quot;`));
  assert.match(html, /&quot;out&quot;: &quot;.&quot;/, 'the model directory itself');
  const json = await (
    await fetch(`${server.url}/api/captions`, { method: 'POST', body: form(await image('png'), 'x.png', 'image/png') })
  ).text();
  assert.ok(!json.includes('/tmp/') && !json.includes(model.modelDir));

  assert.equal(displayPath('/srv/models/x/ckpt-000100', '/srv/models/x'), 'ckpt-000100');
  assert.equal(displayPath('/srv/data/shapes60d', 'models/default'), 'shapes60d');
  assert.equal(displayPath('C:\\Users\\me\\data\\coco', 'models/default'), 'coco');
  assert.equal(displayPath('data/tiny', '/srv/model'), 'data/tiny', 'a relative path stays');
});

// ── 8. The displayed size ──────────────────────────────────────────────────────────────────

test('the reported image size is after EXIF rotation: an orientation-6 image stored 80×40 is 40×80', async () => {
  const stored = await sharp({ create: { width: 80, height: 40, channels: 3, background: '#c03030' } })
    .jpeg()
    .withMetadata({ orientation: 6 })
    .toBuffer();
  const res = await fetch(`${server.url}/api/captions`, {
    method: 'POST',
    body: form(stored, 'x.jpg', 'image/jpeg', GREEDY),
  });
  assert.equal(res.status, 200);
  assert.deepEqual(((await res.json()) as { image: unknown }).image, { format: 'jpeg', width: 40, height: 80 });
});
