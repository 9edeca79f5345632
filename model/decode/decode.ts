/**
 * Decoding: turning images into captions with the decoder step. Greedy, sampled and beam
 * decoding all run the one `step(prevTokens, state, features)` of the model, batched over
 * images; each is a search object advanced one step at a time, so that the batched calls here
 * (`captionImages`, `beamSearch`, `greedyDecode`) and the streaming one (model/decode/stream.ts)
 * are the same loop, the first run to the end at once and the second with an `await` between
 * steps.
 *
 * The parts, one job each: options.ts (the spec of every setting, defaults and checks),
 * search-state.ts (what a search holds between steps), token-search.ts (greedy and sampling),
 * beam-search.ts with beam.ts (beam search and its bookkeeping), anti-lm.ts with prior.ts
 * (anti-LM scores and the language prior), sampling.ts (filters and draws), stream.ts.
 *
 * Every reported log-probability is under the model's own distribution (softmax of its logits),
 * whatever temperature, filter or anti-LM chose the words, so captions from different strategies
 * compare.
 *
 * Anti-LM decoding (`antiLm` λ > 0, with the language prior passed as `prior`,
 * model/decode/prior.ts) chooses words by log p(w | image, prefix) − λ·log p_prior(w | previous
 * word), renormalised over the plausible words (p ≥ β·max p): it takes off part of what the
 * training captions' language alone predicts, so that a word pair the captions never held can
 * still be said when the picture shows it.
 *
 * A caption has at most `maxLength` words; then <end> is forced and its log-probability counted,
 * so `logProb` is always log p(w1 … wn <end> | image).
 */
import type * as tf from '@tensorflow/tfjs';
import type { Hypothesis } from './beam.ts';
import { BeamSearch } from './beam-search.ts';
import { resolveDecodeOptions, type DecodeOptions, type ResolvedOptions } from './options.ts';
import { wordOf, type CaptionResult, type Search, type StepModel } from './search-state.ts';
import { TokenSearch } from './token-search.ts';

export {
  DEFAULT_BEAM_WIDTH,
  DecodeOptionsError,
  resolveDecodeOptions,
  type DecodeOptions,
  type DecodeSettings,
} from './options.ts';
export type { AttentionMaps, CaptionResult, StepModel, StreamEvent } from './search-state.ts';

/** The search object for `o.strategy`, started on `images`. */
export function createSearch(model: StepModel, images: tf.Tensor4D, o: ResolvedOptions): Search {
  return o.strategy === 'beam' ? new BeamSearch(model, images, o) : new TokenSearch(model, images, o);
}

/** Runs `search` to the end and returns what `finish` reads off it; the search is disposed either way. */
function runToEnd<S extends Search, T>(search: S, finish: (search: S) => T): T {
  try {
    while (!search.done) search.advance();
    return finish(search);
  } finally {
    search.dispose();
  }
}

/**
 * Captions a batch of images [batch, size, size, 3] in [0, 1], one result per image, by greedy,
 * beam or sampled decoding. Holds no tensor after it returns.
 */
export function captionImages(model: StepModel, images: tf.Tensor4D, options: DecodeOptions): CaptionResult[] {
  const o = resolveDecodeOptions(model, options);
  if (images.shape[0] === 0) return [];
  return runToEnd(createSearch(model, images, o), (s) => s.results());
}

/**
 * Beam search over a batch: each image's finished hypotheses, best first by length-normalised
 * score (at least one, at most about 2·beamWidth).
 */
export function beamSearch(
  model: StepModel,
  images: tf.Tensor4D,
  options: Omit<DecodeOptions, 'strategy'> = {},
): Hypothesis[][] {
  const o = resolveDecodeOptions(model, { ...options, strategy: 'beam' });
  if (images.shape[0] === 0) return [];
  return runToEnd(new BeamSearch(model, images, o), (s) => s.ranked());
}

export interface DecodedCaption {
  /** Word ids, without <start> and <end>. */
  ids: number[];
  words: string[];
  /** Sum of the words' log-probabilities and <end>'s. */
  logProb: number;
}

/**
 * Greedy decoding with ids (training's validation samples use it): at every step feed back the
 * most probable word, until <end> or `maxLength` words. Plain decoding: no language prior is
 * passed, so no anti-LM. images [batch, size, size, 3] in [0, 1]. `forced`: words each image's
 * caption must begin with (TokenSearch), the rest greedy.
 */
export function greedyDecode(
  model: StepModel,
  images: tf.Tensor4D,
  maxLength = model.config.maxLength,
  forced: readonly (readonly number[])[] = [],
): DecodedCaption[] {
  return decodeIds(model, images, resolveDecodeOptions(model, { strategy: 'greedy', maxLength }), forced);
}

/**
 * Sampled decoding with ids (self-critical training, model/train/scst.ts): each word drawn from
 * the model's own distribution (temperature 1, no filter), image b with the generator seeded by
 * `imageSeeds[b]`, so that a step's draws are the same on a resumed run.
 */
export function sampleDecode(
  model: StepModel,
  images: tf.Tensor4D,
  imageSeeds: readonly number[],
  maxLength = model.config.maxLength,
): DecodedCaption[] {
  const o = resolveDecodeOptions(model, { strategy: 'sample', temperature: 1, imageSeeds, maxLength });
  return decodeIds(model, images, o);
}

function decodeIds(
  model: StepModel,
  images: tf.Tensor4D,
  o: ResolvedOptions,
  forced: readonly (readonly number[])[] = [],
): DecodedCaption[] {
  if (images.shape[0] === 0) return [];
  return runToEnd(new TokenSearch(model, images, o, forced), (s) =>
    s.hypotheses().map((h) => ({ ids: h.tokens, words: h.tokens.map((id) => wordOf(model, id)), logProb: h.logProb })),
  );
}
