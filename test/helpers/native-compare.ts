/**
 * Comparing the native kernels with the JavaScript ones they replace: run a function once on
 * each and compare the outputs. Inputs drawn with `rand` inside the function are the same on
 * both runs.
 */
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { disableNativeKernels, enableNativeKernels, nativeCallCounts } from '../../model/runtime/native.ts';
import { Rng } from '../../model/util/rng.ts';

let rng = new Rng(12345);
let seed = 1;

/** The generator `rand` draws from (reseeded by each run of `onBoth`). */
export function testRng(): Rng {
  return rng;
}

/** A float32 tensor of `shape`, uniform in [−scale, scale). */
export function rand(shape: number[], scale = 1): tf.Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return tf.tensor(
    Float32Array.from({ length: n }, () => (rng.next() * 2 - 1) * scale),
    shape,
  );
}

/** Runs `fn` on the JS kernels, then on the native ones; returns both outputs as arrays. */
export function onBoth(fn: () => tf.Tensor | tf.Tensor[]): {
  js: Float32Array[];
  native: Float32Array[];
  shapes: number[][];
} {
  const run = () =>
    tf.tidy(() => {
      const out = fn();
      return (Array.isArray(out) ? out : [out]).map((t) => ({
        values: Float32Array.from(t.dataSync()),
        shape: t.shape,
      }));
    });
  // Inputs drawn inside `fn` must be the same on both runs.
  const runSeed = seed++;
  disableNativeKernels();
  rng = new Rng(runSeed);
  const js = run();
  assert.ok(enableNativeKernels().enabled, 'native kernels should be on');
  rng = new Rng(runSeed);
  const native = run();
  assert.deepEqual(
    native.map((o) => o.shape),
    js.map((o) => o.shape),
  );
  return { js: js.map((o) => o.values), native: native.map((o) => o.values), shapes: js.map((o) => o.shape) };
}

export function assertClose(fn: () => tf.Tensor | tf.Tensor[], label: string, tolerance = 1e-4): void {
  const { js, native } = onBoth(fn);
  js.forEach((ref, i) => {
    const got = native[i]!;
    let maxRef = 0;
    let maxDiff = 0;
    for (let j = 0; j < ref.length; j++) {
      if (!Number.isNaN(ref[j]!)) maxRef = Math.max(maxRef, Math.abs(ref[j]!));
      const d = Math.abs(got[j]! - ref[j]!);
      maxDiff = Number.isNaN(d)
        ? Number.isNaN(got[j]!) && Number.isNaN(ref[j]!)
          ? maxDiff
          : Infinity
        : Math.max(maxDiff, d);
    }
    assert.ok(
      maxDiff <= tolerance * Math.max(maxRef, 1e-30),
      `${label} [output ${i}]: max diff ${maxDiff} vs max |ref| ${maxRef}`,
    );
  });
}

/** Asserts that each kernel named served calls natively since the last check (no silent fallback). */
export function assertServedNatively(...kernels: string[]): void {
  const counts = nativeCallCounts(true);
  for (const k of kernels)
    assert.ok((counts[k] ?? 0) > 0, `${k} never ran natively (calls: ${JSON.stringify(counts)})`);
}
