/**
 * What familiarity reads of an image: one vector of pooled encoder features per image, the
 * same for fitting (model/familiarity/calibrate.ts) and scoring (model/familiarity/familiarity.ts).
 *
 * Recipes, named in familiarity.json so that a calibration is always read with the features it
 * was fitted on:
 *   'first-block-moments-chroma'  'first-block-moments' and three statistics of the image's
 *                    chroma (`chromaStatistics`): how much of it is vividly coloured, which the
 *                    shapes world fixes (grey-ish backgrounds, saturated fills) and a grey or
 *                    pale photograph (the moon, a wood grain) does not match. The default:
 *                    docs/familiarity.md gives the comparison.
 *   'first-block-moments'  the first conv block's output, each channel's mean and standard
 *                    deviation over the map: colour and local texture, which the later blocks of
 *                    a model trained on one world learn to ignore (a grey texture and an empty
 *                    shapes background look alike to the last block); cheap, a fraction of the
 *                    encoder's work. The default before 'first-block-moments-chroma'.
 *   'block-moments'  every conv block's output, each channel's mean and standard deviation over
 *                    the map (Lee et al. 2018's "feature ensemble": early blocks see colour and
 *                    texture that the last one has learned to ignore); a backbone: its one output
 *   'feature-mean'   the encoder's output features averaged over the grid's positions (the
 *                    vector itself without a grid): only what the decoder is handed
 */
import * as tf from '@tensorflow/tfjs';
import type { Encoder } from '../nn/encoder.ts';

export const FEATURE_RECIPES = [
  'first-block-moments-chroma',
  'first-block-moments',
  'block-moments',
  'feature-mean',
] as const;
export type FeatureRecipe = (typeof FEATURE_RECIPES)[number];

/** The recipe a new calibration uses (docs/familiarity.md says how it was chosen). */
export const DEFAULT_FEATURE_RECIPE: FeatureRecipe = 'first-block-moments-chroma';

/** Mean and standard deviation of each channel over the spatial positions: [batch, h, w, c] → [batch, 2c]. */
function moments(map: tf.Tensor): tf.Tensor2D {
  if (map.rank === 2) return map as tf.Tensor2D; // a backbone that pools already
  const axes = map.rank === 4 ? [1, 2] : [1];
  const { mean, variance } = tf.moments(map, axes);
  return tf.concat([mean, tf.sqrt(variance)], 1) as tf.Tensor2D; // [batch, 2c]
}

/**
 * A pixel's chroma above this (of 1) counts as vivid: the shapes world's fills are (about 0.5 to
 * 0.9), its backgrounds are not (at most 0.18, plus noise).
 */
export const VIVID_CHROMA = 0.3;

/**
 * Statistics of the chroma C = max(R, G, B) − min(R, G, B) (the hexcone model's, Joblove &
 * Greenberg 1978) of images [batch, size, size, 3] in [0, 1] → rows [batch, 3]: the mean chroma,
 * the share of vivid pixels (C > VIVID_CHROMA), and the largest mean chroma of a 4 × 4 patch (a
 * vivid area, not one noisy pixel; the patches tile the image, a remainder at the right and bottom
 * left out). The shapes world fixes these: every scene has a vividly coloured shape on a
 * grey-ish background; a photograph of grey or pale surfaces has none. Computed on the pixel
 * values in plain JavaScript: a pass over them, where TF.js's per-pixel reductions cost more
 * than the first conv block.
 */
export function chromaStatistics(images: tf.Tensor4D): Float32Array {
  const [batch, height, width] = images.shape;
  const px = images.dataSync();
  const patch = Math.min(4, height, width);
  const [rows, cols] = [Math.floor(height / patch), Math.floor(width / patch)];
  const out = new Float32Array(batch * 3);
  const patchSums = new Float64Array(rows * cols);
  for (let b = 0; b < batch; b++) {
    let sum = 0;
    let vivid = 0;
    patchSums.fill(0);
    for (let y = 0; y < height; y++) {
      const patchRow = Math.floor(y / patch);
      for (let x = 0; x < width; x++) {
        const k = ((b * height + y) * width + x) * 3;
        const r = px[k]!;
        const g = px[k + 1]!;
        const bl = px[k + 2]!;
        const c = (r > g ? (r > bl ? r : bl) : g > bl ? g : bl) - (r < g ? (r < bl ? r : bl) : g < bl ? g : bl);
        sum += c;
        if (c > VIVID_CHROMA) vivid++;
        const patchCol = Math.floor(x / patch);
        if (patchRow < rows && patchCol < cols) patchSums[patchRow * cols + patchCol]! += c;
      }
    }
    out[b * 3] = sum / (height * width);
    out[b * 3 + 1] = vivid / (height * width);
    let most = 0;
    for (const p of patchSums) most = Math.max(most, p);
    out[b * 3 + 2] = most / (patch * patch);
  }
  return out;
}

/** Rows [n, a] and [n, b] side by side: [n, a + b]. */
function sideBySide(left: Float32Array, right: Float32Array, n: number): Float32Array {
  const [a, b] = [left.length / n, right.length / n];
  const out = new Float32Array(n * (a + b));
  for (let i = 0; i < n; i++) {
    out.set(left.subarray(i * a, (i + 1) * a), i * (a + b));
    out.set(right.subarray(i * b, (i + 1) * b), i * (a + b) + a);
  }
  return out;
}

/**
 * images [batch, size, size, 3] in [0, 1] → the recipe's feature vectors [batch, dims], one row
 * per image, as float32 values row-major.
 */
export function familiarityFeatures(encoder: Encoder, images: tf.Tensor4D, recipe: FeatureRecipe): Float32Array {
  const rows = tf.tidy(() => {
    if (recipe === 'feature-mean') {
      const features = encoder.apply(images);
      return features.rank === 3 ? tf.mean(features, 1) : features; // [batch, featureSize]
    }
    if (recipe === 'first-block-moments' || recipe === 'first-block-moments-chroma')
      return moments(encoder.convMaps(images, false, 1)[0]!); // [batch, 2·channels]
    return tf.concat(encoder.convMaps(images).map(moments), 1); // [batch, Σ 2·channels]
  });
  let values: Float32Array;
  try {
    values = rows.dataSync() as Float32Array;
  } finally {
    rows.dispose();
  }
  // [batch, 2·channels + 3]: the chroma statistics after the moments.
  return recipe === 'first-block-moments-chroma'
    ? sideBySide(values, chromaStatistics(images), images.shape[0])
    : values;
}

/** The length of the recipe's vector for `encoder`, found by running it on one blank image. */
export function familiarityDims(encoder: Encoder, recipe: FeatureRecipe): number {
  const size = encoder.config.imageSize;
  const blank = tf.zeros([1, size, size, 3]) as tf.Tensor4D;
  try {
    return familiarityFeatures(encoder, blank, recipe).length;
  } finally {
    blank.dispose();
  }
}
