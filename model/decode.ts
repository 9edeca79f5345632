/**
 * Decoding: turning images into captions with the decoder step.
 */
import * as tf from '@tensorflow/tfjs';
import type { Captioner } from './captioner.ts';
import type { CellState } from './cells.ts';
import { END, START } from './vocab.ts';

export interface DecodedCaption {
  /** Word ids, without <start> and <end>. */
  ids: number[];
  words: string[];
  /** Sum of the chosen words' log-probabilities, <end> included. */
  logProb: number;
}

function disposeState(state: CellState): void {
  tf.dispose([state.h, ...(state.c ? [state.c] : [])]);
}

/**
 * Greedy decoding: at every step feed back the most probable word, until <end> or
 * `maxLength` words. images [batch, size, size, 3] in [0, 1].
 */
export function greedyDecode(model: Captioner, images: tf.Tensor4D, maxLength = model.config.maxLength): DecodedCaption[] {
  const batch = images.shape[0];
  const features = tf.tidy(() => model.encode(images));
  let state = tf.tidy(() => model.initialState(features));
  let prev = tf.fill([batch], START, 'int32') as tf.Tensor1D;
  const ids: number[][] = Array.from({ length: batch }, () => []);
  const logProb = new Float64Array(batch);
  const done = new Array<boolean>(batch).fill(false);
  try {
    // maxLength words and then <end>: at most maxLength + 1 steps.
    for (let t = 0; t <= maxLength && !done.every(Boolean); t++) {
      const out = tf.tidy(() => {
        const { logits, state: next } = model.step(prev, state, features);
        const logProbs = tf.logSoftmax(logits); // [batch, vocab]
        const chosen = tf.argMax(logProbs, 1) as tf.Tensor1D;
        const chosenLogProb = tf.sum(tf.mul(logProbs, tf.oneHot(chosen, logits.shape[1])), 1);
        return { chosen, chosenLogProb, next };
      });
      const words = out.chosen.dataSync();
      const lps = out.chosenLogProb.dataSync();
      for (let b = 0; b < batch; b++) {
        if (done[b]) continue;
        logProb[b]! += lps[b]!;
        const w = words[b]!;
        if (w === END || t === maxLength) done[b] = true;
        else ids[b]!.push(w);
      }
      out.chosenLogProb.dispose();
      prev.dispose();
      disposeState(state);
      prev = out.chosen;
      state = out.next;
    }
  } finally {
    prev.dispose();
    disposeState(state);
    features.dispose();
  }
  return ids.map((seq, b) => ({ ids: seq, words: model.vocab.decode(seq), logProb: logProb[b]! }));
}
