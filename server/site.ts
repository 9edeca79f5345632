/**
 * `captioner export-site`: the page as a static site that captions entirely in the visitor's
 * browser (docs/browser.md), served by any static file server:
 *
 *   SITE/index.html          the page (views/home.hbs), the "on this device" switch fixed on
 *   SITE/static/             its script and styles (server/public/, model/text/sentence.js)
 *   SITE/device/captioner.js the browser bundle (browser/build.ts)
 *   SITE/device/wasm/        the WebAssembly backend's .wasm files
 *   SITE/device/model/       manifest.json and the model's files (browser/files.ts)
 *
 * Every path in the page is relative, so the site works from any folder of a web server. The
 * site is written under a temporary name and renamed into place: it appears whole or not at all.
 */
import { copyFile, mkdir, readdir, stat, writeFile } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { BUNDLE_FILE, WASM_DIR, deviceBundle, wasmFiles } from '../browser/build.ts';
import { deviceModelFiles } from '../browser/files.ts';
import { DEVICE_MANIFEST } from '../browser/manifest.ts';
import { DEFAULT_BEAM_WIDTH, DEFAULT_DECODE_LIMITS } from '../model/decode/options.ts';
import { readModelDecoding } from '../model/io/decoding-file.ts';
import { writeDirAtomic } from '../model/io/fsutil.ts';
import { PUBLIC_DIR, SENTENCE_MODULE, VIEWS_DIR } from './app.ts';
import { readModelCard } from './model-info.ts';
import { unfamiliarNotice } from './routes/pages.ts';
import { DEFAULT_IMAGE_LIMITS } from './upload.ts';
import { handlebarsEngine } from './views.ts';

export class SiteExistsError extends Error {
  override name = 'SiteExistsError';
}

/** What was written: the site's folder, and its files' bytes by part. */
export interface ExportedSite {
  dir: string;
  bytes: { page: number; bundle: number; wasm: number; model: number };
}

function render(view: string, data: Record<string, unknown>): Promise<string> {
  const engine = handlebarsEngine(VIEWS_DIR);
  return new Promise((ok, fail) =>
    engine(join(VIEWS_DIR, `${view}.hbs`), data, (err, html) => (err ? fail(err) : ok(html ?? ''))),
  );
}

async function copyInto(from: string, to: string): Promise<number> {
  await copyFile(from, to);
  return (await stat(to)).size;
}

/**
 * Writes the static site for the model in `modelDir` to `outDir`, which must not exist. `log`
 * hears each step. A model directory that is not one is a CheckpointError naming the file.
 */
export async function exportSite(
  modelDir: string,
  outDir: string,
  log: (line: string) => void = () => {},
): Promise<ExportedSite> {
  const name = basename(resolve(modelDir));
  const files = await deviceModelFiles(modelDir, name);
  if (
    await stat(outDir).then(
      () => true,
      (err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? false : Promise.reject(err)),
    )
  )
    throw new SiteExistsError(`${outDir}: already exists; remove it or choose another --out`);
  const bytes = { page: 0, bundle: 0, wasm: 0, model: 0 };
  await writeDirAtomic(resolve(outDir), async (dir) => {
    const card = await readModelCard(modelDir);
    const recommended = await readModelDecoding(modelDir);
    const html = await render('home', {
      title: 'Caption an image',
      staticSite: true,
      siteRoot: './',
      modelName: name,
      backend: 'this device',
      card,
      unfamiliarNotice: unfamiliarNotice(card),
      // As `captioner caption` decodes by default: the model's recommended decoding
      // (decoding.json), else greedy, the model's anti-LM default with it.
      strategy: recommended?.strategy ?? 'greedy',
      maxBeamWidth: DEFAULT_DECODE_LIMITS.maxBeamWidth,
      defaultBeamWidth: recommended?.beamWidth ?? DEFAULT_BEAM_WIDTH,
      maxBytesMb: (DEFAULT_IMAGE_LIMITS.maxBytes / 1024 / 1024).toFixed(0),
      device: { bundle: `device/${BUNDLE_FILE}`, model: 'device/model/', wasm: 'device/wasm/', only: true },
    });
    await writeFile(join(dir, 'index.html'), html);
    bytes.page += Buffer.byteLength(html);
    await mkdir(join(dir, 'static'));
    for (const file of await readdir(PUBLIC_DIR)) {
      if (file.endsWith('.d.ts')) continue; // types for the server's TypeScript, not for the page
      bytes.page += await copyInto(join(PUBLIC_DIR, file), join(dir, 'static', file));
    }
    bytes.page += await copyInto(SENTENCE_MODULE, join(dir, 'static', 'sentence.js'));
    log('building the browser bundle');
    const { code: bundle } = await deviceBundle();
    await mkdir(join(dir, 'device', 'wasm'), { recursive: true });
    await writeFile(join(dir, 'device', BUNDLE_FILE), bundle);
    bytes.bundle = bundle.byteLength;
    for (const file of wasmFiles())
      bytes.wasm += await copyInto(join(WASM_DIR, file), join(dir, 'device', 'wasm', file));
    await mkdir(join(dir, 'device', 'model'));
    for (const file of Object.keys(files.manifest.files))
      bytes.model += await copyInto(join(files.dir, file), join(dir, 'device', 'model', file));
    await writeFile(join(dir, 'device', 'model', DEVICE_MANIFEST), JSON.stringify(files.manifest));
  });
  return { dir: resolve(outDir), bytes };
}
