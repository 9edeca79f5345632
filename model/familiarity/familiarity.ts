/**
 * Familiarity: how much an image looks like the images a model was trained on, so that a
 * caption of something foreign to it (a photograph shown to a model of the shapes world) can be
 * flagged as unreliable. A density model of pooled encoder features and colour statistics
 * (model/familiarity/features.ts) scores each image by its Mahalanobis distance to the training
 * images' features (Lee et al. 2018; model/familiarity/gaussian.ts); a threshold chosen on the
 * validation split (model/familiarity/calibrate.ts) says which scores are familiar.
 */
import type * as tf from '@tensorflow/tfjs';
import type { Encoder } from '../nn/encoder.ts';
import { familiarityFeatures } from './features.ts';
import { mahalanobis } from './gaussian.ts';
import type { FamiliarityParams } from './format.ts';

/** What every caption of a calibrated model reports. */
export interface Familiarity {
  /** The image's Mahalanobis distance to the training images' features: the higher, the stranger. */
  score: number;
  /** The calibrated threshold: at most this is familiar. */
  threshold: number;
  /** score ≤ threshold. */
  familiar: boolean;
}

/** The familiarity of a score under `threshold`. */
export function judge(score: number, threshold: number): Familiarity {
  return { score, threshold, familiar: score <= threshold };
}

/** A fitted familiarity model, ready to score images. */
export class FamiliarityModel {
  constructor(readonly params: FamiliarityParams) {}

  /** Scores of feature rows ([n, dims] row-major, from `familiarityFeatures` with the same recipe). */
  scoreFeatures(rows: Float32Array): number[] {
    const { dims, means, whitening } = this.params;
    if (rows.length % dims !== 0) throw new Error(`familiarity: ${rows.length} values are not rows of ${dims}`);
    return Array.from({ length: rows.length / dims }, (_, i) => mahalanobis(rows, i, means, whitening, dims));
  }

  /**
   * The familiarity of each image of `images` [batch, size, size, 3] in [0, 1], under the
   * encoder it was fitted on. Runs the encoder's convolutions once more (a fraction of a
   * caption's decoding); holds no tensor after it returns.
   */
  assess(encoder: Encoder, images: tf.Tensor4D): Familiarity[] {
    const rows = familiarityFeatures(encoder, images, this.params.features);
    if (rows.length !== images.shape[0] * this.params.dims) {
      throw new Error(
        `familiarity: the encoder gives ${rows.length / images.shape[0]} features per image, the calibration was fitted on ${this.params.dims}: recalibrate (captioner calibrate)`,
      );
    }
    return this.scoreFeatures(rows).map((s) => judge(s, this.params.threshold));
  }
}
