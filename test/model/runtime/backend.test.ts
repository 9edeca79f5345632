/**
 * Backend selection (model/runtime/backend.ts): the first backend of BACKENDS that loads is
 * chosen and named in one log line, and it is the backend TF.js computes on; a forced backend
 * that is unknown or not installed is refused by name.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { BackendError, BACKENDS, activeBackend, selectBackend } from '../../../model/runtime/backend.ts';
import { describeNative, nativeCallCounts, nativeStatus } from '../../../model/runtime/native.ts';

/** Whether an optional backend package loads in this installation. */
async function loads(pkg: string): Promise<boolean> {
  try {
    await import(pkg);
    return true;
  } catch {
    return false;
  }
}

test('the default backend (or CAPTIONER_BACKEND) is the first that loads; one log line names it, and TF.js computes on it', async () => {
  assert.equal(activeBackend(), null, 'nothing is chosen before selectBackend');
  const lines: string[] = [];
  const name = await selectBackend(undefined, (l) => lines.push(l));
  // Asked after the choice, so that loading a package here cannot sway it.
  const expected =
    process.env.CAPTIONER_BACKEND ??
    ((await loads('@tensorflow/tfjs-node-gpu')) ? 'node-gpu' : (await loads('@tensorflow/tfjs-node')) ? 'node' : 'cpu');
  assert.equal(name, expected);
  assert.equal(activeBackend(), name);
  assert.equal(tf.getBackend(), name === 'cpu' ? 'cpu' : 'tensorflow');
  assert.equal(lines.length, 1, `one line: ${JSON.stringify(lines)}`);
  const status = nativeStatus();
  const native = name === 'cpu' ? `; ${describeNative(status!)}` : '';
  assert.equal(lines[0], `backend: ${name} (TF.js ${tf.version.tfjs})${native}`);

  // It computes, and on the CPU backend with the addon built a matrix product runs natively.
  nativeCallCounts(true);
  const product = tf.matMul(
    tf.tensor2d([
      [1, 2],
      [3, 4],
    ]),
    tf.tensor2d([[5], [6]]),
  );
  assert.deepEqual(await product.array(), [[17], [39]]);
  if (name === 'cpu' && status!.enabled) assert.equal(nativeCallCounts().BatchMatMul, 1);

  // Later calls keep the choice and log nothing.
  assert.equal(await selectBackend(undefined, (l) => lines.push(l)), name);
  assert.equal(await selectBackend(name, (l) => lines.push(l)), name);
  assert.equal(lines.length, 1);
});

test('forcing an unknown or uninstalled backend fails with a message naming it, and keeps the working one', async () => {
  const working = await selectBackend();
  await assert.rejects(
    selectBackend('tpu'),
    (e: unknown) =>
      e instanceof BackendError && /unknown backend "tpu"; expected one of node-gpu, node, cpu/.test(e.message),
  );
  for (const [backend, pkg] of [
    ['node', '@tensorflow/tfjs-node'],
    ['node-gpu', '@tensorflow/tfjs-node-gpu'],
  ] as const) {
    if (await loads(pkg)) continue;
    await assert.rejects(
      selectBackend(backend),
      (e: unknown) =>
        e instanceof BackendError &&
        e.message.startsWith(`backend "${backend}" is not available: ${pkg} is not installed or cannot load (`),
    );
    assert.equal(activeBackend(), working, 'a failed request leaves the working backend in place');
  }
  const prev = process.env.CAPTIONER_BACKEND;
  process.env.CAPTIONER_BACKEND = 'tpu';
  try {
    await assert.rejects(selectBackend(), /unknown backend "tpu"/);
  } finally {
    if (prev === undefined) delete process.env.CAPTIONER_BACKEND;
    else process.env.CAPTIONER_BACKEND = prev;
  }
  assert.ok(BACKENDS.includes(working));
  assert.equal(activeBackend(), working);
});
