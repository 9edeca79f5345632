/**
 * Training recipes (configs/*.json, `captioner train --config`): a plain JSON object of training
 * settings (the keys of TRAIN_SPEC), plus three optional keys of its own:
 *
 *   "phases":   [{"name": "teacher-forced", …settings}, …]  runs one after another (model/train/phased.ts);
 *               each phase's settings override the recipe's top-level ones for that phase
 *   "decoding": {"strategy": "beam", "beamWidth": 8, …}      the model's recommended decoding
 *               (model/decode/recommended.ts), saved beside it as decoding.json
 *   "notes":    "…" or ["…", …]                              for people: how the recipe was chosen
 *
 * Flags override the top level and every phase. The run's seed (top-level `seed` or `--seed`)
 * seeds phase 1; phase k (k ≥ 2) is seeded by hashSeed(seed, k − 1). A phase may not set what
 * belongs to the whole run: the architecture (fixed by phase 1), `seed`, `data`, `out`,
 * `resume` and `initFrom` (phase k starts from phase k − 1's last checkpoint).
 */
import { readConfigFile } from '../util/config-file.ts';
import { MODEL_KEYS } from '../nn/captioner.ts';
import { DecodeOptionsError } from '../decode/options.ts';
import { parseRecommendedDecoding, type RecommendedDecoding } from '../decode/recommended.ts';
import { ConfigError, resolveConfig, type ConfigLayer } from '../util/config.ts';
import { hashSeed } from '../util/rng.ts';
import { TRAIN_DEFAULTS, TRAIN_SPEC, type TrainConfig } from './config.ts';

/** The recipe's own keys, beside the training settings. */
export const RECIPE_KEYS = ['phases', 'decoding', 'notes'] as const;

/** Settings a phase may not set: they belong to the whole run. */
export const RUN_KEYS = ['data', 'out', 'resume', 'initFrom', 'seed'] as const;

/** A phase's name: it names its directory (OUT/phases/K-NAME), so letters, digits and dashes. */
const PHASE_NAME = /^[a-z0-9][a-z0-9-]{0,39}$/;

export interface RecipePhase {
  name: string;
  /** The phase's settings (overriding the recipe's top level), as a config layer naming the phase. */
  layer: ConfigLayer;
}

export interface Recipe {
  /** The file it was read from. */
  source: string;
  /** The top-level training settings. */
  base: ConfigLayer;
  /** The phases, in order; null for a recipe of one plain run. */
  phases: RecipePhase[] | null;
  decoding: RecommendedDecoding | null;
  notes: string[];
}

/** Reads and checks a recipe file: a JSON error, or any bad field, is a ConfigError naming the file and the field. */
export async function readRecipe(path: string): Promise<Recipe> {
  return parseRecipe((await readConfigFile(path)).values, path);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * A recipe from parsed JSON. Every setting, top-level and in each phase, is checked against
 * TRAIN_SPEC here (so a misspelt key in phase 3 fails before phase 1 starts), naming
 * `source`, the phase and the key.
 */
export function parseRecipe(json: unknown, source: string): Recipe {
  if (!isObject(json)) throw new ConfigError(`${source}: a config file must hold a JSON object`);
  const { phases, decoding, notes, ...settings } = json;
  const base: ConfigLayer = { source, values: settings };
  resolveConfig<TrainConfig>(TRAIN_DEFAULTS, TRAIN_SPEC, [base]);

  let recommended: RecommendedDecoding | null = null;
  if (decoding !== undefined) {
    try {
      recommended = parseRecommendedDecoding(decoding, `${source}: "decoding"`);
    } catch (err) {
      if (err instanceof DecodeOptionsError) throw new ConfigError(err.message);
      throw err;
    }
  }

  const noteList = notes === undefined ? [] : typeof notes === 'string' ? [notes] : notes;
  if (!Array.isArray(noteList) || !noteList.every((n) => typeof n === 'string'))
    throw new ConfigError(`${source}: "notes" must be a string or a list of strings`);

  return {
    source,
    base,
    phases: phases === undefined ? null : parsePhases(phases, base, source),
    decoding: recommended,
    notes: noteList,
  };
}

function parsePhases(phases: unknown, base: ConfigLayer, source: string): RecipePhase[] {
  if (!Array.isArray(phases) || phases.length === 0)
    throw new ConfigError(`${source}: "phases" must be a non-empty list of objects`);
  const names = new Set<string>();
  return phases.map((phase: unknown, i) => {
    const where = `${source}: phases[${i}]`;
    if (!isObject(phase)) throw new ConfigError(`${where} must be an object of settings`);
    const { name = `phase${i + 1}`, ...values } = phase;
    if (typeof name !== 'string' || !PHASE_NAME.test(name))
      throw new ConfigError(
        `${where}: "name" must be lower-case letters, digits and dashes (at most 40), got ${JSON.stringify(name)}`,
      );
    if (names.has(name)) throw new ConfigError(`${where}: "name" ${JSON.stringify(name)} is used by an earlier phase`);
    names.add(name);
    const layerSource = `${source}: phases[${i}] ("${name}")`;
    for (const key of Object.keys(values)) {
      if ((RUN_KEYS as readonly string[]).includes(key))
        throw new ConfigError(
          `${layerSource}: "${key}" belongs to the whole run: set it at the top level or on the command line`,
        );
      if ((MODEL_KEYS as readonly string[]).includes(key))
        throw new ConfigError(
          `${layerSource}: "${key}" is an architecture setting: set it at the top level (every phase has phase 1's architecture)`,
        );
    }
    const layer: ConfigLayer = { source: layerSource, values };
    resolveConfig<TrainConfig>(TRAIN_DEFAULTS, TRAIN_SPEC, [base, layer]);
    return { name, layer };
  });
}

/** The seed of phase `index` (0-based) of a run seeded `seed`: the run's seed for the first, hashed for the others. */
export function phaseSeed(seed: number, index: number): number {
  return index === 0 ? seed : hashSeed(seed, index);
}
