import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BackendError, BACKENDS, activeBackend, selectBackend } from '../../../model/runtime/backend.ts';

test('the default backend is the first that works, and one log line names it', async () => {
  const lines: string[] = [];
  const name = await selectBackend(undefined, (l) => lines.push(l));
  assert.ok(BACKENDS.includes(name));
  assert.equal(activeBackend(), name);
  assert.ok(lines.length <= 1);
});

test('forcing an unknown or uninstalled backend fails with a message naming it', async () => {
  await assert.rejects(
    selectBackend('tpu'),
    (e: unknown) =>
      e instanceof BackendError && /unknown backend "tpu"; expected one of node-gpu, node, cpu/.test(e.message),
  );
  let nodeInstalled = true;
  try {
    await import('@tensorflow/tfjs-node' as string);
  } catch {
    nodeInstalled = false;
  }
  if (!nodeInstalled) {
    await assert.rejects(
      selectBackend('node'),
      /backend "node" is not available: @tensorflow\/tfjs-node is not installed/,
    );
    assert.notEqual(activeBackend(), 'node', 'a failed request leaves the working backend in place');
  }
  const prev = process.env.CAPTIONER_BACKEND;
  process.env.CAPTIONER_BACKEND = 'tpu';
  await assert.rejects(selectBackend(), /unknown backend "tpu"/);
  if (prev === undefined) delete process.env.CAPTIONER_BACKEND;
  else process.env.CAPTIONER_BACKEND = prev;
});
