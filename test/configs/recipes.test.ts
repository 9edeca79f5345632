/**
 * The named recipes in configs/: each resolves against the training spec, names no path of the
 * machine it came from, and the bundled model's recipe reproduces the settings its checkpoint saved.
 */
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { isAbsolute, join, relative } from 'node:path';
import { test } from 'node:test';
import { readCheckpointConfig } from '../../model/io/checkpoint.ts';
import { ADDED_MODEL_KEYS } from '../../model/io/model-files.ts';
import { MODEL_KEYS, checkModelConfig } from '../../model/nn/captioner.ts';
import { TRAIN_DEFAULTS, TRAIN_SPEC, type TrainConfig } from '../../model/train/config.ts';
import { phaseSettings } from '../../model/train/phased.ts';
import { readRecipe } from '../../model/train/recipe.ts';
import { pick, resolveConfig, type ConfigLayer } from '../../model/util/config.ts';
import { readConfigFile } from '../../model/util/config-file.ts';

const ROOT = join(import.meta.dirname, '../..');
const CONFIGS = join(ROOT, 'configs');
const STAGES = [1, 2, 3, 4, 5].map((i) => join(CONFIGS, 'default-model-v1', `stage${i}.json`));

async function recipes(dir = CONFIGS): Promise<string[]> {
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    // configs/experiments/ holds experiment files, not recipes (test/configs/experiments.test.ts).
    if (e.isDirectory() && e.name !== 'experiments') out.push(...(await recipes(join(dir, e.name))));
    else if (e.name.endsWith('.json')) out.push(join(dir, e.name));
  }
  return out.sort();
}

function resolve(...layers: ConfigLayer[]): TrainConfig {
  return resolveConfig<TrainConfig>(TRAIN_DEFAULTS, TRAIN_SPEC, layers);
}

test('every recipe in configs/ resolves against the training spec and leaves --data and --out to the command line', async () => {
  const files = await recipes();
  assert.deepEqual(
    files.map((f) => relative(CONFIGS, f)),
    [1, 2, 3, 4, 5]
      .map((i) => `default-model-v1/stage${i}.json`)
      .concat('lab/small-every-step.json', 'lab/small.json', 'shapes.json', 'std.json'),
  );
  for (const file of files) {
    // A recipe of phases (model/train/recipe.ts): every phase over the top level resolves too.
    const recipe = await readRecipe(file);
    const layers = [recipe.base, ...(recipe.phases ?? []).map((p) => p.layer)];
    for (const phase of recipe.phases ?? []) checkModelConfig(resolve(recipe.base, phase.layer));
    checkModelConfig(resolve(recipe.base));
    for (const layer of layers) {
      assert.ok(!('data' in layer.values) && !('out' in layer.values), `${file} names no data set or model directory`);
      for (const [key, value] of Object.entries(layer.values)) {
        if (typeof value === 'string') assert.ok(!isAbsolute(value), `${file}: "${key}" is an absolute path`);
      }
    }
  }
});

test("the bundled model's stages chain: each starts from the last checkpoint of the one before", async () => {
  assert.equal(resolve(await readConfigFile(STAGES[0]!)).initFrom, '', 'stage 1 starts from scratch');
  for (let i = 1; i < STAGES.length; i++) {
    const before = resolve(await readConfigFile(STAGES[i - 1]!));
    const stage = resolve(await readConfigFile(STAGES[i]!));
    // Run as the card says: --out train/stageN, so stage N's last checkpoint is ckpt-<its maxSteps>.
    const last = `ckpt-${String(before.maxSteps).padStart(6, '0')}`;
    assert.equal(stage.initFrom, `train/stage${i}/${last}`, `stage ${i + 1} starts from stage ${i}`);
    assert.deepEqual(pick(stage, MODEL_KEYS), pick(before, MODEL_KEYS), 'the architecture stays');
  }
});

test('configs/shapes.json, run as the card runs it, resolves to the settings models/default was trained with', async () => {
  const saved = JSON.parse(await readFile(join(ROOT, 'models/default/config.json'), 'utf8')) as {
    model: Record<string, unknown>;
    train: Record<string, unknown>;
  };
  // The run's record (model/train/phased.ts): its recipe, seed, and every phase's settings.
  const run = JSON.parse(await readFile(join(ROOT, 'models/default/phases.json'), 'utf8')) as {
    recipe: string;
    seed: number;
    complete: boolean;
    phases: { name: string; dir: string; steps: number; settings: Record<string, unknown> }[];
  };
  assert.equal(run.recipe, 'configs/shapes.json');
  assert.ok(run.complete, 'every phase ran to its end');
  const recipe = await readRecipe(join(ROOT, run.recipe));
  const out = `train/shapes-s${run.seed}`;
  const flags: ConfigLayer = { source: 'flags', values: { data: 'data/shapes-v2', out, seed: run.seed } };
  const { phases } = phaseSettings(recipe, flags);
  assert.deepEqual(
    recipe.phases!.map((p) => p.name),
    run.phases.map((p) => p.name),
  );
  // Settings added to the trainer since then must be what it ran with: their defaults, or for an
  // architecture key whose default changed since, the value older checkpoints load with.
  const ranWith = { ...TRAIN_DEFAULTS, ...ADDED_MODEL_KEYS } as Record<string, unknown>;
  for (const [i, phase] of phases.entries()) {
    const config = phase as unknown as Record<string, unknown>;
    const recorded = run.phases[i]!.settings;
    for (const [key, value] of Object.entries(recorded))
      assert.deepEqual(config[key], value, `phase ${i + 1}: "${key}"`);
    for (const key of Object.keys(config).filter((k) => !(k in recorded) && !['out', 'initFrom', 'resume'].includes(k)))
      assert.deepEqual(config[key], ranWith[key], `phase ${i + 1}: "${key}" (added later)`);
  }
  // The model is the last phase's last checkpoint, started from the one before's: its config
  // holds the last phase's settings and those paths (repo-relative, as the card runs it).
  const [before, last] = run.phases.slice(-2) as [(typeof run.phases)[0], (typeof run.phases)[0]];
  const lastConfig = {
    ...phases.at(-1)!,
    out: `${out}/${last.dir}`,
    initFrom: `${out}/${before.dir}/ckpt-${String(before.steps).padStart(6, '0')}`,
  };
  for (const [key, value] of Object.entries(saved.train)) {
    if (key !== 'familiarityImages') assert.deepEqual((lastConfig as Record<string, unknown>)[key], value, `"${key}"`);
  }
  // The architecture as the checkpoint loads (keys added since it was saved at their old meaning).
  const { config: loaded } = await readCheckpointConfig(join(ROOT, 'models/default'));
  assert.deepEqual(pick(lastConfig as TrainConfig, MODEL_KEYS), loaded.model);
});
