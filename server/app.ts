/**
 * The web app: the page (upload an image, watch its caption stream in), the model page, the
 * JSON and streaming API, health checks and metrics. `createApp(deps)` builds it without
 * listening (server/listen.ts listens), so tests drive it directly. It composes one router per
 * concern (server/routes/) behind the middleware every request passes, and ends with the one
 * error handler that maps errors to status codes (server/error-handler.ts).
 *
 *   GET  /                      the page; POST / is the same form without JavaScript
 *   GET  /model                 the loaded model: configuration, training curves, evaluation
 *   POST /api/captions          multipart `image` (+ decoding fields) → JSON caption and n-best
 *   POST /api/captions/stream   the same as Server-Sent Events: word / hypothesis / done / error
 *   GET  /healthz, /readyz      liveness; readiness (a worker has the model, not shutting down)
 *   GET  /metrics               Prometheus text format
 */
import { basename } from 'node:path';
import { fileURLToPath } from 'node:url';
import express from 'express';
import { uploadReader } from './captioning.ts';
import { STATIC_PREFIX, type AppContext, type CaptionService } from './context.ts';
import { DecodeBudget } from './decode-budget.ts';
import type { RecommendedDecoding } from '../model/decode/recommended.ts';
import { DEFAULT_DECODE_LIMITS, defaultDecode, type DecodeLimits } from './decode-options.ts';
import { errorHandler } from './error-handler.ts';
import { guardHost, hostPolicy, type HostPolicy } from './host-guard.ts';
import { ServerMetrics } from './metrics.ts';
import { countRequests, notFound, securityHeaders } from './middleware.ts';
import { readModelCard } from './model-info.ts';
import { captionApiRouter } from './routes/api.ts';
import { deviceRouter } from './routes/device.ts';
import { opsRouter } from './routes/ops.ts';
import { pagesRouter } from './routes/pages.ts';
import { DEFAULT_IMAGE_LIMITS, type ImageLimits } from './upload.ts';
import { handlebarsEngine } from './views.ts';

export interface AppDeps {
  pool: CaptionService;
  /** The model directory the pool loaded (for the model page). */
  modelDir: string;
  limits?: Partial<ImageLimits & DecodeLimits>;
  /**
   * The beam width a request gets when it names none, and the page's field starts at (default:
   * the model's recommendation, else DEFAULT_BEAM_WIDTH).
   */
  defaultBeamWidth?: number;
  /** The model's recommended decoding (its decoding.json): what a request that names nothing gets. */
  recommendedDecoding?: RecommendedDecoding | null;
  metrics?: ServerMetrics;
  /** The Host names the app answers to (server/host-guard.ts); default: loopback only. */
  hosts?: HostPolicy;
  /** Server-side log lines (5xx errors). */
  log?: (line: string) => void;
}

export const VIEWS_DIR = fileURLToPath(new URL('../views/', import.meta.url));
export const PUBLIC_DIR = fileURLToPath(new URL('./public/', import.meta.url));
/** The caption-as-a-sentence module the page's script shares with the server (model/text/sentence.js). */
export const SENTENCE_MODULE = fileURLToPath(new URL('../model/text/sentence.js', import.meta.url));

/** The routers' shared context: limits and defaults checked, the decode budget, the model's card. */
function appContext(deps: AppDeps): AppContext {
  const limits: ImageLimits & DecodeLimits = { ...DEFAULT_IMAGE_LIMITS, ...DEFAULT_DECODE_LIMITS, ...deps.limits };
  const decodeDefaults = defaultDecode(deps.defaultBeamWidth, limits, deps.recommendedDecoding ?? null);
  const metrics = deps.metrics ?? new ServerMetrics(deps.pool);
  const decodeBudget = new DecodeBudget(limits.maxDecodeBytes);
  metrics.watchDecodes(decodeBudget);
  return {
    pool: deps.pool,
    modelDir: deps.modelDir,
    modelName: basename(deps.modelDir.replace(/\/+$/, '')) || deps.modelDir,
    limits,
    decodeDefaults,
    metrics,
    log: deps.log ?? (() => {}),
    decodeBudget,
    receiveUpload: uploadReader(limits),
    card: readModelCard(deps.modelDir),
  };
}

export function createApp(deps: AppDeps): express.Express {
  const ctx = appContext(deps);
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.engine('hbs', handlebarsEngine(VIEWS_DIR));
  app.set('view engine', 'hbs');
  app.set('views', VIEWS_DIR);

  app.use(securityHeaders);
  app.use(countRequests(ctx.metrics));
  app.use(guardHost(deps.hosts ?? hostPolicy('127.0.0.1')));
  app.use(STATIC_PREFIX, express.static(PUBLIC_DIR, { index: false, maxAge: '1h', fallthrough: true }));
  app.get(`${STATIC_PREFIX}/sentence.js`, (_req, res, next) =>
    res.sendFile(SENTENCE_MODULE, { maxAge: '1h' }, (err?: Error) => {
      if (err) next(err);
    }),
  );
  app.use(pagesRouter(ctx));
  app.use(captionApiRouter(ctx));
  app.use(deviceRouter(ctx));
  app.use(opsRouter(ctx));
  app.use(notFound);
  app.use(errorHandler(ctx));
  return app;
}
