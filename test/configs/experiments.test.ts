/**
 * The RNN lab's experiment files (configs/experiments/): each is a valid experiment whose every arm
 * trains, is evaluated and reported: a smoke run of each, one seed and 2 steps a run, on a tiny
 * shapes data set (the files' own data sets and step counts are for the real runs, docs/lab.md).
 */
import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { generateShapes } from '../../data-scripts/shapes/generate.ts';
import { runExperiment } from '../../experiment/run.ts';
import type { ExperimentResults } from '../../experiment/results.ts';
import { readExperiment } from '../../experiment/spec.ts';
import { setupBackend } from '../helpers/tf.ts';

const DIR = join(import.meta.dirname, '../../configs/experiments');
const root = await mkdtemp(join(tmpdir(), 'captioner-lab-experiments-'));
const data = join(root, 'data');
after(() => rm(root, { recursive: true, force: true }));

before(async () => {
  await setupBackend();
  // Scenes of up to six objects: long enough captions for the cells experiment, short ones for the rest.
  await generateShapes({ out: data, count: 16, size: 16, seed: 9, maxShapes: 6, concurrency: 2 });
});

const files = (await readdir(DIR)).filter((f) => f.endsWith('.json')).sort();

test('the lab ships the padding, cells, clipping, structured and exposure experiments, 3 seeds each', async () => {
  assert.deepEqual(files, ['cells.json', 'clipping.json', 'exposure.json', 'padding.json', 'structured.json']);
  for (const file of files) {
    const spec = await readExperiment(join(DIR, file));
    assert.equal(`${spec.name}.json`, file);
    assert.ok(spec.seeds >= 3, `${file}: ${spec.seeds} seeds`);
    assert.match(spec.data, /^captioner data shapes /, `${file}: the command that makes its data`);
  }
});

for (const file of files) {
  test(`smoke run of ${file}: every arm trains, is evaluated and reported`, async () => {
    const out = join(root, file.replace('.json', ''));
    const outcome = await runExperiment({ experiment: join(DIR, file), data, out, seeds: 1, maxSteps: 2 });
    assert.deepEqual(outcome.failed, []);
    assert.equal(outcome.complete, true);
    const results = JSON.parse(await readFile(join(out, 'results.json'), 'utf8')) as ExperimentResults;
    const spec = await readExperiment(join(DIR, file));
    assert.deepEqual(
      results.runs.map((r) => [r.arm, r.status]),
      spec.arms.map((a) => [a.name, 'done']),
    );
    for (const r of results.runs) {
      // A recipe of phases (the exposure experiment's SCST after teacher forcing) takes 2 steps a phase.
      const phases = (spec.arms.find((a) => a.name === r.arm)!.overrides.phases as unknown[] | undefined)?.length ?? 1;
      assert.equal(r.figures.steps, 2 * phases, `${r.arm}: steps`);
    }
    if (spec.eval.exposure)
      for (const r of results.runs) assert.ok(r.figures.exposureGap?.length, `${r.arm}: the exposure gap measured`);
    const html = await readFile(join(out, 'report.html'), 'utf8');
    for (const arm of spec.arms) assert.ok(html.includes(arm.name), arm.name);
  });
}
