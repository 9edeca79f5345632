import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { filterLogits, sampleCategorical } from '../../../model/decode/sampling.ts';

const logitsOf = (probs: number[][]) => tf.tensor2d(probs.map((row) => row.map(Math.log)));

function kept(filtered: tf.Tensor2D): boolean[][] {
  return (filtered.arraySync() as number[][]).map((row) => row.map((x) => x > -Infinity));
}

test('filterLogits: temperature divides the logits', () => {
  const logits = tf.tensor2d([[1, 2, -4]]);
  const out = filterLogits(logits, { temperature: 0.5 });
  assert.deepEqual(Array.from(out.dataSync()), [2, 4, -8]);
  tf.dispose([logits, out]);
});

test('filterLogits: top-k keeps the k most probable words', () => {
  const logits = logitsOf([
    [0.1, 0.5, 0.15, 0.25],
    [0.4, 0.3, 0.2, 0.1],
  ]);
  const out = filterLogits(logits, { temperature: 1, topK: 2 });
  assert.deepEqual(kept(out), [
    [false, true, false, true],
    [true, true, false, false],
  ]);
  tf.dispose([logits, out]);
});

test('filterLogits: top-p keeps the shortest prefix whose mass reaches p, always the best word', () => {
  const logits = logitsOf([
    [0.2, 0.5, 0.3],
    [0.9, 0.05, 0.05],
  ]);
  const a = filterLogits(logits, { temperature: 1, topP: 0.6 }); // 0.5 < 0.6, then 0.8 ≥ 0.6
  assert.deepEqual(kept(a), [
    [false, true, true],
    [true, false, false],
  ]);
  const b = filterLogits(logits, { temperature: 1, topP: 0.01 });
  assert.deepEqual(kept(b), [
    [false, true, false],
    [true, false, false],
  ]);
  tf.dispose([logits, a, b]);
});

test('filterLogits rejects impossible settings', () => {
  const logits = tf.tensor2d([[0, 1]]);
  assert.throws(() => filterLogits(logits, { temperature: 0 }), /temperature/);
  assert.throws(() => filterLogits(logits, { temperature: 1, topK: 1.5 }), /topK/);
  assert.throws(() => filterLogits(logits, { temperature: 1, topP: 0 }), /topP/);
  logits.dispose();
});

test('sampleCategorical never draws a filtered-out word for interior uniforms', () => {
  const before = tf.memory().numTensors;
  const logits = logitsOf([[0.1, 0.5, 0.15, 0.25]]);
  const filtered = filterLogits(logits, { temperature: 1, topK: 2 });
  for (const u of [1e-6, 0.1, 0.3, 0.6, 0.66, 0.7, 0.99]) {
    const drawn = sampleCategorical(filtered, Float32Array.of(u));
    const id = drawn.dataSync()[0]!;
    assert.ok(id === 1 || id === 3, `u=${u} drew ${id}`);
    drawn.dispose();
  }
  tf.dispose([logits, filtered]);
  assert.equal(tf.memory().numTensors, before);
});
