/**
 * A recipe of several phases (model/train/recipe.ts), run one after another into one output
 * directory, with no hand steps:
 *
 *   OUT/phases.json            the run: its recipe, seed, each phase's settings and whether it is done
 *   OUT/phases/K-NAME/         phase K's own training run (checkpoints, metrics.jsonl), resumable
 *   OUT/config.json, vocab.json, weights.json + .bin, language-prior.json, decoding.json,
 *   familiarity.json + .bin    the model: the last phase's last checkpoint, without optimiser state
 *   OUT/metrics-stageK.jsonl   phase K's training log (K < the last), metrics.jsonl the last's:
 *                              the model page draws them one after another
 *
 * Phase 1 starts from new weights (or `initFrom`); phase K starts from phase K − 1's last
 * checkpoint with a fresh optimiser and schedule (as `--init-from`). A stop (Ctrl-C, a kill)
 * loses at most the steps since the phase's last checkpoint: `--resume` skips the phases done,
 * resumes the one in progress exactly, and goes on. The familiarity calibration is fitted once,
 * on the finished model.
 */
import { copyFile, mkdir, readdir, readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { readCheckpointConfig } from '../io/checkpoint.ts';
import { ifExists, writeFileAtomic } from '../io/fsutil.ts';
import { METRICS_FILE, PHASES_FILE } from '../io/metrics-log.ts';
import { ConfigError, resolveConfig, type ConfigLayer } from '../util/config.ts';
import { TRAIN_DEFAULTS, TRAIN_SPEC, type TrainConfig } from './config.ts';
import type { TrainHooks, TrainResult } from './loop.ts';
import { RUN_KEYS, phaseSeed, type Recipe } from './recipe.ts';
import { readSplits } from './setup.ts';
import { calibrateAtEnd, resolveTrainConfig, train } from './trainer.ts';

/** A checkpoint's files that are training state, not the model: left out of the finished model. */
const TRAINING_ONLY = new Set(['state.json', 'optimizer.json', 'optimizer.bin']);

interface PhaseRecord {
  name: string;
  /** Relative to OUT. */
  dir: string;
  /** The phase's resolved settings, without the run's paths (compared on --resume). */
  settings: Record<string, unknown>;
  done: boolean;
  steps?: number;
}

interface PhasesState {
  format: 'captioner-phased-run';
  version: 1;
  recipe: string;
  seed: number;
  phases: PhaseRecord[];
  /** True once the model has been assembled in OUT (and calibrated). */
  complete: boolean;
}

export interface PhaseHooks extends TrainHooks {
  /** Called as phase `index` (0-based) of `total` starts, resumes or is skipped as done. */
  phase?(index: number, total: number, name: string, how: 'start' | 'resume' | 'done'): void;
}

export interface PhasedResult {
  /** Each phase's outcome (null for a phase skipped as done before this run, or not reached). */
  phases: { name: string; dir: string; steps: number | null; result: TrainResult | null }[];
  stopped: boolean;
  modelDir: string;
  familiarity: TrainResult['familiarity'];
}

/** Keys compared on --resume are the phase's settings; these differ by design and are left out. */
const NOT_COMPARED = new Set<string>(['resume', 'out', 'initFrom', 'familiarityImages']);

/**
 * Each phase's settings: defaults ← the recipe's top level ← the phase ← the flags, seeded with
 * phaseSeed, checked (a bad field names the file and the phase). The run's keys come from the
 * flags and the top level alone.
 */
export function phaseSettings(recipe: Recipe, flags: ConfigLayer): { run: TrainConfig; phases: TrainConfig[] } {
  if (!recipe.phases) throw new ConfigError(`${recipe.source}: no "phases"`);
  const run = resolveConfig<TrainConfig>(TRAIN_DEFAULTS, TRAIN_SPEC, [recipe.base, flags]);
  if (!run.data) throw new ConfigError('flags: "data" is required (the data-set directory)');
  if (!run.out) throw new ConfigError('flags: "out" is required (the model directory)');
  const phaseFlags: ConfigLayer = {
    source: flags.source,
    values: Object.fromEntries(
      Object.entries(flags.values).filter(([k]) => !(RUN_KEYS as readonly string[]).includes(k)),
    ),
  };
  const phases = recipe.phases.map((phase, i) =>
    resolveConfig<TrainConfig>(TRAIN_DEFAULTS, TRAIN_SPEC, [
      recipe.base,
      phase.layer,
      phaseFlags,
      {
        source: `${recipe.source} (run)`,
        values: { data: run.data, seed: phaseSeed(run.seed, i), resume: false, initFrom: '' },
      },
    ]),
  );
  return { run, phases };
}

function comparable(config: TrainConfig): Record<string, unknown> {
  return Object.fromEntries(Object.entries(config).filter(([k]) => !NOT_COMPARED.has(k)));
}

async function readState(out: string): Promise<PhasesState | null> {
  const path = join(out, PHASES_FILE);
  const text = await ifExists(readFile(path, 'utf8'));
  if (text === null) return null;
  try {
    const state = JSON.parse(text) as PhasesState;
    if (state.format !== 'captioner-phased-run' || !Array.isArray(state.phases)) throw new Error('not a phased run');
    return state;
  } catch (err) {
    throw new ConfigError(`${path}: not a phased run's state (${(err as Error).message})`);
  }
}

async function writeState(out: string, state: PhasesState): Promise<void> {
  await writeFileAtomic(join(out, PHASES_FILE), JSON.stringify(state, null, 2) + '\n');
}

/**
 * The state to go on from: a new one for a new OUT, or the saved one on --resume when it was
 * made by the same recipe and flags (else an error naming the first setting that differs).
 */
async function startState(recipe: Recipe, run: TrainConfig, phases: TrainConfig[]): Promise<PhasesState> {
  const fresh: PhasesState = {
    format: 'captioner-phased-run',
    version: 1,
    recipe: recipe.source,
    seed: run.seed,
    phases: recipe.phases!.map((p, i) => ({
      name: p.name,
      dir: join('phases', `${i + 1}-${p.name}`),
      settings: comparable(phases[i]!),
      done: false,
    })),
    complete: false,
  };
  const saved = await readState(run.out);
  if (!saved) {
    const existing = (await ifExists(readdir(run.out))) ?? [];
    if (existing.length > 0)
      throw new ConfigError(
        `${run.out} is not empty and holds no phased run; choose another --out (a recipe of phases writes a new directory)`,
      );
    await mkdir(run.out, { recursive: true });
    await writeState(run.out, fresh);
    return fresh;
  }
  if (!run.resume)
    throw new ConfigError(
      `${run.out} already holds a phased run; pass --resume to continue it or choose another --out`,
    );
  if (saved.phases.length !== fresh.phases.length || saved.phases.some((p, i) => p.name !== fresh.phases[i]!.name))
    throw new ConfigError(
      `--resume: ${run.out} was started with the phases ${saved.phases.map((p) => p.name).join(', ')}, the recipe has ${fresh.phases.map((p) => p.name).join(', ')}`,
    );
  for (const [i, p] of saved.phases.entries()) {
    const now = fresh.phases[i]!.settings;
    for (const key of new Set([...Object.keys(p.settings), ...Object.keys(now)])) {
      // A setting added since the run was saved (absent from its state) ran as its default.
      const was = key in p.settings ? p.settings[key] : TRAIN_DEFAULTS[key as keyof typeof TRAIN_DEFAULTS];
      if (JSON.stringify(was) !== JSON.stringify(now[key]))
        throw new ConfigError(
          `--resume: phase ${i + 1} ("${p.name}") of ${run.out} has "${key}" ${JSON.stringify(was)}, the recipe and flags now give ${JSON.stringify(now[key])}`,
        );
    }
  }
  return saved;
}

/**
 * Runs `recipe`'s phases into `flags`' out directory (see the module comment). Every phase's
 * settings are checked before the first starts. Returns when the model is finished, or when
 * `hooks.shouldStop` stopped a phase (`stopped`: rerun with resume to go on).
 */
export async function trainPhases(recipe: Recipe, flags: ConfigLayer, hooks: PhaseHooks = {}): Promise<PhasedResult> {
  const log = hooks.log ?? (() => {});
  const { run, phases } = phaseSettings(recipe, flags);
  const state = await startState(recipe, run, phases);
  const out = run.out;
  const outcome: PhasedResult = {
    phases: state.phases.map((p) => ({ name: p.name, dir: join(out, p.dir), steps: p.steps ?? null, result: null })),
    stopped: false,
    modelDir: out,
    familiarity: null,
  };
  const total = state.phases.length;
  let previous = run.initFrom;
  for (const [i, record] of state.phases.entries()) {
    const dir = join(out, record.dir);
    if (record.done) {
      hooks.phase?.(i, total, record.name, 'done');
      log(`phase ${i + 1}/${total} "${record.name}": done (${record.steps} steps), skipped`);
      previous = (await readCheckpointConfig(dir, 'latest')).dir;
      continue;
    }
    const resuming = (await ifExists(readFile(join(dir, 'checkpoint.json')))) !== null;
    hooks.phase?.(i, total, record.name, resuming ? 'resume' : 'start');
    log(
      `phase ${i + 1}/${total} "${record.name}": ${resuming ? 'resuming' : previous ? `starting from ${previous}` : 'starting from new weights'}`,
    );
    const config = await resolveTrainConfig([
      {
        source: 'phase',
        values: { ...phases[i]!, out: dir, resume: resuming, initFrom: previous, familiarityImages: 0 },
      },
    ]);
    const result = await train(config, hooks, { decoding: recipe.decoding });
    outcome.phases[i]!.result = result;
    outcome.phases[i]!.steps = result.steps;
    if (result.stopped) {
      outcome.stopped = true;
      return outcome;
    }
    record.done = true;
    record.steps = result.steps;
    await writeState(out, state);
    previous = (await readCheckpointConfig(dir, 'latest')).dir;
  }
  await assembleModel(out, state, previous);
  log(`phases done: the model is the last checkpoint of phase ${total} (${previous}), copied into ${out}`);
  const last = phases.at(-1)!;
  const finished = { ...last, out, familiarityImages: run.familiarityImages };
  const { valImages } = await readSplits(finished);
  outcome.familiarity = await calibrateAtEnd(
    finished,
    { steps: 0, epochs: 0, lastLoss: null, bestMetric: null, stopped: false, modelDir: out, dataWaitSeconds: 0 },
    valImages.length,
    hooks,
  );
  state.complete = true;
  await writeState(out, state);
  return outcome;
}

/**
 * The finished model in `out`: the files of checkpoint `last` but its training state, and each
 * phase's metrics.jsonl as metrics-stageK.jsonl (the last phase's as metrics.jsonl). Every file
 * is written atomically, so a stop here is repaired by running again.
 */
async function assembleModel(out: string, state: PhasesState, last: string): Promise<void> {
  const n = state.phases.length;
  for (const [i, p] of state.phases.entries()) {
    const name = i === n - 1 ? METRICS_FILE : `metrics-stage${i + 1}.jsonl`;
    await copyAtomic(join(out, p.dir, METRICS_FILE), join(out, name));
  }
  for (const file of await readdir(last)) {
    if (TRAINING_ONLY.has(file)) continue;
    await copyAtomic(join(last, file), join(out, file));
  }
}

async function copyAtomic(from: string, to: string): Promise<void> {
  const tmp = `${to}.tmp-${process.pid}`;
  await copyFile(from, tmp);
  await rename(tmp, to);
}
