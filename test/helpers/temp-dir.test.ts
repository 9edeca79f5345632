/** The test helpers' own temp dirs (tiny data sets and models) are removed when the test process exits. */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { test } from 'node:test';

test('a tiny data set made in a temp dir exists while the process runs and is gone after it exits', () => {
  const script = `
    import { existsSync } from 'node:fs';
    import { makeTinyDataset } from ${JSON.stringify(new URL('./tiny-data.ts', import.meta.url).href)};
    const { dir } = await makeTinyDataset();
    console.log(JSON.stringify({ dir, existed: existsSync(dir + '/manifest.json') }));
  `;
  const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    encoding: 'utf8',
  });
  const { dir, existed } = JSON.parse(out) as { dir: string; existed: boolean };
  assert.equal(existed, true);
  assert.equal(existsSync(dir), false, `${dir} outlived its process`);
});
