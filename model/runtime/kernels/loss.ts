/**
 * The sequence loss's softmax cross-entropy and its gradient, each one native pass over the
 * logits (native/src/loss.cc); captioner's own kernels, run by ../fused.ts's
 * `softmaxCrossEntropy` for model/train/loss.ts.
 *
 *   CaptionerSoftmaxCrossEntropy      {logits [..., V], targets int32 [...]} → the loss (a scalar)
 *   CaptionerSoftmaxCrossEntropyGrad  {logits, targets, dy (a scalar)} → dlogits
 *
 * attrs: `pad` (a target that adds nothing), `labelSmoothing` α, `scale` (the loss's factor,
 * 1/batch for maskedSequenceLoss).
 */
import type * as tf from '@tensorflow/tfjs';
import type { NativeAddon } from './addon.ts';
import { float32Values, size, type CpuBackend, type NativeKernels } from './common.ts';

import { SOFTMAX_CROSS_ENTROPY, SOFTMAX_CROSS_ENTROPY_GRAD } from '../fused-kernels.ts';

export { SOFTMAX_CROSS_ENTROPY, SOFTMAX_CROSS_ENTROPY_GRAD };

/** The logits' values and the targets' ids, checked: every id a column of the logits or the pad. */
function readInputs(
  kernel: string,
  backend: CpuBackend,
  inputs: Record<string, tf.TensorInfo | undefined>,
  pad: number,
): { logits: Float32Array; targets: Int32Array; vocab: number } {
  const { logits, targets } = inputs;
  const values = float32Values(backend, logits);
  const ids = targets ? backend.data.get(targets.dataId).values : null;
  if (!logits || !targets || !values || !(ids instanceof Int32Array))
    throw new Error(`${kernel}: expects float32 logits and int32 targets`);
  const vocab = logits.shape.at(-1)!;
  if (logits.shape.slice(0, -1).join() !== targets.shape.join())
    throw new Error(`${kernel}: logits [${logits.shape}] do not match targets [${targets.shape}]`);
  for (const id of ids)
    if (id !== pad && !(id >= 0 && id < vocab)) throw new Error(`${kernel}: target ${id} is outside [0, ${vocab})`);
  return { logits: values, targets: ids, vocab };
}

export function lossKernels(lib: NativeAddon): NativeKernels {
  return {
    [SOFTMAX_CROSS_ENTROPY]: ({ inputs, backend, attrs = {} }) => {
      const cpu = backend as CpuBackend;
      const pad = attrs.pad as number;
      const { logits, targets, vocab } = readInputs(SOFTMAX_CROSS_ENTROPY, cpu, inputs, pad);
      const loss = lib.softmaxCrossEntropy(
        logits,
        targets,
        vocab,
        pad,
        attrs.labelSmoothing as number,
        attrs.scale as number,
      );
      return cpu.makeTensorInfo([], 'float32', Float32Array.of(loss));
    },
    [SOFTMAX_CROSS_ENTROPY_GRAD]: ({ inputs, backend, attrs = {} }) => {
      const cpu = backend as CpuBackend;
      const pad = attrs.pad as number;
      const { logits, targets, vocab } = readInputs(SOFTMAX_CROSS_ENTROPY_GRAD, cpu, inputs, pad);
      const dy = float32Values(cpu, inputs.dy);
      if (!dy || dy.length !== 1) throw new Error(`${SOFTMAX_CROSS_ENTROPY_GRAD}: dy must be a float32 scalar`);
      const shape = inputs.logits!.shape;
      const dlogits = new Float32Array(size(shape));
      const scale = (attrs.scale as number) * dy[0]!;
      lib.softmaxCrossEntropyGrad(logits, targets, dlogits, vocab, pad, attrs.labelSmoothing as number, scale);
      return cpu.makeTensorInfo(shape.slice(), 'float32', dlogits);
    },
  };
}
