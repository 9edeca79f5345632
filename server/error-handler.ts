/**
 * The one error handler, last in the app: typed errors → status codes, in one place; JSON for
 * the API, an error page otherwise; an error during a stream becomes its last event.
 */
import type { ErrorRequestHandler } from 'express';
import multer from 'multer';
import { CheckpointError } from '../model/io/checkpoint.ts';
import { ImageError } from '../model/data/image.ts';
import { pageData, type AppContext } from './context.ts';
import { CancelledError, HttpError } from './errors.ts';
import type { ImageLimits } from './upload.ts';

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

export function errorHandler(ctx: AppContext): ErrorRequestHandler {
  return (err: unknown, req, res, _next) => {
    if (err instanceof CancelledError) {
      res.destroy(); // the client is gone; there is no one to answer (counted as 499)
      return;
    }
    const status = statusFor(err);
    const message = messageFor(err, status, ctx.limits);
    if (status >= 500 && !(err instanceof HttpError))
      ctx.log(`error: ${req.method} ${req.path}: ${(err as Error)?.stack ?? String(err)}`);
    if (err instanceof CheckpointError) ctx.log(`error: ${err.message}`);
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
      res.render('error', { title: `Error ${status}`, status, message, ...(ctx.pool.isReady ? pageData(ctx) : {}) });
    }
  };
}
