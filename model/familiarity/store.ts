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
import { CheckpointError } from '../io/model-files.ts';
import {
  FAMILIARITY_FILE,
  FAMILIARITY_WEIGHTS,
  SCORE_DESCRIPTION,
  familiarityParams,
  familiarityWeightsFile,
  parseFamiliarityJson,
  triangle,
  type FamiliarityJson,
  type FamiliarityParams,
} from './format.ts';

export {
  FAMILIARITY_FILE,
  FAMILIARITY_WEIGHTS,
  familiarityBytes,
  type CalibrationInfo,
  type FamiliarityParams,
} from './format.ts';

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
  const json = parseFamiliarityJson(text, file);
  const bin = join(dir, familiarityWeightsFile(json));
  let bytes: Buffer;
  try {
    bytes = await readFile(bin);
  } catch (err) {
    throw new CheckpointError(`${bin}: cannot read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  return familiarityParams(json, new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), bin);
}
