/**
 * `captioner export-site`: the site it writes captions in headless Chromium when served by a
 * plain static file server (node:http here, as `python3 -m http.server` would serve it) with no
 * captioner server running, and the caption equals the library's own greedy caption of the
 * image; --help, and errors naming the path. CI installs chromium (.ci/run); there a missing
 * browser fails the test rather than skipping it.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { extname, join, normalize } from 'node:path';
import { after, before, test } from 'node:test';
import { chromiumMissing, launchChromium, watchProblems } from '../../scripts/chromium.ts';
import { shapesScene } from '../../data-scripts/shapes/generate.ts';
import { encodePng, renderDrawing } from '../../data-scripts/shapes/render.ts';
import { imagesToTensor, loadImagePixels } from '../../model/data/image.ts';
import { captionImages } from '../../model/decode/decode.ts';
import { applyRecommendation } from '../../model/decode/recommended.ts';
import { loadModel } from '../../model/io/load.ts';
import { toSentence } from '../../model/text/sentence.js';
import { setupBackend } from '../helpers/tf.ts';
import { runCli } from '../helpers/cli.ts';

const skip = chromiumMissing();
const MODEL_DIR = 'models/default';
const TYPES: Record<string, string> = {
  '.html': 'text/html',
  '.js': 'text/javascript',
  '.css': 'text/css',
  '.svg': 'image/svg+xml',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
};

let work: string;
let site: string;

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'captioner-site-'));
  site = join(work, 'www', 'site');
});
after(async () => {
  await rm(work, { recursive: true, force: true });
});

/** A static file server for `root` and nothing else: no captioner code answers. */
async function staticServer(root: string): Promise<{ url: string; server: Server }> {
  const server = createServer((req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname)).replace(
      /^(\.\.[/\\])+/,
      '',
    );
    const file = join(root, path.endsWith('/') ? `${path}index.html` : path);
    readFile(file).then(
      (body) => {
        res.writeHead(200, { 'Content-Type': TYPES[extname(file)] ?? 'application/octet-stream' });
        res.end(body);
      },
      () => {
        res.writeHead(404);
        res.end();
      },
    );
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

test('export-site --help names its options', async () => {
  const r = await runCli(['export-site', '--help']);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /--model/);
  assert.match(r.stdout, /--out/);
  assert.match(r.stdout, /http\.server/);
});

test('export-site: a bad model directory is exit 3 naming it; an existing --out is exit 2', async () => {
  const missing = join(work, 'no-model');
  const bad = await runCli(['export-site', '--model', missing, '--out', join(work, 'x')]);
  assert.equal(bad.code, 3, bad.stderr);
  assert.ok(bad.stderr.includes(missing), bad.stderr);
  const exists = await runCli(['export-site', '--model', MODEL_DIR, '--out', work]);
  assert.equal(exists.code, 2, exists.stderr);
  assert.ok(exists.stderr.includes(work), exists.stderr);
});

test('the exported site captions in Chromium from a plain static server, as the library does', { skip }, async () => {
  const r = await runCli(['export-site', '--model', MODEL_DIR, '--out', site]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.trim(), site, 'the site path on stdout');
  assert.match(r.stderr, /bundle \d+\.\d+ MB/);

  const scene = shapesScene(20261203, 0, { generatorVersion: 1 });
  const png = await encodePng(await renderDrawing(scene.drawing, 64, scene.noiseSeed), 64);
  await setupBackend();
  const { model, prior, decoding } = await loadModel(MODEL_DIR);
  // `captioner caption` with no decoding flags: the model's recommended decoding (decoding.json).
  assert.ok(decoding, `${MODEL_DIR} recommends a decoding`);
  const settings = applyRecommendation(decoding, { strategy: 'greedy' }, false);
  const image = imagesToTensor([await loadImagePixels(png, 64)], 64);
  const [expected] = captionImages(model, image, { ...settings, prior });
  image.dispose();
  model.dispose();

  const { url, server } = await staticServer(join(work, 'www'));
  const browser = await launchChromium();
  try {
    const page = await browser.newPage();
    const problems = watchProblems(page);
    // From a folder of the static server, not its root: every path of the site is relative.
    await page.goto(`${url}/site/?backend=wasm`);
    await page.waitForSelector('#device[data-ready]', { timeout: 60_000 });
    assert.equal(await page.getAttribute('#device', 'data-ready'), 'wasm');
    assert.equal(
      await page.inputValue('#strategy'),
      settings.strategy,
      'decodes as `captioner caption` does by default',
    );
    if (settings.strategy === 'beam') assert.equal(await page.inputValue('#beam-width'), String(settings.beamWidth));
    await page.setInputFiles('#image-input', { name: 'scene.png', mimeType: 'image/png', buffer: png });
    await page.waitForSelector('#caption[data-caption]', { timeout: 30_000 });
    assert.equal(await page.getAttribute('#caption', 'data-caption'), toSentence(expected!.words));
    assert.match((await page.textContent('#answered')) ?? '', /Answered by this device/);
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
    server.close();
  }
});
