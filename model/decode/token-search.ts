/**
 * Greedy and sampled decoding: one word per caption per step, batched over images. The two
 * differ only in how a step picks its word (`pickTokens`): the best-scoring one, or one drawn
 * from the (filtered) distribution with each image's own seeded generator.
 */
import * as tf from '@tensorflow/tfjs';
import { choiceScores } from './anti-lm.ts';
import type { Hypothesis } from './beam.ts';
import { DecodeOptionsError, type ResolvedOptions } from './options.ts';
import { drawTokens } from './sampling.ts';
import {
  Rows,
  emptyHypothesis,
  rowOf,
  toResult,
  wordOf,
  type CaptionResult,
  type Search,
  type StepModel,
  type StreamEvent,
} from './search-state.ts';
import type { DecoderState } from '../nn/captioner.ts';
import { logSoftmax } from '../runtime/fused.ts';
import { END } from '../text/vocab.ts';
import { Rng, deriveSeed } from '../util/rng.ts';

/** What one step chose: a token per row, its log p, and the decoder's new state. */
interface TokenStep {
  chosen: tf.Tensor1D; // [rows] int32
  chosenLogProb: tf.Tensor1D; // [rows]
  state: DecoderState;
  /** The weights the step attended with, [rows, positions], for a model with attention. */
  attention?: tf.Tensor2D;
}

export class TokenSearch implements Search {
  private t = 0;
  /** The image of each live row. */
  private rowImage: number[];
  private readonly hyps: Hypothesis[];
  private readonly rngs: Rng[] | null;
  private last: { image: number; token: number; logProb: number; attention?: number[] }[] = [];
  private readonly tensors: Rows;
  private disposed = false;

  /**
   * `forced`: for each image, words (ids) its caption must begin with: step t of image b takes
   * forced[b][t] while there is one, whatever the model scores, and the search goes on from there
   * (the exposure-bias recovery test, eval/exposure.ts, puts a wrong word into a prefix this way).
   * Their log-probabilities are the model's, as for every word.
   */
  constructor(
    private readonly model: StepModel,
    images: tf.Tensor4D,
    private readonly o: ResolvedOptions,
    private readonly forced: readonly (readonly number[])[] = [],
  ) {
    const batch = images.shape[0];
    this.rowImage = Array.from({ length: batch }, (_, b) => b);
    this.hyps = this.rowImage.map(() => emptyHypothesis(model));
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

  /**
   * The step's words, under tf.tidy: <end> for every row at the length limit; else the best
   * word by the logits (or by the anti-LM scores), or one drawn with the uniforms `u`.
   */
  private pickTokens(u: Float32Array | null, forceEnd: boolean): TokenStep {
    const rows = this.rowImage.length;
    const { features, state, prev } = this.tensors;
    const forcedIds = this.rowImage.map((b) => this.forced[b]?.[this.t] ?? -1); // -1: the search chooses
    return tf.tidy(() => {
      const step = this.model.step(prev, state, features);
      const logProbs = logSoftmax(step.logits); // [rows, vocab]
      // Plain decoding chooses by the logits; anti-LM by its scores (log-probabilities shifted).
      const choice = this.o.antiLm > 0 ? choiceScores(this.o, logProbs, prev).scores : step.logits;
      let chosen: tf.Tensor1D;
      if (forceEnd) chosen = tf.fill([rows], END, 'int32') as tf.Tensor1D;
      else if (!u) chosen = tf.argMax(choice, 1) as tf.Tensor1D;
      else chosen = drawTokens(choice, u, this.o);
      if (forcedIds.some((id) => id >= 0)) {
        const forcing = tf.tensor1d(
          forcedIds.map((id) => id >= 0),
          'bool',
        );
        chosen = tf.where(forcing, tf.tensor1d(forcedIds, 'int32'), tf.cast(chosen, 'int32')) as tf.Tensor1D;
      }
      if (chosen.dtype !== 'int32') chosen = tf.cast(chosen, 'int32') as tf.Tensor1D;
      // log p of each row's chosen word: [rows, 1] gathered row by row, then [rows]
      const chosenLogProb = tf.reshape(tf.gather(logProbs, tf.reshape(chosen, [rows, 1]), 1, 1), [rows]) as tf.Tensor1D;
      const attention = step.attention && this.model.attentionGrid ? step.attention : undefined;
      return { chosen, chosenLogProb, state: step.state, attention };
    });
  }

  advance(): void {
    const rows = this.rowImage.length;
    const forceEnd = this.t >= this.o.maxLength;
    const u = this.rngs && !forceEnd ? Float32Array.from(this.rowImage, (b) => this.rngs![b]!.next()) : null;
    const out = this.pickTokens(u, forceEnd);
    const ids = out.chosen.dataSync();
    const lps = out.chosenLogProb.dataSync();
    const attention = out.attention?.dataSync() ?? null; // [rows·positions]
    const positions = out.attention?.shape[1] ?? 0;
    tf.dispose([out.chosenLogProb, ...(out.attention ? [out.attention] : [])]);
    this.last = [];
    const keep: number[] = [];
    this.rowImage.forEach((b, r) => {
      const h = this.hyps[b]!;
      const token = ids[r]!;
      const lp = lps[r]!;
      h.logProb += lp;
      // The weights the step read the word with: row r of its attention.
      const weights = attention ? rowOf(attention, r, positions) : undefined;
      this.last.push({ image: b, token, logProb: lp, attention: weights });
      if (token === END) return;
      h.tokens.push(token);
      h.tokenLogProbs.push(lp);
      if (weights) h.attention?.push(weights);
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
    const event: StreamEvent = {
      type: 'word',
      index: this.hyps[0]!.tokens.length - 1,
      word: wordOf(this.model, step.token),
      prob: Math.exp(step.logProb),
    };
    if (step.attention) event.attention = step.attention;
    return [event];
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
