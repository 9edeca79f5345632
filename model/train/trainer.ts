/**
 * Training: a custom loop (not model.fit) so that every step can choose its inputs by scheduled
 * sampling, clip gradients by global norm, follow a learning-rate schedule and be checkpointed
 * and resumed exactly.
 */
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { makeExamples } from '../data/batch.ts';
import { MODEL_KEYS, checkModelConfig, type ModelConfig } from '../nn/captioner.ts';
import { hasCheckpoint, readCheckpointConfig, type SavedConfig } from '../io/checkpoint.ts';
import { ConfigError, resolveConfig, type ConfigLayer } from '../util/config.ts';
import { writeFileAtomic } from '../io/fsutil.ts';
import { TRAIN_DEFAULTS, TRAIN_SPEC, checkObjective, type TrainConfig } from './config.ts';
import { TrainingLoop, type TrainHooks, type TrainResult } from './loop.ts';
import { describeDataWait, openPixels, type RunPixels } from './pixels.ts';
import { readSplits, startModel, substitutionSlots, trainingPrior } from './setup.ts';
import { calibrateCheckpoint } from '../familiarity/calibrate.ts';
import { Trainer } from './step.ts';
import { CaptionReward } from './scst.ts';
import type { PriorJson } from '../decode/prior.ts';
import type { RecommendedDecoding } from '../decode/recommended.ts';

export const VERSION = '0.1.0';

/**
 * The resolved configuration. On resume the checkpoint's saved configuration is the base; with
 * --init-from (and nothing to resume) the starting model's architecture is. Either way the
 * architecture cannot change.
 */
export async function resolveTrainConfig(layers: readonly ConfigLayer[]): Promise<TrainConfig> {
  const config = await resolveLayers(layers);
  checkObjective(config);
  return config;
}

async function resolveLayers(layers: readonly ConfigLayer[]): Promise<TrainConfig> {
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

/** What a run writes beside the weights that is not a training setting. */
export interface TrainExtras {
  /**
   * The model's recommended decoding (a recipe's `decoding` section), saved in every checkpoint
   * as decoding.json; its anti-LM settings also become language-prior.json's defaults.
   */
  decoding?: RecommendedDecoding | null;
}

/**
 * Trains (or resumes) a model as `config` says, writing checkpoints and metrics to config.out:
 * the set-up (setup.ts: splits, the model to start from, word slots; pixels.ts: where the
 * pixels come from), then the loop (loop.ts).
 */
export async function train(
  config: TrainConfig,
  hooks: TrainHooks = {},
  extras: TrainExtras = {},
): Promise<TrainResult> {
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
    const decoding = extras.decoding ?? null;
    const languagePrior = withRecommendedAntiLm(trainingPrior(examples, model.vocab), decoding);
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
    const reward = config.objective === 'scst' ? new CaptionReward(trainImages) : undefined;
    if (reward)
      log(
        `scst: CIDEr-D rewards with the document frequencies of the ${trainImages.length} training images' references`,
      );
    const trainer = new Trainer(model, config, optimizer, slots, reward);
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
      reward,
      decoding,
    });
    await loop.run();
  } finally {
    await pixels?.close();
    optimizer.dispose();
    model.dispose();
  }
  const result = loop.result();
  log(describeDataWait(result.dataWaitSeconds, pixels.stream));
  return { ...result, familiarity: await calibrateAtEnd(config, result, valImages.length, hooks) };
}

/** The prior with the recommendation's anti-LM settings as its defaults, so that the two files agree. */
function withRecommendedAntiLm(prior: PriorJson, decoding: RecommendedDecoding | null): PriorJson {
  if (decoding?.antiLm === undefined && decoding?.antiLmPlausibility === undefined) return prior;
  const antiLm = { ...prior.antiLm };
  if (decoding.antiLm !== undefined) antiLm.weight = decoding.antiLm;
  if (decoding.antiLmPlausibility !== undefined) antiLm.plausibility = decoding.antiLmPlausibility;
  return { ...prior, antiLm };
}

/**
 * The familiarity calibration of the run's best checkpoint (model/familiarity/calibrate.ts),
 * when the run finished, has validation images and config.familiarityImages > 0; one log line
 * says why not otherwise.
 */
export async function calibrateAtEnd(
  config: TrainConfig,
  result: TrainResult,
  valImages: number,
  hooks: TrainHooks,
): Promise<TrainResult['familiarity']> {
  const log = hooks.log ?? (() => {});
  const why =
    config.familiarityImages === 0
      ? 'familiarityImages is 0'
      : result.stopped
        ? 'the run stopped before its end'
        : valImages === 0
          ? `split "${config.valSplit}" has no images to set its threshold on`
          : null;
  if (why) {
    log(
      `familiarity: not calibrated (${why}); \`captioner calibrate --model ${config.out} --data ${config.data}\` does it`,
    );
    return null;
  }
  const { files, params } = await calibrateCheckpoint(config.out, {
    dataDir: config.data,
    fitSplit: config.trainSplit,
    valSplit: config.valSplit,
    maxFitImages: config.familiarityImages,
    log,
    progress: hooks.calibrating,
  });
  log(`familiarity: calibration written to ${files.join(' and ')}`);
  return { threshold: params.threshold, valFamiliar: params.calibration.valFamiliar, files };
}
