/**
 * The web app: the page (upload an image, watch its caption stream in), the model page, the
 * JSON and streaming API, health checks and metrics. `createApp(deps)` builds it without
 * listening (server/listen.ts listens), so tests drive it directly. Errors are mapped to status
 * codes in one place, the four-argument handler at the end.
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
import express, { type NextFunction, type Request, type Response } from 'express';
import multer from 'multer';
import { CheckpointError } from '../model/io/checkpoint.ts';
import type { CaptionResult, DecodeOptions, StreamEvent } from '../model/decode/decode.ts';
import { ImageError } from '../model/data/image.ts';
import {
  DEFAULT_DECODE_LIMITS,
  defaultDecode,
  parseDecodeOptions,
  type DecodeLimits,
  type FieldSource,
} from './decode-options.ts';
import { BadRequestError, CancelledError, HttpError, TooLargeError } from './errors.ts';
import { ServerMetrics } from './metrics.ts';
import { describeModel, readModelCard } from './model-info.ts';
import { DEFAULT_IMAGE_LIMITS, decodeUpload, thumbnailDataUrl, type CheckedImage, type ImageLimits } from './upload.ts';
import { handlebarsEngine } from './views.ts';
import type { CaptionOutcome, CaptionRequest, PoolModelInfo, PoolStats } from './workers.ts';

/** What the app needs of the worker pool (server/workers.ts WorkerPool). */
export interface CaptionService {
  caption(request: CaptionRequest): Promise<CaptionOutcome>;
  checkAdmission(): void;
  stats(): PoolStats;
  readonly info: PoolModelInfo;
  readonly isReady: boolean;
}

export interface AppDeps {
  pool: CaptionService;
  /** The model directory the pool loaded (for the model page). */
  modelDir: string;
  limits?: Partial<ImageLimits & DecodeLimits>;
  /** The beam width a request gets when it names none, and the page's field starts at (default DEFAULT_BEAM_WIDTH). */
  defaultBeamWidth?: number;
  metrics?: ServerMetrics;
  /** Server-side log lines (5xx errors). */
  log?: (line: string) => void;
}

const VIEWS_DIR = fileURLToPath(new URL('../views/', import.meta.url));
const PUBLIC_DIR = fileURLToPath(new URL('./public/', import.meta.url));

/** No inline script or style anywhere: the page's JS and CSS are files under /static. */
const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data: blob:",
  "connect-src 'self'",
  "form-action 'self'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
].join('; ');

const SECURITY_HEADERS: Record<string, string> = {
  'Content-Security-Policy': CSP,
  'X-Content-Type-Options': 'nosniff',
  'X-Frame-Options': 'DENY',
  'Referrer-Policy': 'no-referrer',
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Resource-Policy': 'same-origin',
  'Permissions-Policy': 'camera=(), microphone=(), geolocation=()',
};

/** The status code for any error, in one place. */
export function statusFor(err: unknown): number {
  if (err instanceof HttpError) return err.status;
  if (err instanceof multer.MulterError) return err.code === 'LIMIT_FILE_SIZE' ? 413 : 400;
  if (err instanceof ImageError) return 400;
  if (err instanceof Error && err.name === 'DecodeOptionsError') return 400;
  // body parsers and busboy mark malformed requests with a 4xx status of their own.
  const status =
    (err as { status?: unknown; statusCode?: unknown })?.status ?? (err as { statusCode?: unknown })?.statusCode;
  if (typeof status === 'number' && status >= 400 && status < 500) return status;
  return 500;
}

function messageFor(err: unknown, status: number, limits: ImageLimits): string {
  if (err instanceof multer.MulterError) {
    if (err.code === 'LIMIT_FILE_SIZE') return `the upload is larger than the ${limits.maxBytes}-byte limit`;
    if (err.code === 'LIMIT_UNEXPECTED_FILE')
      return `unexpected file field "${err.field}"; send one file in the field "image"`;
    return `bad upload: ${err.message}${err.field ? ` (field "${err.field}")` : ''}`;
  }
  if (status >= 500 && !(err instanceof HttpError)) return 'internal error';
  return (err as Error).message || 'error';
}

/** A caption result as the API returns it. */
function captionJson(
  result: CaptionResult,
  outcome: Omit<CaptionOutcome, 'result'>,
  info: PoolModelInfo,
  modelName: string,
  options: DecodeOptions,
  image: CheckedImage,
) {
  return {
    caption: result.caption,
    words: result.words,
    wordProbs: result.wordProbs,
    logProb: result.logProb,
    nbest: (result.nbest ?? [{ caption: result.caption, logProb: result.logProb }]).map((h) => ({
      ...h,
      prob: Math.exp(h.logProb),
    })),
    model: modelName,
    backend: info.backend,
    options,
    image: { format: image.format, width: image.width, height: image.height },
    timing: { queueMs: Math.round(outcome.queueMs), decodeMs: Math.round(outcome.decodeMs) },
  };
}

/** The view model of a result: words with their confidence shade (0–10, see style.css). */
function resultView(json: ReturnType<typeof captionJson>) {
  return {
    ...json,
    words: json.words.map((word, i) => {
      const prob = json.wordProbs[i] ?? 0;
      return { word, prob, shade: Math.max(0, Math.min(10, Math.round(prob * 10))) };
    }),
  };
}

export function createApp(deps: AppDeps): express.Express {
  const limits: ImageLimits & DecodeLimits = { ...DEFAULT_IMAGE_LIMITS, ...DEFAULT_DECODE_LIMITS, ...deps.limits };
  const decodeDefaults = defaultDecode(deps.defaultBeamWidth, limits);
  const metrics = deps.metrics ?? new ServerMetrics(deps.pool);
  const log = deps.log ?? (() => {});
  const modelName = basename(deps.modelDir.replace(/\/+$/, '')) || deps.modelDir;
  const upload = multer({
    storage: multer.memoryStorage(), // nothing uploaded touches the disk
    limits: { fileSize: limits.maxBytes, files: 1, fields: 16, fieldSize: 256, parts: 20, headerPairs: 50 },
  }).single('image');

  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.engine('hbs', handlebarsEngine(VIEWS_DIR));
  app.set('view engine', 'hbs');
  app.set('views', VIEWS_DIR);

  app.use((req, res, next) => {
    res.set(SECURITY_HEADERS);
    const start = performance.now();
    res.on('close', () => {
      const route = req.route?.path
        ? String(req.route.path)
        : req.path.startsWith('/static/')
          ? '/static'
          : 'unmatched';
      metrics.requests.inc({ method: req.method, route, status: String(res.statusCode) });
      metrics.latency.observe((performance.now() - start) / 1000, { route });
    });
    next();
  });
  app.use('/static', express.static(PUBLIC_DIR, { index: false, maxAge: '1h', fallthrough: true }));

  /** Reads the multipart upload in memory, checks and decodes it, parses the decoding fields (API's or page's). */
  const readUpload = async (req: Request, res: Response, source: FieldSource = 'api') => {
    // When the queue is full, say so at once, before reading and decoding the upload.
    try {
      deps.pool.checkAdmission();
    } catch (err) {
      metrics.captionFailures.inc({ reason: (err as Error).name });
      throw err;
    }
    await new Promise<void>((resolve, reject) =>
      upload(req, res, (err: unknown) => {
        if (!err) resolve();
        // busboy's own errors (no boundary, a body cut short) are the client's malformed request.
        else if (err instanceof multer.MulterError || err instanceof HttpError) reject(err);
        else reject(new BadRequestError(`malformed multipart body: ${(err as Error).message}`));
      }),
    );
    if (!req.file) {
      throw new BadRequestError('no image: send multipart/form-data with the image file in the field "image"');
    }
    if (req.file.size > limits.maxBytes)
      throw new TooLargeError(`the upload is larger than the ${limits.maxBytes}-byte limit`);
    const options = parseDecodeOptions((req.body ?? {}) as Record<string, unknown>, limits, decodeDefaults, source);
    const decoded = await decodeUpload(req.file.buffer, deps.pool.info.config.imageSize, limits);
    return { bytes: req.file.buffer, options, decoded };
  };

  /** Runs a caption job, cancelling it when the client goes away. */
  const runCaption = (
    res: Response,
    pixels: Uint8Array,
    options: DecodeOptions,
    onEvent?: CaptionRequest['onEvent'],
  ) => {
    const disconnect = new AbortController();
    res.on('close', () => {
      if (!res.writableFinished) disconnect.abort();
    });
    return deps.pool
      .caption({ pixels, options, signal: disconnect.signal, ...(onEvent ? { onEvent } : {}) })
      .then((outcome) => {
        metrics.captions.inc({ strategy: options.strategy });
        metrics.decodeSeconds.observe(outcome.decodeMs / 1000);
        metrics.queueSeconds.observe(outcome.queueMs / 1000);
        return outcome;
      })
      .catch((err: unknown) => {
        metrics.captionFailures.inc({ reason: err instanceof Error ? err.name : 'unknown' });
        throw err;
      });
  };

  const pageData = () => ({
    modelName,
    backend: deps.pool.info.backend,
    imageSize: deps.pool.info.config.imageSize,
    maxBeamWidth: limits.maxBeamWidth,
    defaultBeamWidth: decodeDefaults.beamWidth,
    maxBytesMb: (limits.maxBytes / 1024 / 1024).toFixed(0),
  });

  // Read once: what the model knows does not change while it is served.
  const card = readModelCard(deps.modelDir);

  app.get('/', async (_req, res) => {
    res.render('home', { title: 'Caption an image', ...pageData(), card: await card });
  });

  // The same form without JavaScript: a plain POST renders the finished caption.
  app.post('/', async (req, res) => {
    const { bytes, options, decoded } = await readUpload(req, res, 'page');
    const outcome = await runCaption(res, decoded.pixels, options);
    const json = captionJson(outcome.result, outcome, deps.pool.info, modelName, options, decoded);
    res.render('home', {
      title: 'Caption an image',
      ...pageData(),
      card: await card,
      result: resultView(json),
      preview: await thumbnailDataUrl(bytes),
      strategy: options.strategy,
    });
  });

  app.get('/model', async (_req, res) => {
    const description = await describeModel(deps.modelDir);
    res.render('model', { title: `Model ${description.name}`, ...pageData(), m: description, info: deps.pool.info });
  });

  app.post('/api/captions', async (req, res) => {
    const { options, decoded } = await readUpload(req, res);
    const outcome = await runCaption(res, decoded.pixels, options);
    res.json(captionJson(outcome.result, outcome, deps.pool.info, modelName, options, decoded));
  });

  // Server-Sent Events (https://html.spec.whatwg.org/multipage/server-sent-events.html). The
  // headers go out with the first event, so that a refusal (bad image, queue full) is still an
  // ordinary status code and JSON body.
  app.post('/api/captions/stream', async (req, res) => {
    const { options, decoded } = await readUpload(req, res);
    const send = (event: string, data: unknown) => {
      if (res.destroyed || res.writableEnded) return; // the client has gone; its job is being cancelled
      if (!res.headersSent) {
        res.status(200).set({
          'Content-Type': 'text/event-stream; charset=utf-8',
          'Cache-Control': 'no-store',
          'X-Accel-Buffering': 'no',
        });
        res.flushHeaders();
        res.write(
          `event: start\ndata: ${JSON.stringify({ model: modelName, backend: deps.pool.info.backend, options })}\n\n`,
        );
      }
      res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    };
    const onEvent = (event: Exclude<StreamEvent, { type: 'done' }>) => {
      if (event.type === 'word') send('word', { index: event.index, word: event.word, prob: event.prob });
      else send('hypothesis', { words: event.words, logProb: event.logProb });
    };
    const outcome = await runCaption(res, decoded.pixels, options, onEvent);
    send('done', captionJson(outcome.result, outcome, deps.pool.info, modelName, options, decoded));
    res.end();
  });

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });

  app.get('/readyz', (_req, res) => {
    const stats = deps.pool.stats();
    res.status(deps.pool.isReady ? 200 : 503).json({ ...stats, ready: deps.pool.isReady, readyWorkers: stats.ready });
  });

  app.get('/metrics', (_req, res) => {
    res.type('text/plain; version=0.0.4; charset=utf-8').send(metrics.render());
  });

  app.use((req, _res, next) => {
    next(new HttpError(404, `no page at ${req.method} ${req.path}`));
  });

  // The one error handler: typed errors → status codes; JSON for the API, a page otherwise.
  app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
    if (err instanceof CancelledError) {
      res.destroy(); // the client is gone; there is no one to answer
      return;
    }
    const status = statusFor(err);
    const message = messageFor(err, status, limits);
    if (status >= 500 && !(err instanceof HttpError))
      log(`error: ${req.method} ${req.path}: ${(err as Error)?.stack ?? String(err)}`);
    if (err instanceof CheckpointError) log(`error: ${err.message}`);
    if (res.headersSent) {
      if (res.destroyed || res.writableEnded) return;
      // A stream already under way: report the error as its last event.
      res.write(`event: error\ndata: ${JSON.stringify({ status, message })}\n\n`);
      res.end();
      return;
    }
    if (err instanceof HttpError) res.set(err.headers);
    res.status(status);
    if (req.path.startsWith('/api/') || req.path === '/metrics' || req.accepts(['html', 'json']) === 'json') {
      res.json({ error: { status, message } });
    } else {
      res.render('error', { title: `Error ${status}`, status, message, ...(deps.pool.isReady ? pageData() : {}) });
    }
  });

  return app;
}
