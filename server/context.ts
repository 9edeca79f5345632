/**
 * What the web app's routers share: the worker pool, the limits and defaults, the metrics, the
 * decode memory budget, and the paths of the routes. server/app.ts builds it once per app.
 */
import type { RequestHandler } from 'express';
import type { DecodeOptions } from '../model/decode/decode.ts';
import type { DecodeBudget } from './decode-budget.ts';
import type { DecodeLimits } from './decode-options.ts';
import type { ServerMetrics } from './metrics.ts';
import type { ModelCard } from './model-info.ts';
import type { ImageLimits } from './upload.ts';
import type { CaptionOutcome, CaptionRequest, PoolModelInfo, PoolStats, Reservation } from './workers.ts';

/** What the app needs of the worker pool (server/workers.ts WorkerPool). */
export interface CaptionService {
  reserve(): Reservation;
  caption(request: CaptionRequest): Promise<CaptionOutcome>;
  stats(): PoolStats;
  readonly info: PoolModelInfo;
  readonly isReady: boolean;
}

/**
 * A caption service the server starts and stops: its worker threads (server/workers.ts
 * WorkerPool), or remote workers on a job queue (`serve --queue`, queue/remote.ts).
 */
export interface RunningCaptionService extends CaptionService {
  /** Refuse new work, let the jobs in flight run up to `graceMs`, cancel the rest, release everything. */
  close(graceMs?: number): Promise<void>;
}

/** The routes, by name: the routers use these paths, and /metrics labels requests with them. */
export const ROUTES = {
  home: '/',
  model: '/model',
  captions: '/api/captions',
  captionStream: '/api/captions/stream',
  healthz: '/healthz',
  readyz: '/readyz',
  metrics: '/metrics',
} as const;

/** Where the page's script, style and icon are served from (server/public/). */
export const STATIC_PREFIX = '/static';

export interface AppContext {
  pool: CaptionService;
  /** The model directory the pool loaded, as given (never shown: see server/public-paths.ts). */
  modelDir: string;
  /** The model directory's name, as pages and the API show it. */
  modelName: string;
  limits: ImageLimits & DecodeLimits;
  /** What a request gets when it names no decoding options. */
  decodeDefaults: DecodeOptions;
  metrics: ServerMetrics;
  log: (line: string) => void;
  decodeBudget: DecodeBudget;
  /** Reads the multipart body into `req.file` and `req.body` (multer, in memory). */
  receiveUpload: RequestHandler;
  /** The model's card, read once: what the model knows does not change while it is served. */
  card: Promise<ModelCard | null>;
}

/** What every page's layout shows: the model, its backend, the form's limits and defaults. */
export function pageData(ctx: AppContext) {
  return {
    modelName: ctx.modelName,
    backend: ctx.pool.info.backend,
    imageSize: ctx.pool.info.config.imageSize,
    maxBeamWidth: ctx.limits.maxBeamWidth,
    defaultBeamWidth: ctx.decodeDefaults.beamWidth,
    maxBytesMb: (ctx.limits.maxBytes / 1024 / 1024).toFixed(0),
    /** Where "caption on this device" loads the bundle, the model and the .wasm files (server/routes/device.ts). */
    device: { bundle: '/device/captioner.js', model: '/device/model/', wasm: '/device/wasm/', only: false },
  };
}
