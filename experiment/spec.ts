/**
 * An experiment file (EXPERIMENT.json, `captioner experiment run`): a base training recipe, named
 * arms that override its keys, how many seeds each arm runs and how its runs are evaluated. Read
 * and checked here, before anything runs: every arm's recipe must be a valid `captioner train`
 * recipe, and a mistake names the file and the field.
 */
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { TRAIN_DEFAULTS, TRAIN_SPEC, type TrainConfig } from '../model/train/config.ts';
import { parseRecipe } from '../model/train/recipe.ts';
import { ConfigError, resolveConfig } from '../model/util/config.ts';

/** How every run of an experiment is evaluated (`captioner eval`'s settings). */
export interface ExperimentEval {
  split: string;
  /** 1: greedy decoding (the default: what the lab's figures are about). */
  beamWidth: number;
  /** Only the first N images of each split (0: all). */
  limit: number;
  /**
   * Also measure exposure bias (`captioner eval --exposure`, eval/exposure.ts): the teacher-forced
   * against the free-running loss per position, and recovery after a wrong word.
   */
  exposure: boolean;
}

export interface ExperimentSpec {
  /** The file it was read from (absolute). */
  file: string;
  name: string;
  description: string;
  /** The `captioner data` command of the data it was designed on (a manifest's `source`; --data's is compared). */
  data: string;
  /** The base recipe: `captioner train` settings (a JSON object, or the path of a recipe relative to the file). */
  base: Record<string, unknown>;
  /** Each arm's overrides of the base, in the file's order. */
  arms: { name: string; overrides: Record<string, unknown> }[];
  seeds: number;
  eval: ExperimentEval;
}

/** Settings the runner sets itself for every run. */
const RUNNER_KEYS = ['data', 'out', 'resume', 'initFrom', 'seed'] as const;
const TOP_KEYS = ['name', 'description', 'data', 'base', 'arms', 'seeds', 'eval'] as const;
const EVAL_KEYS = ['split', 'beamWidth', 'limit', 'exposure'] as const;
const ARM_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

export const EVAL_DEFAULTS: ExperimentEval = { split: 'test', beamWidth: 1, limit: 0, exposure: false };

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

async function readJson(path: string, what: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`${path}: cannot read ${what} (${(err as Error).message})`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`${path}: not JSON (${(err as Error).message})`);
  }
}

/** Reads and checks an experiment file; errors name the file and the field. */
export async function readExperiment(path: string): Promise<ExperimentSpec> {
  const file = resolve(path);
  return parseExperiment(await readJson(file, 'the experiment'), file);
}

/** Checks an experiment's JSON (read from `file`, which relative base paths are resolved against). */
export async function parseExperiment(json: unknown, file: string): Promise<ExperimentSpec> {
  const fail = (field: string, problem: string): never => {
    throw new ConfigError(`${file}: "${field}" ${problem}`);
  };
  if (!isObject(json)) throw new ConfigError(`${file}: an experiment file must hold a JSON object`);
  for (const key of Object.keys(json))
    if (!(TOP_KEYS as readonly string[]).includes(key))
      fail(key, `is not an experiment field (expected ${TOP_KEYS.join(', ')})`);
  const text = (key: 'name' | 'description' | 'data', required: boolean): string => {
    const value = json[key];
    if (value === undefined && !required) return '';
    if (typeof value !== 'string' || (required && !value.trim())) return fail(key, 'must be a non-empty string');
    return value;
  };
  const name = text('name', true);
  let base: Record<string, unknown>;
  if (typeof json.base === 'string') {
    const recipe = await readJson(resolve(dirname(file), json.base), 'the base recipe');
    if (!isObject(recipe)) return fail('base', `names ${json.base}, which does not hold a JSON object`);
    base = recipe;
  } else if (isObject(json.base)) {
    base = json.base;
  } else {
    return fail('base', 'must be a recipe (an object of train settings) or the path of one');
  }
  if (!isObject(json.arms) || Object.keys(json.arms).length === 0)
    return fail('arms', 'must be an object of named arms, each an object of the settings it changes');
  const arms = Object.entries(json.arms).map(([arm, overrides]) => {
    if (!ARM_NAME.test(arm)) fail(`arms.${arm}`, 'is not a usable name (letters, digits, ".", "_", "-")');
    if (!isObject(overrides)) fail(`arms.${arm}`, 'must be an object of train settings');
    return { name: arm, overrides: overrides as Record<string, unknown> };
  });
  const seeds = json.seeds ?? 3;
  if (typeof seeds !== 'number' || !Number.isInteger(seeds) || seeds < 1)
    fail('seeds', `must be a positive integer, got ${JSON.stringify(seeds)}`);
  const evalJson = json.eval ?? {};
  if (!isObject(evalJson)) return fail('eval', 'must be an object');
  for (const key of Object.keys(evalJson))
    if (!(EVAL_KEYS as readonly string[]).includes(key))
      fail(`eval.${key}`, `is not an eval setting (expected ${EVAL_KEYS.join(', ')})`);
  const evaluation = { ...EVAL_DEFAULTS, ...evalJson } as ExperimentEval;
  if (typeof evaluation.split !== 'string' || !evaluation.split) fail('eval.split', 'must be a split name');
  for (const key of ['beamWidth', 'limit'] as const) {
    const v = evaluation[key];
    if (!Number.isInteger(v) || v < (key === 'beamWidth' ? 1 : 0))
      fail(`eval.${key}`, `must be an integer ${key === 'beamWidth' ? '>= 1' : '>= 0'}, got ${JSON.stringify(v)}`);
  }
  if (typeof evaluation.exposure !== 'boolean')
    fail('eval.exposure', `must be true or false, got ${JSON.stringify(evaluation.exposure)}`);
  const spec: ExperimentSpec = {
    file,
    name,
    description: text('description', false),
    data: text('data', false),
    base,
    arms,
    seeds: seeds as number,
    eval: evaluation,
  };
  for (const arm of arms) armRecipe(spec, arm.name, 1); // every arm checked now, not at its turn
  return spec;
}

/**
 * The recipe of one run: the base, the arm's overrides, the run's seed (and `maxSteps` when
 * given), checked as `captioner train` checks a recipe. Familiarity calibration is off unless the
 * experiment asks for it (it costs time and no experiment figure reads it).
 *
 * A recipe with `phases` (the base's, or an arm's, which replaces the base's) trains them one
 * after another as `captioner train --config` does (model/train/phased.ts): the exposure
 * experiment's "SCST after teacher forcing". `maxSteps` then cuts every phase.
 */
export function armRecipe(
  spec: ExperimentSpec,
  arm: string,
  seed: number,
  maxSteps?: number,
): Record<string, unknown> & Partial<TrainConfig> {
  const overrides = spec.arms.find((a) => a.name === arm)?.overrides;
  if (!overrides) throw new ConfigError(`${spec.file}: no arm "${arm}"`);
  for (const [where, values] of [
    ['base', spec.base],
    [`arms.${arm}`, overrides],
  ] as const) {
    for (const key of RUNNER_KEYS)
      // A base recipe may carry a seed (configs/lab/small.json does): each run's replaces it.
      if (key in values && !(key === 'seed' && where === 'base'))
        throw new ConfigError(
          `${spec.file}: "${where}.${key}" is set by the runner for each run (--data, --out, --seeds), not by the experiment`,
        );
  }
  const recipe: Record<string, unknown> = {
    familiarityImages: 0,
    ...spec.base,
    ...overrides,
    seed,
    ...(maxSteps ? { maxSteps } : {}),
  };
  if (Array.isArray(recipe.phases)) {
    if (maxSteps)
      recipe.phases = recipe.phases.map((phase: unknown) =>
        typeof phase === 'object' && phase !== null ? { ...phase, maxSteps } : phase,
      );
    // Checked as `captioner train --config` checks a recipe of phases (the settings of every phase).
    parseRecipe(recipe, `${spec.file}: arms.${arm}`);
    return recipe;
  }
  resolveConfig(TRAIN_DEFAULTS, TRAIN_SPEC, [
    { source: `${spec.file}: base`, values: spec.base },
    { source: `${spec.file}: arms.${arm}`, values: overrides },
  ]);
  return recipe;
}

/** Whether a run's recipe is one of phases (trained by model/train/phased.ts). */
export function hasPhases(recipe: Record<string, unknown>): boolean {
  return Array.isArray(recipe.phases);
}
