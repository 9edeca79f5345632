/**
 * Training: a custom loop (not model.fit) so that every step can choose its inputs by scheduled
 * sampling, clip gradients by global norm, follow a learning-rate schedule and be checkpointed
 * and resumed exactly.
 */
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { makeExamples } from '../data/batch.ts';
import { MODEL_DEFAULTS, MODEL_KEYS, MODEL_SPEC, checkModelConfig, type ModelConfig } from '../nn/captioner.ts';
import { hasCheckpoint, readCheckpointConfig, type SavedConfig } from '../io/checkpoint.ts';
import { ConfigError, resolveConfig, type ConfigLayer, type ConfigSpec } from '../util/config.ts';
import { writeFileAtomic } from '../io/fsutil.ts';
import { type LrScheduleKind, type SamplingScheduleKind } from './schedules.ts';
import { TrainingLoop, type TrainHooks, type TrainResult } from './loop.ts';
import { describeDataWait, openPixels, type RunPixels } from './pixels.ts';
import { readSplits, startModel, substitutionSlots, trainingPrior } from './setup.ts';
import { Trainer } from './step.ts';

export const VERSION = '0.1.0';

export interface TrainConfig extends ModelConfig {
  data: string;
  out: string;
  resume: boolean;
  /**
   * Start from this model's weights and vocabulary (same architecture), with a fresh optimiser and schedule ('' : new
   * weights).
   */
  initFrom: string;
  trainSplit: string;
  valSplit: string;
  epochs: number;
  batchSize: number;
  /** Stop after this many optimiser steps in all (0: run every epoch). */
  maxSteps: number;
  seed: number;
  learningRate: number;
  lrSchedule: LrScheduleKind;
  warmupSteps: number;
  minLearningRate: number;
  clipNorm: number;
  /** Label smoothing α of the training loss (validation loss stays plain cross-entropy). */
  labelSmoothing: number;
  /** Probability that a decoder input after <start> is replaced by <unk> (word dropout). */
  wordDropout: number;
  /**
   * Probability that a decoder input after <start> is replaced by a word of the same slot
   * (model/train/substitution.ts).
   */
  wordSubstitution: number;
  /**
   * Rates per slot that override `wordSubstitution`: "red=0.5,left=0" (model/train/substitution.ts
   * `substitutionRates`).
   */
  wordSubstitutionRates: string;
  samplingSchedule: SamplingScheduleKind;
  samplingK: number;
  samplingC: number;
  samplingMin: number;
  samplingFeed: 'argmax' | 'sample';
  /** Feed the model's own word only where it fills the true word's slot (ForwardOptions.samplingSlots). */
  samplingWithinSlots: boolean;
  logEvery: number;
  /** Also checkpoint every this many steps (0: at the end of each epoch only). */
  checkpointEvery: number;
  /** Validate and checkpoint every this many epochs (and after the last). */
  validateEvery: number;
  valSamples: number;
  /** Batch captions of similar length together (model/data/batch.ts), to pad less. */
  bucketing: boolean;
  /**
   * Stream the training pixels chunk by chunk (model/data/stream.ts) instead of holding them all: 'auto' when they
   * exceed `pixelBudgetMb`.
   */
  stream: 'auto' | 'on' | 'off';
  /**
   * Memory for pixels, MB: the in-memory limit of `stream: 'auto'`, and what an automatic window and read-ahead fill.
   */
  pixelBudgetMb: number;
  /** Chunks (shards) whose examples are shuffled together when streaming (0: as many as half the budget holds). */
  streamWindow: number;
  /** Chunks read ahead while a window trains (-1: as many as the window). */
  streamReadAhead: number;
}

export const TRAIN_DEFAULTS = {
  ...MODEL_DEFAULTS,
  data: '',
  out: '',
  resume: false,
  initFrom: '',
  trainSplit: 'train',
  valSplit: 'val',
  epochs: 10,
  batchSize: 32,
  maxSteps: 0,
  seed: 1,
  learningRate: 1e-3,
  lrSchedule: 'constant',
  warmupSteps: 0,
  minLearningRate: 0,
  clipNorm: 5,
  labelSmoothing: 0,
  wordDropout: 0,
  wordSubstitution: 0,
  wordSubstitutionRates: '',
  samplingSchedule: 'inverse-sigmoid',
  samplingK: 1000,
  samplingC: 1e-4,
  samplingMin: 0,
  samplingFeed: 'argmax',
  samplingWithinSlots: false,
  logEvery: 10,
  checkpointEvery: 0,
  validateEvery: 1,
  valSamples: 4,
  bucketing: false,
  stream: 'auto',
  pixelBudgetMb: 2048,
  streamWindow: 0,
  streamReadAhead: -1,
} satisfies TrainConfig;

export const TRAIN_SPEC: ConfigSpec<TrainConfig> = {
  ...MODEL_SPEC,
  data: { type: 'string', describe: 'data-set directory (with manifest.json)' },
  out: { type: 'string', describe: 'model directory to write checkpoints to' },
  resume: { type: 'boolean', describe: 'continue from the latest checkpoint in --out' },
  initFrom: {
    type: 'string',
    describe:
      "start from this model's weights and vocabulary (fine-tuning): a fresh optimiser, schedule and step count; the architecture is the model's",
  },
  trainSplit: { type: 'string', describe: 'split to train on' },
  valSplit: { type: 'string', describe: 'split to validate on each epoch' },
  epochs: { type: 'number', integer: true, min: 1, describe: 'passes over the training captions' },
  batchSize: { type: 'number', integer: true, min: 1, describe: 'captions per optimiser step' },
  maxSteps: { type: 'number', integer: true, min: 0, describe: 'stop after this many steps in all (0: all epochs)' },
  seed: { type: 'number', integer: true, min: 0, describe: 'seed for initialisation, shuffling and sampling' },
  learningRate: { type: 'number', min: 0, describe: 'Adam learning rate' },
  lrSchedule: {
    type: 'string',
    choices: ['constant', 'cosine', 'linear'],
    describe: 'learning-rate schedule after warm-up',
  },
  warmupSteps: { type: 'number', integer: true, min: 0, describe: 'linear learning-rate warm-up steps' },
  minLearningRate: { type: 'number', min: 0, describe: 'learning rate at the end of cosine/linear decay' },
  clipNorm: { type: 'number', min: 0, describe: 'clip gradients to this global norm (0: off)' },
  labelSmoothing: {
    type: 'number',
    min: 0,
    max: 0.99,
    describe: 'label smoothing of the training loss: the target puts this much mass uniformly on every word',
  },
  wordDropout: {
    type: 'number',
    min: 0,
    max: 1,
    describe: 'word dropout: probability that a decoder input after <start> is replaced by <unk>',
  },
  wordSubstitution: {
    type: 'number',
    min: 0,
    max: 1,
    describe:
      'word substitution: probability that a decoder input after <start> is replaced by a word found in the same slots of the training captions (red → blue), the target staying the true word',
  },
  wordSubstitutionRates: {
    type: 'string',
    describe:
      'word substitution rates per slot, overriding --word-substitution: "red=0.5,left=0" sets the rate of each named word and of every word that substitutes for it',
  },
  samplingSchedule: {
    type: 'string',
    choices: ['constant', 'linear', 'exponential', 'inverse-sigmoid'],
    describe: 'scheduled-sampling ε schedule (probability of feeding the true word)',
  },
  samplingK: {
    type: 'number',
    min: 0,
    describe: 'schedule k: constant ε, linear start, exponential base, inverse-sigmoid k',
  },
  samplingC: { type: 'number', min: 0, describe: 'linear schedule slope per step' },
  samplingMin: { type: 'number', min: 0, max: 1, describe: 'floor of ε' },
  samplingFeed: { type: 'string', choices: ['argmax', 'sample'], describe: "the model's own word: argmax or a sample" },
  samplingWithinSlots: {
    type: 'boolean',
    describe:
      "scheduled sampling feeds the model's own word only where it is the true word or a word of the same slot in the training captions (blue for red), else the true word, so that the targets, which stay the reference's, still fit",
  },
  logEvery: { type: 'number', integer: true, min: 1, describe: 'write a metrics line every N steps' },
  checkpointEvery: {
    type: 'number',
    integer: true,
    min: 0,
    describe: 'checkpoint every N steps too (0: per epoch only)',
  },
  validateEvery: {
    type: 'number',
    integer: true,
    min: 1,
    describe: 'validate and checkpoint every N epochs (and after the last)',
  },
  valSamples: { type: 'number', integer: true, min: 0, describe: 'validation images to caption greedily each epoch' },
  bucketing: { type: 'boolean', describe: 'batch captions of similar length together (less padding)' },
  stream: {
    type: 'string',
    choices: ['auto', 'on', 'off'],
    describe:
      'stream training pixels shard by shard with read-ahead instead of loading them all (auto: when they exceed --pixel-budget-mb)',
  },
  pixelBudgetMb: {
    type: 'number',
    min: 0,
    describe: 'memory for image pixels, MB: above it --stream auto streams, and the stream window fills it',
  },
  streamWindow: {
    type: 'number',
    integer: true,
    min: 0,
    describe: 'shards whose examples are shuffled together when streaming (0: half the pixel budget)',
  },
  streamReadAhead: {
    type: 'number',
    integer: true,
    min: -1,
    describe: 'shards read ahead while the window trains (-1: as many as the window, 0: none)',
  },
};

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

export { Trainer, type StepStats } from './step.ts';
export type { TrainHooks, TrainProgress, TrainResult } from './loop.ts';

/**
 * Trains (or resumes) a model as `config` says, writing checkpoints and metrics to config.out:
 * the set-up (setup.ts: splits, the model to start from, word slots; pixels.ts: where the
 * pixels come from), then the loop (loop.ts).
 */
export async function train(config: TrainConfig, hooks: TrainHooks = {}): Promise<TrainResult> {
  const log = hooks.log ?? (() => {});
  const { trainImages, valImages } = await readSplits(config);
  const { model, optimizer, state, resuming } = await startModel(config, trainImages, log);
  let pixels: RunPixels | null = null;
  let loop: TrainingLoop;
  try {
    log(
      `vocabulary: ${model.vocab.size} words; train: ${trainImages.length} images; ${config.valSplit}: ${valImages.length} images`,
    );
    const examples = makeExamples(trainImages, model.vocab, model.config.maxLength);
    const languagePrior = trainingPrior(examples, model.vocab);
    const slots = substitutionSlots(config, examples, model.vocab, log);
    // A new run's directory is made only once every setting has been checked against the data.
    if (!resuming) await writeFileAtomic(join(config.out, 'metrics.jsonl'), '');
    pixels = await openPixels(config, { trainImages, valImages, examples }, model.config.imageSize, log, hooks.loading);
    hooks.pixelSource?.(pixels.stream ?? pixels.cache);
    const savedConfig: SavedConfig = {
      model: model.config,
      train: { ...config },
      versions: { captioner: VERSION, tfjs: tf.version.tfjs },
    };
    const trainer = new Trainer(model, config, optimizer, slots);
    loop = new TrainingLoop({
      config,
      hooks,
      model,
      optimizer,
      trainer,
      state,
      pixels,
      examples: examples.length,
      valImages,
      savedConfig,
      languagePrior,
    });
    await loop.run();
  } finally {
    await pixels?.close();
    optimizer.dispose();
    model.dispose();
  }
  const result = loop.result();
  log(describeDataWait(result.dataWaitSeconds, pixels.stream));
  return result;
}
