/**
 * Building the browser bundle (browser/device.ts and what it imports) with esbuild, in memory:
 * the server builds it once, on the first request for it, and `captioner export-site` writes it
 * into the site. A Node-only module reached from the entry (node:*, sharp, the native addon,
 * worker threads, redis) fails the build, naming the module and who imported it, so that nothing
 * Node-only slips into the bundle; model/io/layers-io.ts alone is replaced (browser/stubs/), as
 * only training reaches it.
 */
import { readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type Plugin } from 'esbuild';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, '..');
export const DEVICE_ENTRY = join(HERE, 'device.ts');

/** The file name of the bundle, under the device/ folder the page loads it from. */
export const BUNDLE_FILE = 'captioner.js';

/** Where @tensorflow/tfjs-backend-wasm keeps its .wasm files (all of them are served: it picks by browser). */
export const WASM_DIR = dirname(createRequire(import.meta.url).resolve('@tensorflow/tfjs-backend-wasm'));

/** The .wasm files of WASM_DIR. */
export function wasmFiles(): string[] {
  return readdirSync(WASM_DIR).filter((f) => f.endsWith('.wasm'));
}

const NODE_ONLY = /^(node:|sharp$|bullmq$|ioredis$|express$|multer$|yargs|@tensorflow\/tfjs-node)/;
const NODE_ONLY_FILES = /model\/runtime\/(native|fused-optim)\.ts$|model\/runtime\/kernels\/|native\/build\//;

/** Refuses Node-only modules; stands browser/stubs/layers-io.ts in for model/io/layers-io.ts. */
export const browserOnly: Plugin = {
  name: 'captioner-browser-only',
  setup(b) {
    b.onResolve({ filter: /layers-io\.ts$/ }, () => ({ path: join(HERE, 'stubs', 'layers-io.ts') }));
    b.onResolve({ filter: NODE_ONLY }, (args) => ({
      errors: [{ text: `${args.path} is Node-only, imported by ${relative(ROOT, args.importer)}` }],
    }));
    b.onLoad({ filter: NODE_ONLY_FILES }, (args) => ({
      errors: [{ text: `${relative(ROOT, args.path)} is Node-only (native kernels) and reached the browser bundle` }],
    }));
  },
};

/** The bundle: one ES module, minified, with the source files it was built from (relative to the repository). */
export async function buildDeviceBundle(): Promise<{ code: Uint8Array; inputs: string[] }> {
  const result = await build({
    entryPoints: [DEVICE_ENTRY],
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    minify: true,
    write: false,
    metafile: true,
    logLevel: 'silent',
    legalComments: 'none',
    plugins: [browserOnly],
    define: { 'process.env.NODE_ENV': '"production"' },
  });
  const out = result.outputFiles[0];
  if (!out) throw new Error('esbuild wrote no bundle');
  return { code: out.contents, inputs: Object.keys(result.metafile.inputs) };
}

let built: Promise<{ code: Uint8Array; inputs: string[] }> | null = null;

/**
 * The bundle built once per process (the server's route, `export-site`, the tests): its sources
 * do not change while the process runs. A failed build is not kept.
 */
export function deviceBundle(): Promise<{ code: Uint8Array; inputs: string[] }> {
  built ??= buildDeviceBundle().catch((err: unknown) => {
    built = null;
    throw err;
  });
  return built;
}
