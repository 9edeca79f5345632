/** The model page's reading of a model directory: one tick algorithm with the report, errors that surface. */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { formatTick, niceTicks } from '../../eval/charts.ts';
import { layoutChart, readModelCard } from '../../server/model-info.ts';

test("the model page's chart ticks are the evaluation report's (one implementation)", () => {
  const points = [0, 0.7, 1.4, 2.1].map((x) => ({ x, y: x * x }));
  const chart = layoutChart('loss', [{ label: 'train', points }], 'step')!;
  // Steps of 0.5 over [0, 2.1], as eval/charts.ts chooses them (Heckbert's loose labelling gave 0, 1, 2).
  assert.deepEqual(
    chart.xTicks.map((t) => t.label),
    niceTicks(0, 2.1).map(formatTick),
  );
  assert.deepEqual(
    chart.xTicks.map((t) => t.label),
    ['0', '0.5', '1', '1.5', '2'],
  );
});

test('the model card: none without a README.md, an error when README.md cannot be read', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'captioner-card-'));
  try {
    assert.equal(await readModelCard(dir), null);
    await writeFile(join(dir, 'README.md'), '# Shapes\n\nIt knows **shapes**.\n');
    assert.deepEqual(await readModelCard(dir), { title: 'Shapes', summary: 'It knows shapes.' });
    await rm(join(dir, 'README.md'));
    await mkdir(join(dir, 'README.md'));
    await assert.rejects(readModelCard(dir), { code: 'EISDIR' });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
