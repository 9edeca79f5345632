/**
 * Beam search (as in Sutskever et al. 2014 and Wu et al. 2016), batched over images: each image
 * keeps up to `beamWidth` live hypotheses, each a row of the step. Per step, every row's top
 * 2·width words come back to the CPU (never the whole [rows, vocab]); `selectBeams`
 * (model/decode/beam.ts, the bookkeeping as pure functions) picks the next beams, and the
 * recurrent state is gathered row by row from the beams they grew from.
 */
import * as tf from '@tensorflow/tfjs';
import { choiceScores } from './anti-lm.ts';
import {
  beamSearchDone,
  finishWithEnd,
  rankHypotheses,
  selectBeams,
  type BeamCandidate,
  type Hypothesis,
} from './beam.ts';
import type { ResolvedOptions } from './options.ts';
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

/** One step's top words per row, on the CPU, and the decoder's new state (still a tensor). */
interface BeamStep {
  /** Words per row. */
  k: number;
  /** [rows·k] row-major: each top word's id and log p. */
  indices: tf.TypedArray;
  values: tf.TypedArray;
  /** [rows·k] the anti-LM score each top word ranks by; null without anti-LM (it is the log p). */
  scores: tf.TypedArray | null;
  /** [rows] log p and score of <end> (for the length limit). */
  endLogProb: tf.TypedArray;
  endScore: tf.TypedArray | null;
  state: DecoderState;
  /** [rows·positions] the weights each row's step attended with, for a model with attention; else null. */
  attention: tf.TypedArray | null;
  positions: number;
}

export class BeamSearch implements Search {
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
    this.live = Array.from({ length: batch }, () => [emptyHypothesis(model)]);
    this.finished = Array.from({ length: batch }, () => []);
    this.tensors = Rows.start(model, images);
  }

  get done(): boolean {
    return this.live.every((l) => l.length === 0);
  }

  /** Runs the decoder step for every live beam and brings each row's top 2·width words to the CPU. */
  private scoreStep(): BeamStep {
    const width = this.o.beamWidth;
    const { features, state, prev } = this.tensors;
    const out = tf.tidy(() => {
      const step = this.model.step(prev, state, features);
      const vocab = step.logits.shape[1];
      const logProbs = logSoftmax(step.logits); // [rows, vocab]
      const { scores, adjusted } = choiceScores(this.o, logProbs, prev);
      const top = tf.topk(scores, Math.min(2 * width, vocab)); // [rows, k]
      // log p of the top words
      const values = scores === logProbs ? top.values : tf.gather(logProbs, top.indices, 1, 1);
      const endLogProb = logProbs.slice([0, END], [-1, 1]); // [rows, 1]
      const endScore = adjusted === logProbs ? endLogProb : adjusted.slice([0, END], [-1, 1]);
      const attention = step.attention && this.model.attentionGrid ? step.attention : undefined;
      return { values, scores: top.values, indices: top.indices, endLogProb, endScore, state: step.state, attention };
    });
    // Under anti-LM, beams rank by score and report log p; otherwise the two are the same numbers.
    const anti = this.o.antiLm > 0;
    const step: BeamStep = {
      k: out.values.shape[1],
      values: out.values.dataSync(),
      indices: out.indices.dataSync(),
      scores: anti ? out.scores.dataSync() : null,
      endLogProb: out.endLogProb.dataSync(),
      endScore: anti ? out.endScore.dataSync() : null,
      state: out.state,
      attention: out.attention?.dataSync() ?? null,
      positions: out.attention?.shape[1] ?? 0,
    };
    tf.dispose([
      out.values,
      out.scores,
      out.indices,
      out.endLogProb,
      out.endScore,
      ...(out.attention ? [out.attention] : []),
    ]);
    return step;
  }

  /**
   * Moves image `b`'s beams (rows `first`…) on by the step: at the length limit every beam ends;
   * else `selectBeams` picks the next ones. Returns the rows the live beams grew from and their
   * new words.
   */
  private advanceImage(
    b: number,
    first: number,
    step: BeamStep,
    forceEnd: boolean,
  ): { parent: number; token: number }[] {
    const beams = this.live[b]!;
    if (forceEnd) {
      beams.forEach((h, j) =>
        this.finished[b]!.push(finishWithEnd(h, step.endLogProb[first + j]!, step.endScore?.[first + j])),
      );
      this.live[b] = [];
      return [];
    }
    const candidates: BeamCandidate[] = [];
    beams.forEach((_, j) => {
      // Every word this beam's step scored was scored with the same attention: the row's.
      const attention = step.attention ? rowOf(step.attention, first + j, step.positions) : undefined;
      for (let i = 0; i < step.k; i++) {
        const at = (first + j) * step.k + i;
        const candidate: BeamCandidate = { beam: j, token: step.indices[at]!, logProb: step.values[at]! };
        if (step.scores) candidate.score = step.scores[at]!;
        if (attention) candidate.attention = attention;
        candidates.push(candidate);
      }
    });
    const width = this.o.beamWidth;
    const selected = selectBeams(beams, candidates, width, END);
    this.finished[b]!.push(...selected.finished);
    if (beamSearchDone(this.finished[b]!.length, selected.live.length, width)) {
      this.live[b] = [];
      return [];
    }
    this.live[b] = selected.live.map((s) => s.hypothesis);
    return selected.live.map((s) => ({ parent: first + s.parent, token: s.hypothesis.tokens.at(-1)! }));
  }

  advance(): void {
    const forceEnd = this.t >= this.o.maxLength;
    const step = this.scoreStep();
    const source: number[] = [];
    const tokens: number[] = [];
    let row = 0; // rows are grouped by image, beams in order
    for (let b = 0; b < this.live.length; b++) {
      const first = row;
      row += this.live[b]!.length;
      if (this.live[b]!.length === 0) continue;
      for (const next of this.advanceImage(b, first, step, forceEnd)) {
        source.push(next.parent);
        tokens.push(next.token);
      }
    }
    this.tensors.update(step.state, source, tf.tensor1d(Int32Array.from(tokens), 'int32'));
    this.t += 1;
  }

  events(): StreamEvent[] {
    const best = this.live[0]?.[0];
    if (!best) return [];
    const event: StreamEvent = {
      type: 'hypothesis',
      words: best.tokens.map((id) => wordOf(this.model, id)),
      logProb: best.logProb,
    };
    if (best.attention) event.attention = best.attention;
    return [event];
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
