/**
 * Captioning on the device, in headless Chromium (docs/browser.md): the page's "Caption on this
 * device" switch loads the browser bundle, the WebAssembly backend and the model's files from the
 * server, then captions with no upload. The greedy caption on the device equals the server's for
 * several images, for a tiny model and for the bundled one; the canvas preprocessing's pixels are
 * compared with sharp's and their difference bounded. CI installs chromium (.ci/run); there a
 * missing browser fails the test rather than skipping it.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, describe, test } from 'node:test';
import sharp from 'sharp';
import type { Browser, Page } from 'playwright-core';
import { chromiumMissing, launchChromium, watchProblems } from '../../scripts/chromium.ts';
import { shapesScene } from '../../data-scripts/shapes/generate.ts';
import { encodePng, renderDrawing } from '../../data-scripts/shapes/render.ts';
import { build } from 'esbuild';
import { browserOnly, deviceBundle } from '../../browser/build.ts';
import { loadImagePixels } from '../../model/data/image.ts';
import type { RunningServer } from '../../server/listen.ts';
import { form, image, serve, trainServerModel, type TrainedModel } from '../server/helpers.ts';

const skip = chromiumMissing();
const PHOTOGRAPH = '/usr/lib/python3/dist-packages/skimage/data/chelsea.png';
const available = skip === false;

let browser: Browser;

before(async () => {
  if (available) browser = await launchChromium();
});
after(async () => {
  await browser?.close();
});

interface TestImage {
  name: string;
  type: string;
  bytes: Buffer;
}

/** The server's greedy result for `img` (the JSON API, sharp's preprocessing, the native CPU backend). */
async function serverResult(
  server: RunningServer,
  img: TestImage,
): Promise<{ sentence: string; familiarity?: { familiar: boolean } }> {
  const res = await fetch(`${server.url}/api/captions`, {
    method: 'POST',
    body: form(img.bytes, img.name, img.type, { strategy: 'greedy' }),
  });
  assert.equal(res.status, 200, await res.clone().text());
  return (await res.json()) as { sentence: string; familiarity?: { familiar: boolean } };
}

async function serverCaption(server: RunningServer, img: TestImage): Promise<string> {
  return (await serverResult(server, img)).sentence;
}

/** Opens the page on the WebAssembly backend with the switch on, and waits for the model to be on the device. */
async function openOnDevice(server: RunningServer): Promise<{ page: Page; problems: string[] }> {
  const page = await browser.newPage();
  const problems = watchProblems(page);
  await page.goto(`${server.url}/?backend=wasm`);
  await page.check('#device-toggle');
  await page.waitForSelector('#device[data-ready]', { timeout: 60_000 });
  assert.equal(await page.getAttribute('#device', 'data-ready'), 'wasm');
  await page.selectOption('#strategy', 'greedy');
  return { page, problems };
}

/** Captions `img` through the page and returns the finished caption (`data-caption`). */
async function pageCaption(page: Page, img: TestImage): Promise<string> {
  await page.evaluate(() => delete document.getElementById('caption')!.dataset.caption);
  await page.setInputFiles('#image-input', { name: img.name, mimeType: img.type, buffer: img.bytes });
  await page.waitForSelector('#caption[data-caption]', { timeout: 30_000 });
  return (await page.getAttribute('#caption', 'data-caption')) ?? '';
}

/** The device's preprocessing of `bytes` (browser/pixels.ts, through the bundle the page loaded). */
async function devicePixels(page: Page, bytes: Buffer, size: number): Promise<number[]> {
  return page.evaluate(
    async ({ b64, size }) => {
      const lib = (await import('/device/captioner.js' as string)) as {
        imagePixels(blob: Blob, size: number): Promise<Uint8Array>;
      };
      const raw = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      return Array.from(await lib.imagePixels(new Blob([raw]), size));
    },
    { b64: bytes.toString('base64'), size },
  );
}

test('the bundle holds no Node-only module: no native kernels, no sharp, no node: built-ins', async () => {
  const { inputs } = await deviceBundle();
  assert.ok(inputs.includes('model/nn/captioner.ts') && inputs.includes('model/runtime/fused.ts'), inputs.join(' '));
  const nodeOnly = inputs.filter((i) =>
    /runtime\/(native|fused-optim)\.ts|runtime\/kernels\/|sharp|^node:|model\/io\/(checkpoint|layers-io|fsutil)\.ts/.test(
      i,
    ),
  );
  assert.deepEqual(nodeOnly, []);
  // And the build refuses one, naming it and its importer.
  await assert.rejects(
    build({
      stdin: {
        contents: "import { readFile } from 'node:fs/promises'; console.log(readFile);",
        resolveDir: '.',
        sourcefile: 'entry.ts',
      },
      bundle: true,
      write: false,
      logLevel: 'silent',
      plugins: [browserOnly],
    }),
    /node:fs\/promises is Node-only, imported by entry\.ts/,
  );
});

describe('a tiny model', () => {
  let model: TrainedModel;
  let server: RunningServer;
  const images: TestImage[] = [];

  before(async () => {
    if (!available) return;
    model = await trainServerModel();
    server = await serve(model.modelDir);
    images.push({ name: 'a.png', type: 'image/png', bytes: await image('png', 96, 96) });
    images.push({ name: 'b.jpg', type: 'image/jpeg', bytes: await image('jpeg', 120, 80) });
    images.push({ name: 'c.png', type: 'image/png', bytes: await image('png', 16, 16) });
  });
  after(async () => {
    await server?.close();
    await model?.cleanup();
  });

  test("the greedy caption on the device (WebAssembly) equals the server's", { skip }, async () => {
    const { page, problems } = await openOnDevice(server);
    // Record how many words the caption shows after every change the page makes to it.
    await page.evaluate(() => {
      const caption = document.getElementById('caption')!;
      const counts: number[] = [];
      (window as unknown as { counts: number[] }).counts = counts;
      new MutationObserver(() => counts.push(caption.querySelectorAll('.word').length)).observe(caption, {
        childList: true,
        subtree: true,
      });
    });
    for (const img of images) {
      const expected = await serverCaption(server, img);
      assert.equal(await pageCaption(page, img), expected, img.name);
    }
    // The words streamed in one by one, as in server mode: 1, 2, … words shown before the whole caption.
    const counts = await page.evaluate(() => (window as unknown as { counts: number[] }).counts);
    assert.ok(counts.includes(1) && counts.includes(2), `word counts seen: ${counts.join(',')}`);
    assert.match(
      (await page.textContent('#answered')) ?? '',
      /Answered by this device: model \S+ on the wasm backend \(greedy\) in \d+ ms/,
    );
    assert.match((await page.textContent('#status')) ?? '', /Done on this device in \d+ ms/);
    assert.deepEqual(problems, []);
    await page.close();
  });

  test('the switch is remembered, and a second load reads the model from the browser cache', { skip }, async () => {
    const { page } = await openOnDevice(server);
    const fetched: number[] = [];
    page.on('response', (r) => {
      if (r.url().includes('/device/model/weights')) fetched.push(r.status());
    });
    await page.reload();
    assert.ok(await page.isChecked('#device-toggle'), 'the switch is still on after a reload');
    await page.waitForSelector('#device[data-ready]', { timeout: 60_000 });
    // Revalidated, not downloaded again: 304, or served from the memory cache (200 from cache).
    const fromCache = await page.evaluate(() =>
      performance
        .getEntriesByType('resource')
        .filter((e) => e.name.includes('/device/model/weights'))
        .map((e) => (e as PerformanceResourceTiming).transferSize),
    );
    assert.ok(fromCache.length > 0, 'the weights were requested');
    assert.ok(
      fromCache.every((bytes) => bytes < 1000),
      `the weights came from the cache (transfer sizes ${fromCache.join(', ')})`,
    );
    await page.uncheck('#device-toggle');
    await page.reload();
    assert.equal(await page.isChecked('#device-toggle'), false);
    await page.close();
  });
});

/** Fresh shapes scenes (a seed the bundled model never saw), drawn at `size` and encoded as `format`. */
async function shapesImages(n: number, size: number, format: 'png' | 'jpeg'): Promise<TestImage[]> {
  const out: TestImage[] = [];
  for (let i = 0; i < n; i++) {
    const scene = shapesScene(20261202, i, { generatorVersion: 1 });
    const png = await encodePng(await renderDrawing(scene.drawing, size, scene.noiseSeed), size);
    const bytes = format === 'png' ? png : await sharp(png).jpeg({ quality: 92 }).toBuffer();
    out.push({ name: `scene${i}-${size}.${format}`, type: `image/${format}`, bytes });
  }
  return out;
}

describe('the bundled model (models/default)', () => {
  let server: RunningServer;
  let images: TestImage[] = [];

  before(async () => {
    if (!available) return;
    server = await serve('models/default');
    // At the model's own size (64), and drawn larger so that both sides scale them down.
    images = [
      ...(await shapesImages(3, 64, 'png')),
      ...(await shapesImages(2, 128, 'png')),
      ...(await shapesImages(1, 160, 'jpeg')),
    ];
  });
  after(async () => {
    await server?.close();
  });

  test(
    "the greedy caption on the device (WebAssembly) equals the server's, attention maps and all",
    { skip },
    async () => {
      const { page, problems } = await openOnDevice(server);
      for (const img of images) {
        const expected = await serverResult(server, img);
        assert.equal(await pageCaption(page, img), expected.sentence, img.name);
        const unfamiliar = expected.familiarity?.familiar === false;
        assert.equal(await page.isVisible('#unfamiliar'), unfamiliar, `${img.name}: familiarity as on the server`);
      }
      // An attending model: the page can show where it looked for each word.
      assert.equal(await page.isHidden('#attention'), false, 'the attention maps are offered');
      // A photograph (python3-skimage's cat, which .ci/run installs): unfamiliar on the server and the device alike.
      const photo = { name: 'chelsea.png', type: 'image/png', bytes: await readFile(PHOTOGRAPH) };
      assert.equal((await serverResult(server, photo)).familiarity?.familiar, false);
      await pageCaption(page, photo);
      assert.equal(await page.isVisible('#unfamiliar'), true, 'the unfamiliar notice shows for the photograph');
      assert.deepEqual(problems, []);
      await page.close();
    },
  );

  test("the canvas preprocessing is within a few levels of sharp's", { skip }, async () => {
    const { page } = await openOnDevice(server);
    const size = 64;
    const lines: string[] = [];
    for (const img of images) {
      const [device, ours] = [await devicePixels(page, img.bytes, size), await loadImagePixels(img.bytes, size)];
      assert.equal(device.length, ours.length);
      let sum = 0;
      let max = 0;
      for (let k = 0; k < ours.length; k++) {
        const d = Math.abs(device[k]! - ours[k]!);
        sum += d;
        max = Math.max(max, d);
      }
      const mean = sum / ours.length;
      lines.push(`${img.name}: mean ${mean.toFixed(2)}, max ${max}`);
      // Unscaled images decode to the same pixels; scaled ones differ by the resampling filter.
      if (img.name.endsWith('-64.png')) assert.equal(max, 0, lines.at(-1));
      else assert.ok(mean < 3 && max < 40, lines.at(-1));
    }
    console.log(`pixel differences, device vs sharp (0-255): ${lines.join('; ')}`);
    await page.close();
  });
});
