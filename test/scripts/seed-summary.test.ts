/**
 * scripts/seed-summary.ts on hand-made eval metrics: mean ± sample sd over the runs, exact match
 * by number of shapes, the median run by the first --median-by split with the next breaking its
 * ties, and a clear error for a run that lacks a split it ranks by or has no metrics.json.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { tempDirUntilExit } from '../helpers/temp-dir.ts';

const run = (args: string[]) =>
  promisify(execFile)(process.execPath, ['--import', 'tsx', 'scripts/seed-summary.ts', ...args]);

/** A metrics.json as `captioner eval` writes it, reduced to what the script reads. */
function metrics(splits: Record<string, { exact: number; cider: number; byObjects?: [number, number, number][] }>) {
  return {
    decoding: 'beam search, width 8',
    splits: Object.fromEntries(
      Object.entries(splits).map(([name, s]) => [
        name,
        {
          split: name,
          images: 100,
          scores: { 'BLEU-4': 0.8, 'CIDEr-D': s.cider },
          semantic: {
            exactRate: s.exact,
            f1: 0.99,
            byObjects: (s.byObjects ?? []).map(([objects, captions, exact]) => ({
              objects,
              captions,
              exact,
              rate: exact / captions,
            })),
          },
        },
      ]),
    ),
  };
}

async function evalDirs(work: string, runs: ReturnType<typeof metrics>[]): Promise<string[]> {
  return Promise.all(
    runs.map(async (m, i) => {
      const dir = join(work, `s${i + 1}`);
      await mkdir(dir, { recursive: true });
      await writeFile(join(dir, 'metrics.json'), JSON.stringify(m));
      return dir;
    }),
  );
}

test('seed-summary: mean ± sd per split and by shapes, and the median run with ties broken by the next split', async () => {
  const work = tempDirUntilExit('captioner-seed-summary-');
  // One run: exact match on sel and comp, sel's CIDEr-D, and sel's exact captions of 10 three-shape scenes.
  const seed = (sel: number, cider: number, threeShapes: number, comp: number) =>
    metrics({
      sel: {
        exact: sel,
        cider,
        byObjects: [
          [1, 10, 10],
          [3, 10, threeShapes],
        ],
      },
      comp: { exact: comp, cider: 3 },
    });
  const dirs = await evalDirs(work, [seed(0.9, 4, 6, 0.8), seed(0.96, 5, 8, 0.8), seed(0.99, 6, 10, 0.7)]);
  const json = join(work, 'summary.json');
  const { stdout } = await run(['--median-by', 'comp,sel', '--json', json, ...dirs]);
  // Ranked by comp: s3 (0.7) lowest; s1 and s2 tie on comp (0.8), sel puts s1 (0.9) below s2 (0.96).
  assert.match(stdout, /median: .*s1\n/);
  assert.match(
    stdout,
    /\| mean ± sd \(3 runs\) \| 100 \| 0\.800 ± 0\.000 \| 5\.000 ± 1\.000 \| 95\.0 % ± 4\.6 \| 0\.990 ± 0\.000 \| 100\.0 % ± 0\.0 \| – \| 80\.0 % ± 20\.0 \|/,
  );
  const summary = JSON.parse(await readFile(json, 'utf8'));
  assert.equal(summary.median, dirs[0]);
  assert.deepEqual(summary.decodings, ['beam search, width 8']);
  assert.equal(summary.splits.sel.runs[dirs[1]!]['exact, 3 shapes'], 0.8);
  assert.equal(summary.splits.sel.mean['exact, 2 shapes'], null);
  assert.ok(
    Math.abs(summary.splits.sel.mean.exact.sd - Math.sqrt(((0.9 - 0.95) ** 2 + 0.01 ** 2 + 0.04 ** 2) / 2)) < 1e-12,
  );
});

test('seed-summary: a run without a ranked split, or without metrics.json, is an error naming it', async () => {
  const work = tempDirUntilExit('captioner-seed-summary-');
  const dirs = await evalDirs(work, [
    metrics({ sel: { exact: 0.9, cider: 4 } }),
    metrics({ other: { exact: 0.9, cider: 4 } }),
  ]);
  await assert.rejects(run(['--median-by', 'sel', ...dirs]), (err: { code: number; stderr: string }) => {
    assert.equal(err.code, 2);
    assert.match(err.stderr, new RegExp(`${dirs[1]}/metrics\\.json: no exact match on split "sel"`));
    return true;
  });
  await assert.rejects(run([join(work, 'missing')]), (err: { code: number; stderr: string }) => {
    assert.equal(err.code, 2);
    assert.match(err.stderr, /missing\/metrics\.json: ENOENT/);
    return true;
  });
});
