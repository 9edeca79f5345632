/**
 * The experiment runner (`captioner experiment run`): every arm × seed of an experiment file
 * trained in its own model directory, then evaluated, then results.json and report.html written.
 *
 * Runs go one after another in this process, through the same calls as `captioner train
 * --config recipe.json --resume` and `captioner eval` (model/train/trainer.ts, eval/evaluate.ts),
 * and everything a run finishes is on disk before the next starts, so that an experiment killed
 * at any moment (even SIGKILL) resumes where it stood: a run whose training finished has
 * OUT/runs/ARM/seed-N/train.json and is not trained again; one cut short resumes from its last
 * checkpoint, exactly (the trainer's own resume); an evaluation is done when its metrics.json
 * exists (written atomically). In-process rather than child processes: each child would spend
 * seconds loading TF.js and the TypeScript before its first step, the smoke runs' whole budget.
 *
 *   OUT/experiment.json            the plan: the experiment file's contents, data, seeds, max steps
 *   OUT/runs/ARM/seed-N/recipe.json   the run's `captioner train --config` recipe
 *   OUT/runs/ARM/seed-N/model/     its model directory (checkpoints, metrics.jsonl; for a recipe of
 *                                  phases, phases/K-NAME/ and metrics-stageK.jsonl, model/train/phased.ts)
 *   OUT/runs/ARM/seed-N/train.json how its training ended: done or diverged, seconds
 *   OUT/runs/ARM/seed-N/eval/      its `captioner eval` output (metrics.json, report.html, COCO files)
 *   OUT/runs/ARM/seed-N/*.log      the trainer's and the evaluation's log lines
 *   OUT/results.json, OUT/report.html
 */
import { createWriteStream } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import { join, relative, resolve } from 'node:path';
import { runEvaluation } from '../eval/evaluate.ts';
import { readManifest } from '../model/data/dataset.ts';
import { hasCheckpoint } from '../model/io/checkpoint.ts';
import { PHASES_FILE } from '../model/io/metrics-log.ts';
import { trainPhases } from '../model/train/phased.ts';
import { parseRecipe } from '../model/train/recipe.ts';
import { resolveTrainConfig, train } from '../model/train/trainer.ts';
import { ifExists, readJsonIfExists, writeFileAtomic } from '../model/io/fsutil.ts';
import { ConfigError } from '../model/util/config.ts';
import { writeExperimentResults } from './results.ts';
import { armRecipe, hasPhases, readExperiment, type ExperimentSpec } from './spec.ts';

export interface ExperimentOptions {
  /** The experiment file (EXPERIMENT.json). */
  experiment: string;
  data: string;
  out: string;
  /** Seeds per arm (default: the file's `seeds`): seeds 1 … N. */
  seeds?: number;
  /** Every run stops after this many steps (a smoke run); absent: the recipes' own. */
  maxSteps?: number;
  /** The command as the user gave it, recorded in results.json. */
  command?: string;
}

/** One run of the plan. */
export interface PlannedRun {
  arm: string;
  seed: number;
  /** OUT-relative directory: runs/ARM/seed-N. */
  dir: string;
  recipe: Record<string, unknown>;
}

/** What the runner reports as it goes. */
export interface ExperimentProgress {
  phase: 'train' | 'eval';
  /** 1-based position of the run among all runs, and their number. */
  index: number;
  runs: number;
  arm: string;
  seed: number;
  /** Training: the last logged step and the run's step budget (0 when the recipe sets none). */
  step: number;
  totalSteps: number;
}

export interface ExperimentHooks {
  log?(line: string): void;
  progress?(p: ExperimentProgress): void;
  /** Aborting stops the training in flight after its step (it checkpoints) and the experiment with it. */
  signal?: AbortSignal;
}

export interface ExperimentOutcome {
  /** Every run trained (or diverged) and evaluated. */
  complete: boolean;
  interrupted: boolean;
  /** Runs whose training or evaluation failed (other than by diverging), with why. */
  failed: { arm: string; seed: number; phase: 'train' | 'eval'; error: string }[];
  resultsFile: string | null;
  reportFile: string | null;
}

/** The saved plan, OUT/experiment.json. */
export interface ExperimentPlan {
  name: string;
  description: string;
  /** The experiment file as given, and its contents. */
  file: string;
  spec: Omit<ExperimentSpec, 'file'>;
  /** The data-set directory (absolute), and as the command gave it. */
  data: string;
  dataGiven?: string;
  seeds: number;
  maxSteps: number | null;
  command: string;
  runs: PlannedRun[];
}

/**
 * The plan of an experiment: every arm × seed and its recipe, in the order they run (seed-major,
 * so that one seed of every arm comes first).
 */
export function planRuns(spec: ExperimentSpec, seeds: number, maxSteps?: number): PlannedRun[] {
  const runs: PlannedRun[] = [];
  for (let seed = 1; seed <= seeds; seed++)
    for (const { name } of spec.arms)
      runs.push({
        arm: name,
        seed,
        dir: join('runs', name, `seed-${seed}`),
        recipe: armRecipe(spec, name, seed, maxSteps),
      });
  return runs;
}

/**
 * Checks OUT against the plan: a directory started with other data, or a run whose recipe changed
 * since, is refused (its finished results would be mixed with new ones); more seeds than before are fine.
 */
async function checkOut(out: string, plan: ExperimentPlan): Promise<void> {
  const before = await readJsonIfExists<ExperimentPlan>(join(out, 'experiment.json'));
  if (before && before.data !== plan.data)
    throw new ConfigError(
      `${out}: this experiment directory was started on --data ${before.data}, not ${plan.data}; use another --out`,
    );
  for (const run of plan.runs) {
    const recipe = await readJsonIfExists<unknown>(join(out, run.dir, 'recipe.json'));
    if (recipe && JSON.stringify(recipe) !== JSON.stringify(run.recipe))
      throw new ConfigError(
        `${join(out, run.dir, 'recipe.json')}: the run was started with another recipe than the experiment now gives it (changed arm, base or --max-steps); use another --out`,
      );
  }
}

/** Appends lines to a run's log file (the trainer's and evaluation's own log lines). */
function logTo(file: string): { line(text: string): void; close(): Promise<void> } {
  const stream = createWriteStream(file, { flags: 'a' });
  return {
    line: (text) => void stream.write(`${new Date().toISOString()} ${text}\n`),
    close: () => new Promise<void>((ok) => stream.end(() => ok())),
  };
}

/** Trains one run unless it finished before; returns how it ended. */
async function trainRun(
  out: string,
  data: string,
  run: PlannedRun,
  at: Omit<ExperimentProgress, 'phase' | 'step' | 'totalSteps'>,
  hooks: ExperimentHooks,
): Promise<'done' | 'diverged' | 'interrupted' | { error: string }> {
  const dir = join(out, run.dir);
  const ended = await readJsonIfExists<{ status: 'done' | 'diverged' }>(join(dir, 'train.json'));
  if (ended) return ended.status;
  await mkdir(dir, { recursive: true });
  const recipeFile = join(dir, 'recipe.json');
  await writeFileAtomic(recipeFile, JSON.stringify(run.recipe, null, 2) + '\n');
  const modelDir = join(dir, 'model');
  const phased = hasPhases(run.recipe);
  const resumed = phased
    ? (await ifExists(readFile(join(modelDir, PHASES_FILE)))) !== null
    : await hasCheckpoint(modelDir);
  hooks.log?.(
    `[${at.index}/${at.runs}] ${run.arm}, seed ${run.seed}: ${resumed ? 'resuming training' : 'training'} (${relative(process.cwd(), dir) || dir})`,
  );
  const log = logTo(join(dir, 'train.log'));
  const started = performance.now();
  try {
    // The recipe as `captioner train --config recipe.json --data DATA --out MODEL --resume` reads it.
    const flags = { source: 'experiment', values: { data, out: modelDir, resume: true } };
    const trainHooks = {
      log: log.line,
      progress: (p: { step: number; totalSteps: number }) =>
        hooks.progress?.({ ...at, phase: 'train', step: p.step, totalSteps: p.totalSteps }),
      shouldStop: () => hooks.signal?.aborted === true,
    };
    let stopped: boolean;
    if (phased) {
      const recipe = parseRecipe(run.recipe, recipeFile);
      stopped = (
        await trainPhases(recipe, flags, {
          ...trainHooks,
          phase: (i, n, name, how) => log.line(`phase ${i + 1}/${n} "${name}": ${how}`),
        })
      ).stopped;
    } else {
      const config = await resolveTrainConfig([{ source: recipeFile, values: run.recipe }, flags]);
      log.line(`config: ${JSON.stringify(config)}`);
      stopped = (await train(config, trainHooks)).stopped;
    }
    if (stopped) return 'interrupted';
    const seconds = (performance.now() - started) / 1000;
    await writeFileAtomic(join(dir, 'train.json'), JSON.stringify({ status: 'done', seconds, resumed }) + '\n');
    return 'done';
  } catch (err) {
    const message = (err as Error).message;
    log.line(`error: ${message}`);
    const diverged = /training diverged at step (\d+)/.exec(message);
    if (!diverged) return { error: `${message} (log ${join(dir, 'train.log')})` };
    const seconds = (performance.now() - started) / 1000;
    await writeFileAtomic(
      join(dir, 'train.json'),
      JSON.stringify({ status: 'diverged', step: Number(diverged[1]), seconds, resumed }) + '\n',
    );
    return 'diverged';
  } finally {
    await log.close();
  }
}

/** Evaluates one trained run unless its metrics.json exists. */
async function evaluateRun(
  out: string,
  plan: ExperimentPlan,
  run: PlannedRun,
  at: Omit<ExperimentProgress, 'phase' | 'step' | 'totalSteps'>,
  hooks: ExperimentHooks,
): Promise<'done' | { error: string }> {
  const dir = join(out, run.dir);
  if (await ifExists(readFile(join(dir, 'eval', 'metrics.json')))) return 'done';
  // An experiment planned before `exposure` existed has none in its saved plan.
  const { split, beamWidth, limit, exposure = false } = plan.spec.eval;
  hooks.log?.(`[${at.index}/${at.runs}] ${run.arm}, seed ${run.seed}: evaluating on "${split}"`);
  hooks.progress?.({ ...at, phase: 'eval', step: 0, totalSteps: 0 });
  const log = logTo(join(dir, 'eval.log'));
  try {
    await runEvaluation(
      {
        modelDir: join(dir, 'model'),
        dataDir: plan.data,
        split,
        beamWidth,
        batchSize: 32,
        outDir: join(dir, 'eval'),
        galleryCount: 3,
        limit,
        exposure,
      },
      { log: log.line },
    );
    return 'done';
  } catch (err) {
    log.line(`error: ${(err as Error).message}`);
    return { error: `${(err as Error).message} (log ${join(dir, 'eval.log')})` };
  } finally {
    await log.close();
  }
}

/**
 * Runs an experiment into `options.out` (resuming what is there), evaluates every run and writes
 * results.json and report.html. Runs that fail are listed and the rest go on; the results then
 * say they are incomplete (`complete: false`) and so does the report.
 */
export async function runExperiment(
  options: ExperimentOptions,
  hooks: ExperimentHooks = {},
): Promise<ExperimentOutcome> {
  const spec = await readExperiment(options.experiment);
  const data = resolve(options.data);
  const manifest = await readManifest(data);
  const seeds = options.seeds ?? spec.seeds;
  if (!Number.isInteger(seeds) || seeds < 1) throw new ConfigError(`--seeds must be a positive integer, got ${seeds}`);
  if (options.maxSteps !== undefined && !(Number.isInteger(options.maxSteps) && options.maxSteps >= 1))
    throw new ConfigError(`--max-steps must be a positive integer, got ${options.maxSteps}`);
  if (spec.data && manifest.source && !spec.data.includes(manifest.source))
    hooks.log?.(
      `note: ${spec.file} was designed on data made by "${spec.data}"; ${data} was made by "${manifest.source}"`,
    );
  const out = resolve(options.out);
  const { file: _file, ...specFields } = spec;
  const plan: ExperimentPlan = {
    name: spec.name,
    description: spec.description,
    file: options.experiment,
    spec: specFields,
    data,
    dataGiven: options.data,
    seeds,
    maxSteps: options.maxSteps ?? null,
    command:
      options.command ??
      `captioner experiment run ${options.experiment} --data ${options.data} --out ${options.out} --seeds ${seeds}${options.maxSteps ? ` --max-steps ${options.maxSteps}` : ''}`,
    runs: planRuns(spec, seeds, options.maxSteps),
  };
  await checkOut(out, plan);
  await mkdir(out, { recursive: true });
  await writeFileAtomic(join(out, 'experiment.json'), JSON.stringify(plan, null, 2) + '\n');

  const failed: ExperimentOutcome['failed'] = [];
  const trained: PlannedRun[] = [];
  const total = plan.runs.length;
  const stopped = (): ExperimentOutcome => ({
    complete: false,
    interrupted: true,
    failed,
    resultsFile: null,
    reportFile: null,
  });
  for (const [i, run] of plan.runs.entries()) {
    const at = { index: i + 1, runs: total, arm: run.arm, seed: run.seed };
    const ended = await trainRun(out, data, run, at, hooks);
    if (ended === 'interrupted') return stopped();
    if (typeof ended === 'object') {
      failed.push({ arm: run.arm, seed: run.seed, phase: 'train', error: ended.error });
      hooks.log?.(`[${at.index}/${total}] ${run.arm}, seed ${run.seed}: training failed: ${ended.error}`);
    } else {
      if (ended === 'diverged')
        hooks.log?.(`[${at.index}/${total}] ${run.arm}, seed ${run.seed}: diverged (kept as a result)`);
      if (ended === 'done') trained.push(run);
    }
    if (hooks.signal?.aborted) return stopped();
  }
  for (const run of trained) {
    const at = { index: plan.runs.indexOf(run) + 1, runs: total, arm: run.arm, seed: run.seed };
    const ended = await evaluateRun(out, plan, run, at, hooks);
    if (typeof ended === 'object') {
      failed.push({ arm: run.arm, seed: run.seed, phase: 'eval', error: ended.error });
      hooks.log?.(`[${at.index}/${total}] ${run.arm}, seed ${run.seed}: evaluation failed: ${ended.error}`);
    }
    if (hooks.signal?.aborted) return stopped();
  }
  const { resultsFile, reportFile, results } = await writeExperimentResults(out, failed);
  return { complete: results.complete && failed.length === 0, interrupted: false, failed, resultsFile, reportFile };
}
