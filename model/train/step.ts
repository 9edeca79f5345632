/**
 * One model and its optimiser, stepping on batches: the forward pass with scheduled sampling,
 * the masked loss, gradients through time, clipping and Adam (the loop that feeds it is in
 * loop.ts), and the teacher-forced validation loss.
 */
import * as tf from '@tensorflow/tfjs';
import type { Batch } from '../data/batch.ts';
import type { ImageCache } from '../data/dataset.ts';
import type { Captioner } from '../nn/captioner.ts';
import { Rng, deriveSeed } from '../util/rng.ts';
import { countTokens, maskedSequenceLoss, perTokenLoss } from './loss.ts';
import { Adam, clipScale, globalNorm, type Optimizer } from './optim.ts';
import { learningRateAt, scheduledSamplingProbability } from './schedules.ts';
import type { TrainConfig } from './config.ts';
import { measureGradientFlow, type GradientFlow } from './gradient-flow.ts';
import { greedyDecode, sampleDecode } from '../decode/decode.ts';
import { mean, sampledTokens, scstLoss, type CaptionReward } from './scst.ts';
import { colourWordIds, greyscaleRows } from './greyscale.ts';

/** What one training step reports. */
export interface StepStats {
  /** The batch loss: masked cross-entropy summed over steps, mean over the batch (unmasked with lossOnPadding). */
  loss: number;
  lossPerToken: number;
  perplexity: number;
  /** The batch's targets that are words or <end> (not padding). */
  tokens: number;
  /** The share of the batch's target positions that are padding (what bucketing saves). */
  paddingFraction: number;
  gradNorm: number;
  learningRate: number;
  samplingProbability: number;
  /**
   * With objective "scst" (model/train/scst.ts): the mean CIDEr-D reward of the sampled captions
   * and of the greedy ones (the baseline). `loss` is then the SCST loss, `tokens` the sampled
   * words and <end>s it sums over, and `lossPerToken` the loss over them (perplexity: NaN).
   */
  scst?: { sampleReward: number; greedyReward: number };
}

/**
 * One model and its optimiser, stepping on batches. Holds no data set: the loop below, tests
 * and benchmarks feed it.
 */
export class Trainer {
  private readonly names = new Map<string, string>();
  private readonly byName: Record<string, tf.Variable>;
  private readonly trainable: tf.Variable[];
  /** The vocabulary's colour words, masked as targets of grey images (greyscale augmentation). */
  private colourIds: Set<number> | undefined;

  /**
   * `slots`: each word id's substitutes (model/train/substitution.ts), read off the training
   * captions, and each word id's substitution rate; needed for word substitution and for
   * scheduled sampling within slots.
   */
  constructor(
    readonly model: Captioner,
    readonly config: TrainConfig,
    readonly optimizer: Optimizer = new Adam(),
    readonly slots?: { classes: readonly (readonly number[])[]; rate: readonly number[] },
    readonly reward?: CaptionReward,
  ) {
    if (config.samplingWithinSlots && !slots)
      throw new Error('Trainer: scheduled sampling within slots needs the substitution classes');
    if (config.objective === 'scst' && !reward)
      throw new Error('Trainer: objective "scst" needs the reward of the training references (CaptionReward)');
    this.byName = model.namedWeights();
    for (const [name, v] of Object.entries(this.byName)) this.names.set(v.name, name);
    this.trainable = model.trainableVariables();
  }

  samplingProbability(step: number): number {
    const c = this.config;
    return scheduledSamplingProbability(step, {
      kind: c.samplingSchedule,
      k: c.samplingK,
      c: c.samplingC,
      min: c.samplingMin,
    });
  }

  learningRate(step: number, totalSteps: number): number {
    const c = this.config;
    return learningRateAt(step, {
      kind: c.lrSchedule,
      base: c.learningRate,
      warmupSteps: c.warmupSteps,
      decaySteps: totalSteps,
      min: c.minLearningRate,
    });
  }

  /**
   * One optimiser step on `batch` at global step `step`: forward with scheduled sampling, the
   * masked loss, gradients through time, clipping, Adam. Returns plain numbers; no tensor
   * outlives the call except the weights and the optimiser's moments.
   */
  step(images: Float32Array, batch: Batch, step: number, totalSteps: number): StepStats {
    if (this.config.objective === 'scst') return this.scstStep(images, batch, step, totalSteps);
    const { batchSize, width, tokens } = batch;
    const size = this.model.config.imageSize;
    const epsilon = this.samplingProbability(step);
    const rng = new Rng(deriveSeed(this.config.seed, 2, step));
    const lr = this.learningRate(step, totalSteps);
    const grey = this.greyscale(images, batch, step);
    const imgs = tf.tensor4d(grey.images, [batchSize, size, size, 3]);
    const toks = tf.tensor2d(tokens, [batchSize, width], 'int32');
    const targets = tf.tensor2d(grey.targets, [batchSize, width - 1], 'int32'); // the tokens shifted by one
    try {
      const { value, grads } = tf.variableGrads(
        () =>
          tf.tidy(() => {
            const { logits } = this.model.forward(imgs, toks, {
              teacherProbability: epsilon,
              feed: this.config.samplingFeed,
              samplingSlots: this.config.samplingWithinSlots ? this.slots!.classes : undefined,
              substitution: this.slots,
              wordDropout: this.config.wordDropout,
              rng,
              training: true,
            });
            return maskedSequenceLoss(logits, targets, this.config.labelSmoothing, {
              maskPadding: !this.config.lossOnPadding,
            });
          }),
        this.trainable,
      );
      const gradNorm = this.applyGradients(grads, lr);
      const loss = value.dataSync()[0]!;
      value.dispose();
      const n = countTokens(grey.targets);
      const positions = batchSize * (width - 1);
      return {
        loss,
        // Per target the loss covers: the words and <end>, and with lossOnPadding the pads too.
        ...perTokenLoss(loss, batchSize, this.config.lossOnPadding ? positions : n),
        tokens: n,
        paddingFraction: positions > 0 ? 1 - n / positions : 0,
        gradNorm,
        learningRate: lr,
        samplingProbability: epsilon,
      };
    } finally {
      imgs.dispose();
      toks.dispose();
      targets.dispose();
    }
  }

  /**
   * The step's pixels and targets (the tokens shifted by one) after greyscale augmentation
   * (model/train/greyscale.ts): with `greyscale` 0, the batch's own pixels and targets; else
   * copies, each image grey with that probability (draws seeded by seed and step, so that a
   * resumed run draws the same) and the colour words of its caption masked as targets.
   */
  private greyscale(images: Float32Array, batch: Batch, step: number): { images: Float32Array; targets: Int32Array } {
    const { batchSize, width, tokens } = batch;
    const targets = new Int32Array(batchSize * (width - 1));
    for (let b = 0; b < batchSize; b++) targets.set(tokens.subarray(b * width + 1, (b + 1) * width), b * (width - 1));
    const rate = this.config.greyscale;
    if (!(rate > 0)) return { images, targets };
    const copy = images.slice();
    this.colourIds ??= colourWordIds(this.model.vocab);
    greyscaleRows(copy, targets, batchSize, rate, this.colourIds, new Rng(deriveSeed(this.config.seed, 6, step)));
    return { images: copy, targets };
  }

  /**
   * One self-critical step (model/train/scst.ts) on the images of `batch` (its captions are not
   * used: the references come from the reward): a caption sampled from the model for each row,
   * image b's draws seeded by (seed, step, b) so that a resumed run draws the same; the greedy
   * caption as the baseline; their CIDEr-D rewards; then the gradient of the SCST loss through a
   * teacher-forced pass over the sampled captions, clipping and Adam, as `step`. Decoding runs the
   * network in inference mode, and so does the pass, so that its log-probabilities are those of
   * the distribution the words were drawn from.
   */
  scstStep(images: Float32Array, batch: Batch, step: number, totalSteps: number): StepStats {
    const { batchSize, imageIds } = batch;
    const size = this.model.config.imageSize;
    const maxLength = this.model.config.maxLength;
    const lr = this.learningRate(step, totalSteps);
    const imgs = tf.tensor4d(images, [batchSize, size, size, 3]);
    try {
      const seeds = imageIds.map((_, b) => deriveSeed(this.config.seed, 5, step, b));
      const samples = sampleDecode(this.model, imgs, seeds, maxLength);
      const greedy = greedyDecode(this.model, imgs, maxLength);
      const sampleRewards = samples.map((s, b) => this.reward!.score(imageIds[b]!, s.words));
      const greedyRewards = greedy.map((g, b) => this.reward!.score(imageIds[b]!, g.words));
      const { tokens, width, mask, count } = sampledTokens(samples, maxLength);
      const toks = tf.tensor2d(tokens, [batchSize, width], 'int32');
      const targetMask = tf.tensor2d(mask, [batchSize, width - 1]);
      const advantage = tf.tensor1d(sampleRewards.map((r, b) => r - greedyRewards[b]!));
      try {
        const { value, grads } = tf.variableGrads(
          () =>
            tf.tidy(() => {
              const { logits } = this.model.forward(imgs, toks, { teacherProbability: 1, feed: 'argmax' });
              const targets = toks.slice([0, 1], [batchSize, width - 1]) as tf.Tensor2D; // targets shifted by one
              return scstLoss(logits, targets, targetMask, advantage);
            }),
          this.trainable,
        );
        const gradNorm = this.applyGradients(grads, lr);
        const loss = value.dataSync()[0]!;
        value.dispose();
        return {
          loss,
          lossPerToken: count > 0 ? (loss * batchSize) / count : 0,
          perplexity: NaN,
          tokens: count,
          paddingFraction: 1 - count / (batchSize * (width - 1)),
          gradNorm,
          learningRate: lr,
          samplingProbability: 0,
          scst: { sampleReward: mean(sampleRewards), greedyReward: mean(greedyRewards) },
        };
      } finally {
        tf.dispose([toks, targetMask, advantage]);
      }
    } finally {
      imgs.dispose();
    }
  }

  /** Clips `grads` by their global norm inside the optimiser's update at rate `lr`, disposes them; returns the norm. */
  private applyGradients(grads: tf.NamedTensorMap, lr: number): number {
    const named: tf.NamedTensorMap = {};
    for (const [varName, g] of Object.entries(grads)) named[this.names.get(varName) ?? varName] = g;
    // Clipping (Pascanu et al. 2013) scales the gradient inside the optimiser's update.
    const gradNorm = globalNorm(named);
    this.optimizer.apply(this.byName, named, lr, clipScale(gradNorm, this.config.clipNorm));
    tf.dispose(grads);
    return gradNorm;
  }

  /** Gradient flow through time on `batch` with the current weights (model/train/gradient-flow.ts). */
  gradientFlow(images: Float32Array, batch: Batch): GradientFlow {
    const size = this.model.config.imageSize;
    const imgs = tf.tensor4d(images, [batch.batchSize, size, size, 3]);
    const toks = tf.tensor2d(batch.tokens, [batch.batchSize, batch.width], 'int32');
    try {
      return measureGradientFlow(this.model, imgs, toks);
    } finally {
      tf.dispose([imgs, toks]);
    }
  }

  /** Teacher-forced loss per token over batches (validation). */
  evaluate(cache: ImageCache, batches: readonly Batch[]): { lossPerToken: number; perplexity: number } {
    let total = 0;
    let tokens = 0;
    const size = this.model.config.imageSize;
    for (const b of batches) {
      const loss = tf.tidy(() => {
        const imgs = tf.tensor4d(cache.batch(b.imageIds), [b.batchSize, size, size, 3]);
        const toks = tf.tensor2d(b.tokens, [b.batchSize, b.width], 'int32');
        const { logits } = this.model.forward(imgs, toks, { teacherProbability: 1, feed: 'argmax' });
        return maskedSequenceLoss(logits, toks.slice([0, 1], [b.batchSize, b.width - 1]) as tf.Tensor2D).dataSync()[0]!;
      });
      total += loss * b.batchSize;
      tokens += countTokens(b.tokens.filter((_, i) => i % b.width !== 0));
    }
    const lossPerToken = tokens ? total / tokens : NaN;
    return { lossPerToken, perplexity: Math.exp(lossPerToken) };
  }
}
