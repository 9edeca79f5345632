import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Adam, Sgd, clipByGlobalNorm, createOptimizer } from '../../../model/train/optim.ts';
import { setupBackend } from '../../helpers/tf.ts';

const tf = await setupBackend();

test('clipByGlobalNorm rescales by the global norm, keeps direction, and is off at 0', () => {
  const grads = { a: tf.tensor1d([3, 0]), b: tf.tensor1d([0, 4]) }; // global norm 5
  const clipped = clipByGlobalNorm(grads, 1);
  assert.equal(clipped.norm, 5);
  assert.deepEqual(Array.from(clipped.grads.a!.dataSync()), [0.6000000238418579, 0]);
  assert.deepEqual(Array.from(clipped.grads.b!.dataSync()), [0, 0.800000011920929]);
  const loose = clipByGlobalNorm(grads, 10);
  assert.deepEqual(Array.from(loose.grads.a!.dataSync()), [3, 0], 'below the limit: unchanged');
  const off = clipByGlobalNorm({ a: tf.tensor1d([300, 400]) }, 0);
  assert.equal(off.norm, 500);
  assert.deepEqual(Array.from(off.grads.a!.dataSync()), [300, 400]);
  tf.dispose([
    ...Object.values(grads),
    ...Object.values(clipped.grads),
    ...Object.values(loose.grads),
    ...Object.values(off.grads),
  ]);
});

test('Adam follows Kingma & Ba, Algorithm 1, step by step', () => {
  const theta = tf.variable(tf.tensor1d([1, -2]));
  const adam = new Adam({ beta1: 0.9, beta2: 0.999, epsilon: 1e-8 });
  const gradients = [
    [0.5, -1],
    [0.1, 2],
  ];
  let m = [0, 0];
  let v = [0, 0];
  let expected = [1, -2];
  gradients.forEach((g, t) => {
    const grad = tf.tensor1d(g);
    adam.apply({ theta }, { theta: grad }, 0.01);
    grad.dispose();
    m = m.map((mi, i) => 0.9 * mi + 0.1 * g[i]!);
    v = v.map((vi, i) => 0.999 * vi + 0.001 * g[i]! ** 2);
    expected = expected.map(
      (p, i) => p - (0.01 * (m[i]! / (1 - 0.9 ** (t + 1)))) / (Math.sqrt(v[i]! / (1 - 0.999 ** (t + 1))) + 1e-8),
    );
  });
  const got = theta.dataSync();
  expected.forEach((e, i) => assert.ok(Math.abs(got[i]! - e) < 1e-6, `θ[${i}] = ${got[i]}, expected ${e}`));
  assert.equal(adam.step, 2);
  adam.dispose();
  theta.dispose();
});

test('SGD steps θ ← θ − lr·scale·g, as long as the gradient is large, and refuses Adam state on resume', () => {
  const theta = tf.variable(tf.tensor1d([1, -2]));
  const sgd = createOptimizer('sgd');
  assert.ok(sgd instanceof Sgd);
  const big = tf.tensor1d([30, -40]); // norm 50: clipped to 5, the scale is 0.1
  sgd.apply({ theta }, { theta: big }, 0.5, 0.1);
  assert.deepEqual(Array.from(theta.dataSync()), [1 - 0.5 * 3, -2 + 0.5 * 4]);
  sgd.apply({ theta }, { theta: big }, 0.5); // unclipped, the step grows with the gradient (Adam's would not)
  assert.deepEqual(Array.from(theta.dataSync()), [-0.5 - 15, 0 + 20]);
  assert.equal(sgd.step, 2);
  assert.deepEqual(sgd.stateTensors(), {});
  const adam = new Adam();
  adam.apply({ theta }, { theta: big }, 0.1);
  assert.throws(() => sgd.restore(adam.stateTensors(), 1), /m\/theta is not SGD's/);
  sgd.restore({}, 7);
  assert.equal(sgd.step, 7);
  tf.dispose([theta, big]);
  adam.dispose();
});
