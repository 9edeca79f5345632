/**
 * What every search shares: the model interface the decoders step, the results and stream events
 * they give, the `Search` each strategy implements, and the tensors a search holds between
 * decoder steps (`Rows`).
 */
import * as tf from '@tensorflow/tfjs';
import type { Hypothesis } from './beam.ts';
import type { DecoderState, ImageFeatures, StepOutput } from '../nn/captioner.ts';
import { START } from '../text/vocab.ts';

/**
 * What the decoders need of a model: `Captioner` satisfies it, and a test can plant a toy
 * decoder with known probabilities behind it. Decoding settings (the language prior among them)
 * are passed to each call, never stored here.
 */
export interface StepModel {
  readonly vocab: { readonly size: number; readonly words: readonly string[] };
  readonly config: { readonly maxLength: number };
  /**
   * For a model whose step returns `attention`: the [rows, columns] of the grid its weights are
   * over (row-major). Absent or null: the model does not attend, and results carry no maps.
   */
  readonly attentionGrid?: readonly [number, number] | null;
  /** images [batch, size, size, 3] in [0, 1] → features [batch, F] (or, for attention, [batch, positions, F]). */
  encode(images: tf.Tensor4D): ImageFeatures;
  initialState(features: ImageFeatures): DecoderState;
  /** previous tokens [rows] int32, state, features [rows, …] → logits [rows, vocab] and the new state. */
  step(prevTokens: tf.Tensor1D, state: DecoderState, features: ImageFeatures): StepOutput;
}

/**
 * Where the model looked for each word (Xu et al. 2015, "Show, Attend and Tell", fig. 2-3): the
 * attention weights over the encoder's grid of the step that chose the word.
 */
export interface AttentionMaps {
  /** [rows, columns] of the grid; each row of `weights` is row-major over it. */
  grid: [number, number];
  /** One row per word of the caption (not <end>), rows·columns weights that sum to 1. */
  weights: number[][];
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
  /** For a model with attention: each word's weights over the grid (for beam search, those of this hypothesis). */
  attention?: AttentionMaps;
}

export type StreamEvent =
  /** `attention`: for a model with attention, the word's weights over the grid (row-major). */
  | { type: 'word'; index: number; word: string; prob: number; attention?: number[] }
  /** `attention`: for a model with attention, one row of weights per word of the hypothesis. */
  | { type: 'hypothesis'; words: string[]; logProb: number; attention?: number[][] }
  | { type: 'done'; result: CaptionResult };

/** A decoding in progress, advanced one decoder step at a time. */
export interface Search {
  readonly done: boolean;
  advance(): void;
  /** What the last step produced for image 0 (the streaming API decodes one image). */
  events(): StreamEvent[];
  results(): CaptionResult[];
  dispose(): void;
}

export function wordOf(model: StepModel, id: number): string {
  return model.vocab.words[id] ?? '<unk>';
}

/** A finished hypothesis as a caption result, with the n-best list when asked for. */
export function toResult(model: StepModel, h: Hypothesis, nbest?: Hypothesis[]): CaptionResult {
  const words = h.tokens.map((id) => wordOf(model, id));
  const result: CaptionResult = {
    words,
    caption: words.join(' '),
    logProb: h.logProb,
    wordProbs: h.tokenLogProbs.map(Math.exp),
  };
  const grid = model.attentionGrid;
  if (grid && h.attention) result.attention = { grid: [grid[0], grid[1]], weights: h.attention };
  if (nbest)
    result.nbest = nbest.map((n) => ({
      caption: n.tokens.map((id) => wordOf(model, id)).join(' '),
      logProb: n.logProb,
    }));
  return result;
}

/** A new, empty hypothesis; with an empty list of attention rows when the model attends. */
export function emptyHypothesis(model: StepModel): Hypothesis {
  return model.attentionGrid
    ? { tokens: [], tokenLogProbs: [], logProb: 0, attention: [] }
    : { tokens: [], tokenLogProbs: [], logProb: 0 };
}

/** Row `r` of a [rows, positions] array read off a tensor, as plain numbers. */
export function rowOf(values: tf.TypedArray, r: number, positions: number): number[] {
  return Array.from(values.subarray(r * positions, (r + 1) * positions));
}

/** Every tensor of a state: h, and c, the position and the context when it has them. */
function stateTensors(state: DecoderState): tf.Tensor[] {
  const tensors: tf.Tensor[] = [state.h];
  if (state.c) tensors.push(state.c);
  if (state.position) tensors.push(state.position);
  if (state.context) tensors.push(state.context);
  return tensors;
}

function disposeState(state: DecoderState): void {
  tf.dispose(stateTensors(state));
}

/** The state's rows `rows`, each of its tensors gathered alike. */
function gatherState(state: DecoderState, rows: tf.Tensor1D): DecoderState {
  const gathered: DecoderState = { h: tf.gather(state.h, rows) };
  if (state.c) gathered.c = tf.gather(state.c, rows);
  if (state.position) gathered.position = tf.gather(state.position, rows);
  if (state.context) gathered.context = tf.gather(state.context, rows);
  return gathered;
}

/**
 * The tensors a search holds between steps. Rows are live captions (or beams); when some
 * finish, the rest are gathered into fewer rows, so a batch's step costs what its unfinished
 * captions need.
 */
export class Rows {
  /**
   * `images`: the image each row is of ([0, 1, …] at the start), so that the features, the same
   * for every row of an image, are gathered only when that changes (beams of one image trade
   * places at every step; their features stay).
   */
  constructor(
    public features: ImageFeatures, // [rows, F] or [rows, positions, F]
    public state: DecoderState, // [rows, H] each
    public prev: tf.Tensor1D, // [rows] int32
    private images: number[] = Array.from({ length: prev.shape[0] }, (_, r) => r),
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
  update(state: DecoderState, source: number[] | null, tokens: tf.Tensor1D): void {
    const oldPrev = this.prev;
    const oldState = this.state;
    if (source === null) {
      this.state = state;
    } else {
      const images = source.map((r) => this.images[r]!);
      const idx = tf.tensor1d(source, 'int32');
      if (images.length !== this.images.length || images.some((b, r) => b !== this.images[r])) {
        const oldFeatures = this.features;
        this.features = tf.gather(oldFeatures, idx);
        oldFeatures.dispose();
      }
      this.images = images;
      this.state = gatherState(state, idx);
      idx.dispose();
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
