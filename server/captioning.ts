/**
 * The steps of a caption request, shared by the API, the stream and the no-JavaScript form:
 *
 *   captionRoute watches for the client leaving (before anything else), and holds a place in the
 *                admission limit (503 at once past it) while the steps below run
 *   readUpload   the multipart body in memory, and the decoding fields checked
 *   decodeImage  the image checked and decoded within the decode memory budget
 *   runCaption   the job on a worker; cancelled if the client leaves
 *   captionJson  the result as the API returns it
 *
 * A request whose client has gone stops at the next step with CancelledError, so it never
 * reaches a worker; the error handler drops it and /metrics counts it as 499.
 */
import type { Request, RequestHandler, Response } from 'express';
import multer from 'multer';
import type { DecodeOptions } from '../model/decode/options.ts';
import { presentCaption } from '../model/decode/present.ts';
import type { AppContext } from './context.ts';
import { parseDecodeOptions, type FieldSource } from './decode-options.ts';
import { BadRequestError, CancelledError, HttpError, TooLargeError } from './errors.ts';
import { decodeUpload, type CheckedImage, type DecodedUpload, type ImageLimits } from './upload.ts';
import type { CaptionOutcome, CaptionRequest, Reservation } from './workers.ts';

/** The multer middleware that reads the upload (one file, "image") into memory, nothing on disk. */
export function uploadReader(limits: ImageLimits) {
  return multer({
    storage: multer.memoryStorage(),
    limits: { fileSize: limits.maxBytes, files: 1, fields: 16, fieldSize: 256, parts: 20, headerPairs: 50 },
  }).single('image');
}

/**
 * A signal that aborts when the client goes away before its answer is complete: its connection
 * closes during the upload, the decoding, the queue wait or the stream. Attach it first, before
 * the body is read, so that no moment is missed.
 */
export function watchClient(req: Request, res: Response): AbortSignal {
  const controller = new AbortController();
  res.once('close', () => {
    if (!res.writableFinished) controller.abort();
  });
  req.once('close', () => {
    if (!req.complete) controller.abort(); // the upload was cut off
  });
  return controller.signal;
}

function cancelledIfGone(signal: AbortSignal): void {
  if (signal.aborted) throw new CancelledError('the client disconnected');
}

/**
 * A place in the pool's admission limit. Past the limit, or with no worker ready, the refusal
 * (503 + Retry-After) comes at once, before anything is read or decoded.
 */
function admit(ctx: AppContext): Reservation {
  try {
    return ctx.pool.reserve();
  } catch (err) {
    ctx.metrics.captionFailures.inc({ reason: (err as Error).name });
    throw err;
  }
}

/** What a caption route's steps are given: the client-gone signal and the request's place. */
export interface Admitted {
  clientGone: AbortSignal;
  reservation: Reservation;
}

/**
 * A caption route: watches for the client leaving, then reserves a place (or refuses at once),
 * runs `steps` and frees the place when they end — a client that left frees it only once its
 * decode, already under way, is over, so the places bound the work in progress.
 */
export function captionRoute(
  ctx: AppContext,
  steps: (req: Request, res: Response, admitted: Admitted) => Promise<void>,
): RequestHandler {
  return async (req, res) => {
    const clientGone = watchClient(req, res);
    const reservation = admit(ctx);
    try {
      await steps(req, res, { clientGone, reservation });
    } finally {
      reservation.release();
    }
  };
}

/** Reads the multipart upload in memory and parses its decoding fields (the API's, or the page form's). */
export async function readUpload(
  ctx: AppContext,
  req: Request,
  res: Response,
  clientGone: AbortSignal,
  source: FieldSource = 'api',
): Promise<{ bytes: Buffer; options: DecodeOptions }> {
  await new Promise<void>((resolve, reject) =>
    ctx.receiveUpload(req, res, (err: unknown) => {
      if (!err) resolve();
      else if (clientGone.aborted) reject(new CancelledError('the client disconnected during the upload'));
      // busboy's own errors (no boundary, a body cut short) are the client's malformed request.
      else if (err instanceof multer.MulterError || err instanceof HttpError) reject(err);
      else reject(new BadRequestError(`malformed multipart body: ${(err as Error).message}`));
    }),
  );
  cancelledIfGone(clientGone);
  if (!req.file) {
    throw new BadRequestError('no image: send multipart/form-data with the image file in the field "image"');
  }
  if (req.file.size > ctx.limits.maxBytes)
    throw new TooLargeError(`the upload is larger than the ${ctx.limits.maxBytes}-byte limit`);
  const options = parseDecodeOptions(
    (req.body ?? {}) as Record<string, unknown>,
    ctx.limits,
    ctx.decodeDefaults,
    source,
  );
  return { bytes: req.file.buffer, options };
}

/**
 * Checks the upload from its header and decodes it to the model's input within the decode
 * memory budget (with a preview thumbnail for the page, when asked). A client that leaves while
 * it waits for memory is dropped without decoding; one that leaves during decoding is found out
 * right after.
 */
export async function decodeImage(
  ctx: AppContext,
  bytes: Buffer,
  clientGone: AbortSignal,
  { preview = false } = {},
): Promise<DecodedUpload> {
  const image = await decodeUpload(bytes, ctx.pool.info.config.imageSize, ctx.limits, {
    budget: ctx.decodeBudget,
    signal: clientGone,
    preview,
  });
  cancelledIfGone(clientGone);
  return image;
}

/** Runs the caption job on a worker, counting it in the metrics; the signal cancels it. */
export async function runCaption(
  ctx: AppContext,
  job: CaptionRequest & { signal: AbortSignal; reservation: Reservation },
): Promise<CaptionOutcome> {
  cancelledIfGone(job.signal);
  try {
    const outcome = await ctx.pool.caption(job);
    ctx.metrics.captions.inc({ strategy: job.options.strategy });
    ctx.metrics.decodeSeconds.observe(outcome.decodeMs / 1000);
    ctx.metrics.queueSeconds.observe(outcome.queueMs / 1000);
    return outcome;
  } catch (err) {
    ctx.metrics.captionFailures.inc({ reason: err instanceof Error ? err.name : 'unknown' });
    throw err;
  }
}

/**
 * A caption result as the API returns it (and the page and the stream's `done` event show it).
 * A model with attention adds `attention`: `{grid: [rows, cols], weights}`, one row of weights
 * per word, row-major over the grid (model/decode/search-state.ts `AttentionMaps`).
 */
export function captionJson(ctx: AppContext, outcome: CaptionOutcome, options: DecodeOptions, image: CheckedImage) {
  const { result } = outcome;
  const { attention, ...presented } = presentCaption(result);
  return {
    ...presented,
    model: ctx.modelName,
    backend: ctx.pool.info.backend,
    options,
    image: { format: image.format, width: image.width, height: image.height },
    timing: { queueMs: Math.round(outcome.queueMs), decodeMs: Math.round(outcome.decodeMs) },
    ...(attention ? { attention } : {}),
    // How familiar the image looks to the model (docs/familiarity.md); absent for a model never calibrated.
    ...(outcome.familiarity ? { familiarity: outcome.familiarity } : {}),
  };
}

export type CaptionJson = ReturnType<typeof captionJson>;
