/**
 * The encoder's block, maxPool(relu(conv(x) + bias)), forward and backward in native passes:
 * captioner's own kernels, run by ../fused.ts's `convReluMaxPool`.
 *
 *   CaptionerConvReluMaxPool      {x, filter, bias} → [pooled, argmax]: argmax (int32, pooled's
 *                                 shape) is the position in its window (ky · poolWidth + kx) of
 *                                 each pooled value, or −1 where that is not positive; empty
 *                                 (shape [0]) when attrs.argmax is false (no gradient to come)
 *   CaptionerMaxPoolReluBiasGrad  {dpooled, argmax} → [da, dbias]: the gradient of the block's
 *                                 pre-activation a = conv(x) + bias (attrs.yShape) and of its bias
 *
 * The forward pass pools each tile of the convolution while it is in cache, so relu(conv(x) +
 * bias) is never stored; the backward pass is one pass over argmax: each pooling window's
 * gradient goes to its argmax when that is positive (MaxPoolGrad, then ReLU's Step·Multiply)
 * and is summed per channel (the bias's Sum), for windows that do not overlap. The
 * convolution's own gradients are Conv2DBackpropInput and Conv2DBackpropFilter of `da`.
 *
 * attrs: `strides`, `pad` (the convolution's), `poolSize`, `poolStrides`, `poolPad`, and the
 * forward kernel's `argmax` (default true).
 */
import type { NativeAddon } from './addon.ts';
import { convGeometry, float32Kernel, numericKernel, size, type NativeKernels } from './common.ts';
import { convInfo } from './conv.ts';
import { CONV_RELU_MAX_POOL, MAX_POOL_RELU_BIAS_GRAD, blockPoolInfo, windowsDisjoint } from '../fused-kernels.ts';

export { CONV_RELU_MAX_POOL, MAX_POOL_RELU_BIAS_GRAD, blockPoolInfo, windowsDisjoint };

export function convBlockKernels(lib: NativeAddon): NativeKernels {
  return {
    [CONV_RELU_MAX_POOL]: float32Kernel(['x', 'filter', 'bias'], ({ backend, inputs, values, attrs }) => {
      const { x, filter, bias } = inputs;
      if (x.shape.length !== 4 || filter.shape.length !== 4)
        throw new Error(`${CONV_RELU_MAX_POOL}: x [${x.shape}] and filter [${filter.shape}] must be rank 4`);
      const info = convInfo(x.shape, filter.shape, attrs, 1);
      if (bias.shape.join() !== String(info.outChannels))
        throw new Error(`${CONV_RELU_MAX_POOL}: bias [${bias.shape}] is not [${info.outChannels}]`);
      const pool = blockPoolInfo(info.outShape, attrs);
      if (!windowsDisjoint(pool)) throw new Error(`${CONV_RELU_MAX_POOL}: the pooling windows overlap`);
      const pooled = new Float32Array(size(pool.outShape));
      const keep = attrs.argmax !== false;
      const argmax = new Int32Array(keep ? pooled.length : 0);
      lib.convReluMaxPool(values.x, values.filter, values.bias, pooled, argmax, convGeometry(info), convGeometry(pool));
      return [
        backend.makeTensorInfo(pool.outShape.slice(), 'float32', pooled),
        backend.makeTensorInfo(keep ? pool.outShape.slice() : [0], 'int32', argmax),
      ];
    }),
    [MAX_POOL_RELU_BIAS_GRAD]: numericKernel(['dpooled', 'argmax'], ({ backend, inputs, values, attrs }) => {
      const { dpooled, argmax } = inputs;
      const yShape = attrs.yShape as number[];
      if (!(values.dpooled instanceof Float32Array) || !(values.argmax instanceof Int32Array) || yShape.length !== 4)
        throw new Error(`${MAX_POOL_RELU_BIAS_GRAD}: expected float32 dpooled, int32 argmax and a rank-4 yShape`);
      const pool = blockPoolInfo(yShape, attrs);
      if (pool.outShape.join() !== dpooled.shape.join() || argmax.shape.join() !== dpooled.shape.join())
        throw new Error(
          `${MAX_POOL_RELU_BIAS_GRAD}: dpooled [${dpooled.shape}] and argmax [${argmax.shape}] are not the pooling of [${yShape}]`,
        );
      const channels = yShape[3]!;
      const da = new Float32Array(size(yShape));
      const dbias = new Float32Array(channels);
      lib.maxPoolArgmaxGrad(values.dpooled, values.argmax, da, dbias, convGeometry(pool));
      return [
        backend.makeTensorInfo(yShape.slice(), 'float32', da),
        backend.makeTensorInfo([channels], 'float32', dbias),
      ];
    }),
  };
}
