/**
 * The encoder's block, maxPool(relu(conv(x) + bias)), forward and backward in native passes:
 * captioner's own kernels, run by ../fused.ts's `convReluMaxPool`.
 *
 *   CaptionerConvReluMaxPool      {x, filter, bias} → [pooled, y = relu(conv(x) + bias)]
 *   CaptionerMaxPoolReluBiasGrad  {dpooled, y} → [da, dbias]: the gradient of the block's
 *                                 pre-activation a = conv(x) + bias and of its bias
 *
 * The backward pass is one pass over y: each pooling window's gradient goes to its argmax when
 * that is positive (MaxPoolGrad, then ReLU's Step·Multiply) and is summed per channel (the
 * bias's Sum), for windows that do not overlap. The convolution's own gradients are
 * Conv2DBackpropInput and Conv2DBackpropFilter of `da`.
 *
 * attrs: `strides`, `pad` (the convolution's), `poolSize`, `poolStrides`, `poolPad`.
 */
import { opCode, type NativeAddon } from './addon.ts';
import { convGeometry, float32Kernel, size, type NativeKernels } from './common.ts';
import { convInfo } from './conv.ts';
import { CONV_RELU_MAX_POOL, MAX_POOL_RELU_BIAS_GRAD, blockPoolInfo, windowsDisjoint } from '../fused-kernels.ts';

export { CONV_RELU_MAX_POOL, MAX_POOL_RELU_BIAS_GRAD, blockPoolInfo, windowsDisjoint };

const RELU = opCode('activation', 'relu');

export function convBlockKernels(lib: NativeAddon): NativeKernels {
  return {
    [CONV_RELU_MAX_POOL]: float32Kernel(['x', 'filter', 'bias'], ({ backend, inputs, values, attrs }) => {
      const { x, filter, bias } = inputs;
      if (x.shape.length !== 4 || filter.shape.length !== 4)
        throw new Error(`${CONV_RELU_MAX_POOL}: x [${x.shape}] and filter [${filter.shape}] must be rank 4`);
      const info = convInfo(x.shape, filter.shape, attrs, 1);
      if (bias.shape.join() !== String(info.outChannels))
        throw new Error(`${CONV_RELU_MAX_POOL}: bias [${bias.shape}] is not [${info.outChannels}]`);
      const y = new Float32Array(size(info.outShape));
      lib.conv2d(values.x, values.filter, y, convGeometry(info), values.bias, info.outChannels, RELU, 0);
      const pool = blockPoolInfo(info.outShape, attrs);
      const pooled = new Float32Array(size(pool.outShape));
      lib.maxPool(y, pooled, convGeometry(pool));
      return [
        backend.makeTensorInfo(pool.outShape.slice(), 'float32', pooled),
        backend.makeTensorInfo(info.outShape.slice(), 'float32', y),
      ];
    }),
    [MAX_POOL_RELU_BIAS_GRAD]: float32Kernel(['dpooled', 'y'], ({ backend, inputs, values, attrs }) => {
      const { dpooled, y } = inputs;
      if (y.shape.length !== 4) throw new Error(`${MAX_POOL_RELU_BIAS_GRAD}: y [${y.shape}] must be rank 4`);
      const pool = blockPoolInfo(y.shape, attrs);
      if (pool.outShape.join() !== dpooled.shape.join() || !windowsDisjoint(pool))
        throw new Error(
          `${MAX_POOL_RELU_BIAS_GRAD}: dpooled [${dpooled.shape}] is not the pooling of y [${y.shape}] by disjoint windows`,
        );
      const channels = y.shape[3]!;
      const da = new Float32Array(size(y.shape));
      const dbias = new Float32Array(channels);
      lib.maxPoolReluBiasGrad(values.dpooled, values.y, da, dbias, convGeometry(pool));
      return [
        backend.makeTensorInfo(y.shape.slice(), 'float32', da),
        backend.makeTensorInfo([channels], 'float32', dbias),
      ];
    }),
  };
}
