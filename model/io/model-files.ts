/**
 * What the files of a checkpoint directory (./checkpoint.ts) hold, apart from reading them: the
 * saved configuration with the keys added since, and the TF.js weights manifest and its data.
 * Pure: the server reads the files from disk (./checkpoint.ts), the browser by fetch
 * (browser/load-model.ts), and both decode them here.
 */
import * as tf from '@tensorflow/tfjs';
import type { ModelConfig } from '../nn/captioner.ts';

export class CheckpointError extends Error {
  override name = 'CheckpointError';
}

/** config.json of a checkpoint. */
export interface SavedConfig {
  model: ModelConfig;
  /** The resolved training configuration that produced the weights, when trained here. */
  train?: Record<string, unknown>;
  versions: { captioner: string; tfjs: string };
}

/** The files a captioning model needs from its checkpoint directory; `optional` ones may be absent. */
export const MODEL_FILES = {
  required: ['config.json', 'vocab.json', 'weights.json'],
  /** backbone.json (an encoder with a backbone), language-prior.json (anti-LM), familiarity.json + .bin. */
  optional: ['backbone.json', 'language-prior.json', 'familiarity.json', 'familiarity.bin'],
} as const;

/**
 * Architecture keys added after a checkpoint was written, with the value that reproduces what
 * the code did before them: an older checkpoint keeps loading as the model it was.
 */
export const ADDED_MODEL_KEYS: Partial<ModelConfig> = {
  encoderPooling: 'average',
  decoderInput: 'previous-word',
  initState: 'tanh',
  encoderInput: 'rgb',
  colourStream: 0,
  colourStreamPool: 1,
  attentionQuery: 'previous-state',
};

/** A parsed config.json, checked to have a model section, with the keys added since filled in. */
export function withAddedModelKeys(config: SavedConfig, file: string): SavedConfig {
  if (!config || typeof config !== 'object' || !config.model) throw new CheckpointError(`${file}: no "model" section`);
  return { ...config, model: { ...ADDED_MODEL_KEYS, ...config.model } };
}

/** A weights manifest file (weights.json), as TF.js writes it. */
export interface WeightsManifestJson {
  weightsManifest?: WeightsGroup[];
}

export interface WeightsGroup {
  paths: string[];
  weights: tf.io.WeightsManifestEntry[];
}

/** The manifest's one group of weight files, checked. */
export function weightsGroup(manifest: WeightsManifestJson, file: string): WeightsGroup {
  const group = manifest?.weightsManifest?.[0];
  if (!group || !Array.isArray(group.paths) || !Array.isArray(group.weights)) {
    throw new CheckpointError(`${file}: not a TF.js weights manifest`);
  }
  return group;
}

/** The float32 bytes a group of weights takes. */
export function weightBytes(group: WeightsGroup): number {
  return group.weights.reduce((n, w) => n + w.shape.reduce((a, b) => a * b, 1) * 4, 0);
}

/** The tensors of a weights group from its files' bytes, concatenated; `file` names them in errors. */
export function decodeWeightData(group: WeightsGroup, data: Uint8Array, file: string): tf.NamedTensorMap {
  const expected = weightBytes(group);
  if (data.byteLength !== expected) {
    throw new CheckpointError(`${file}: ${data.byteLength} bytes, the manifest describes ${expected}`);
  }
  const buffer = data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength) as ArrayBuffer;
  return tf.io.decodeWeights(buffer, group.weights);
}
