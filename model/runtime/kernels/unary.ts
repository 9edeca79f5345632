/**
 * Elementwise unary ops: every op of native/ops.json's "unary" group (Relu, Step, Tanh, Sigmoid,
 * Exp, Sqrt, Square, Neg, Log) is registered under its TF.js kernel name.
 */
import { OP_TABLE, type NativeAddon } from './addon.ts';
import { float32Kernel, type NativeKernels } from './common.ts';

/** Every unary op of native/ops.json, by its TF.js kernel name; `alpha` is Step's value at x ≤ 0. */
export function unaryKernels(lib: NativeAddon): NativeKernels {
  return Object.fromEntries(
    OP_TABLE.unary.map((name, op) => [
      name,
      float32Kernel(['x'], ({ backend, inputs: { x }, values, attrs }) => {
        const out = new Float32Array(values.x.length);
        lib.unary(op, values.x, out, (attrs.alpha as number | undefined) ?? 0);
        return backend.makeTensorInfo(x.shape.slice(), 'float32', out);
      }),
    ]),
  );
}
