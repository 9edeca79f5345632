/**
 * What familiarity reads of an image: one vector of pooled encoder features per image, the
 * same for fitting (model/familiarity/calibrate.ts) and scoring (model/familiarity/familiarity.ts).
 *
 * Recipes, named in familiarity.json so that a calibration is always read with the features it
 * was fitted on:
 *   'first-block-moments'  the first conv block's output, each channel's mean and standard
 *                    deviation over the map: colour and local texture, which the later blocks of
 *                    a model trained on one world learn to ignore (a grey texture and an empty
 *                    shapes background look alike to the last block); cheap, a fraction of the
 *                    encoder's work. The default: docs/familiarity.md gives the comparison.
 *   'block-moments'  every conv block's output, each channel's mean and standard deviation over
 *                    the map (Lee et al. 2018's "feature ensemble": early blocks see colour and
 *                    texture that the last one has learned to ignore); a backbone: its one output
 *   'feature-mean'   the encoder's output features averaged over the grid's positions (the
 *                    vector itself without a grid): only what the decoder is handed
 */
import * as tf from '@tensorflow/tfjs';
import type { Encoder } from '../nn/encoder.ts';

export const FEATURE_RECIPES = ['first-block-moments', 'block-moments', 'feature-mean'] as const;
export type FeatureRecipe = (typeof FEATURE_RECIPES)[number];

/** The recipe a new calibration uses (docs/familiarity.md says how it was chosen). */
export const DEFAULT_FEATURE_RECIPE: FeatureRecipe = 'first-block-moments';

/** Mean and standard deviation of each channel over the spatial positions: [batch, h, w, c] → [batch, 2c]. */
function moments(map: tf.Tensor): tf.Tensor2D {
  if (map.rank === 2) return map as tf.Tensor2D; // a backbone that pools already
  const axes = map.rank === 4 ? [1, 2] : [1];
  const { mean, variance } = tf.moments(map, axes);
  return tf.concat([mean, tf.sqrt(variance)], 1) as tf.Tensor2D; // [batch, 2c]
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
    if (recipe === 'first-block-moments') return moments(encoder.convMaps(images, false, 1)[0]!); // [batch, 2·channels]
    return tf.concat(encoder.convMaps(images).map(moments), 1); // [batch, Σ 2·channels]
  });
  try {
    return rows.dataSync() as Float32Array;
  } finally {
    rows.dispose();
  }
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
