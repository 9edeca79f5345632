/**
 * What a training run starts from: the data set's splits, the model, optimiser and position
 * (resumed from the last checkpoint, fine-tuned from another model, or new), and the word slots
 * that word substitution and scheduled sampling within slots read off the training captions.
 */
import { join } from 'node:path';
import type { Example } from '../data/batch.ts';
import { DatasetError, readManifest, splitImages, type DatasetImage } from '../data/dataset.ts';
import { LanguagePrior, type PriorJson } from '../decode/prior.ts';
import { disposeCheckpoint, hasCheckpoint, loadCheckpoint, type TrainingState } from '../io/checkpoint.ts';
import { loadModel } from '../io/load.ts';
import { Captioner, MODEL_KEYS } from '../nn/captioner.ts';
import { Vocabulary } from '../text/vocab.ts';
import { ConfigError, pick } from '../util/config.ts';
import { deriveSeed } from '../util/rng.ts';
import { truncateMetrics } from '../io/metrics-log.ts';
import { createOptimizer, type Optimizer } from './optim.ts';
import { describeClasses, substitutionClasses, substitutionRates } from './substitution.ts';
import type { TrainConfig } from './config.ts';

/** The training and validation images; a training split with no image is an error naming it. */
export async function readSplits(
  config: TrainConfig,
): Promise<{ trainImages: DatasetImage[]; valImages: DatasetImage[] }> {
  const manifest = await readManifest(config.data);
  const trainImages = splitImages(manifest, config.trainSplit);
  if (trainImages.length === 0)
    throw new DatasetError(`${join(config.data, 'manifest.json')}: no images in split "${config.trainSplit}"`);
  return { trainImages, valImages: splitImages(manifest, config.valSplit) };
}

/** The model a run trains, its optimiser, and where the run stands. */
export interface RunStart {
  model: Captioner;
  optimizer: Optimizer;
  state: TrainingState;
  /** Continuing config.out's latest checkpoint (its metrics.jsonl is kept up to that step). */
  resuming: boolean;
}

/**
 * With --resume and a checkpoint in config.out: the checkpoint's model, optimiser and position.
 * Otherwise a fresh start at step 0, from --init-from's weights and vocabulary or from new
 * weights and a vocabulary built from the training captions; config.out must not hold a model.
 */
export async function startModel(
  config: TrainConfig,
  trainImages: readonly DatasetImage[],
  log: (line: string) => void,
): Promise<RunStart> {
  if (config.resume && (await hasCheckpoint(config.out))) return resumeModel(config, log);
  if (await hasCheckpoint(config.out)) {
    throw new ConfigError(`${config.out} already holds a model; pass --resume to continue it or choose another --out`);
  }
  let model: Captioner;
  if (config.initFrom) {
    // Fine-tuning: the starting model's weights and vocabulary; a fresh optimiser and schedule.
    // Not its language prior: the run counts its own captions' (trainingPrior), and validation samples decode plainly.
    model = (await loadModel(config.initFrom)).model;
    log(`starting from the weights of ${config.initFrom}`);
  } else {
    const vocab = Vocabulary.build(
      trainImages.flatMap((i) => i.captions),
      config.minWordCount,
    );
    model = await Captioner.create(pick(config, MODEL_KEYS), vocab, deriveSeed(config.seed, 0));
  }
  const state = { step: 0, epoch: 0, batchInEpoch: 0, seed: config.seed, bestMetric: null, samplingProbability: 1 };
  return { model, optimizer: createOptimizer(config.optimizer), state, resuming: false };
}

/** The latest checkpoint's model, optimiser and position; metrics.jsonl is cut back to its step. */
async function resumeModel(config: TrainConfig, log: (line: string) => void): Promise<RunStart> {
  const ckpt = await loadCheckpoint(config.out, 'latest');
  if (!ckpt.training) throw new ConfigError(`${ckpt.dir}: no training state to resume from`);
  const model = await Captioner.restore(ckpt.config.model, ckpt.vocab, ckpt.weights, ckpt.backboneTopology);
  const optimizer = createOptimizer(config.optimizer);
  optimizer.restore(ckpt.training.optimizer, ckpt.training.optimizerStep);
  const state = ckpt.training.state;
  disposeCheckpoint(ckpt);
  await truncateMetrics(join(config.out, 'metrics.jsonl'), state.step);
  log(`resuming ${ckpt.dir} at step ${state.step} (epoch ${state.epoch + 1}, batch ${state.batchInEpoch})`);
  return { model, optimizer, state, resuming: true };
}

/**
 * The training captions' word pairs, saved with every checkpoint so that any model can be
 * decoded with --anti-lm (off by default).
 */
export function trainingPrior(examples: readonly Example[], vocab: Vocabulary): PriorJson {
  return LanguagePrior.fromCaptions(
    examples.map((e) => e.ids),
    vocab.size,
  ).toJSON(vocab);
}

/**
 * Each word id's substitutes and substitution rate, read off the training captions, when word
 * substitution or scheduled sampling within slots is on (else undefined); one log line names
 * what uses them and gives examples of the classes.
 */
export function substitutionSlots(
  config: TrainConfig,
  examples: readonly Example[],
  vocab: Vocabulary,
  log: (line: string) => void,
): { classes: number[][]; rate: number[] } | undefined {
  const substituting = config.wordSubstitution > 0 || config.wordSubstitutionRates !== '';
  if (!substituting && !config.samplingWithinSlots) return undefined;
  const classes = substitutionClasses(
    examples.map((e) => e.ids),
    vocab.size,
  );
  let rate: number[];
  try {
    rate = substitutionRates(classes, config.wordSubstitution, config.wordSubstitutionRates, vocab.words);
  } catch (err) {
    throw new ConfigError(`"wordSubstitutionRates": ${(err as Error).message}`);
  }
  const uses: string[] = [];
  if (substituting) {
    const perSlot = config.wordSubstitutionRates ? ` (${config.wordSubstitutionRates})` : '';
    uses.push(`word substitution ${config.wordSubstitution}${perSlot}`);
  }
  if (config.samplingWithinSlots) uses.push('scheduled sampling within slots');
  log(`${uses.join(', ')}: ${describeClasses(classes, (id) => vocab.words[id]!)}`);
  return { classes, rate };
}
