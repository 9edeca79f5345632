/**
 * The training loop over epochs and batches: a step per batch, a metrics line every
 * `logEvery` steps, validation and a checkpoint every `validateEvery` epochs (and after the
 * last), checkpoints every `checkpointEvery` steps, and a checkpoint when asked to stop. The
 * position (step, epoch, batch in the epoch) is saved with every checkpoint, so that a resumed
 * run goes on exactly where this one left off.
 */
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { makeExamples, orderedBatches, type Batch } from '../data/batch.ts';
import type { DatasetImage, ImageCache } from '../data/dataset.ts';
import type { PixelBatch, StreamedPixels } from '../data/stream.ts';
import { greedyDecode } from '../decode/decode.ts';
import type { PriorJson } from '../decode/prior.ts';
import type { RecommendedDecoding } from '../decode/recommended.ts';
import { saveCheckpoint, type SavedConfig, type TrainingState } from '../io/checkpoint.ts';
import type { Captioner } from '../nn/captioner.ts';
import { appendMetrics } from '../io/metrics-log.ts';
import { ThroughputWindow } from './throughput.ts';
import type { Optimizer } from './optim.ts';
import type { RunPixels } from './pixels.ts';
import type { StepStats, Trainer } from './step.ts';
import type { TrainConfig } from './config.ts';
import { mean, type CaptionReward } from './scst.ts';

export interface TrainProgress {
  step: number;
  totalSteps: number;
  epoch: number;
  epochs: number;
  stats: StepStats;
  tokensPerSecond: number;
}

export interface TrainHooks {
  log?(line: string): void;
  progress?(p: TrainProgress): void;
  /** Asked after every step; true saves a checkpoint and returns (e.g. on SIGINT). */
  shouldStop?(): boolean;
  /** Called while images are decoded. */
  loading?(done: number, total: number): void;
  /** Called while the familiarity calibration reads images at the end of a run (model/familiarity/calibrate.ts). */
  calibrating?(stage: 'fit' | 'val', done: number, total: number): void;
  /** Called with the pixel source when it is open (tests look at a stream's counters). */
  pixelSource?(source: StreamedPixels | ImageCache): void;
}

export interface TrainResult {
  steps: number;
  epochs: number;
  lastLoss: number | null;
  bestMetric: number | null;
  stopped: boolean;
  modelDir: string;
  /** Time the loop waited between asking for a batch and having its pixels, seconds. */
  dataWaitSeconds: number;
  /**
   * The familiarity calibration written into the best checkpoint at the end (its threshold and
   * the share of the validation split it finds familiar), or null when none was fitted (a run
   * stopped early, no validation images, or familiarityImages 0).
   */
  familiarity?: { threshold: number; valFamiliar: number; files: string[] } | null;
}

/** Everything a run set up before its loop (model/train/setup.ts, pixels.ts). */
export interface LoopParts {
  config: TrainConfig;
  hooks: TrainHooks;
  model: Captioner;
  optimizer: Optimizer;
  trainer: Trainer;
  /** Where the run stands; the loop advances it in place. */
  state: TrainingState;
  pixels: RunPixels;
  /** The number of training captions (examples): an epoch is ⌈examples / batchSize⌉ steps. */
  examples: number;
  valImages: readonly DatasetImage[];
  /** What every checkpoint saves besides weights and training state. */
  savedConfig: SavedConfig;
  languagePrior: PriorJson;
  /** With objective "scst": the CIDEr-D reward of captions (training references, their document frequencies). */
  reward?: CaptionReward;
  /** The recommended decoding every checkpoint carries as decoding.json, or null for none. */
  decoding: RecommendedDecoding | null;
}

export class TrainingLoop {
  readonly perEpoch: number;
  readonly totalSteps: number;
  /** The last step's loss per token. */
  private lastLoss: number | null = null;
  private stopped = false;
  private readonly window = new ThroughputWindow();
  /** Milliseconds waited for batch pixels in all. */
  private dataWaitMs = 0;
  private readonly valBatches: Batch[];
  private readonly metricsPath: string;
  private readonly log: (line: string) => void;

  constructor(private readonly parts: LoopParts) {
    const { config, model } = parts;
    this.log = parts.hooks.log ?? (() => {});
    this.valBatches = orderedBatches(
      makeExamples(parts.valImages, model.vocab, model.config.maxLength),
      config.batchSize,
    );
    this.perEpoch = Math.ceil(parts.examples / config.batchSize);
    const allEpochs = this.perEpoch * config.epochs;
    this.totalSteps = config.maxSteps > 0 ? Math.min(config.maxSteps, allEpochs) : allEpochs;
    this.metricsPath = join(config.out, 'metrics.jsonl');
  }

  /**
   * Trains until the last epoch, maxSteps or a stop, validating and checkpointing as the
   * config says. A stopped run saves where it stands; a run ended by maxSteps inside an epoch
   * validates first, so that its last weights can be the best and the curve has its last point.
   */
  async run(): Promise<void> {
    const { config, state } = this.parts;
    while (state.step < this.totalSteps && state.epoch < config.epochs && !this.stopped) {
      await this.trainEpoch();
      if (this.stopped || state.batchInEpoch < this.perEpoch) break; // stopped, or maxSteps reached mid-epoch
      const lastEpoch = state.epoch + 1 === config.epochs || state.step >= this.totalSteps;
      if ((state.epoch + 1) % config.validateEvery !== 0 && !lastEpoch) {
        state.epoch += 1;
        state.batchInEpoch = 0;
        continue;
      }
      // End of an epoch: validate, then checkpoint (best by validation loss per token).
      await this.validateAndCheckpoint(false);
    }
    if (this.stopped) await this.checkpoint(false);
    else if (state.batchInEpoch > 0) await this.validateAndCheckpoint(true);
  }

  /** What the run did, once `run` has returned. */
  result(): TrainResult {
    const { state, config } = this.parts;
    return {
      steps: state.step,
      epochs: state.epoch,
      lastLoss: this.lastLoss,
      bestMetric: state.bestMetric,
      stopped: this.stopped,
      modelDir: config.out,
      dataWaitSeconds: this.dataWaitMs / 1000,
    };
  }

  /** The current epoch's batches from state.batchInEpoch, until its end, maxSteps or a stop. */
  private async trainEpoch(): Promise<void> {
    const { config, hooks, state } = this.parts;
    const batches = this.parts.pixels.trainBatches(state.epoch, state.batchInEpoch);
    for (let b = state.batchInEpoch; b < this.perEpoch && state.step < this.totalSteps; b++) {
      const asked = performance.now();
      const next = await batches.next();
      if (next.done)
        throw new Error(`the pixel source ended at batch ${b} of ${this.perEpoch} in epoch ${state.epoch + 1}`);
      const waited = performance.now() - asked;
      this.window.waitMs += waited;
      this.dataWaitMs += waited;
      await this.trainStep(next.value, b);
      if (hooks.shouldStop?.()) {
        this.stopped = true;
        break;
      }
      // Mid-epoch only (an epoch's end is saved after validation), and not at the last step,
      // which the end of the run validates and saves.
      if (
        config.checkpointEvery > 0 &&
        state.step % config.checkpointEvery === 0 &&
        state.batchInEpoch < this.perEpoch &&
        state.step < this.totalSteps
      ) {
        await this.checkpoint(false);
      }
    }
    await batches.return(undefined);
  }

  /**
   * One optimiser step on batch `b` of the epoch; reports progress and, every logEvery steps, a
   * metrics line; with logGradientFlow, gradient flow on the batch before the first step, every
   * logGradientFlow steps and after the last.
   */
  private async trainStep({ batch, pixels }: PixelBatch, b: number): Promise<void> {
    const { config, hooks, state, trainer } = this.parts;
    if (config.logGradientFlow > 0 && state.step === 0) await this.logGradientFlow(pixels, batch);
    const stats = trainer.step(pixels, batch, state.step, this.totalSteps);
    if (!Number.isFinite(stats.loss)) throw new Error(`training diverged at step ${state.step}: loss ${stats.loss}`);
    state.step += 1;
    state.batchInEpoch = b + 1;
    this.lastLoss = stats.lossPerToken;
    if (config.logGradientFlow > 0 && (state.step % config.logGradientFlow === 0 || state.step === this.totalSteps))
      await this.logGradientFlow(pixels, batch);
    this.window.add(stats.tokens, batch.batchSize);
    const { tokensPerSecond, imagesPerSecond } = this.window.rates();
    hooks.progress?.({
      step: state.step,
      totalSteps: this.totalSteps,
      epoch: state.epoch,
      epochs: config.epochs,
      stats,
      tokensPerSecond,
    });
    if (state.step % config.logEvery !== 0 && state.step !== this.totalSteps) return;
    // A self-critical step has no cross-entropy to log: its own loss and rewards instead.
    const figures = stats.scst
      ? {
          objective: 'scst',
          scstLoss: stats.loss,
          sampleReward: stats.scst.sampleReward,
          greedyReward: stats.scst.greedyReward,
        }
      : { loss: stats.lossPerToken, perplexity: stats.perplexity, epsilon: stats.samplingProbability };
    await appendMetrics(this.metricsPath, {
      type: 'step',
      step: state.step,
      epoch: state.epoch + 1,
      ...figures,
      gradNorm: stats.gradNorm,
      paddingFraction: stats.paddingFraction,
      learningRate: stats.learningRate,
      tokensPerSecond,
      imagesPerSecond,
      dataWaitMs: this.window.waitMs,
      time: new Date().toISOString(),
    });
    this.window.reset();
  }

  /**
   * Appends a "gradient-flow" record: the figures of model/train/gradient-flow.ts on `batch` with
   * the weights after `step` optimiser steps, six significant digits each.
   */
  private async logGradientFlow(pixels: Float32Array, batch: Batch): Promise<void> {
    const { state, trainer, model } = this.parts;
    const flow = trainer.gradientFlow(pixels, batch);
    const round = (xs: number[] | undefined) => xs?.map((x) => Number(x.toPrecision(6)));
    await appendMetrics(this.metricsPath, {
      type: 'gradient-flow',
      step: state.step,
      epoch: state.epoch + 1,
      cell: model.config.cell,
      captions: batch.batchSize,
      steps: flow.steps,
      hNorm: round(flow.hNorm),
      ...(flow.cNorm ? { cNorm: round(flow.cNorm) } : {}),
      lastWordH: round(flow.lastWordH),
      ...(flow.lastWordC ? { lastWordC: round(flow.lastWordC) } : {}),
      lastWordCaptions: flow.lastWordCaptions,
      time: new Date().toISOString(),
    });
  }

  /** Saves the weights, optimiser and position (as config.out's best too when `isBest`). */
  private async checkpoint(isBest: boolean): Promise<void> {
    const { config, model, optimizer, state, trainer } = this.parts;
    state.samplingProbability = trainer.samplingProbability(state.step);
    await saveCheckpoint(
      config.out,
      {
        config: this.parts.savedConfig,
        vocab: model.vocab,
        weights: model.namedWeights(),
        backboneTopology: model.encoder.backboneTopology,
        languagePrior: this.parts.languagePrior,
        decoding: this.parts.decoding,
        training: { state: { ...state }, optimizer: optimizer.stateTensors(), optimizerStep: optimizer.step },
      },
      isBest,
    );
  }

  /**
   * Validation loss on the val split, a few sample captions, and whether this is the best so
   * far; appends the record to metrics.jsonl after checkpointing. `partial`: the run ended (at
   * maxSteps) inside an epoch, so the record marks a point that is not an epoch's end.
   */
  private async validateAndCheckpoint(partial: boolean): Promise<void> {
    const { config, state } = this.parts;
    const record: Record<string, unknown> = {
      type: 'epoch',
      step: state.step,
      epoch: state.epoch + 1,
      ...(this.parts.reward ? { trainScstLoss: this.lastLoss } : { trainLoss: this.lastLoss }),
      ...(partial ? { partial: true } : {}),
    };
    const where = partial
      ? `step ${state.step} (epoch ${state.epoch + 1}, cut short by maxSteps)`
      : `epoch ${state.epoch + 1}`;
    let isBest = false;
    if (this.valBatches.length > 0) {
      isBest = this.validate(record, where);
    } else {
      this.log(`${where}: train loss ${this.lastLoss?.toFixed(4)} (no "${config.valSplit}" split to validate on)`);
    }
    record.best = isBest;
    if (!partial) {
      state.epoch += 1;
      state.batchInEpoch = 0;
    }
    await this.checkpoint(isBest);
    await appendMetrics(this.metricsPath, record);
  }

  /**
   * Adds the validation loss and greedy captions of the first valSamples images to `record`,
   * logs them, and updates the best validation figure; returns whether this one is the best. The
   * figure is the loss per token (lower is better), or with objective "scst" the mean CIDEr-D
   * of the greedy captions of the validation images against their references (higher is better),
   * the figure SCST raises, as Rennie et al. select their models by it.
   */
  private validate(record: Record<string, unknown>, where: string): boolean {
    const { config, model, state, trainer } = this.parts;
    const { cache } = this.parts.pixels;
    const size = model.config.imageSize;
    const val = trainer.evaluate(cache, this.valBatches);
    const valCider = this.parts.reward ? this.validationCider(this.parts.reward) : null;
    const samples = this.parts.valImages.slice(0, config.valSamples);
    const sampleImages = tf.tensor4d(cache.batch(samples.map((s) => s.id)), [samples.length, size, size, 3]);
    const captions = samples.length ? greedyDecode(model, sampleImages) : [];
    sampleImages.dispose();
    Object.assign(record, {
      valLoss: val.lossPerToken,
      valPerplexity: val.perplexity,
      samples: samples.map((s, i) => ({ id: s.id, caption: captions[i]!.words.join(' '), reference: s.captions[0] })),
    });
    if (valCider !== null) record.valCider = valCider;
    const figure = valCider ?? val.lossPerToken;
    const isBest =
      state.bestMetric === null || (valCider !== null ? figure > state.bestMetric : figure < state.bestMetric);
    if (isBest) state.bestMetric = figure;
    const ppl = val.perplexity.toFixed(2);
    const cider = valCider !== null ? `, val CIDEr-D ${valCider.toFixed(4)} (greedy)` : '';
    this.log(
      `${where}: train ${valCider !== null ? 'SCST loss per token' : 'loss'} ${this.lastLoss?.toFixed(4)}, val loss ${val.lossPerToken.toFixed(4)} (ppl ${ppl})${cider}${isBest ? ', best so far' : ''}`,
    );
    samples.forEach((s, i) => this.log(`  ${s.id}: ${captions[i]!.words.join(' ')}   [ref: ${s.captions[0]}]`));
    return isBest;
  }

  /** The mean CIDEr-D of the greedy captions of every validation image, against its own references. */
  private validationCider(reward: CaptionReward): number {
    const { config, model } = this.parts;
    const { cache } = this.parts.pixels;
    const size = model.config.imageSize;
    const images = this.parts.valImages;
    const scores: number[] = [];
    for (let start = 0; start < images.length; start += config.batchSize) {
      const batch = images.slice(start, start + config.batchSize);
      const pixels = tf.tensor4d(cache.batch(batch.map((img) => img.id)), [batch.length, size, size, 3]);
      try {
        greedyDecode(model, pixels).forEach((c, i) =>
          scores.push(reward.score(batch[i]!.id, c.words, batch[i]!.captions)),
        );
      } finally {
        pixels.dispose();
      }
    }
    return mean(scores);
  }
}
