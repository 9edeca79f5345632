/** Max pooling (NHWC) and its gradient: MaxPool, MaxPoolGrad. */
import * as tf from '@tensorflow/tfjs';
import type { NativeAddon } from './addon.ts';
import { convGeometry, float32Kernel, size, type NativeKernels } from './common.ts';

/** The pooling geometry of a rank-4 input under the kernel's attributes. */
export function poolInfo(xShape: readonly number[], attrs: Record<string, unknown>): tf.backend_util.Conv2DInfo {
  return tf.backend_util.computePool2DInfo(
    xShape as [number, number, number, number],
    attrs.filterSize as [number, number],
    attrs.strides as [number, number],
    1,
    attrs.pad as 'same',
    attrs.dimRoundingMode as 'floor' | undefined,
  );
}

export function poolingKernels(lib: NativeAddon): NativeKernels {
  return {
    MaxPool: float32Kernel(['x'], ({ backend, inputs: { x }, values, attrs }) => {
      if (x.shape.length !== 4) return null;
      const info = poolInfo(x.shape, attrs);
      const out = new Float32Array(size(info.outShape));
      lib.maxPool(values.x, out, convGeometry(info));
      return backend.makeTensorInfo(info.outShape, 'float32', out);
    }),
    // Each window's dy goes to its argmax in the input.
    MaxPoolGrad: float32Kernel(['dy', 'input'], ({ backend, inputs: { dy, input }, values, attrs }) => {
      if (input.shape.length !== 4) return null;
      const info = poolInfo(input.shape, attrs);
      if (info.outShape.join() !== dy.shape.join()) return null;
      const dx = new Float32Array(size(input.shape));
      lib.maxPoolGrad(values.dy, values.input, dx, convGeometry(info));
      return backend.makeTensorInfo(input.shape.slice(), 'float32', dx);
    }),
  };
}
