/**
 * Recipes of phases (model/train/recipe.ts, phased.ts): the phases run in order, each from the
 * last one's weights; a stop in phase 2 resumes phase 2 exactly without redoing phase 1; a bad
 * field anywhere in the recipe is refused before anything trains, naming the file, phase and key.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { readCheckpointConfig } from '../../../model/io/checkpoint.ts';
import { PHASES_FILE, readMetricsLog } from '../../../model/io/metrics-log.ts';
import { loadModel } from '../../../model/io/load.ts';
import { phaseSettings, trainPhases } from '../../../model/train/phased.ts';
import { parseRecipe, phaseSeed } from '../../../model/train/recipe.ts';
import { ConfigError } from '../../../model/util/config.ts';
import { runCli } from '../../helpers/cli.ts';
import { makeTinyDataset } from '../../helpers/tiny-data.ts';
import { TINY_TRAINING } from '../../helpers/tiny-model.ts';
import { setupBackend } from '../../helpers/tf.ts';

await setupBackend();

let data: string;
let work: string;
before(async () => {
  data = (await makeTinyDataset()).dir;
  work = await mkdtemp(join(tmpdir(), 'captioner-phases-'));
});
after(async () => {
  await rm(data, { recursive: true, force: true });
  await rm(work, { recursive: true, force: true });
});

/** The tiny model's settings for a recipe: one step per epoch, a log line per step, validation at the end only. */
const BASE = { ...TINY_TRAINING, logEvery: 1, validateEvery: 1000, familiarityImages: 0 };

function flags(out: string, extra: Record<string, unknown> = {}) {
  return { source: 'flags', values: { data, out, ...extra } };
}

const steps = async (file: string) => (await readMetricsLog(file)).filter((r) => r.type === 'step').map((r) => r.step);

test('two phases run in order, the second from the first one’s last weights; the model and its logs land in OUT', async () => {
  const recipe = parseRecipe(
    {
      ...BASE,
      seed: 4,
      decoding: { strategy: 'beam', beamWidth: 2 },
      phases: [
        { name: 'first', epochs: 12 },
        // A learning rate of 0: the second phase leaves the weights it starts from exactly as they are.
        { name: 'second', epochs: 3, learningRate: 0 },
      ],
    },
    'recipe.json',
  );
  const out = join(work, 'two');
  const result = await trainPhases(recipe, flags(out));
  assert.equal(result.stopped, false);
  assert.deepEqual(
    result.phases.map((p) => [p.name, p.steps]),
    [
      ['first', 12],
      ['second', 3],
    ],
  );

  const first = await readCheckpointConfig(join(out, 'phases/1-first'), 'latest');
  const second = await readCheckpointConfig(join(out, 'phases/2-second'), 'latest');
  assert.equal(second.config.train?.initFrom, first.dir, 'phase 2 starts from phase 1’s last checkpoint');
  assert.equal(first.config.train?.seed, 4, 'phase 1 has the run’s seed');
  assert.equal(second.config.train?.seed, phaseSeed(4, 1));
  assert.equal(second.config.train?.learningRate, 0, 'the phase’s own settings override the top level');
  assert.deepEqual(
    await readFile(join(out, 'weights.bin')),
    await readFile(join(first.dir, 'weights.bin')),
    'the model is phase 1’s weights, untouched by a phase at learning rate 0',
  );
  assert.deepEqual(
    await steps(join(out, 'metrics-stage1.jsonl')),
    [...Array(12).keys()].map((i) => i + 1),
  );
  assert.deepEqual(await steps(join(out, 'metrics.jsonl')), [1, 2, 3]);
  await assert.rejects(stat(join(out, 'state.json')), /ENOENT/, 'no training state in the finished model');

  const loaded = await loadModel(out);
  try {
    assert.deepEqual(loaded.decoding, { strategy: 'beam', beamWidth: 2 }, 'the recipe’s decoding comes with the model');
  } finally {
    loaded.model.dispose();
  }
  const state = JSON.parse(await readFile(join(out, PHASES_FILE), 'utf8')) as { complete: boolean };
  assert.equal(state.complete, true);
});

test('a run stopped in phase 2 resumes phase 2 where it stopped, skips phase 1, and ends as an uninterrupted run', async () => {
  const recipe = parseRecipe(
    {
      ...BASE,
      phases: [
        { name: 'a', epochs: 5 },
        { name: 'b', epochs: 6, learningRate: 0.001, labelSmoothing: 0.1 },
      ],
    },
    'recipe.json',
  );
  const whole = join(work, 'whole');
  await trainPhases(recipe, flags(whole));

  const cut = join(work, 'cut');
  let phase = -1;
  let step = 0;
  const stopped = await trainPhases(recipe, flags(cut), {
    phase: (i) => (phase = i),
    progress: (p) => (step = p.step),
    shouldStop: () => phase === 1 && step === 2,
  });
  assert.equal(stopped.stopped, true);
  assert.deepEqual(
    stopped.phases.map((p) => p.steps),
    [5, 2],
  );
  const phaseOne = join(cut, 'phases/1-a');
  const before = (await stat(join(phaseOne, 'checkpoint.json'))).mtimeMs;

  await assert.rejects(trainPhases(recipe, flags(cut)), (err: Error) => {
    assert.ok(err instanceof ConfigError);
    assert.match(err.message, /already holds a phased run; pass --resume/);
    return true;
  });
  // A run saved before a setting existed (here `optimizer`) goes on as if it had held the default.
  const statePath = join(cut, 'phases.json');
  const state = JSON.parse(await readFile(statePath, 'utf8')) as { phases: { settings: Record<string, unknown> }[] };
  for (const p of state.phases) delete p.settings.optimizer;
  await writeFile(statePath, JSON.stringify(state));

  const how: string[] = [];
  const lines: string[] = [];
  const resumed = await trainPhases(recipe, flags(cut, { resume: true }), {
    phase: (i, _n, name, what) => how.push(`${i}:${name}:${what}`),
    log: (line) => lines.push(line),
  });
  assert.equal(resumed.stopped, false);
  assert.deepEqual(how, ['0:a:done', '1:b:resume']);
  assert.ok(
    lines.some((l) => /resuming .*phases\/2-b\/ckpt-000002 at step 2/.test(l)),
    lines.join('\n'),
  );
  assert.equal((await stat(join(phaseOne, 'checkpoint.json'))).mtimeMs, before, 'phase 1 was not trained again');
  assert.deepEqual(
    await readFile(join(cut, 'weights.bin')),
    await readFile(join(whole, 'weights.bin')),
    'the resumed run ends with the weights of the run never stopped',
  );
  assert.deepEqual(await steps(join(cut, 'metrics.jsonl')), [1, 2, 3, 4, 5, 6], 'phase 2’s log has each step once');
});

test('--seed overrides the recipe’s seed for every phase, and flags override every phase’s settings', () => {
  const recipe = parseRecipe(
    {
      ...BASE,
      seed: 4,
      phases: [
        { name: 'a', maxSteps: 10 },
        { name: 'b', maxSteps: 20, learningRate: 0.5 },
      ],
    },
    'recipe.json',
  );
  const { phases } = phaseSettings(recipe, flags('out', { seed: 9, maxSteps: 3 }));
  assert.deepEqual(
    phases.map((p) => [p.seed, p.maxSteps, p.learningRate]),
    [
      [9, 3, TINY_TRAINING.learningRate],
      [phaseSeed(9, 1), 3, 0.5],
    ],
  );
  assert.notEqual(phaseSeed(9, 1), phaseSeed(4, 1));
});

test('a bad field anywhere in a recipe is refused before anything trains, naming the file, the phase and the key', async () => {
  const refuse = (json: unknown, pattern: RegExp) =>
    assert.throws(
      () => parseRecipe(json, 'configs/x.json'),
      (err: Error) => err instanceof ConfigError && pattern.test(err.message),
    );
  refuse(
    { ...BASE, phases: [{ name: 'a' }, { name: 'b', learningRat: 1 }] },
    /configs\/x\.json: phases\[1\] \("b"\): unknown setting "learningRat"/,
  );
  refuse(
    { ...BASE, phases: [{ name: 'a', labelSmoothing: 2 }] },
    /phases\[0\] \("a"\): "labelSmoothing" must be <= 0\.99/,
  );
  refuse(
    { ...BASE, phases: [{ name: 'a', hiddenSize: 64 }] },
    /phases\[0\] \("a"\): "hiddenSize" is an architecture setting/,
  );
  refuse({ ...BASE, phases: [{ name: 'a', seed: 3 }] }, /phases\[0\] \("a"\): "seed" belongs to the whole run/);
  refuse({ ...BASE, phases: [{ name: 'a' }, { name: 'a' }] }, /phases\[1\]: "name" "a" is used by an earlier phase/);
  refuse({ ...BASE, phases: [{ name: 'A b' }] }, /phases\[0\]: "name" must be lower-case letters/);
  refuse({ ...BASE, phases: [] }, /"phases" must be a non-empty list/);
  refuse(
    { ...BASE, decoding: { strategy: 'beam', beamWidht: 8 } },
    /configs\/x\.json: "decoding": unknown setting "beamWidht"/,
  );
  refuse({ ...BASE, decoding: { strategy: 'greedy', beamWidth: 8 } }, /"decoding": "beamWidth" applies to beam search/);
  refuse({ ...BASE, batchSize: 0, phases: [{ name: 'a' }] }, /configs\/x\.json: "batchSize" must be >= 1/);

  // Through the CLI: exit 2, the message on stderr, nothing written.
  const file = join(work, 'bad.json');
  await writeFile(file, JSON.stringify({ ...BASE, phases: [{ name: 'warm' }, { name: 'tune', clipNrom: 1 }] }));
  const out = join(work, 'never');
  const r = await runCli(['train', '--config', file, '--data', data, '--out', out]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /bad\.json: phases\[1\] \("tune"\): unknown setting "clipNrom"/);
  await assert.rejects(stat(out), /ENOENT/);
});
