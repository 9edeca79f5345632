/**
 * Training: a custom loop (not model.fit) so that every step can choose its inputs by scheduled
 * sampling, clip gradients by global norm, follow a learning-rate schedule and be checkpointed
 * and resumed exactly.
 */
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { epochBatches, makeExamples, orderedBatches, type Batch, type Example } from '../data/batch.ts';
import { Captioner, MODEL_KEYS, checkModelConfig, type ModelConfig } from '../nn/captioner.ts';
import {
  hasCheckpoint,
  loadCheckpoint,
  disposeCheckpoint,
  readCheckpointConfig,
  saveCheckpoint,
  type SavedConfig,
  type TrainingState,
} from '../io/checkpoint.ts';
import { ConfigError, pick, resolveConfig, type ConfigLayer } from '../util/config.ts';
import { ImageCache, readManifest, splitImages, DatasetError } from '../data/dataset.ts';
import { greedyDecode } from '../decode/decode.ts';
import { loadModel } from '../io/load.ts';
import { writeFileAtomic } from '../io/fsutil.ts';
import { appendMetrics, truncateMetrics } from '../io/metrics-log.ts';
import { countTokens, maskedSequenceLoss, perTokenLoss } from './loss.ts';
import { Adam, clipByGlobalNorm } from './optim.ts';
import { Rng, deriveSeed } from '../util/rng.ts';
import { StreamedPixels, type PixelBatch } from '../data/stream.ts';
import { describeClasses, substitutionClasses, substitutionRates } from './substitution.ts';
import { LanguagePrior } from '../decode/prior.ts';
import { learningRateAt, scheduledSamplingProbability } from './schedules.ts';
import { TRAIN_DEFAULTS, TRAIN_SPEC, type TrainConfig } from './config.ts';
import { Vocabulary } from '../text/vocab.ts';

export const VERSION = '0.1.0';

/**
 * The resolved configuration. On resume the checkpoint's saved configuration is the base; with
 * --init-from (and nothing to resume) the starting model's architecture is. Either way the
 * architecture cannot change.
 */
export async function resolveTrainConfig(layers: readonly ConfigLayer[]): Promise<TrainConfig> {
  const first = resolveConfig<TrainConfig>(TRAIN_DEFAULTS, TRAIN_SPEC, layers);
  if (!first.data) throw new ConfigError('flags: "data" is required (the data-set directory)');
  if (!first.out) throw new ConfigError('flags: "out" is required (the model directory)');
  checkModelConfig(first);
  if (first.resume && (await hasCheckpoint(first.out))) {
    const { config: saved } = await readCheckpointConfig(first.out, 'latest');
    return rebase(
      { ...TRAIN_DEFAULTS, ...(saved.train ?? {}), ...saved.model } as TrainConfig,
      saved.model,
      layers,
      (key, value) => `--resume: "${key}" is ${value} in the checkpoint; the architecture cannot change on resume`,
    );
  }
  if (first.initFrom) {
    const { dir, config: saved } = await readCheckpointConfig(first.initFrom, 'best');
    return rebase(
      { ...first, ...saved.model },
      saved.model,
      layers,
      (key, value) => `--init-from: "${key}" is ${value} in ${dir}; the architecture cannot change`,
    );
  }
  return first;
}

/** Re-applies `layers` over `base` and refuses any architecture setting that differs from `model`'s. */
function rebase(
  base: TrainConfig,
  model: ModelConfig,
  layers: readonly ConfigLayer[],
  refusal: (key: string, value: string) => string,
): TrainConfig {
  const resolved = resolveConfig<TrainConfig>(base, TRAIN_SPEC, layers);
  for (const key of MODEL_KEYS) {
    if (JSON.stringify(resolved[key]) !== JSON.stringify(model[key])) {
      throw new ConfigError(`${refusal(key, JSON.stringify(model[key]))} (asked for ${JSON.stringify(resolved[key])})`);
    }
  }
  return resolved;
}

/** What one training step reports. */
export interface StepStats {
  /** The batch loss: masked cross-entropy summed over steps, mean over the batch. */
  loss: number;
  lossPerToken: number;
  perplexity: number;
  tokens: number;
  gradNorm: number;
  learningRate: number;
  samplingProbability: number;
}

/**
 * One model and its optimiser, stepping on batches. Holds no data set: the loop below, tests
 * and benchmarks feed it.
 */
export class Trainer {
  private readonly names = new Map<string, string>();
  private readonly byName: Record<string, tf.Variable>;
  private readonly trainable: tf.Variable[];

  /**
   * `slots`: each word id's substitutes (model/train/substitution.ts), read off the training
   * captions, and each word id's substitution rate; needed for word substitution and for
   * scheduled sampling within slots.
   */
  constructor(
    readonly model: Captioner,
    readonly config: TrainConfig,
    readonly optimizer = new Adam(),
    readonly slots?: { classes: readonly (readonly number[])[]; rate: readonly number[] },
  ) {
    if (config.samplingWithinSlots && !slots)
      throw new Error('Trainer: scheduled sampling within slots needs the substitution classes');
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
    const { batchSize, width, tokens } = batch;
    const size = this.model.config.imageSize;
    const epsilon = this.samplingProbability(step);
    const rng = new Rng(deriveSeed(this.config.seed, 2, step));
    const lr = this.learningRate(step, totalSteps);
    const imgs = tf.tensor4d(images, [batchSize, size, size, 3]);
    const toks = tf.tensor2d(tokens, [batchSize, width], 'int32');
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
            const targets = toks.slice([0, 1], [batchSize, width - 1]) as tf.Tensor2D; // targets shifted by one
            return maskedSequenceLoss(logits, targets, this.config.labelSmoothing);
          }),
        this.trainable,
      );
      const named: tf.NamedTensorMap = {};
      for (const [varName, g] of Object.entries(grads)) named[this.names.get(varName) ?? varName] = g;
      const clipped = clipByGlobalNorm(named, this.config.clipNorm);
      tf.dispose(grads);
      this.optimizer.apply(this.byName, clipped.grads, lr);
      tf.dispose(clipped.grads);
      const loss = value.dataSync()[0]!;
      value.dispose();
      const n = countTokens(tokens.filter((_, i) => i % width !== 0));
      return {
        loss,
        ...perTokenLoss(loss, batchSize, n),
        tokens: n,
        gradNorm: clipped.norm,
        learningRate: lr,
        samplingProbability: epsilon,
      };
    } finally {
      imgs.dispose();
      toks.dispose();
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
}

/** Trains (or resumes) a model as `config` says, writing checkpoints and metrics to config.out. */
export async function train(config: TrainConfig, hooks: TrainHooks = {}): Promise<TrainResult> {
  const log = hooks.log ?? (() => {});
  const manifest = await readManifest(config.data);
  const trainImages = splitImages(manifest, config.trainSplit);
  if (trainImages.length === 0)
    throw new DatasetError(`${join(config.data, 'manifest.json')}: no images in split "${config.trainSplit}"`);
  const valImages = splitImages(manifest, config.valSplit);

  const resuming = config.resume && (await hasCheckpoint(config.out));
  let model: Captioner;
  const optimizer = new Adam();
  let state: TrainingState;
  if (resuming) {
    const ckpt = await loadCheckpoint(config.out, 'latest');
    if (!ckpt.training) throw new ConfigError(`${ckpt.dir}: no training state to resume from`);
    model = await Captioner.restore(ckpt.config.model, ckpt.vocab, ckpt.weights, ckpt.backboneTopology);
    optimizer.restore(ckpt.training.optimizer, ckpt.training.optimizerStep);
    state = ckpt.training.state;
    disposeCheckpoint(ckpt);
    await truncateMetrics(join(config.out, 'metrics.jsonl'), state.step);
    log(`resuming ${ckpt.dir} at step ${state.step} (epoch ${state.epoch + 1}, batch ${state.batchInEpoch})`);
  } else {
    if (await hasCheckpoint(config.out)) {
      throw new ConfigError(
        `${config.out} already holds a model; pass --resume to continue it or choose another --out`,
      );
    }
    if (config.initFrom) {
      // Fine-tuning: the starting model's weights and vocabulary; a fresh optimiser and schedule.
      // Not its language prior: the run counts its own captions' (below), and validation samples decode plainly.
      model = (await loadModel(config.initFrom)).model;
      log(`starting from the weights of ${config.initFrom}`);
    } else {
      const vocab = Vocabulary.build(
        trainImages.flatMap((i) => i.captions),
        config.minWordCount,
      );
      model = await Captioner.create(pick(config, MODEL_KEYS), vocab, deriveSeed(config.seed, 0));
    }
    state = { step: 0, epoch: 0, batchInEpoch: 0, seed: config.seed, bestMetric: null, samplingProbability: 1 };
  }
  log(
    `vocabulary: ${model.vocab.size} words; train: ${trainImages.length} images; ${config.valSplit}: ${valImages.length} images`,
  );

  const size = model.config.imageSize;
  const examples = makeExamples(trainImages, model.vocab, model.config.maxLength);
  // Saved with every checkpoint, so that any model can be decoded with --anti-lm (off by default).
  const languagePrior = LanguagePrior.fromCaptions(
    examples.map((e) => e.ids),
    model.vocab.size,
  ).toJSON(model.vocab);
  let slots: { classes: number[][]; rate: number[] } | undefined;
  if (config.wordSubstitution > 0 || config.wordSubstitutionRates || config.samplingWithinSlots) {
    const classes = substitutionClasses(
      examples.map((e) => e.ids),
      model.vocab.size,
    );
    let rate: number[];
    try {
      rate = substitutionRates(classes, config.wordSubstitution, config.wordSubstitutionRates, model.vocab.words);
    } catch (err) {
      throw new ConfigError(`"wordSubstitutionRates": ${(err as Error).message}`);
    }
    const uses: string[] = [];
    if (config.wordSubstitution > 0 || config.wordSubstitutionRates)
      uses.push(
        `word substitution ${config.wordSubstitution}${config.wordSubstitutionRates ? ` (${config.wordSubstitutionRates})` : ''}`,
      );
    if (config.samplingWithinSlots) uses.push('scheduled sampling within slots');
    log(`${uses.join(', ')}: ${describeClasses(classes, (id) => model.vocab.words[id]!)}`);
    slots = { classes, rate };
  }
  // A new run's directory is made only once every setting has been checked against the data.
  if (!resuming) await writeFileAtomic(join(config.out, 'metrics.jsonl'), '');
  const budget = config.pixelBudgetMb * 2 ** 20;
  const allBytes = (trainImages.length + valImages.length) * size * size * 3;
  const streaming = config.stream === 'on' || (config.stream === 'auto' && allBytes > budget);
  let stream: StreamedPixels | null = null;
  let cache: ImageCache;
  if (streaming) {
    // Validation stays in memory (a small split); the training split streams.
    cache = await ImageCache.load(config.data, valImages, size, hooks.loading);
    stream = await StreamedPixels.open(config.data, trainImages, examples, size, {
      batchSize: config.batchSize,
      seed: config.seed,
      epochs: config.epochs,
      bucketing: config.bucketing,
      window: config.streamWindow,
      readAhead: config.streamReadAhead,
      budgetBytes: budget - valImages.length * size * size * 3,
    });
    const why =
      config.stream === 'on'
        ? '--stream on'
        : `${(allBytes / 2 ** 20).toFixed(0)} MB of pixels exceed --pixel-budget-mb ${config.pixelBudgetMb}`;
    log(`images: ${stream.description} (${why}); ${config.valSplit}: ${cache.sourceDescription}, in memory`);
  } else {
    cache = await ImageCache.load(config.data, [...trainImages, ...valImages], size, hooks.loading);
    log(`images: ${cache.sourceDescription}, in memory`);
  }
  hooks.pixelSource?.(stream ?? cache);
  const trainBatches = (epoch: number, from: number) =>
    stream?.epoch(epoch, from) ?? inMemoryBatches(cache, examples, config, epoch, from);
  const valBatches = orderedBatches(makeExamples(valImages, model.vocab, model.config.maxLength), config.batchSize);
  const perEpoch = Math.ceil(examples.length / config.batchSize);
  const totalSteps =
    config.maxSteps > 0 ? Math.min(config.maxSteps, perEpoch * config.epochs) : perEpoch * config.epochs;
  const trainer = new Trainer(model, config, optimizer, slots);
  const metricsPath = join(config.out, 'metrics.jsonl');
  const savedConfig: SavedConfig = {
    model: model.config,
    train: { ...config },
    versions: { captioner: VERSION, tfjs: tf.version.tfjs },
  };

  const checkpoint = async (isBest: boolean) => {
    state.samplingProbability = trainer.samplingProbability(state.step);
    await saveCheckpoint(
      config.out,
      {
        config: savedConfig,
        vocab: model.vocab,
        weights: model.namedWeights(),
        backboneTopology: model.encoder.backboneTopology,
        languagePrior,
        training: { state: { ...state }, optimizer: optimizer.stateTensors(), optimizerStep: optimizer.step },
      },
      isBest,
    );
  };

  let lastLoss: number | null = null;
  let stopped = false;
  let windowTokens = 0;
  let windowImages = 0;
  let windowStart = performance.now();
  let windowWait = 0;
  let dataWait = 0;

  /**
   * Validation loss on the val split, a few sample captions, and whether this is the best so
   * far; appends the record to metrics.jsonl after checkpointing. `partial`: the run ended (at
   * maxSteps) inside an epoch, so the record marks a point that is not an epoch's end.
   */
  const validateAndCheckpoint = async (partial: boolean) => {
    const record: Record<string, unknown> = {
      type: 'epoch',
      step: state.step,
      epoch: state.epoch + 1,
      trainLoss: lastLoss,
      ...(partial ? { partial: true } : {}),
    };
    const where = partial
      ? `step ${state.step} (epoch ${state.epoch + 1}, cut short by maxSteps)`
      : `epoch ${state.epoch + 1}`;
    let isBest = false;
    if (valBatches.length > 0) {
      const val = trainer.evaluate(cache, valBatches);
      const samples = valImages.slice(0, config.valSamples);
      const sampleImages = tf.tensor4d(cache.batch(samples.map((s) => s.id)), [samples.length, size, size, 3]);
      const captions = samples.length ? greedyDecode(model, sampleImages) : [];
      sampleImages.dispose();
      Object.assign(record, {
        valLoss: val.lossPerToken,
        valPerplexity: val.perplexity,
        samples: samples.map((s, i) => ({ id: s.id, caption: captions[i]!.words.join(' '), reference: s.captions[0] })),
      });
      isBest = state.bestMetric === null || val.lossPerToken < state.bestMetric;
      if (isBest) state.bestMetric = val.lossPerToken;
      log(
        `${where}: train loss ${lastLoss?.toFixed(4)}, val loss ${val.lossPerToken.toFixed(4)} (ppl ${val.perplexity.toFixed(2)})${isBest ? ', best so far' : ''}`,
      );
      samples.forEach((s, i) => log(`  ${s.id}: ${captions[i]!.words.join(' ')}   [ref: ${s.captions[0]}]`));
    } else {
      log(`${where}: train loss ${lastLoss?.toFixed(4)} (no "${config.valSplit}" split to validate on)`);
    }
    record.best = isBest;
    if (!partial) {
      state.epoch += 1;
      state.batchInEpoch = 0;
    }
    await checkpoint(isBest);
    await appendMetrics(metricsPath, record);
  };
  try {
    while (state.step < totalSteps && state.epoch < config.epochs && !stopped) {
      const batches = trainBatches(state.epoch, state.batchInEpoch);
      for (let b = state.batchInEpoch; b < perEpoch && state.step < totalSteps; b++) {
        const asked = performance.now();
        const next = await batches.next();
        if (next.done)
          throw new Error(`the pixel source ended at batch ${b} of ${perEpoch} in epoch ${state.epoch + 1}`);
        const waited = performance.now() - asked;
        windowWait += waited;
        dataWait += waited;
        const { batch, pixels } = next.value;
        const stats = trainer.step(pixels, batch, state.step, totalSteps);
        if (!Number.isFinite(stats.loss))
          throw new Error(`training diverged at step ${state.step}: loss ${stats.loss}`);
        state.step += 1;
        state.batchInEpoch = b + 1;
        lastLoss = stats.lossPerToken;
        windowTokens += stats.tokens;
        windowImages += batch.batchSize;
        const seconds = (performance.now() - windowStart) / 1000;
        const tokensPerSecond = windowTokens / Math.max(seconds, 1e-9);
        hooks.progress?.({
          step: state.step,
          totalSteps,
          epoch: state.epoch,
          epochs: config.epochs,
          stats,
          tokensPerSecond,
        });
        if (state.step % config.logEvery === 0 || state.step === totalSteps) {
          await appendMetrics(metricsPath, {
            type: 'step',
            step: state.step,
            epoch: state.epoch + 1,
            loss: stats.lossPerToken,
            perplexity: stats.perplexity,
            epsilon: stats.samplingProbability,
            gradNorm: stats.gradNorm,
            learningRate: stats.learningRate,
            tokensPerSecond,
            imagesPerSecond: windowImages / Math.max(seconds, 1e-9),
            dataWaitMs: windowWait,
            time: new Date().toISOString(),
          });
          windowTokens = 0;
          windowImages = 0;
          windowWait = 0;
          windowStart = performance.now();
        }
        if (hooks.shouldStop?.()) {
          stopped = true;
          break;
        }
        // Mid-epoch only (an epoch's end is saved after validation), and not at the last step,
        // which the end of the run validates and saves.
        if (
          config.checkpointEvery > 0 &&
          state.step % config.checkpointEvery === 0 &&
          state.batchInEpoch < perEpoch &&
          state.step < totalSteps
        ) {
          await checkpoint(false);
        }
      }
      await batches.return(undefined);
      if (stopped || state.batchInEpoch < perEpoch) break; // stopped, or maxSteps reached mid-epoch
      const lastEpoch = state.epoch + 1 === config.epochs || state.step >= totalSteps;
      if ((state.epoch + 1) % config.validateEvery !== 0 && !lastEpoch) {
        state.epoch += 1;
        state.batchInEpoch = 0;
        continue;
      }

      // End of an epoch: validate, then checkpoint (best by validation loss per token).
      await validateAndCheckpoint(false);
    }
    // Stopped by the user: save where it stands. Ended by maxSteps inside an epoch: validate
    // first, so that the last weights can be the best and the curve has its last point.
    if (stopped) await checkpoint(false);
    else if (state.batchInEpoch > 0) await validateAndCheckpoint(true);
  } finally {
    await stream?.close();
    optimizer.dispose();
    model.dispose();
  }
  log(
    `data: waited ${(dataWait / 1000).toFixed(2)} s for batch pixels${stream ? ` (of it waiting on reads: ${(stream.stats.startWaitMs / 1000).toFixed(2)} s for the first window, ${(stream.stats.ioWaitMs / 1000).toFixed(2)} s later; ${stream.stats.chunksRead} chunks read, at most ${stream.stats.maxResident} resident)` : ''}`,
  );
  return {
    steps: state.step,
    epochs: state.epoch,
    lastLoss,
    bestMetric: state.bestMetric,
    stopped,
    modelDir: config.out,
    dataWaitSeconds: dataWait / 1000,
  };
}

/** The in-memory pixel source: `epochBatches`'s order, pixels gathered from the cache. */
async function* inMemoryBatches(
  cache: ImageCache,
  examples: readonly Example[],
  config: TrainConfig,
  epoch: number,
  from: number,
): AsyncGenerator<PixelBatch> {
  const batches = epochBatches(examples, config.batchSize, config.seed, epoch, { bucketing: config.bucketing });
  for (let b = from; b < batches.length; b++)
    yield { batch: batches[b]!, pixels: cache.batch(batches[b]!.imageIds), index: b };
}
