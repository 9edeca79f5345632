/**
 * Model directories and checkpoints.
 *
 *   MODEL_DIR/checkpoint.json   which checkpoint is the latest and which the best
 *   MODEL_DIR/ckpt-000200/      one checkpoint: config.json, vocab.json, weights.json + weights.bin
 *                               (the TF.js weights format), backbone.json when the encoder has a
 *                               backbone, language-prior.json (the training captions' word
 *                               pairs, for anti-LM decoding), decoding.json (the recommended
 *                               decoding, when the run was given one), and for resuming: state.json +
 *                               optimizer.json/.bin
 *   MODEL_DIR/metrics.jsonl     one JSON line per logged step and per epoch
 *
 * Every checkpoint directory is written whole under a temporary name and renamed into place, and
 * only then does checkpoint.json (itself replaced atomically) point at it; old directories are
 * removed last. A kill at any moment leaves checkpoint.json naming a complete checkpoint.
 * What a checkpoint's files mean, apart from reading them, is in ./model-files.ts (the browser
 * reads them too, by fetch).
 */
import { readdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { ifExists, writeDirAtomic, writeFileAtomic } from './fsutil.ts';
import {
  CheckpointError,
  decodeWeightData,
  weightsGroup,
  withAddedModelKeys,
  type SavedConfig,
  type WeightsManifestJson,
} from './model-files.ts';
import { PRIOR_FILE, type PriorJson } from '../decode/prior.ts';
import { DECODING_FILE, type RecommendedDecoding } from '../decode/recommended.ts';
import { Vocabulary } from '../text/vocab.ts';

export { CheckpointError, type SavedConfig };

/** Where training stands, saved with each checkpoint so that --resume continues exactly. */
export interface TrainingState {
  /** Optimiser steps taken (also the position on the ε and learning-rate schedules). */
  step: number;
  /** The epoch in progress and the batches of it already done. */
  epoch: number;
  batchInEpoch: number;
  /** The base seed; every step's and epoch's random stream is derived from it and the step. */
  seed: number;
  /**
   * The best validation figure so far, or null: the loss per token (lower is better), or with
   * objective "scst" the greedy captions' CIDEr-D (higher is better; model/train/loop.ts).
   */
  bestMetric: number | null;
  /** ε at the step the checkpoint was taken, for reference. */
  samplingProbability: number;
}

export interface CheckpointPayload {
  config: SavedConfig;
  vocab: Vocabulary;
  weights: tf.NamedTensorMap;
  backboneTopology: object | null;
  /** The training captions' word pairs (model/decode/prior.ts), written as language-prior.json. */
  languagePrior?: PriorJson;
  /** The model's recommended decoding (model/decode/recommended.ts), written as decoding.json. */
  decoding?: RecommendedDecoding | null;
  training?: { state: TrainingState; optimizer: tf.NamedTensorMap; optimizerStep: number };
}

export interface LoadedCheckpoint {
  dir: string;
  config: SavedConfig;
  vocab: Vocabulary;
  weights: tf.NamedTensorMap;
  backboneTopology: object | null;
  training: { state: TrainingState; optimizer: tf.NamedTensorMap; optimizerStep: number } | null;
}

interface Pointer {
  format: 'captioner-model';
  version: 1;
  latest: string;
  best: string | null;
}

const POINTER = 'checkpoint.json';

async function writeWeights(dir: string, base: string, tensors: tf.NamedTensorMap): Promise<void> {
  const { data, specs } = await tf.io.encodeWeights(tensors);
  const bytes = new Uint8Array(tf.io.concatenateArrayBuffers(Array.isArray(data) ? data : [data]));
  await writeFileAtomic(join(dir, `${base}.bin`), bytes);
  const manifest = { format: 'captioner-weights', weightsManifest: [{ paths: [`${base}.bin`], weights: specs }] };
  await writeFileAtomic(join(dir, `${base}.json`), JSON.stringify(manifest));
}

async function readJson<T>(path: string): Promise<T> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new CheckpointError(
      `${path}: cannot read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
    );
  }
  try {
    return JSON.parse(text) as T;
  } catch (err) {
    throw new CheckpointError(`${path}: invalid JSON (${(err as Error).message})`);
  }
}

async function readWeights(dir: string, base: string): Promise<tf.NamedTensorMap> {
  const manifestPath = join(dir, `${base}.json`);
  const manifest = await readJson<WeightsManifestJson>(manifestPath);
  const group = weightsGroup(manifest, manifestPath);
  const buffers = await Promise.all(group.paths.map((p) => readFile(join(dir, p))));
  const data = Buffer.concat(buffers);
  return decodeWeightData(
    group,
    new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    join(dir, group.paths[0] ?? ''),
  );
}

async function readPointer(modelDir: string): Promise<Pointer | null> {
  try {
    await stat(join(modelDir, POINTER));
  } catch {
    return null;
  }
  const p = await readJson<Pointer>(join(modelDir, POINTER));
  if (p.format !== 'captioner-model' || typeof p.latest !== 'string') {
    throw new CheckpointError(`${join(modelDir, POINTER)}: not a captioner model pointer`);
  }
  return p;
}

/** True when `modelDir` holds at least one complete checkpoint. */
export async function hasCheckpoint(modelDir: string): Promise<boolean> {
  return (await readPointer(modelDir)) !== null;
}

/**
 * Saves a checkpoint as the new latest (and best, when `isBest`), then removes checkpoints that
 * are neither. Returns the checkpoint's directory name.
 */
export async function saveCheckpoint(modelDir: string, payload: CheckpointPayload, isBest: boolean): Promise<string> {
  const previous = await readPointer(modelDir);
  const step = payload.training?.state.step ?? 0;
  let name = `ckpt-${String(step).padStart(6, '0')}`;
  const existing = new Set((await ifExists(readdir(modelDir))) ?? []);
  for (let i = 1; existing.has(name); i++) name = `ckpt-${String(step).padStart(6, '0')}-${i}`;

  await writeDirAtomic(join(modelDir, name), async (dir) => {
    await writeFileAtomic(join(dir, 'config.json'), JSON.stringify(payload.config, null, 2));
    await writeFileAtomic(join(dir, 'vocab.json'), JSON.stringify(payload.vocab.toJSON()));
    await writeWeights(dir, 'weights', payload.weights);
    if (payload.backboneTopology)
      await writeFileAtomic(join(dir, 'backbone.json'), JSON.stringify(payload.backboneTopology));
    if (payload.languagePrior) await writeFileAtomic(join(dir, PRIOR_FILE), JSON.stringify(payload.languagePrior));
    if (payload.decoding)
      await writeFileAtomic(join(dir, DECODING_FILE), JSON.stringify(payload.decoding, null, 2) + '\n');
    if (payload.training) {
      await writeWeights(dir, 'optimizer', payload.training.optimizer);
      const state = { ...payload.training.state, optimizerStep: payload.training.optimizerStep };
      await writeFileAtomic(join(dir, 'state.json'), JSON.stringify(state, null, 2));
    }
  });

  const pointer: Pointer = {
    format: 'captioner-model',
    version: 1,
    latest: name,
    best: isBest ? name : (previous?.best ?? null),
  };
  await writeFileAtomic(join(modelDir, POINTER), JSON.stringify(pointer, null, 2));

  // Old checkpoints and temporaries left by a killed save go last, once nothing points at them.
  const keep = new Set([pointer.latest, pointer.best]);
  for (const entry of await readdir(modelDir)) {
    const stale =
      (entry.startsWith('ckpt-') && !keep.has(entry)) || (entry.startsWith('.ckpt-') && entry.includes('.tmp-'));
    if (stale) await rm(join(modelDir, entry), { recursive: true, force: true });
  }
  return name;
}

/**
 * Loads a checkpoint: `which` picks the latest (for resuming) or the best (for captioning,
 * falling back to the latest). `modelDir` may also be a checkpoint directory itself.
 */
export async function loadCheckpoint(modelDir: string, which: 'latest' | 'best'): Promise<LoadedCheckpoint> {
  const dir = await checkpointDir(modelDir, which);
  const config = await readSavedConfig(dir);
  const vocab = Vocabulary.fromJSON(await readJson(join(dir, 'vocab.json')), join(dir, 'vocab.json'));
  const weights = await readWeights(dir, 'weights');
  let backboneTopology: object | null = null;
  if (config.model.backbone) backboneTopology = await readJson<object>(join(dir, 'backbone.json'));
  let training: LoadedCheckpoint['training'] = null;
  const hasState = await stat(join(dir, 'state.json')).then(
    () => true,
    () => false,
  );
  if (hasState) {
    const state = await readJson<TrainingState & { optimizerStep: number }>(join(dir, 'state.json'));
    const { optimizerStep, ...rest } = state;
    training = { state: rest, optimizer: await readWeights(dir, 'optimizer'), optimizerStep };
  }
  return { dir, config, vocab, weights, backboneTopology, training };
}

/** Disposes the tensors of a loaded checkpoint once they have been copied into a model. */
export function disposeCheckpoint(ckpt: LoadedCheckpoint): void {
  tf.dispose(Object.values(ckpt.weights));
  if (ckpt.training) tf.dispose(Object.values(ckpt.training.optimizer));
}

/**
 * The saved configuration of a model directory's best (or latest) checkpoint, and where it is,
 * without loading its weights: for describing a model (the web app's model page).
 */
export async function readCheckpointConfig(
  modelDir: string,
  which: 'latest' | 'best' = 'best',
): Promise<{ dir: string; config: SavedConfig }> {
  const dir = await checkpointDir(modelDir, which);
  return { dir, config: await readSavedConfig(dir) };
}

/** The checkpoint directory `which` names in a model directory, or `modelDir` itself when it is a checkpoint. */
async function checkpointDir(modelDir: string, which: 'latest' | 'best'): Promise<string> {
  const pointer = await readPointer(modelDir);
  if (pointer) return join(modelDir, which === 'best' ? (pointer.best ?? pointer.latest) : pointer.latest);
  try {
    await stat(join(modelDir, 'weights.json'));
  } catch {
    throw new CheckpointError(`${modelDir}: not a model directory (no ${POINTER} and no weights.json)`);
  }
  return modelDir;
}

async function readSavedConfig(dir: string): Promise<SavedConfig> {
  const file = join(dir, 'config.json');
  const config = await readJson<SavedConfig>(file);
  return withAddedModelKeys(config, file);
}
