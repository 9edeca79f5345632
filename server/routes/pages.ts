/**
 * The pages: `GET /` the upload form, `POST /` the same form without JavaScript (it renders the
 * finished caption), `GET /model` what the loaded model is, how it was trained and how well it
 * does.
 */
import { Router } from 'express';
import { sentenceParts } from '../../model/text/sentence.js';
import { captionJson, captionRoute, decodeImage, readUpload, runCaption, type CaptionJson } from '../captioning.ts';
import { pageData, ROUTES, type AppContext } from '../context.ts';
import { describeModel, type ModelCard } from '../model-info.ts';
import { publicDescription } from '../public-paths.ts';

export function pagesRouter(ctx: AppContext): Router {
  const router = Router();

  router.get(ROUTES.home, async (_req, res) => {
    const card = await ctx.card;
    res.render('home', { title: 'Caption an image', ...pageData(ctx), card, unfamiliarNotice: unfamiliarNotice(card) });
  });

  // The same form without JavaScript: a plain POST renders the finished caption.
  router.post(
    ROUTES.home,
    captionRoute(ctx, async (req, res, { clientGone, reservation }) => {
      const { bytes, options } = await readUpload(ctx, req, res, clientGone, 'page');
      const image = await decodeImage(ctx, bytes, clientGone, { preview: true });
      const outcome = await runCaption(ctx, { pixels: image.pixels, options, signal: clientGone, reservation });
      const card = await ctx.card;
      res.render('home', {
        title: 'Caption an image',
        ...pageData(ctx),
        card,
        unfamiliarNotice: unfamiliarNotice(card),
        result: resultView(captionJson(ctx, outcome, options, image)),
        preview: image.preview,
        strategy: options.strategy,
      });
    }),
  );

  router.get(ROUTES.model, async (_req, res) => {
    const description = publicDescription(await describeModel(ctx.modelDir), ctx.modelDir);
    res.render('model', {
      title: `Model ${description.name}`,
      ...pageData(ctx),
      m: description,
      info: ctx.pool.info,
    });
  });

  return router;
}

/**
 * What the page says next to the caption of an image the model finds unfamiliar
 * (model/familiarity/): plainly, with what the model's card says it knows (the card's first
 * sentence, "It knows …").
 */
export function unfamiliarNotice(card: ModelCard | null): string {
  const knows = card?.summary
    .split(/(?<=[.!?])\s+/)[0]
    ?.replace(/[.!?]$/, '')
    .trim();
  const aside = knows ? ` (${knows.charAt(0).toLowerCase()}${knows.slice(1)})` : '';
  return `This image looks unlike the images this model was trained on${aside}; the caption is probably wrong.`;
}

/**
 * The view model of a result: the caption as the pieces of a sentence (model/text/sentence.js),
 * each word with its confidence shade (0–10, see style.css), and whether the image is unfamiliar
 * to the model (the page then says the caption is unreliable).
 */
function resultView(json: CaptionJson) {
  return {
    ...json,
    unfamiliar: json.familiarity?.familiar === false,
    parts: sentenceParts(json.words).map((part) => {
      if (part.word === null) return { ...part, isWord: false };
      const prob = json.wordProbs[part.word] ?? 0;
      return { ...part, isWord: true, prob, shade: Math.max(0, Math.min(10, Math.round(prob * 10))) };
    }),
  };
}
