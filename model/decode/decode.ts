/**
 * Decoding: turning images into captions with the decoder step. Greedy, sampled and beam
 * decoding all run the one `step(prevTokens, state, features)` of the model, batched over
 * images; each is a search object advanced one step at a time, so that the batched call
 * (`captionImages`) and the streaming one (`streamCaption`) are the same loop, the first run to
 * the end at once and the second with an `await` between steps.
 *
 * Every reported log-probability is under the model's own distribution (softmax of its logits),
 * whatever temperature, filter or anti-LM chose the words, so captions from different strategies
 * compare.
 *
 * Anti-LM decoding (`antiLm` λ > 0, with the model's language prior, model/decode/prior.ts) chooses
 * words by log p(w | image, prefix) − λ·log p_prior(w | previous word), renormalised over the
 * plausible words (p ≥ β·max p): it takes off part of what the training captions' language alone
 * predicts, so that a word pair the captions never held can still be said when the picture shows
 * it.
 *
 * A caption has at most `maxLength` words; then <end> is forced and its log-probability counted,
 * so `logProb` is always log p(w1 … wn <end> | image).
 */
import { setImmediate as nextTick } from 'node:timers/promises';
import * as tf from '@tensorflow/tfjs';
import {
  beamSearchDone,
  finishWithEnd,
  rankHypotheses,
  selectBeams,
  type BeamCandidate,
  type Hypothesis,
} from './beam.ts';
import type { ImageFeatures, StepOutput } from '../nn/captioner.ts';
import type { CellState } from '../nn/cells.ts';
import { Rng, deriveSeed } from '../util/rng.ts';
import { DEFAULT_ANTI_LM, isAntiLmPlausibility, isAntiLmWeight, type LanguagePrior } from './prior.ts';
import { filterLogits, sampleCategorical } from './sampling.ts';
import { END, START } from '../text/vocab.ts';

/**
 * What the decoders need of a model: `Captioner` satisfies it, and a test can plant a toy
 * decoder with known probabilities behind it.
 */
export interface StepModel {
  readonly vocab: { readonly size: number; readonly words: readonly string[] };
  readonly config: { readonly maxLength: number };
  /** images [batch, size, size, 3] in [0, 1] → features [batch, F] (or, for attention, [batch, positions, F]). */
  encode(images: tf.Tensor4D): ImageFeatures;
  initialState(features: ImageFeatures): CellState;
  /** previous tokens [rows] int32, state, features [rows, …] → logits [rows, vocab] and the new state. */
  step(prevTokens: tf.Tensor1D, state: CellState, features: ImageFeatures): StepOutput;
  /** The training captions' word-pair counts, for anti-LM decoding; its `antiLm` is the default. */
  readonly languagePrior?: LanguagePrior | null;
}

export interface DecodeOptions {
  strategy: 'greedy' | 'beam' | 'sample';
  /** Beam search: live hypotheses per image (default 3). */
  beamWidth?: number;
  /** Beam search: α of the GNMT length penalty ((5 + |Y|) / 6)^α (Wu et al. 2016); 0 (default) ranks by log p alone. */
  lengthPenalty?: number;
  /** Longest caption in words (default: the model's maxLength). */
  maxLength?: number;
  /** Sampling: softmax temperature (default 1); 0 is greedy. */
  temperature?: number;
  /** Sampling: draw from the k most probable words only (default 0: all). */
  topK?: number;
  /** Sampling: draw from the nucleus of mass p only (default 1: all). */
  topP?: number;
  /** Sampling: image b of a batch draws from its own stream, deriveSeed(seed, b) (default 0). */
  seed?: number;
  /** Beam search: return the best `nBest` (≤ beamWidth) finished hypotheses as `nbest`. */
  nBest?: number;
  /**
   * Sampling: one seed per image of the batch, used instead of deriveSeed(seed, b), so that an
   * image draws the same words whatever batch it is decoded in (the CLI seeds by file path).
   */
  imageSeeds?: readonly number[];
  /** Anti-LM weight λ (default: the model's language prior's, else 0; 0 is plain decoding). */
  antiLm?: number;
  /** Anti-LM: only words with p ≥ β·max p under the model are chosen (default: the prior's, else 0.15). */
  antiLmPlausibility?: number;
}

export interface CaptionResult {
  words: string[];
  caption: string;
  /** log p(caption <end> | image) under the model. */
  logProb: number;
  /** p of each word in `words`, under the model. */
  wordProbs: number[];
  /** Beam search with nBest: the best hypotheses, best first (the first is this caption). */
  nbest?: { caption: string; logProb: number }[];
}

export type StreamEvent =
  | { type: 'word'; index: number; word: string; prob: number }
  | { type: 'hypothesis'; words: string[]; logProb: number }
  | { type: 'done'; result: CaptionResult };

/** Options that cannot be decoded with; the CLI and the server map it to a usage error / 400. */
export class DecodeOptionsError extends Error {
  override name = 'DecodeOptionsError';
}

interface ResolvedOptions {
  strategy: DecodeOptions['strategy'];
  beamWidth: number;
  lengthPenalty: number;
  maxLength: number;
  temperature: number;
  topK: number;
  topP: number;
  seed: number;
  nBest: number | null;
  imageSeeds: readonly number[] | null;
  antiLm: number;
  antiLmPlausibility: number;
}

/** Fills in defaults and checks every option, naming the one that is wrong. */
export function resolveDecodeOptions(model: StepModel, options: DecodeOptions): ResolvedOptions {
  const antiLm = model.languagePrior?.antiLm ?? DEFAULT_ANTI_LM;
  const o = {
    strategy: options.strategy,
    beamWidth: options.beamWidth ?? 3,
    lengthPenalty: options.lengthPenalty ?? 0,
    maxLength: options.maxLength ?? model.config.maxLength,
    temperature: options.temperature ?? 1,
    topK: options.topK ?? 0,
    topP: options.topP ?? 1,
    seed: options.seed ?? 0,
    nBest: options.nBest ?? null,
    imageSeeds: options.imageSeeds ?? null,
    antiLm: options.antiLm ?? antiLm.weight,
    antiLmPlausibility: options.antiLmPlausibility ?? antiLm.plausibility,
  };
  const fail = (what: string) => {
    throw new DecodeOptionsError(what);
  };
  if (!['greedy', 'beam', 'sample'].includes(o.strategy))
    fail(`strategy must be greedy, beam or sample, got ${JSON.stringify(o.strategy)}`);
  const whole = (name: string, v: number, min: number) => {
    if (!Number.isInteger(v) || v < min) fail(`${name} must be a whole number ≥ ${min}, got ${v}`);
  };
  whole('beamWidth', o.beamWidth, 1);
  whole('maxLength', o.maxLength, 1);
  whole('topK', o.topK, 0);
  whole('seed', o.seed, 0);
  if (!(o.lengthPenalty >= 0 && Number.isFinite(o.lengthPenalty)))
    fail(`lengthPenalty must be ≥ 0, got ${o.lengthPenalty}`);
  if (!(o.temperature >= 0 && Number.isFinite(o.temperature))) fail(`temperature must be ≥ 0, got ${o.temperature}`);
  if (!(o.topP > 0 && o.topP <= 1)) fail(`topP must be in (0, 1], got ${o.topP}`);
  if (!isAntiLmWeight(o.antiLm)) fail(`antiLm must be ≥ 0, got ${o.antiLm}`);
  if (!isAntiLmPlausibility(o.antiLmPlausibility))
    fail(`antiLmPlausibility must be in (0, 1], got ${o.antiLmPlausibility}`);
  if (o.antiLm > 0 && !model.languagePrior)
    fail(
      "antiLm needs the language prior of the model's training captions, and this model has none (language-prior.json: make it with `captioner prior`)",
    );
  if (o.imageSeeds !== null && !o.imageSeeds.every((seed) => Number.isInteger(seed) && seed >= 0))
    fail('imageSeeds must be whole numbers ≥ 0');
  if (o.nBest !== null) {
    whole('nBest', o.nBest, 1);
    if (o.strategy !== 'beam' && o.nBest > 1) fail(`nBest ${o.nBest} needs beam search (strategy "beam")`);
    if (o.strategy === 'beam' && o.nBest > o.beamWidth)
      fail(`nBest ${o.nBest} is more than beamWidth ${o.beamWidth}: beam search finds at most beamWidth`);
  }
  return o;
}

function disposeState(state: CellState): void {
  tf.dispose([state.h, ...(state.c ? [state.c] : [])]);
}

function gatherState(state: CellState, rows: tf.Tensor1D): CellState {
  return state.c ? { h: tf.gather(state.h, rows), c: tf.gather(state.c, rows) } : { h: tf.gather(state.h, rows) };
}

/**
 * What a step chooses words by: the log-probabilities themselves or, under anti-LM, the
 * distribution q(w) ∝ p(w)·p_prior(w | prev)^−λ over the plausible words (p ≥ β·max p; −∞ for
 * the rest), renormalised per step so that beams compare as under plain decoding. `adjusted` is
 * q without the plausibility cut (for an <end> forced at the length limit).
 */
function choiceScores(
  model: StepModel,
  o: ResolvedOptions,
  logProbs: tf.Tensor2D,
  prev: tf.Tensor1D,
): { scores: tf.Tensor2D; adjusted: tf.Tensor2D } {
  if (o.antiLm === 0 || !model.languagePrior) return { scores: logProbs, adjusted: logProbs };
  const prior = tf.tensor2d(model.languagePrior.rows(prev.dataSync()), logProbs.shape);
  const shifted = tf.sub(logProbs, tf.mul(prior, o.antiLm));
  const plausible = tf.greaterEqual(logProbs, tf.add(tf.max(logProbs, 1, true), Math.log(o.antiLmPlausibility)));
  const scores = tf.logSoftmax(tf.where(plausible, shifted, tf.fill(shifted.shape, -Infinity))) as tf.Tensor2D;
  return { scores, adjusted: tf.logSoftmax(shifted) as tf.Tensor2D };
}

function wordOf(model: StepModel, id: number): string {
  return model.vocab.words[id] ?? '<unk>';
}

function toResult(model: StepModel, h: Hypothesis, nbest?: Hypothesis[]): CaptionResult {
  const words = h.tokens.map((id) => wordOf(model, id));
  const result: CaptionResult = {
    words,
    caption: words.join(' '),
    logProb: h.logProb,
    wordProbs: h.tokenLogProbs.map(Math.exp),
  };
  if (nbest)
    result.nbest = nbest.map((n) => ({
      caption: n.tokens.map((id) => wordOf(model, id)).join(' '),
      logProb: n.logProb,
    }));
  return result;
}

/** A decoding in progress, advanced one decoder step at a time. */
interface Search {
  readonly done: boolean;
  advance(): void;
  /** What the last step produced for image 0 (the streaming API decodes one image). */
  events(): StreamEvent[];
  results(): CaptionResult[];
  dispose(): void;
}

/**
 * The tensors a search holds between steps. Rows are live captions (or beams); when some
 * finish, the rest are gathered into fewer rows, so a batch's step costs what its unfinished
 * captions need.
 */
class Rows {
  constructor(
    public features: ImageFeatures, // [rows, F] or [rows, positions, F]
    public state: CellState, // [rows, H] each
    public prev: tf.Tensor1D, // [rows] int32
  ) {}

  static start(model: StepModel, images: tf.Tensor4D): Rows {
    const features = tf.tidy(() => model.encode(images));
    try {
      const state = tf.tidy(() => model.initialState(features));
      return new Rows(features, state, tf.fill([images.shape[0]], START, 'int32') as tf.Tensor1D);
    } catch (err) {
      features.dispose();
      throw err;
    }
  }

  /**
   * Moves to the step's state, keeping only its rows `source[i]` (null: every row, in order);
   * `tokens` [new rows] are the next step's input words. Takes ownership of `state` and `tokens`.
   */
  update(state: CellState, source: number[] | null, tokens: tf.Tensor1D): void {
    const oldPrev = this.prev;
    const oldState = this.state;
    if (source === null) {
      this.state = state;
    } else {
      const oldFeatures = this.features;
      const idx = tf.tensor1d(source, 'int32');
      this.features = tf.gather(oldFeatures, idx);
      this.state = gatherState(state, idx);
      tf.dispose([idx, oldFeatures]);
      disposeState(state);
    }
    this.prev = tokens;
    oldPrev.dispose();
    disposeState(oldState);
  }

  dispose(): void {
    tf.dispose([this.features, this.prev]);
    disposeState(this.state);
  }
}

/** Greedy and sampled decoding: one word per caption per step. */
class TokenSearch implements Search {
  private t = 0;
  private rowImage: number[];
  private readonly hyps: Hypothesis[];
  private readonly rngs: Rng[] | null;
  private last: { image: number; token: number; logProb: number }[] = [];
  private readonly tensors: Rows;
  private disposed = false;

  constructor(
    private readonly model: StepModel,
    images: tf.Tensor4D,
    private readonly o: ResolvedOptions,
  ) {
    const batch = images.shape[0];
    this.rowImage = Array.from({ length: batch }, (_, b) => b);
    this.hyps = this.rowImage.map(() => ({ tokens: [], tokenLogProbs: [], logProb: 0 }));
    const sampling = o.strategy === 'sample' && o.temperature > 0;
    if (o.imageSeeds !== null && o.imageSeeds.length !== batch) {
      throw new DecodeOptionsError(`imageSeeds has ${o.imageSeeds.length} seeds for a batch of ${batch} images`);
    }
    this.rngs = sampling ? this.rowImage.map((b) => new Rng(o.imageSeeds?.[b] ?? deriveSeed(o.seed, b))) : null;
    this.tensors = Rows.start(model, images);
  }

  get done(): boolean {
    return this.rowImage.length === 0;
  }

  advance(): void {
    const rows = this.rowImage.length;
    const forceEnd = this.t >= this.o.maxLength;
    const u = this.rngs && !forceEnd ? Float32Array.from(this.rowImage, (b) => this.rngs![b]!.next()) : null;
    const { features, state, prev } = this.tensors;
    const out = tf.tidy(() => {
      const step = this.model.step(prev, state, features);
      const vocab = step.logits.shape[1];
      const logProbs = tf.logSoftmax(step.logits) as tf.Tensor2D; // [rows, vocab]
      // Plain decoding chooses by the logits; anti-LM by its scores (log-probabilities shifted).
      const choice = this.o.antiLm > 0 ? choiceScores(this.model, this.o, logProbs, prev).scores : step.logits;
      let chosen: tf.Tensor1D;
      if (forceEnd) {
        chosen = tf.fill([rows], END, 'int32') as tf.Tensor1D;
      } else if (!u) {
        chosen = tf.argMax(choice, 1) as tf.Tensor1D;
      } else {
        const filtered = filterLogits(choice, this.o);
        const drawn = tf.cast(sampleCategorical(filtered, u), 'int32') as tf.Tensor1D;
        // A uniform at the very top of the CDF can land on a filtered-out word; take the best kept word then.
        const allowed = tf.greater(
          tf.sum(tf.mul(tf.cast(tf.isFinite(filtered), 'float32'), tf.oneHot(drawn, vocab)), 1),
          0,
        );
        chosen = tf.where(allowed, drawn, tf.cast(tf.argMax(filtered, 1), 'int32')) as tf.Tensor1D;
      }
      const chosenLogProb = tf.sum(tf.mul(logProbs, tf.oneHot(chosen, vocab)), 1) as tf.Tensor1D; // [rows]
      return { chosen: tf.cast(chosen, 'int32') as tf.Tensor1D, chosenLogProb, state: step.state };
    });
    const ids = out.chosen.dataSync();
    const lps = out.chosenLogProb.dataSync();
    out.chosenLogProb.dispose();
    this.last = [];
    const keep: number[] = [];
    this.rowImage.forEach((b, r) => {
      const h = this.hyps[b]!;
      const token = ids[r]!;
      const lp = lps[r]!;
      h.logProb += lp;
      this.last.push({ image: b, token, logProb: lp });
      if (token === END) return;
      h.tokens.push(token);
      h.tokenLogProbs.push(lp);
      keep.push(r);
    });
    if (keep.length === rows) {
      this.tensors.update(out.state, null, out.chosen);
    } else {
      const tokens = tf.tidy(() => tf.gather(out.chosen, tf.tensor1d(keep, 'int32')));
      out.chosen.dispose();
      this.tensors.update(out.state, keep, tokens);
    }
    this.rowImage = keep.map((r) => this.rowImage[r]!);
    this.t += 1;
  }

  events(): StreamEvent[] {
    const step = this.last.find((s) => s.image === 0);
    if (!step || step.token === END) return [];
    // At most one word per caption per step: the word just chosen is the caption's last.
    return [
      {
        type: 'word',
        index: this.hyps[0]!.tokens.length - 1,
        word: wordOf(this.model, step.token),
        prob: Math.exp(step.logProb),
      },
    ];
  }

  results(): CaptionResult[] {
    return this.hyps.map((h) => toResult(this.model, h));
  }

  hypotheses(): Hypothesis[] {
    return this.hyps;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.tensors.dispose();
  }
}

/**
 * Beam search (as in Sutskever et al. 2014 and Wu et al. 2016), batched over images: each image
 * keeps up to `beamWidth` live hypotheses, each a row of the step. Per step, every row's top
 * 2·width words come back to the CPU (never the whole [rows, vocab]); `selectBeams` picks the
 * next beams, and the recurrent state is gathered row by row from the beams they grew from.
 */
class BeamSearch implements Search {
  private t = 0;
  private readonly live: Hypothesis[][];
  private readonly finished: Hypothesis[][];
  private readonly tensors: Rows;
  private disposed = false;

  constructor(
    private readonly model: StepModel,
    images: tf.Tensor4D,
    private readonly o: ResolvedOptions,
  ) {
    const batch = images.shape[0];
    // One row per image to start: all beams would be the same <start>.
    this.live = Array.from({ length: batch }, () => [{ tokens: [], tokenLogProbs: [], logProb: 0 }]);
    this.finished = Array.from({ length: batch }, () => []);
    this.tensors = Rows.start(model, images);
  }

  get done(): boolean {
    return this.live.every((l) => l.length === 0);
  }

  advance(): void {
    const width = this.o.beamWidth;
    const forceEnd = this.t >= this.o.maxLength;
    const { features, state, prev } = this.tensors;
    const out = tf.tidy(() => {
      const step = this.model.step(prev, state, features);
      const vocab = step.logits.shape[1];
      const logProbs = tf.logSoftmax(step.logits) as tf.Tensor2D; // [rows, vocab]
      const { scores, adjusted } = choiceScores(this.model, this.o, logProbs, prev);
      const top = tf.topk(scores, Math.min(2 * width, vocab)); // [rows, k]
      // log p of the top words
      const values = scores === logProbs ? top.values : tf.gather(logProbs, top.indices, 1, 1);
      const endLogProb = logProbs.slice([0, END], [-1, 1]); // [rows, 1]
      const endScore = adjusted.slice([0, END], [-1, 1]);
      return { values, scores: top.values, indices: top.indices, endLogProb, endScore, state: step.state };
    });
    const k = out.values.shape[1];
    const values = out.values.dataSync();
    const indices = out.indices.dataSync();
    const endLogProb = out.endLogProb.dataSync();
    // Under anti-LM, beams rank by score and report log p; otherwise the two are the same numbers.
    const scores = this.o.antiLm > 0 ? out.scores.dataSync() : null;
    const endScore = this.o.antiLm > 0 ? out.endScore.dataSync() : null;
    tf.dispose([out.values, out.scores, out.indices, out.endLogProb, out.endScore]);

    const source: number[] = [];
    const tokens: number[] = [];
    let row = 0; // rows are grouped by image, beams in order
    for (let b = 0; b < this.live.length; b++) {
      const beams = this.live[b]!;
      if (beams.length === 0) continue;
      const first = row;
      row += beams.length;
      if (forceEnd) {
        beams.forEach((h, j) =>
          this.finished[b]!.push(finishWithEnd(h, endLogProb[first + j]!, endScore?.[first + j])),
        );
        this.live[b] = [];
        continue;
      }
      const candidates: BeamCandidate[] = [];
      beams.forEach((_, j) => {
        for (let i = 0; i < k; i++) {
          const at = (first + j) * k + i;
          candidates.push(
            scores
              ? { beam: j, token: indices[at]!, logProb: values[at]!, score: scores[at]! }
              : { beam: j, token: indices[at]!, logProb: values[at]! },
          );
        }
      });
      const selected = selectBeams(beams, candidates, width, END);
      this.finished[b]!.push(...selected.finished);
      if (beamSearchDone(this.finished[b]!.length, selected.live.length, width)) {
        this.live[b] = [];
        continue;
      }
      this.live[b] = selected.live.map((s) => s.hypothesis);
      for (const s of selected.live) {
        source.push(first + s.parent);
        tokens.push(s.hypothesis.tokens[s.hypothesis.tokens.length - 1]!);
      }
    }
    this.tensors.update(out.state, source, tf.tensor1d(Int32Array.from(tokens), 'int32'));
    this.t += 1;
  }

  events(): StreamEvent[] {
    const best = this.live[0]?.[0];
    if (!best) return [];
    return [{ type: 'hypothesis', words: best.tokens.map((id) => wordOf(this.model, id)), logProb: best.logProb }];
  }

  /** Each image's finished hypotheses, best first. */
  ranked(): Hypothesis[][] {
    return this.finished.map((f) => rankHypotheses(f, this.o.lengthPenalty));
  }

  results(): CaptionResult[] {
    return this.ranked().map((ranked) =>
      toResult(this.model, ranked[0]!, this.o.nBest === null ? undefined : ranked.slice(0, this.o.nBest)),
    );
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.tensors.dispose();
  }
}

function createSearch(model: StepModel, images: tf.Tensor4D, o: ResolvedOptions): Search {
  return o.strategy === 'beam' ? new BeamSearch(model, images, o) : new TokenSearch(model, images, o);
}

/**
 * Captions a batch of images [batch, size, size, 3] in [0, 1], one result per image, by greedy,
 * beam or sampled decoding. Holds no tensor after it returns.
 */
export function captionImages(model: StepModel, images: tf.Tensor4D, options: DecodeOptions): CaptionResult[] {
  const o = resolveDecodeOptions(model, options);
  if (images.shape[0] === 0) return [];
  const search = createSearch(model, images, o);
  try {
    while (!search.done) search.advance();
    return search.results();
  } finally {
    search.dispose();
  }
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
  const search = new BeamSearch(model, images, o);
  try {
    while (!search.done) search.advance();
    return search.ranked();
  } finally {
    search.dispose();
  }
}

/**
 * Captions one image [1, size, size, 3], yielding as it goes: for greedy and sampled decoding a
 * `word` event as soon as each word is chosen; for beam search the best live hypothesis after
 * each step; then `done` with the same result `captionImages` returns. Between steps it yields
 * to the event loop. When `signal` aborts it stops at the next step and throws the signal's
 * reason (an AbortError); ending the iteration early (`break`, `return()`) stops it too. Either
 * way every tensor it held is freed.
 */
export async function* streamCaption(
  model: StepModel,
  image: tf.Tensor4D,
  options: DecodeOptions,
  signal?: AbortSignal,
): AsyncGenerator<StreamEvent> {
  if (image.shape[0] !== 1)
    throw new DecodeOptionsError(`streamCaption decodes one image: expected a batch of 1, got ${image.shape[0]}`);
  const o = resolveDecodeOptions(model, options);
  signal?.throwIfAborted();
  const search = createSearch(model, image, o);
  try {
    while (!search.done) {
      search.advance();
      yield* search.events();
      await nextTick();
      signal?.throwIfAborted();
    }
    yield { type: 'done', result: search.results()[0]! };
  } finally {
    search.dispose();
  }
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
 * most probable word, until <end> or `maxLength` words. images [batch, size, size, 3] in [0, 1].
 */
export function greedyDecode(
  model: StepModel,
  images: tf.Tensor4D,
  maxLength = model.config.maxLength,
): DecodedCaption[] {
  const o = resolveDecodeOptions(model, { strategy: 'greedy', maxLength });
  if (images.shape[0] === 0) return [];
  const search = new TokenSearch(model, images, o);
  try {
    while (!search.done) search.advance();
    return search
      .hypotheses()
      .map((h) => ({ ids: h.tokens, words: h.tokens.map((id) => wordOf(model, id)), logProb: h.logProb }));
  } finally {
    search.dispose();
  }
}
