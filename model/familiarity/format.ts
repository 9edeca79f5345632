/**
 * What a familiarity calibration's two files hold (./store.ts writes and reads them from disk;
 * the browser fetches them): familiarity.json checked field by field, familiarity.bin decoded.
 * Pure, so that the browser bundle can use it.
 */
import { CheckpointError } from '../io/model-files.ts';
import { FEATURE_RECIPES, type FeatureRecipe } from './features.ts';

export const FAMILIARITY_FILE = 'familiarity.json';
export const FAMILIARITY_WEIGHTS = 'familiarity.bin';

/** Where a calibration's numbers came from: for the model page and the model card. */
export interface CalibrationInfo {
  /** The data set's name (its directory's base name: no machine's path). */
  data: string;
  /** The split the density was fitted on, and how many of its images. */
  fitSplit: string;
  fitImages: number;
  /** The split the threshold was chosen on, how many images, and the share asked to be familiar. */
  valSplit: string;
  valImages: number;
  targetFamiliar: number;
  /** The share of `valSplit` that is familiar under the threshold (≥ targetFamiliar). */
  valFamiliar: number;
}

/** A fitted familiarity model: everything scoring needs, and where it came from. */
export interface FamiliarityParams {
  /** Which encoder features it reads (model/familiarity/features.ts). */
  features: FeatureRecipe;
  dims: number;
  /** [clusters, dims] row-major: the means of the tied-covariance Gaussian. */
  means: Float64Array;
  /** [dims, dims] row-major, lower-triangular: W with ‖W·(x − μ)‖ the Mahalanobis distance. */
  whitening: Float64Array;
  /** The Ledoit–Wolf weight δ of the scaled identity in the covariance. */
  shrinkage: number;
  /** A score at or below it is familiar. */
  threshold: number;
  calibration: CalibrationInfo;
}

export interface FamiliarityJson {
  format: 'captioner-familiarity';
  version: 1;
  features: FeatureRecipe;
  dims: number;
  clusters: number;
  score: string;
  shrinkage: number;
  threshold: number;
  calibration: CalibrationInfo;
  weights: { file: string; dtype: 'float32'; means: [number, number]; whiteningLowerTriangle: number };
}

export const SCORE_DESCRIPTION =
  'Mahalanobis distance to the nearest mean under one shared Ledoit-Wolf covariance (Lee et al. 2018)';

export function triangle(dims: number): number {
  return (dims * (dims + 1)) / 2;
}

/** The bytes the two files of a calibration take, for logs and docs. */
export function familiarityBytes(dims: number, clusters: number): number {
  return (clusters * dims + triangle(dims)) * 4;
}

/**
 * familiarity.json's text, checked field by field; errors name `file` and the field. Its .bin is
 * read by the caller (from disk or by fetch), named by `familiarityWeightsFile`.
 */
export function parseFamiliarityJson(text: string, file: string): FamiliarityJson {
  let json: Partial<FamiliarityJson>;
  try {
    json = JSON.parse(text) as Partial<FamiliarityJson>;
  } catch (err) {
    throw new CheckpointError(`${file}: invalid JSON (${(err as Error).message})`);
  }
  const bad = (field: string, expected: string) =>
    new CheckpointError(
      `${file}: "${field}" must be ${expected}, got ${JSON.stringify(json[field as keyof FamiliarityJson])}`,
    );
  if (json.format !== 'captioner-familiarity')
    throw new CheckpointError(`${file}: not a captioner familiarity file ("format" is ${JSON.stringify(json.format)})`);
  if (json.version !== 1)
    throw new CheckpointError(
      `${file}: familiarity format version ${JSON.stringify(json.version)}, this captioner reads version 1: recalibrate (captioner calibrate) or update captioner`,
    );
  if (!FEATURE_RECIPES.includes(json.features as FeatureRecipe))
    throw bad(
      'features',
      `one of ${FEATURE_RECIPES.join(', ')} (a recipe of another captioner version: recalibrate with captioner calibrate)`,
    );
  const whole = (v: unknown) => typeof v === 'number' && Number.isInteger(v) && v >= 1;
  if (!whole(json.dims)) throw bad('dims', 'a whole number ≥ 1');
  if (!whole(json.clusters)) throw bad('clusters', 'a whole number ≥ 1');
  if (typeof json.threshold !== 'number' || !Number.isFinite(json.threshold)) throw bad('threshold', 'a number');
  if (typeof json.shrinkage !== 'number' || !(json.shrinkage >= 0 && json.shrinkage <= 1))
    throw bad('shrinkage', 'a number in [0, 1]');
  if (!json.calibration || typeof json.calibration !== 'object') throw bad('calibration', 'an object');
  return json as FamiliarityJson;
}

/** The name of the .bin a familiarity.json describes, beside it. */
export function familiarityWeightsFile(json: FamiliarityJson): string {
  return json.weights?.file ?? FAMILIARITY_WEIGHTS;
}

/** The calibration from its checked JSON and its .bin's bytes (`bin` names them in errors). */
export function familiarityParams(json: FamiliarityJson, bytes: Uint8Array, bin: string): FamiliarityParams {
  const { dims, clusters } = json;
  const expected = familiarityBytes(dims, clusters);
  if (bytes.byteLength !== expected) {
    throw new CheckpointError(
      `${bin}: ${bytes.byteLength} bytes, ${FAMILIARITY_FILE} describes ${expected} (${clusters}×${dims} means and a ${dims}×${dims} triangle in float32)`,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const at = (i: number) => view.getFloat32(i * 4, true);
  const means = Float64Array.from({ length: clusters * dims }, (_, i) => at(i));
  const whitening = new Float64Array(dims * dims);
  let k = clusters * dims;
  for (let a = 0; a < dims; a++) for (let b = 0; b <= a; b++) whitening[a * dims + b] = at(k++);
  if (![...means, ...whitening].every(Number.isFinite))
    throw new CheckpointError(`${bin}: holds a value that is not finite`);
  return {
    features: json.features,
    dims,
    means,
    whitening,
    shrinkage: json.shrinkage,
    threshold: json.threshold,
    calibration: json.calibration,
  };
}
