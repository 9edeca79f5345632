/**
 * What the page needs to caption on the visitor's device (docs/browser.md): the browser bundle
 * (`GET /device/captioner.js`, built by esbuild on the first request, browser/build.ts), the
 * WebAssembly backend's .wasm files (`/device/wasm/`), and the served model's files
 * (`/device/model/manifest.json` and the files it lists, from the model's best checkpoint).
 * Everything is sent with `Cache-Control: no-cache` and a validator, so that the browser keeps
 * its copy and asks only whether it changed.
 */
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { Router, type Request, type Response } from 'express';
import { BUNDLE_FILE, WASM_DIR, deviceBundle, wasmFiles } from '../../browser/build.ts';
import { deviceModelFiles, type DeviceModelFiles } from '../../browser/files.ts';
import { DEVICE_MANIFEST } from '../../browser/manifest.ts';
import type { AppContext } from '../context.ts';

export const DEVICE_PREFIX = '/device';

/** A value computed once, on first use; a failure is not kept, so that the next request tries again. */
function once<T>(make: () => Promise<T>): () => Promise<T> {
  let pending: Promise<T> | null = null;
  return () => {
    pending ??= make().catch((err: unknown) => {
      pending = null;
      throw err;
    });
    return pending;
  };
}

/** Sends `body` with an ETag of its content, or 304 when the browser already has it. */
function sendCached(req: Request, res: Response, type: string, body: Uint8Array | string): void {
  const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`;
  res.set({ 'Cache-Control': 'no-cache', ETag: etag, 'Content-Type': type });
  if (req.headers['if-none-match'] === etag) {
    res.status(304).end();
    return;
  }
  res.send(Buffer.from(body));
}

export function deviceRouter(ctx: AppContext): Router {
  const router = Router();
  const bundle = once(async () => {
    const started = performance.now();
    const { code } = await deviceBundle();
    ctx.log(
      `device bundle ready: ${(code.byteLength / 1e6).toFixed(2)} MB in ${Math.round(performance.now() - started)} ms`,
    );
    return code;
  });
  const model = once<DeviceModelFiles>(() => deviceModelFiles(ctx.modelDir, ctx.modelName));

  router.get(`${DEVICE_PREFIX}/${BUNDLE_FILE}`, async (req, res) => {
    sendCached(req, res, 'text/javascript; charset=utf-8', await bundle());
  });
  const wasm = new Set(wasmFiles());
  router.get(`${DEVICE_PREFIX}/wasm/:file`, (req, res, next) => {
    if (!wasm.has(req.params.file)) {
      next();
      return;
    }
    res.set('Cache-Control', 'no-cache');
    res.sendFile(join(WASM_DIR, req.params.file), { cacheControl: false }, (err?: Error) => {
      if (err) next(err);
    });
  });
  router.get(`${DEVICE_PREFIX}/model/${DEVICE_MANIFEST}`, async (req, res) => {
    sendCached(req, res, 'application/json; charset=utf-8', JSON.stringify((await model()).manifest));
  });
  router.get(`${DEVICE_PREFIX}/model/:file`, async (req, res, next) => {
    const { dir, manifest } = await model();
    const file = req.params.file;
    // Only the files the manifest lists: nothing else of the model directory is served.
    if (!Object.hasOwn(manifest.files, file)) {
      next();
      return;
    }
    res.set('Cache-Control', 'no-cache');
    res.sendFile(join(dir, file), { cacheControl: false }, (err?: Error) => {
      if (err) next(err);
    });
  });
  return router;
}
