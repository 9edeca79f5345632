/**
 * Recurrent cells over a whole sequence, forward and backward, each one native call
 * (native/src/recurrent.cc): captioner's own kernels, which TF.js does not have. The ops that
 * run them and their gradients are in ../fused.ts; the input projections arrive computed.
 *
 *   CaptionerLstmSequence      {xw [B, T, 4H], h0, c0 [B, H], recurrent [H, 4H]} → [hs, cs, gates]
 *   CaptionerLstmSequenceGrad  {dhs, dcs, gates, cs, hs, h0, c0, recurrent} → [dxw, dh0, dc0, dRecurrent]
 *   CaptionerGruSequence       {xw [B, T, 3H], h0 [B, H], recurrent [H, 3H]} → [hs, gates, hn]
 *   CaptionerGruSequenceGrad   {dhs, gates, hn, hs, h0, recurrent} → [dxw, dh0, dRecurrent]
 *
 * xw [B, 4H] (or [B, 3H]) is one step (a decoding step): its sequences are [B, ·] as well, so
 * that a step needs no reshapes around the kernel.
 */
import type * as tf from '@tensorflow/tfjs';
import type { NativeAddon } from './addon.ts';
import { float32Kernel, type NativeKernels } from './common.ts';

import { GRU_SEQUENCE, GRU_SEQUENCE_GRAD, LSTM_SEQUENCE, LSTM_SEQUENCE_GRAD } from '../fused-kernels.ts';

export { GRU_SEQUENCE, GRU_SEQUENCE_GRAD, LSTM_SEQUENCE, LSTM_SEQUENCE_GRAD };

/**
 * The sizes of a sequence kernel's call: batch, steps and hidden from xw [batch, steps,
 * gates·hidden] (or [batch, gates·hidden]: one step, whose sequences are [batch, ·] too) and the
 * recurrent matrix [hidden, gates·hidden]; and `seq(width)`, the shape of a sequence of width
 * values a step in the caller's layout.
 */
function sequenceShape(
  xw: readonly number[],
  recurrent: readonly number[],
  gates: number,
): { B: number; T: number; H: number; seq: (width: number) => number[] } {
  const oneStep = xw.length === 2;
  const [batch, steps, width] = oneStep ? [xw[0], 1, xw[1]] : xw;
  const [hidden, recurrentWidth] = recurrent;
  if ((xw.length !== 3 && !oneStep) || recurrent.length !== 2 || width !== gates * hidden! || recurrentWidth !== width)
    throw new Error(
      `recurrent kernel: xw [${xw}] and recurrent [${recurrent}] are not [B, T, ${gates}H] (or [B, ${gates}H]) and [H, ${gates}H]`,
    );
  const [B, T, H] = [batch!, steps!, hidden!];
  return { B, T, H, seq: (w) => (oneStep ? [B, w] : [B, T, w]) };
}

/** Throws unless each named input has its expected shape: the native code trusts the sizes. */
function expectShapes(kernel: string, inputs: Record<string, tf.TensorInfo>, shapes: Record<string, number[]>): void {
  for (const [name, shape] of Object.entries(shapes)) {
    const got = inputs[name]!.shape;
    if (got.join() !== shape.join()) throw new Error(`${kernel}: ${name} is [${got}], expected [${shape}]`);
  }
}

export function recurrentKernels(lib: NativeAddon): NativeKernels {
  return {
    [LSTM_SEQUENCE]: float32Kernel(['xw', 'h0', 'c0', 'recurrent'], ({ backend, inputs, values }) => {
      const { B, T, H, seq } = sequenceShape(inputs.xw.shape, inputs.recurrent.shape, 4);
      expectShapes(LSTM_SEQUENCE, inputs, { h0: [B, H], c0: [B, H] });
      const hs = new Float32Array(B * T * H);
      const cs = new Float32Array(B * T * H);
      const gates = new Float32Array(B * T * 4 * H);
      lib.lstmSequence(values.xw, values.h0, values.c0, values.recurrent, hs, cs, gates, B, T, H);
      return [
        backend.makeTensorInfo(seq(H), 'float32', hs),
        backend.makeTensorInfo(seq(H), 'float32', cs),
        backend.makeTensorInfo(seq(4 * H), 'float32', gates),
      ];
    }),
    [LSTM_SEQUENCE_GRAD]: float32Kernel(
      ['dhs', 'dcs', 'gates', 'cs', 'hs', 'h0', 'c0', 'recurrent'],
      ({ backend, inputs, values: v }) => {
        const { B, T, H, seq } = sequenceShape(inputs.gates.shape, inputs.recurrent.shape, 4);
        const hidden = seq(H);
        expectShapes(LSTM_SEQUENCE_GRAD, inputs, {
          dhs: hidden,
          dcs: hidden,
          cs: hidden,
          hs: hidden,
          h0: [B, H],
          c0: [B, H],
        });
        const dxw = new Float32Array(B * T * 4 * H);
        const dh0 = new Float32Array(B * H);
        const dc0 = new Float32Array(B * H);
        const dRecurrent = new Float32Array(H * 4 * H);
        lib.lstmSequenceGrad(
          v.dhs,
          v.dcs,
          v.gates,
          v.cs,
          v.hs,
          v.h0,
          v.c0,
          v.recurrent,
          dxw,
          dh0,
          dc0,
          dRecurrent,
          B,
          T,
          H,
        );
        return [
          backend.makeTensorInfo(seq(4 * H), 'float32', dxw),
          backend.makeTensorInfo([B, H], 'float32', dh0),
          backend.makeTensorInfo([B, H], 'float32', dc0),
          backend.makeTensorInfo([H, 4 * H], 'float32', dRecurrent),
        ];
      },
    ),
    [GRU_SEQUENCE]: float32Kernel(['xw', 'h0', 'recurrent'], ({ backend, inputs, values }) => {
      const { B, T, H, seq } = sequenceShape(inputs.xw.shape, inputs.recurrent.shape, 3);
      expectShapes(GRU_SEQUENCE, inputs, { h0: [B, H] });
      const hs = new Float32Array(B * T * H);
      const gates = new Float32Array(B * T * 3 * H);
      const hn = new Float32Array(B * T * H);
      lib.gruSequence(values.xw, values.h0, values.recurrent, hs, gates, hn, B, T, H);
      return [
        backend.makeTensorInfo(seq(H), 'float32', hs),
        backend.makeTensorInfo(seq(3 * H), 'float32', gates),
        backend.makeTensorInfo(seq(H), 'float32', hn),
      ];
    }),
    [GRU_SEQUENCE_GRAD]: float32Kernel(
      ['dhs', 'gates', 'hn', 'hs', 'h0', 'recurrent'],
      ({ backend, inputs, values: v }) => {
        const { B, T, H, seq } = sequenceShape(inputs.gates.shape, inputs.recurrent.shape, 3);
        const hidden = seq(H);
        expectShapes(GRU_SEQUENCE_GRAD, inputs, { dhs: hidden, hn: hidden, hs: hidden, h0: [B, H] });
        const dxw = new Float32Array(B * T * 3 * H);
        const dh0 = new Float32Array(B * H);
        const dRecurrent = new Float32Array(H * 3 * H);
        lib.gruSequenceGrad(v.dhs, v.gates, v.hn, v.hs, v.h0, v.recurrent, dxw, dh0, dRecurrent, B, T, H);
        return [
          backend.makeTensorInfo(seq(3 * H), 'float32', dxw),
          backend.makeTensorInfo([B, H], 'float32', dh0),
          backend.makeTensorInfo([H, 3 * H], 'float32', dRecurrent),
        ];
      },
    ),
  };
}
