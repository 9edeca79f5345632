/**
 * A model's familiarity calibration on disk, beside its weights in the checkpoint directory:
 *
 *   familiarity.json  what was fitted on what, the score's threshold, and the layout of the .bin
 *   familiarity.bin   float32 little-endian: the means [clusters, dims], then the whitening's
 *                     lower triangle, row by row (dims·(dims + 1)/2 values)
 *
 * Both are written atomically, the .bin first, so that a familiarity.json always describes a
 * whole .bin. Version 1 holds every recipe (the recipe is named in the JSON, and the .bin's
 * layout does not depend on it): a file written before a recipe was added still loads and is
 * scored with the recipe it names; a recipe or version this captioner does not know is an error
 * that names it and says to recalibrate. A checkpoint without familiarity.json has no
 * calibration (its captions carry no familiarity); a damaged one is an error naming the file.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ifExists, writeFileAtomic } from '../io/fsutil.ts';
import { CheckpointError } from '../io/checkpoint.ts';
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

interface FamiliarityJson {
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

const SCORE_DESCRIPTION =
  'Mahalanobis distance to the nearest mean under one shared Ledoit-Wolf covariance (Lee et al. 2018)';

function triangle(dims: number): number {
  return (dims * (dims + 1)) / 2;
}

/** The bytes the two files of a calibration take, for logs and docs. */
export function familiarityBytes(dims: number, clusters: number): number {
  return (clusters * dims + triangle(dims)) * 4;
}

/** Writes the calibration into checkpoint directory `dir`; returns the two files' paths. */
export async function writeFamiliarity(dir: string, p: FamiliarityParams): Promise<string[]> {
  const { dims } = p;
  const clusters = p.means.length / dims;
  const values = new Float32Array(clusters * dims + triangle(dims));
  values.set(p.means);
  let at = clusters * dims;
  for (let a = 0; a < dims; a++) for (let b = 0; b <= a; b++) values[at++] = p.whitening[a * dims + b]!;
  const bin = join(dir, FAMILIARITY_WEIGHTS);
  await writeFileAtomic(bin, new Uint8Array(littleEndian(values)));
  const json: FamiliarityJson = {
    format: 'captioner-familiarity',
    version: 1,
    features: p.features,
    dims,
    clusters,
    score: SCORE_DESCRIPTION,
    shrinkage: p.shrinkage,
    threshold: p.threshold,
    calibration: p.calibration,
    weights: {
      file: FAMILIARITY_WEIGHTS,
      dtype: 'float32',
      means: [clusters, dims],
      whiteningLowerTriangle: triangle(dims),
    },
  };
  const file = join(dir, FAMILIARITY_FILE);
  await writeFileAtomic(file, JSON.stringify(json, null, 2) + '\n');
  return [file, bin];
}

function littleEndian(values: Float32Array): ArrayBuffer {
  const view = new DataView(new ArrayBuffer(values.length * 4));
  values.forEach((v, i) => view.setFloat32(i * 4, v, true));
  return view.buffer;
}

/**
 * The calibration of checkpoint directory `dir`, or null when it has none (no familiarity.json).
 * Anything else wrong (bad JSON, a field missing, a .bin of the wrong size) is a CheckpointError
 * naming the file and the field.
 */
export async function readFamiliarity(dir: string): Promise<FamiliarityParams | null> {
  const file = join(dir, FAMILIARITY_FILE);
  const text = await ifExists(readFile(file, 'utf8'));
  if (text === null) return null;
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
  const dims = json.dims!;
  const clusters = json.clusters!;
  const bin = join(dir, json.weights?.file ?? FAMILIARITY_WEIGHTS);
  let bytes: Buffer;
  try {
    bytes = await readFile(bin);
  } catch (err) {
    throw new CheckpointError(`${bin}: cannot read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
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
    features: json.features!,
    dims,
    means,
    whitening,
    shrinkage: json.shrinkage,
    threshold: json.threshold,
    calibration: json.calibration,
  };
}
