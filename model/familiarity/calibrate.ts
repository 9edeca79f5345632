/**
 * Calibrating familiarity: the features of (up to `maxFitImages` of) a data set's training
 * images fit the density model, and the threshold is the score below which `targetFamiliar` of
 * its validation images fall. `captioner calibrate` and the end of `captioner train` call it.
 */
import { basename, join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { DatasetError, ImageCache, readManifest, splitImages, type DatasetImage } from '../data/dataset.ts';
import { loadCheckpoint, disposeCheckpoint } from '../io/checkpoint.ts';
import { Captioner } from '../nn/captioner.ts';
import { Rng } from '../util/rng.ts';
import { DEFAULT_FEATURE_RECIPE, familiarityFeatures, type FeatureRecipe } from './features.ts';
import { FamiliarityModel } from './familiarity.ts';
import { columnMeans, familiarThreshold, shrunkCovariance, whitening } from './gaussian.ts';
import { kMeans } from './clusters.ts';
import { familiarityBytes, writeFamiliarity, type FamiliarityParams } from './store.ts';

export interface CalibrateOptions {
  /** The data set the model was trained on. */
  dataDir: string;
  /** The split the density is fitted on (default "train"). */
  fitSplit?: string;
  /** The split the threshold is chosen on (default "val"). */
  valSplit?: string;
  /** At most this many fit images, evenly spread over the split (default 20,000; 0: all). */
  maxFitImages?: number;
  /** The share of the validation images that must be familiar (default 0.975). */
  targetFamiliar?: number;
  /** Means of the tied-covariance Gaussian, found by k-means (default DEFAULT_CLUSTERS; 1: one Gaussian). */
  clusters?: number;
  features?: FeatureRecipe;
  /** Images per encoder batch (default 64). */
  batchSize?: number;
  /** Seeds k-means (default 1). */
  seed?: number;
  /** Images done of a stage's total, after each batch. */
  progress?(stage: 'fit' | 'val', done: number, total: number): void;
  log?(line: string): void;
}

export const CALIBRATE_DEFAULTS = {
  fitSplit: 'train',
  valSplit: 'val',
  maxFitImages: 20000,
  targetFamiliar: 0.975,
  clusters: 1,
  batchSize: 64,
  seed: 1,
} as const;

/** Images whose pixels are read at once: bounds the memory a calibration holds (≈ 25 MB at 64²). */
const CHUNK = 2048;

/** At most `max` of `images`, evenly spread (all when `max` is 0 or at least their number). */
export function evenlySpread<T>(images: readonly T[], max: number): T[] {
  if (max <= 0 || images.length <= max) return [...images];
  return Array.from({ length: max }, (_, i) => images[Math.floor((i * images.length) / max)]!);
}

/** The feature rows ([n, dims]) of `images` of the data set, in order. */
async function featuresOf(
  model: Captioner,
  dataDir: string,
  images: readonly DatasetImage[],
  recipe: FeatureRecipe,
  batchSize: number,
  progress: (done: number) => void,
): Promise<{ rows: Float32Array; dims: number }> {
  const size = model.config.imageSize;
  const parts: Float32Array[] = [];
  let done = 0;
  for (let start = 0; start < images.length; start += CHUNK) {
    const chunk = images.slice(start, start + CHUNK);
    const cache = await ImageCache.load(dataDir, chunk, size);
    for (let b = 0; b < chunk.length; b += batchSize) {
      const batch = chunk.slice(b, b + batchSize);
      const tensor = tf.tensor4d(cache.batch(batch.map((img) => img.id)), [batch.length, size, size, 3]);
      try {
        parts.push(familiarityFeatures(model.encoder, tensor, recipe));
      } finally {
        tensor.dispose();
      }
      progress((done += batch.length));
      // Let the event loop breathe between batches (progress bars, Ctrl-C).
      await new Promise((r) => setImmediate(r));
    }
  }
  const total = parts.reduce((n, p) => n + p.length, 0);
  const rows = new Float32Array(total);
  let at = 0;
  for (const p of parts) {
    rows.set(p, at);
    at += p.length;
  }
  return { rows, dims: images.length ? total / images.length : 0 };
}

/**
 * Fits the familiarity of `model` on a data set as the module comment says. Errors name the
 * data set's manifest and the split that has no images.
 */
export async function calibrateFamiliarity(model: Captioner, options: CalibrateOptions): Promise<FamiliarityParams> {
  const o = { ...CALIBRATE_DEFAULTS, features: DEFAULT_FEATURE_RECIPE, ...options };
  const log = o.log ?? (() => {});
  const manifestPath = join(o.dataDir, 'manifest.json');
  const manifest = await readManifest(o.dataDir);
  const fitAll = splitImages(manifest, o.fitSplit);
  const val = splitImages(manifest, o.valSplit);
  if (fitAll.length < 2)
    throw new DatasetError(
      `${manifestPath}: split "${o.fitSplit}" has ${fitAll.length} images; fitting needs at least 2`,
    );
  if (val.length === 0)
    throw new DatasetError(`${manifestPath}: split "${o.valSplit}" has no images to choose the threshold on`);
  const fit = evenlySpread(fitAll, o.maxFitImages);
  log(
    `familiarity: ${o.features} features of ${fit.length} of ${fitAll.length} "${o.fitSplit}" images, threshold on ${val.length} "${o.valSplit}" images`,
  );

  const { rows, dims } = await featuresOf(model, o.dataDir, fit, o.features, o.batchSize, (n) =>
    o.progress?.('fit', n, fit.length),
  );
  let means: Float64Array;
  let centreOf: (row: number) => Float64Array;
  if (o.clusters <= 1) {
    means = columnMeans(rows, dims);
    centreOf = () => means;
  } else {
    const { centres, assignment } = kMeans(rows, dims, o.clusters, new Rng(o.seed));
    means = centres;
    const views = Array.from({ length: centres.length / dims }, (_, c) => centres.subarray(c * dims, (c + 1) * dims));
    centreOf = (row) => views[assignment[row]!]!;
  }
  const { covariance, shrinkage } = shrunkCovariance(rows, dims, centreOf);
  // The threshold is set on the parameters as stored (float32, model/familiarity/store.ts): a
  // val image scored at the threshold here scores the same once the calibration is read back.
  const asStored = (values: Float64Array) => Float64Array.from(Float32Array.from(values));
  const draft: FamiliarityParams = {
    features: o.features,
    dims,
    means: asStored(means),
    whitening: asStored(whitening(covariance, dims)),
    shrinkage,
    threshold: Infinity,
    calibration: {
      data: basename(resolve(o.dataDir)),
      fitSplit: o.fitSplit,
      fitImages: fit.length,
      valSplit: o.valSplit,
      valImages: val.length,
      targetFamiliar: o.targetFamiliar,
      valFamiliar: 1,
    },
  };
  const valRows = await featuresOf(model, o.dataDir, val, o.features, o.batchSize, (n) =>
    o.progress?.('val', n, val.length),
  );
  const scores = new FamiliarityModel(draft).scoreFeatures(valRows.rows);
  const threshold = familiarThreshold(scores, o.targetFamiliar);
  const valFamiliar = scores.filter((s) => s <= threshold).length / scores.length;
  log(
    `familiarity: threshold ${threshold.toFixed(3)} (${(valFamiliar * 100).toFixed(1)} % of "${o.valSplit}" familiar), shrinkage ${shrinkage.toFixed(4)}, ${dims} features, ${familiarityBytes(dims, means.length / dims)} bytes`,
  );
  return { ...draft, threshold, calibration: { ...draft.calibration, valFamiliar } };
}

/**
 * Calibrates the best checkpoint of model directory `modelDir` (or a checkpoint directory
 * itself) and writes familiarity.json and .bin into it; returns the files written and the fit.
 */
export async function calibrateCheckpoint(
  modelDir: string,
  options: CalibrateOptions,
): Promise<{ files: string[]; params: FamiliarityParams }> {
  const ckpt = await loadCheckpoint(modelDir, 'best');
  let model: Captioner;
  try {
    model = await Captioner.restore(ckpt.config.model, ckpt.vocab, ckpt.weights, ckpt.backboneTopology);
  } finally {
    disposeCheckpoint(ckpt);
  }
  try {
    const params = await calibrateFamiliarity(model, options);
    return { files: await writeFamiliarity(ckpt.dir, params), params };
  } finally {
    model.dispose();
  }
}
