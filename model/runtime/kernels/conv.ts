/**
 * 2-D convolutions (NHWC) and their gradients: Conv2D, FusedConv2D, Conv2DBackpropInput and
 * Conv2DBackpropFilter, as im2col + GEMM in the addon (Chellapilla et al. 2006). NCHW goes to
 * JavaScript.
 */
import * as tf from '@tensorflow/tfjs';
import type { NativeAddon } from './addon.ts';
import { convGeometry, float32Kernel, fusedEpilogue, size, type KernelCall, type NativeKernels } from './common.ts';

type Shape4 = [number, number, number, number];

/** The geometry of a convolution of `xShape` by `filterShape` under the kernel's attributes. */
export function convInfo(
  xShape: readonly number[],
  filterShape: readonly number[],
  attrs: Record<string, unknown>,
  dilations: [number, number] | number,
): tf.backend_util.Conv2DInfo {
  return tf.backend_util.computeConv2DInfo(
    xShape as Shape4,
    filterShape as Shape4,
    attrs.strides as [number, number],
    dilations,
    attrs.pad as 'same',
    attrs.dimRoundingMode as 'floor' | undefined,
  );
}

/** y = x ⊛ filter, with the fused op's bias and activation when `fused`. */
function conv2d(
  lib: NativeAddon,
  call: KernelCall<'x' | 'filter', Float32Array>,
  fused: boolean,
): tf.TensorInfo | null {
  const { x, filter } = call.inputs;
  if (call.attrs.dataFormat === 'NCHW') return null;
  const info = convInfo(x.shape, filter.shape, call.attrs, call.attrs.dilations as [number, number]);
  const epilogue = fused ? fusedEpilogue(call.backend, call.all, call.attrs, info.outChannels) : null;
  if (fused && !epilogue) return null;
  const out = new Float32Array(size(info.outShape));
  const { x: xv, filter: wv } = call.values;
  if (epilogue) {
    const { bias, biasSize, activation, alpha } = epilogue;
    lib.conv2d(xv, wv, out, convGeometry(info), bias, biasSize, activation, alpha);
  } else {
    lib.conv2d(xv, wv, out, convGeometry(info));
  }
  return call.backend.makeTensorInfo(info.outShape, 'float32', out);
}

/** dx from dy [batch, outH, outW, outC] and the filter (attrs.inputShape is x's shape). */
function backpropInput(lib: NativeAddon, call: KernelCall<'dy' | 'filter', Float32Array>): tf.TensorInfo | null {
  const { dy, filter } = call.inputs;
  if (call.attrs.dataFormat === 'NCHW') return null;
  const info = convInfo(call.attrs.inputShape as number[], filter.shape, call.attrs, 1);
  if (info.outShape.join() !== dy.shape.join()) return null;
  const dx = new Float32Array(size(info.inShape));
  lib.conv2dBackpropInput(call.values.dy, call.values.filter, dx, convGeometry(info));
  return call.backend.makeTensorInfo(info.inShape, 'float32', dx);
}

/** dW from x and dy (attrs.filterShape is the filter's shape). */
function backpropFilter(lib: NativeAddon, call: KernelCall<'x' | 'dy', Float32Array>): tf.TensorInfo | null {
  const { x, dy } = call.inputs;
  if (call.attrs.dataFormat === 'NCHW') return null;
  const info = convInfo(x.shape, call.attrs.filterShape as number[], call.attrs, 1);
  if (info.outShape.join() !== dy.shape.join()) return null;
  const dw = new Float32Array(size(info.filterShape));
  lib.conv2dBackpropFilter(call.values.x, call.values.dy, dw, convGeometry(info));
  return call.backend.makeTensorInfo(info.filterShape, 'float32', dw);
}

export function convKernels(lib: NativeAddon): NativeKernels {
  return {
    Conv2D: float32Kernel(['x', 'filter'], (call) => conv2d(lib, call, false)),
    FusedConv2D: float32Kernel(['x', 'filter'], (call) => conv2d(lib, call, true)),
    Conv2DBackpropInput: float32Kernel(['dy', 'filter'], (call) => backpropInput(lib, call)),
    Conv2DBackpropFilter: float32Kernel(['x', 'dy'], (call) => backpropFilter(lib, call)),
  };
}
