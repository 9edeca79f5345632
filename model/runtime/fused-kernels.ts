/**
 * The names of captioner's own fused kernels and the geometry ../fused.ts checks before running
 * one. Apart from ./kernels/ (which implement them on the native addon) so that ./fused.ts, and
 * through it the model, can ask whether a kernel is registered without importing the native
 * side: the browser bundle includes this file and never ./kernels/.
 */
import * as tf from '@tensorflow/tfjs';

export const LSTM_SEQUENCE = 'CaptionerLstmSequence';
export const LSTM_SEQUENCE_GRAD = 'CaptionerLstmSequenceGrad';
export const GRU_SEQUENCE = 'CaptionerGruSequence';
export const GRU_SEQUENCE_GRAD = 'CaptionerGruSequenceGrad';
export const CONV_RELU_MAX_POOL = 'CaptionerConvReluMaxPool';
export const MAX_POOL_RELU_BIAS_GRAD = 'CaptionerMaxPoolReluBiasGrad';
export const SOFTMAX_CROSS_ENTROPY = 'CaptionerSoftmaxCrossEntropy';
export const SOFTMAX_CROSS_ENTROPY_GRAD = 'CaptionerSoftmaxCrossEntropyGrad';
export const LOG_SOFTMAX = 'CaptionerLogSoftmax';

/** The pooling geometry of the conv block's y under its attributes (`poolSize`, `poolStrides`, `poolPad`). */
export function blockPoolInfo(yShape: readonly number[], attrs: Record<string, unknown>): tf.backend_util.Conv2DInfo {
  return tf.backend_util.computePool2DInfo(
    yShape as [number, number, number, number],
    attrs.poolSize as [number, number],
    attrs.poolStrides as [number, number],
    1,
    attrs.poolPad as 'same',
  );
}

/** Whether pooling windows of this geometry never overlap, so that each input has at most one. */
export function windowsDisjoint(info: tf.backend_util.Conv2DInfo): boolean {
  return info.strideHeight >= info.filterHeight && info.strideWidth >= info.filterWidth;
}
