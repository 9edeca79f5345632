/**
 * The native kernels' other path: with CAPTIONER_AVX512=0 (as on a CPU without AVX-512) the
 * convolution tiles, `gemm` and the recurrent backward pass multiply through OpenBLAS. The same
 * checks against the JavaScript kernels as native.test.ts and fused.test.ts, in a child process
 * (the choice is made once per process).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';

const here = (file: string) => fileURLToPath(new URL(file, import.meta.url));

test('with CAPTIONER_AVX512=0 every native kernel still matches the JavaScript kernels', () => {
  const run = spawnSync(
    process.execPath,
    ['--import', 'tsx', '--test', '--test-reporter=dot', here('./native.test.ts'), here('./fused.test.ts')],
    // Without NODE_TEST_CONTEXT, which makes a nested runner report to this one instead of printing.
    { env: { ...process.env, NODE_TEST_CONTEXT: undefined, CAPTIONER_AVX512: '0' }, encoding: 'utf8' },
  );
  assert.equal(run.status, 0, `${run.stdout}\n${run.stderr}`);
  assert.match(run.stdout, /\./, 'the tests ran');
});
