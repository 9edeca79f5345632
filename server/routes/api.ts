/**
 * The caption API: `POST /api/captions` answers with the caption as JSON; `POST
 * /api/captions/stream` sends it as Server-Sent Events (start, word or hypothesis as the decoder
 * chooses, done with the JSON result, or error). For a model with attention, `start` names the
 * grid (`attention: {grid: [rows, cols]}`), each `word` carries its row of weights and each
 * `hypothesis` one row per word (`attention`), as the JSON result's `attention.weights` does.
 */
import { Router, type Response } from 'express';
import type { DecodeOptions, StreamEvent } from '../../model/decode/decode.ts';
import { captionJson, captionRoute, decodeImage, readUpload, runCaption } from '../captioning.ts';
import { ROUTES, type AppContext } from '../context.ts';

export function captionApiRouter(ctx: AppContext): Router {
  const router = Router();

  router.post(
    ROUTES.captions,
    captionRoute(ctx, async (req, res, { clientGone, reservation }) => {
      const { bytes, options } = await readUpload(ctx, req, res, clientGone);
      const image = await decodeImage(ctx, bytes, clientGone);
      const outcome = await runCaption(ctx, { pixels: image.pixels, options, signal: clientGone, reservation });
      res.json(captionJson(ctx, outcome, options, image));
    }),
  );

  router.post(
    ROUTES.captionStream,
    captionRoute(ctx, async (req, res, { clientGone, reservation }) => {
      const { bytes, options } = await readUpload(ctx, req, res, clientGone);
      const image = await decodeImage(ctx, bytes, clientGone);
      const grid = ctx.pool.info.attentionGrid;
      const stream = eventStream(res, {
        model: ctx.modelName,
        backend: ctx.pool.info.backend,
        options,
        ...(grid ? { attention: { grid } } : {}),
      });
      const outcome = await runCaption(ctx, {
        pixels: image.pixels,
        options,
        signal: clientGone,
        reservation,
        onEvent: stream.captionEvent,
      });
      stream.send('done', captionJson(ctx, outcome, options, image));
      res.end();
    }),
  );

  return router;
}

/**
 * A Server-Sent Events writer (https://html.spec.whatwg.org/multipage/server-sent-events.html).
 * The headers and the `start` event go out with the first event, so that a refusal before it
 * (bad image, queue full) is still an ordinary status code and JSON body.
 */
function eventStream(
  res: Response,
  start: { model: string; backend: string; options: DecodeOptions; attention?: { grid: [number, number] } },
) {
  const send = (event: string, data: unknown) => {
    if (res.destroyed || res.writableEnded) return; // the client has gone; its job is being cancelled
    if (!res.headersSent) {
      res.status(200).set({
        'Content-Type': 'text/event-stream; charset=utf-8',
        'Cache-Control': 'no-store',
        'X-Accel-Buffering': 'no',
      });
      res.flushHeaders();
      res.write(`event: start\ndata: ${JSON.stringify(start)}\n\n`);
    }
    res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  };
  const captionEvent = (event: Exclude<StreamEvent, { type: 'done' }>) => {
    const attention = event.attention ? { attention: event.attention } : {};
    if (event.type === 'word') send('word', { index: event.index, word: event.word, prob: event.prob, ...attention });
    else send('hypothesis', { words: event.words, logProb: event.logProb, ...attention });
  };
  return { send, captionEvent };
}
