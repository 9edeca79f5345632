/**
 * Gradient flow through time: how large the gradient of the loss is at each of the decoder's
 * states, and how much of the last word's loss reaches the states before it. Backpropagation
 * through time multiplies the gradient by every step's Jacobian ∂s_{t+1}/∂s_t on its way back,
 * so over k steps it can shrink or grow geometrically (Bengio, Simard & Frasconi 1994; Pascanu,
 * Mikolov & Bengio 2013); the LSTM's cell state is the path on which it need not (Hochreiter &
 * Schmidhuber 1997). These figures show which happens in a given network.
 *
 * A gradient with respect to an intermediate state is read off a probe: a zero tensor the decoder
 * step adds to its new state before reading a word off it or passing it on (Captioner.step's
 * `probe`), so that every value is unchanged and ∂L/∂probe_t = ∂L/∂s_t.
 *
 * States are numbered as the decoder makes them: s_0 is the initial state (from the image) and
 * s_t the state after step t, the one that reads out word t. A caption of n words is predicted at
 * steps 1 … n + 1 (its words, then <end>), so its losses reach s_0 … s_{n+1}.
 */
import * as tf from '@tensorflow/tfjs';
import { type Captioner, type DecoderState } from '../nn/captioner.ts';
import type { CellState } from '../nn/cells.ts';
import { PAD } from '../text/vocab.ts';

/** One measurement on one batch of captions, teacher-forced, as metrics.jsonl records it. */
export interface GradientFlow {
  /** Decoder steps of the batch (its longest caption's words + 1). */
  steps: number;
  /**
   * ‖∂L/∂h_t‖ for t = 0 … steps, L each caption's own loss (the cross-entropy of every word and
   * <end>, summed): the mean over the captions whose losses reach s_t (t ≤ n + 1) of each one's norm.
   */
  hNorm: number[];
  /**
   * For the LSTM, ‖∂L/∂c_t‖ along the cell state: the gradient reaching c_t from the steps after
   * t through c_{t+1} = f ⊙ c_t + i ⊙ g, with h_t held (the path of the "constant error carousel",
   * Hochreiter & Schmidhuber 1997; the path through h_t = o ⊙ tanh(c_t) is counted in hNorm).
   * Absent for the other cells.
   */
  cNorm?: number[];
  /**
   * ‖∂L_n/∂h_{n−k}‖ for k = 0 … longest n, L_n the loss of each caption's last word (word n,
   * before <end>) and k the distance in time steps back from the state that reads it out: the mean
   * over the captions of at least k words.
   */
  lastWordH: number[];
  /** The same along the LSTM's cell state, as cNorm (0 at k = 0); absent for the other cells. */
  lastWordC?: number[];
  /** How many captions each lastWord distance k averages over. */
  lastWordCaptions: number[];
}

/**
 * Measures gradient flow on one batch: images [batch, size, size, 3] in [0, 1] and tokens
 * [batch, steps + 1] (`<start> w1 … wn <end> <pad>…`), fed by teacher forcing with the network in
 * inference mode (no dropout, no scheduled sampling), plain cross-entropy. Two backward passes: the
 * whole loss, then the last words' losses. Holds no tensor after it returns.
 */
export function measureGradientFlow(model: Captioner, images: tf.Tensor4D, tokens: tf.Tensor2D): GradientFlow {
  const [batch, width] = tokens.shape;
  const steps = width - 1;
  const ids = tokens.dataSync();
  // n_b: words of caption b (its targets that are not padding, less <end>).
  const words = Array.from({ length: batch }, (_, b) => {
    let targets = 0;
    for (let t = 1; t < width; t++) if (ids[b * width + t] !== PAD) targets++;
    return targets - 1;
  });
  if (words.some((n) => n < 1)) throw new Error('measureGradientFlow: every caption needs a word and <end>');
  const lstm = model.config.cell === 'lstm';
  const all = tf.tidy(() => {
    const targets = tokens.slice([0, 1], [batch, steps]); // [batch, steps]
    const mask = tf.cast(tf.notEqual(targets, PAD), 'float32'); // [batch, steps]
    const last = tf.oneHot(
      tf.tensor1d(
        words.map((n) => n - 1),
        'int32',
      ),
      steps,
    ); // [batch, steps]: the step that predicts word n
    return {
      whole: probeGradients(model, images, tokens, mask, lstm),
      last: probeGradients(model, images, tokens, last, lstm),
    };
  });
  try {
    const hNorm = meanNorms(all.whole.h, words, (t, n) => t <= n + 1);
    const lastWord = (grads: tf.Tensor2D[]) =>
      Array.from({ length: Math.max(...words) + 1 }, (_, k) => {
        const norms = words.flatMap((n, b) => (k <= n ? [rowNorm(grads[n - k]!, b)] : []));
        return norms.reduce((a, x) => a + x, 0) / norms.length;
      });
    const flow: GradientFlow = {
      steps,
      hNorm,
      ...(lstm ? { cNorm: meanNorms(all.whole.c, words, (t, n) => t <= n + 1) } : {}),
      lastWordH: lastWord(all.last.h),
      ...(lstm ? { lastWordC: lastWord(all.last.c) } : {}),
      lastWordCaptions: Array.from({ length: Math.max(...words) + 1 }, (_, k) => words.filter((n) => k <= n).length),
    };
    return flow;
  } finally {
    tf.dispose([...all.whole.h, ...all.whole.c, ...all.last.h, ...all.last.c]);
  }
}

/** ‖row b‖ of a [batch, H] gradient. */
function rowNorm(grad: tf.Tensor2D, b: number): number {
  const [, H] = grad.shape;
  const values = grad.dataSync();
  let sum = 0;
  for (let i = b * H; i < (b + 1) * H; i++) sum += values[i]! * values[i]!;
  return Math.sqrt(sum);
}

/** For each state t, the mean over captions b with `counts(t, n_b)` of ‖∂L/∂s_t‖ of row b. */
function meanNorms(grads: tf.Tensor2D[], words: number[], counts: (t: number, n: number) => boolean): number[] {
  return grads.map((g, t) => {
    const norms = words.flatMap((n, b) => (counts(t, n) ? [rowNorm(g, b)] : []));
    return norms.length ? norms.reduce((a, x) => a + x, 0) / norms.length : 0;
  });
}

/**
 * ∂L/∂s_t for t = 0 … steps of L = −Σ weights[b, t]·log p(target[b, t]) (summed, not averaged,
 * over the batch, so that each row's gradient is its own caption's), through zero probes on h
 * (and c). Returns [batch, H] gradients per state.
 */
function probeGradients(
  model: Captioner,
  images: tf.Tensor4D,
  tokens: tf.Tensor2D,
  weights: tf.Tensor,
  lstm: boolean,
): { h: tf.Tensor2D[]; c: tf.Tensor2D[] } {
  const [batch, width] = tokens.shape;
  const steps = width - 1;
  const H = model.config.hiddenSize;
  // The last state's c reaches no loss (the words are read off h): it gets no probe, and a zero gradient.
  const count = steps + 1 + (lstm ? steps : 0);
  const probes = Array.from({ length: count }, () => tf.zeros([batch, H]));
  const loss = (...xs: tf.Tensor[]): tf.Scalar => {
    const probe = (t: number): CellState =>
      lstm && t < steps
        ? { h: xs[t] as tf.Tensor2D, c: xs[steps + 1 + t] as tf.Tensor2D }
        : { h: xs[t] as tf.Tensor2D };
    const features = model.encode(images);
    const truth = tf.unstack(tf.cast(tokens, 'int32'), 1) as tf.Tensor1D[]; // steps + 1 × [batch]
    let state: DecoderState = model.initialState(features, probe(0));
    const logits: tf.Tensor2D[] = [];
    for (let t = 0; t < steps; t++) {
      const out = model.step(truth[t]!, state, features, probe(t + 1));
      state = out.state;
      logits.push(out.logits);
    }
    const logProbs = tf.logSoftmax(tf.stack(logits, 1)); // [batch, steps, vocab]
    const picked = tf.sum(
      tf.mul(logProbs, tf.oneHot(tf.stack(truth.slice(1), 1) as tf.Tensor2D, logProbs.shape[2]!)),
      2,
    ); // [batch, steps]
    return tf.neg(tf.sum(tf.mul(picked, weights))) as tf.Scalar;
  };
  const grads = tf.grads(loss)(probes) as tf.Tensor2D[];
  tf.dispose(probes);
  return { h: grads.slice(0, steps + 1), c: lstm ? [...grads.slice(steps + 1), tf.zeros([batch, H])] : [] };
}
