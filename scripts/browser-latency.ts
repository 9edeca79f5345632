/**
 * In-browser latency against the server's (docs/browser.md): serves a model, opens the page in
 * headless Chromium, loads the model onto the "device" with each browser backend that works
 * (WebAssembly, WebGL where Chromium has it), and captions the same fresh shapes scenes greedily
 * and with beam search on the device (through the bundle, as the page does) and on the server
 * (its JSON API's decode time). Prints the medians; the figures are indicative, since they
 * depend on the machine and its load.
 *
 *   node --import tsx scripts/browser-latency.ts [--model models/default] [--images 8] [--beam 8]
 */
import { parseArgs } from 'node:util';
import { loadavg } from 'node:os';
import { launchChromium } from './chromium.ts';
import { shapesScene } from '../data-scripts/shapes/generate.ts';
import { encodePng, renderDrawing } from '../data-scripts/shapes/render.ts';
import { startServer } from '../server/listen.ts';
import { readCheckpointConfig } from '../model/io/checkpoint.ts';

const { values } = parseArgs({
  options: {
    model: { type: 'string', default: 'models/default' },
    images: { type: 'string', default: '8' },
    beam: { type: 'string', default: '8' },
  },
});
const modelDir = values.model!;
const count = Number(values.images);
const beam = Number(values.beam);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const size = (await readCheckpointConfig(modelDir)).config.model.imageSize;
const pngs: string[] = [];
for (let i = 0; i < count; i++) {
  const scene = shapesScene(20261204, i, { generatorVersion: 1 });
  pngs.push((await encodePng(await renderDrawing(scene.drawing, size, scene.noiseSeed), size)).toString('base64'));
}
const settings = [{ strategy: 'greedy' }, { strategy: 'beam', beamWidth: beam, nBest: 3 }] as const;

console.log(
  `load average before: ${loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')}`,
);
const server = await startServer({
  modelDir,
  port: 0,
  host: '127.0.0.1',
  workers: 1,
  maxQueue: 8,
  timeoutMs: 60_000,
  graceMs: 5000,
});
const browser = await launchChromium();
try {
  for (const s of settings) {
    const ms: number[] = [];
    let backend = '';
    for (const b64 of pngs) {
      const body = new FormData();
      body.append('image', new Blob([Buffer.from(b64, 'base64')], { type: 'image/png' }), 'x.png');
      body.append('strategy', s.strategy);
      if (s.strategy === 'beam') body.append('beamWidth', String(beam));
      const res = await fetch(`${server.url}/api/captions`, { method: 'POST', body });
      const json = (await res.json()) as { backend: string; timing: { decodeMs: number } };
      backend = json.backend;
      ms.push(json.timing.decodeMs);
    }
    console.log(`server (${backend}), ${s.strategy}: median ${median(ms)} ms over ${ms.length} images`);
  }
  for (const backend of ['wasm', 'webgl']) {
    const page = await browser.newPage();
    await page.goto(server.url);
    const out = await page.evaluate(
      async ({ backend, pngs, settings }) => {
        type Lib = {
          useBackend(p: string, wasm: URL): Promise<string>;
          loadDeviceModel(u: URL): Promise<{ model: { config: { imageSize: number } } }>;
          imagePixels(b: Blob, size: number): Promise<Uint8Array>;
          captionOnDevice(m: unknown, px: Uint8Array, s: unknown): AsyncGenerator<{ event: string }>;
        };
        const lib = (await import('/device/captioner.js' as string)) as Lib;
        let used: string;
        try {
          used = await lib.useBackend(backend, new URL('/device/wasm/', location.href));
        } catch (err) {
          return { error: (err as Error).message };
        }
        let t = performance.now();
        const model = await lib.loadDeviceModel(new URL('/device/model/', location.href));
        const loadMs = performance.now() - t;
        const pixels = await Promise.all(
          pngs.map((b64) =>
            lib.imagePixels(
              new Blob([Uint8Array.from(atob(b64), (c) => c.charCodeAt(0))]),
              model.model.config.imageSize,
            ),
          ),
        );
        for await (const _ of lib.captionOnDevice(model, pixels[0]!, settings[0])); // warm-up
        const times: Record<string, number[]> = {};
        for (const s of settings) {
          times[s.strategy] = [];
          for (const px of pixels) {
            t = performance.now();
            for await (const _ of lib.captionOnDevice(model, px, s));
            times[s.strategy]!.push(performance.now() - t);
          }
        }
        return { used, loadMs, times };
      },
      { backend, pngs, settings },
    );
    if ('error' in out) console.log(`device, ${backend}: not available (${out.error})`);
    else
      for (const [strategy, ms] of Object.entries(out.times))
        console.log(
          `device (${out.used}), ${strategy}: median ${median(ms).toFixed(0)} ms over ${ms.length} images (model loaded in ${out.loadMs.toFixed(0)} ms)`,
        );
    await page.close();
  }
} finally {
  await browser.close();
  await server.close();
  console.log(
    `load average after: ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  );
}
