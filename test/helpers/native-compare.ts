/**
 * Comparing the native kernels with the JavaScript ones they replace: run a function once on
 * each and compare the outputs. Inputs drawn with `rand` inside the function are the same on
 * both runs.
 */
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { Captioner, type ModelConfig } from '../../model/nn/captioner.ts';
import { SPECIAL_TOKENS, START, Vocabulary } from '../../model/text/vocab.ts';
import { maskedSequenceLoss } from '../../model/train/loss.ts';
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

/**
 * A small CNN + recurrent captioner (`variant` over a 16-pixel, two-block LSTM with pooled
 * features): its teacher-forced loss (label smoothing `smoothing`) and every weight's gradient
 * are equal with and without native kernels, and nothing is leaked.
 */
export async function assertCaptionerGradientsMatch(variant: Partial<ModelConfig>, smoothing: number): Promise<void> {
  const config: ModelConfig = {
    imageSize: 16,
    encoderChannels: [4, 8],
    featureSize: 12,
    encoderPooling: 'average',
    encoderInput: 'rgb',
    colourStream: 0,
    colourStreamPool: 1,
    backbone: null,
    backboneTrainable: false,
    embeddingSize: 6,
    hiddenSize: 10,
    cell: 'lstm',
    featureInput: 'init',
    attentionQuery: 'previous-state',
    decoderInput: 'previous-word',
    initState: 'linear',
    maxLength: 5,
    minWordCount: 1,
    ...variant,
  };
  const vocab = new Vocabulary([...SPECIAL_TOKENS, 'a', 'b', 'c', 'd', 'e', 'f']);
  const model = await Captioner.create(config, vocab, 3);
  const images = tf.tensor4d(
    Float32Array.from({ length: 3 * 16 * 16 * 3 }, () => testRng().next()),
    [3, 16, 16, 3],
  );
  const tokens = tf.tensor2d(
    [
      [START, 4, 5, 6, 2, 0],
      [START, 7, 7, 2, 0, 0],
      [START, 9, 8, 4, 5, 2],
    ],
    [3, 6],
    'int32',
  );
  const variables = model.trainableVariables();
  const before = tf.memory().numTensors;
  const { js, native } = onBoth(() => {
    const { value, grads } = tf.variableGrads(() => {
      const { logits } = model.forward(images, tokens, { teacherProbability: 1, feed: 'argmax' });
      return maskedSequenceLoss(logits, tokens.slice([0, 1], [3, 5]) as tf.Tensor2D, smoothing);
    }, variables);
    return [value, ...variables.map((v) => grads[v.name]!)];
  });
  assert.equal(tf.memory().numTensors, before, 'no tensor leaked');
  js.forEach((ref, i) => {
    const scale = Math.max(...ref.map(Math.abs), 1e-30);
    const diff = Math.max(...ref.map((r, j) => Math.abs(r - native[i]![j]!)));
    assert.ok(diff <= 1e-4 * scale, `gradient ${i === 0 ? 'loss' : variables[i - 1]!.name}: ${diff} vs ${scale}`);
  });
  tf.dispose([images, tokens]);
  model.dispose();
}
