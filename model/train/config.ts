/**
 * The training configuration: every setting `captioner train` takes, its default and its spec
 * (type, bounds, help text), declared once. Defaults live here, then an optional JSON recipe
 * (configs/) and flags override them (model/util/config.ts `resolveConfig`).
 */
import { MODEL_DEFAULTS, MODEL_SPEC, type ModelConfig } from '../nn/captioner.ts';
import { ConfigError, inGroup, type GroupedSpec, type SpecGroup } from '../util/config.ts';
import type { OptimizerKind } from './optim.ts';
import type { LrScheduleKind, SamplingScheduleKind } from './schedules.ts';

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
  /**
   * What a step minimises: 'cross-entropy', the masked loss of the reference captions (teacher
   * forcing, or scheduled sampling); or 'scst', self-critical sequence training (model/train/scst.ts):
   * the model's own sampled captions, rewarded by their CIDEr-D against the training references
   * over the greedy caption's. SCST fine-tunes a trained model (--init-from).
   */
  objective: 'cross-entropy' | 'scst';
  /** 'adam' (the default) or plain 'sgd' (model/train/optim.ts): the clipping experiment's explosions. */
  optimizer: OptimizerKind;
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
   * Probability that a training image is turned grey, the colour words of its caption then adding
   * no loss (model/train/greyscale.ts): shape is to be read from outline, not from colour.
   */
  greyscale: number;
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
  /**
   * Count pad positions in the training loss (<pad> as a target after <end>): the unmasked loss,
   * the control of the RNN lab's padding experiment. Validation stays masked.
   */
  lossOnPadding: boolean;
  logEvery: number;
  /**
   * Measure gradient flow through time every this many steps, at the start and at the end
   * (model/train/gradient-flow.ts), as "gradient-flow" records in metrics.jsonl (0: never).
   */
  logGradientFlow: number;
  /** Also checkpoint every this many steps (0: at the end of each epoch only). */
  checkpointEvery: number;
  /** Validate and checkpoint every this many epochs (and after the last). */
  validateEvery: number;
  valSamples: number;
  /**
   * At the end of a run, fit the familiarity calibration (model/familiarity/) on at most this
   * many training images and set its threshold on the validation split; 0: no calibration.
   */
  familiarityImages: number;
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
  objective: 'cross-entropy',
  optimizer: 'adam',
  learningRate: 1e-3,
  lrSchedule: 'constant',
  warmupSteps: 0,
  minLearningRate: 0,
  clipNorm: 5,
  labelSmoothing: 0,
  wordDropout: 0,
  greyscale: 0,
  wordSubstitution: 0,
  wordSubstitutionRates: '',
  samplingSchedule: 'inverse-sigmoid',
  samplingK: 1000,
  samplingC: 1e-4,
  samplingMin: 0,
  samplingFeed: 'argmax',
  samplingWithinSlots: false,
  lossOnPadding: false,
  logEvery: 10,
  logGradientFlow: 0,
  checkpointEvery: 0,
  validateEvery: 1,
  valSamples: 4,
  familiarityImages: 20000,
  bucketing: false,
  stream: 'auto',
  pixelBudgetMb: 2048,
  streamWindow: 0,
  streamReadAhead: -1,
} satisfies TrainConfig;

/**
 * The groups of `captioner train --help` (and of docs/training.md), in the order shown: what
 * every run needs first, experiment knobs last.
 */
export const TRAIN_GROUPS = [
  {
    key: 'run',
    title: 'Run',
    describe: 'what to train on, where to write the model, and what to start from',
  },
  {
    key: 'model',
    title: 'Model (fixed by the checkpoint on --resume and --init-from)',
    describe: 'the architecture and vocabulary: encoder, decoder, caption length',
  },
  {
    key: 'optimisation',
    title: 'Optimisation',
    describe: 'how long to train and how each optimiser step is taken',
  },
  {
    key: 'sampling',
    title: 'Scheduled sampling (Bengio et al. 2015)',
    describe: 'how often the decoder is fed its own previous word instead of the true one',
  },
  {
    key: 'regularisation',
    title: 'Regularisation',
    describe: 'what keeps the decoder from leaning on the caption language instead of the image',
  },
  {
    key: 'data',
    title: 'Data',
    describe: 'which splits to read, and how captions are batched and pixels held in memory',
  },
  {
    key: 'checkpoints',
    title: 'Checkpoints and logging',
    describe: 'how often a run validates, saves and logs',
  },
  {
    key: 'experimental',
    title: 'Experimental',
    describe: 'knobs measured once or not yet: for experiments, not for a first run',
  },
] as const satisfies readonly SpecGroup[];

export type TrainGroup = (typeof TRAIN_GROUPS)[number]['key'];

export const TRAIN_SPEC: GroupedSpec<TrainConfig, TrainGroup> = {
  data: { group: 'run', type: 'string', describe: 'data-set directory (with manifest.json)' },
  out: { group: 'run', type: 'string', describe: 'model directory to write checkpoints to' },
  resume: { group: 'run', type: 'boolean', describe: 'continue from the latest checkpoint in --out' },
  initFrom: {
    group: 'run',
    type: 'string',
    describe:
      "start from this model's weights and vocabulary (fine-tuning): a fresh optimiser, schedule and step count; the architecture is the model's",
  },

  ...inGroup(MODEL_SPEC, 'model'),

  epochs: {
    group: 'optimisation',
    type: 'number',
    integer: true,
    min: 1,
    describe: 'passes over the training captions',
  },
  maxSteps: {
    group: 'optimisation',
    type: 'number',
    integer: true,
    min: 0,
    describe: 'stop after this many steps in all (0: all epochs)',
  },
  batchSize: { group: 'optimisation', type: 'number', integer: true, min: 1, describe: 'captions per optimiser step' },
  objective: {
    group: 'optimisation',
    type: 'string',
    choices: ['cross-entropy', 'scst'],
    describe:
      "what a step minimises: the reference captions' cross-entropy, or scst: self-critical sequence training (Rennie et al. 2017) on the model's own sampled captions, rewarded by CIDEr-D over the greedy caption's; for fine-tuning a trained model (--init-from)",
  },
  learningRate: { group: 'optimisation', type: 'number', min: 0, describe: 'learning rate' },
  lrSchedule: {
    group: 'optimisation',
    type: 'string',
    choices: ['constant', 'cosine', 'linear'],
    describe: 'learning-rate schedule after warm-up',
  },
  warmupSteps: {
    group: 'optimisation',
    type: 'number',
    integer: true,
    min: 0,
    describe: 'linear learning-rate warm-up steps',
  },
  minLearningRate: {
    group: 'optimisation',
    type: 'number',
    min: 0,
    describe: 'learning rate at the end of cosine/linear decay',
  },
  clipNorm: { group: 'optimisation', type: 'number', min: 0, describe: 'clip gradients to this global norm (0: off)' },
  seed: {
    group: 'optimisation',
    type: 'number',
    integer: true,
    min: 0,
    describe: 'seed for initialisation, shuffling and sampling',
  },

  samplingSchedule: {
    group: 'sampling',
    type: 'string',
    choices: ['constant', 'linear', 'exponential', 'inverse-sigmoid'],
    describe: 'scheduled-sampling ε schedule (probability of feeding the true word)',
  },
  samplingK: {
    group: 'sampling',
    type: 'number',
    min: 0,
    describe: 'schedule k: constant ε, linear start, exponential base, inverse-sigmoid k',
  },
  samplingC: { group: 'sampling', type: 'number', min: 0, describe: 'linear schedule slope per step' },
  samplingMin: { group: 'sampling', type: 'number', min: 0, max: 1, describe: 'floor of ε' },
  samplingFeed: {
    group: 'sampling',
    type: 'string',
    choices: ['argmax', 'sample'],
    describe: "the model's own word: argmax or a sample",
  },

  labelSmoothing: {
    group: 'regularisation',
    type: 'number',
    min: 0,
    max: 0.99,
    describe: 'label smoothing of the training loss: the target puts this much mass uniformly on every word',
  },
  wordSubstitution: {
    group: 'regularisation',
    type: 'number',
    min: 0,
    max: 1,
    describe:
      'word substitution: probability that a decoder input after <start> is replaced by a word found in the same slots of the training captions (red → blue), the target staying the true word',
  },
  wordDropout: {
    group: 'regularisation',
    type: 'number',
    min: 0,
    max: 1,
    describe: 'word dropout: probability that a decoder input after <start> is replaced by <unk>',
  },
  greyscale: {
    group: 'regularisation',
    type: 'number',
    min: 0,
    max: 1,
    describe:
      'greyscale augmentation: probability that a training image is turned grey, the colour words of its caption (red, blue, …) then adding no loss, so that shapes are learnt from their outlines and not from colours they happened to come in',
  },

  trainSplit: { group: 'data', type: 'string', describe: 'split to train on' },
  valSplit: { group: 'data', type: 'string', describe: 'split to validate on each epoch' },
  bucketing: { group: 'data', type: 'boolean', describe: 'batch captions of similar length together (less padding)' },
  stream: {
    group: 'data',
    type: 'string',
    choices: ['auto', 'on', 'off'],
    describe:
      'stream training pixels shard by shard with read-ahead instead of loading them all (auto: when they exceed --pixel-budget-mb)',
  },
  pixelBudgetMb: {
    group: 'data',
    type: 'number',
    min: 0,
    describe: 'memory for image pixels, MB: above it --stream auto streams, and the stream window fills it',
  },
  streamWindow: {
    group: 'data',
    type: 'number',
    integer: true,
    min: 0,
    describe: 'shards whose examples are shuffled together when streaming (0: half the pixel budget)',
  },
  streamReadAhead: {
    group: 'data',
    type: 'number',
    integer: true,
    min: -1,
    describe: 'shards read ahead while the window trains (-1: as many as the window, 0: none)',
  },

  checkpointEvery: {
    group: 'checkpoints',
    type: 'number',
    integer: true,
    min: 0,
    describe: 'checkpoint every N steps too (0: per epoch only)',
  },
  validateEvery: {
    group: 'checkpoints',
    type: 'number',
    integer: true,
    min: 1,
    describe: 'validate and checkpoint every N epochs (and after the last)',
  },
  valSamples: {
    group: 'checkpoints',
    type: 'number',
    integer: true,
    min: 0,
    describe: 'validation images to caption greedily each epoch',
  },
  familiarityImages: {
    group: 'checkpoints',
    type: 'number',
    integer: true,
    min: 0,
    describe:
      'at the end, fit the familiarity calibration (how alike an image is to the training images) on at most N of them, its threshold on the validation split (0: none; `captioner calibrate` does it later)',
  },
  logEvery: {
    group: 'checkpoints',
    type: 'number',
    integer: true,
    min: 1,
    describe: 'write a metrics line every N steps',
  },
  logGradientFlow: {
    group: 'checkpoints',
    type: 'number',
    integer: true,
    min: 0,
    describe:
      "every N steps (and at the first and last) log gradient flow through time on the step's batch: ‖∂L/∂h_t‖ per time step and ‖∂L/∂h‖ of the last word's loss by distance back (0: off)",
  },

  wordSubstitutionRates: {
    group: 'experimental',
    type: 'string',
    describe:
      'word substitution rates per slot, overriding --word-substitution: "red=0.5,left=0" sets the rate of each named word and of every word that substitutes for it',
  },
  optimizer: {
    group: 'experimental',
    type: 'string',
    choices: ['adam', 'sgd'],
    describe:
      'adam, or plain sgd (θ ← θ − lr·g, whose step grows with the gradient: the clipping experiment, docs/lab.md)',
  },
  lossOnPadding: {
    group: 'experimental',
    type: 'boolean',
    describe:
      'count the pad positions after <end> in the training loss (the unmasked loss: a control for the padding experiment, docs/lab.md); validation stays masked',
  },
  samplingWithinSlots: {
    group: 'experimental',
    type: 'boolean',
    describe:
      "scheduled sampling feeds the model's own word only where it is the true word or a word of the same slot in the training captions (blue for red), else the true word, so that the targets, which stay the reference's, still fit",
  },
};

/**
 * Settings that only act on the reference captions fed to a cross-entropy step (label smoothing,
 * word dropout and substitution, scheduled sampling within slots): SCST feeds the model its own
 * words and has no target distribution, so asking for them with it is an error naming them.
 * Greyscale, which masks targets as pads, is likewise refused with the loss on pads.
 */
export function checkObjective(config: TrainConfig): void {
  // Greyscale masks a grey image's colour targets as pads; the unmasked loss would train them as <pad>.
  if (config.greyscale > 0 && config.lossOnPadding)
    throw new ConfigError(
      '"greyscale" masks the colour words of grey images as pads are masked, and "lossOnPadding" trains on pads: use one or the other',
    );
  if (config.objective !== 'scst') return;
  const refused = (
    [
      ['labelSmoothing', config.labelSmoothing > 0],
      ['wordDropout', config.wordDropout > 0],
      ['greyscale', config.greyscale > 0],
      ['wordSubstitution', config.wordSubstitution > 0],
      ['wordSubstitutionRates', config.wordSubstitutionRates !== ''],
      ['samplingWithinSlots', config.samplingWithinSlots],
    ] as const
  ).flatMap(([key, on]) => (on ? [key] : []));
  if (refused.length)
    throw new ConfigError(
      `objective "scst" trains on the model's own sampled captions: ${refused.map((k) => `"${k}"`).join(', ')} ${refused.length > 1 ? 'act' : 'acts'} only on reference captions (cross-entropy); leave ${refused.length > 1 ? 'them' : 'it'} at the default`,
    );
}
