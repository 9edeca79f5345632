/**
 * An experiment's results.json and report.html, built from what its runs left on disk (the plan,
 * each run's train.json, metrics.jsonl, eval/metrics.json and weights), so that
 * `captioner experiment report DIR` rebuilds exactly what `experiment run` wrote.
 */
import { readFile } from 'node:fs/promises';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import Handlebars from 'handlebars';
import { svgLineChart, type ChartSeries } from '../eval/charts.ts';
import { gradientFlowRecords } from '../eval/gradient-flow-charts.ts';
import { formatRate } from '../eval/report.ts';
import { readCheckpointConfig } from '../model/io/checkpoint.ts';
import { ifExists, readJsonIfExists, writeFileAtomic } from '../model/io/fsutil.ts';
import { PHASES_FILE, parseMetricsLog, type MetricsRecord } from '../model/io/metrics-log.ts';
import {
  EMPTY_FIGURES,
  SCALAR_FIGURES,
  armSummaries,
  evaluationFigures,
  parameterCounts,
  trainingFigures,
  type ArmSummary,
  type RunFigures,
  type ScalarFigure,
  type Summary,
} from './figures.ts';
import type { ExperimentPlan } from './run.ts';

/** A directory that is not an experiment's (no experiment.json): bad input, exit 3 at the CLI. */
export class ExperimentDirError extends Error {
  override name = 'ExperimentDirError';
}

/** Where a run stands, from its files. */
export type RunStatus = 'done' | 'diverged' | 'not trained' | 'not evaluated';

export interface RunResult {
  arm: string;
  seed: number;
  dir: string;
  status: RunStatus;
  figures: RunFigures;
  /** The first captions of its evaluation (id, caption). */
  examples: { id: string; caption: string }[];
}

export interface ExperimentResults {
  experiment: string;
  description: string;
  command: string;
  file: string;
  /** The data-set directory, as the command gave it. */
  data: string;
  /** The `captioner data` command the experiment file says makes its data. */
  dataCommand: string;
  seeds: number;
  maxSteps: number | null;
  eval: ExperimentPlan['spec']['eval'];
  /** Every run trained (or diverged) and evaluated. */
  complete: boolean;
  /** Runs whose training or evaluation failed this time, with why. */
  failed: { arm: string; seed: number; phase: string; error: string }[];
  generatedAt: string;
  machine: { cpus: number; loadAverage: number[] };
  arms: Record<string, ArmSummary & { overrides: Record<string, unknown> }>;
  runs: RunResult[];
}

async function readLog(path: string): Promise<MetricsRecord[]> {
  const text = await ifExists(readFile(path, 'utf8'));
  return text === null ? [] : parseMetricsLog(text, path).records;
}

/**
 * A run's training log: metrics.jsonl, or for a recipe of phases (model/train/phased.ts) the
 * phases' logs one after another, each phase's steps counted on from the last step of the one
 * before, so that the curves and the step count cover the whole run. A phased run cut short has
 * its logs in OUT/phases/K-NAME/ until it is assembled; those are read then.
 */
async function readRunLog(modelDir: string): Promise<MetricsRecord[]> {
  const state = await readJsonIfExists<{ phases?: { dir: string }[] }>(join(modelDir, PHASES_FILE));
  if (!state?.phases) return readLog(join(modelDir, 'metrics.jsonl'));
  const out: MetricsRecord[] = [];
  let offset = 0;
  for (const phase of state.phases) {
    const log = await readLog(join(modelDir, phase.dir, 'metrics.jsonl'));
    out.push(...log.map((r) => (typeof r.step === 'number' ? { ...r, step: r.step + offset } : r)));
    offset = out.findLast((r) => typeof r.step === 'number')?.step ?? offset;
  }
  return out;
}

/** One run's status and figures from its directory. */
async function runResult(
  out: string,
  plan: ExperimentPlan,
  arm: string,
  seed: number,
  dir: string,
): Promise<{ result: RunResult; log: MetricsRecord[] }> {
  const abs = join(out, dir);
  const ended = await readJsonIfExists<{ status: 'done' | 'diverged'; seconds?: number; step?: number }>(
    join(abs, 'train.json'),
  );
  const log = await readRunLog(join(abs, 'model'));
  const metrics = await readJsonIfExists<{
    splits?: Record<string, { perImage?: Record<string, { caption: string }> }>;
  }>(join(abs, 'eval', 'metrics.json'));
  let params: Pick<RunFigures, 'cellParameters' | 'parameters'> = { cellParameters: null, parameters: null };
  if (ended) {
    const ckpt = await readCheckpointConfig(join(abs, 'model'), 'best').catch(() => null);
    if (ckpt) params = parameterCounts(await readJsonIfExists(join(ckpt.dir, 'weights.json')));
  }
  const figures: RunFigures = {
    ...EMPTY_FIGURES,
    ...trainingFigures(log),
    ...(metrics ? evaluationFigures(metrics, plan.spec.eval.split) : {}),
    ...params,
    trainSeconds: ended?.seconds ?? null,
    diverged: ended?.status === 'diverged' ? 1 : 0,
    divergedAtStep: ended?.status === 'diverged' ? (ended.step ?? null) : null,
  };
  const status: RunStatus = !ended
    ? 'not trained'
    : ended.status === 'diverged'
      ? 'diverged'
      : metrics
        ? 'done'
        : 'not evaluated';
  const perImage = metrics?.splits?.[plan.spec.eval.split]?.perImage ?? {};
  const examples = Object.entries(perImage)
    .slice(0, 4)
    .map(([id, p]) => ({ id, caption: p.caption }));
  return { result: { arm, seed, dir, status, figures, examples }, log };
}

/** How the report names and shows each figure. */
const FIGURE_LABELS: Record<ScalarFigure, { label: string; show: (v: number) => string }> = {
  exactMatch: { label: 'exact match', show: formatRate },
  compositionalExactMatch: { label: 'exact match, compositional', show: formatRate },
  unparsed: { label: 'unparsable captions', show: formatRate },
  attributeF1: { label: 'attribute F1', show: (v) => v.toFixed(3) },
  bleu4: { label: 'BLEU-4', show: (v) => v.toFixed(3) },
  cider: { label: 'CIDEr-D', show: (v) => v.toFixed(2) },
  finalTrainLoss: { label: 'final training loss / token', show: (v) => v.toFixed(3) },
  finalValLoss: { label: 'final validation loss / token', show: (v) => v.toFixed(3) },
  paddingFraction: { label: 'padding fraction', show: formatRate },
  tokensPerSecond: { label: 'tokens / s', show: (v) => v.toFixed(0) },
  trainSeconds: { label: 'training time, s', show: (v) => v.toFixed(0) },
  gradNormMedian: { label: 'gradient norm, median', show: (v) => v.toPrecision(3) },
  gradNormMax: { label: 'gradient norm, max', show: (v) => v.toPrecision(3) },
  explodingSteps: { label: 'exploding steps (norm > 10 × median)', show: (v) => v.toFixed(1) },
  lossSpikes: { label: 'loss spikes (> 2 × lowest before)', show: (v) => v.toFixed(1) },
  diverged: { label: 'diverged (NaN; share of seeds)', show: formatRate },
  blewUp: { label: 'blew up and stayed up (last losses above the first; share of seeds)', show: formatRate },
  teacherForcedLoss: { label: 'loss / token, teacher-forced', show: (v) => v.toFixed(3) },
  freeRunningLoss: { label: 'loss / token, free-running', show: (v) => v.toFixed(3) },
  teacherForcedAccuracy: { label: 'word accuracy, teacher-forced', show: formatRate },
  freeRunningAccuracy: { label: 'word accuracy, free-running', show: formatRate },
  recovery: { label: 'recovered after a wrong word', show: formatRate },
  steps: { label: 'steps', show: (v) => v.toFixed(0) },
  cellParameters: { label: 'recurrent cell weights', show: (v) => v.toFixed(0) },
  parameters: { label: 'all weights', show: (v) => v.toFixed(0) },
};

const ARM_COLOURS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e', '#17becf', '#8c564b', '#e377c2'];

function showSummary(key: ScalarFigure, s: Summary | undefined): string {
  if (!s) return '–';
  const { show } = FIGURE_LABELS[key];
  return s.sd === null ? show(s.mean) : `${show(s.mean)} ± ${show(s.sd)}`;
}

/** Learning curves and gradient charts: one line per run, one colour per arm (listed once). */
function charts(
  results: ExperimentResults,
  logs: Map<string, MetricsRecord[]>,
  armNames: readonly string[],
): { title: string; svg: string }[] {
  const colour = (arm: string) => ARM_COLOURS[armNames.indexOf(arm) % ARM_COLOURS.length]!;
  const perRun = (pick: (log: MetricsRecord[]) => [number, number][]): ChartSeries[] => {
    const listed = new Set<string>();
    return results.runs.map((r) => {
      const inLegend = !listed.has(r.arm);
      listed.add(r.arm);
      return { name: r.arm, colour: colour(r.arm), inLegend, points: pick(logs.get(r.dir) ?? []) };
    });
  };
  const series = (type: string, key: string) => (log: MetricsRecord[]) =>
    log
      .filter((x) => x.type === type && typeof x[key] === 'number')
      .map((x) => [x.step!, x[key] as number] as [number, number]);
  const flowAt = (which: 'first' | 'last') => (log: MetricsRecord[]) => {
    const flow = gradientFlowRecords(log);
    const r = which === 'first' ? flow[0] : flow.at(-1);
    return ((r?.lastWordH as number[] | undefined) ?? []).map((y, k) => [k, y] as [number, number]);
  };
  const out: { title: string; svg: string }[] = [];
  const add = (title: string, xLabel: string, yLabel: string, s: ChartSeries[], log = false) => {
    const svg = svgLineChart({
      title,
      xLabel,
      yLabel,
      series: s,
      yScale: log ? 'log' : 'linear',
      width: 560,
      height: 300,
    });
    if (svg) out.push({ title, svg });
  };
  add('Training loss per token (every run)', 'step', 'cross-entropy', perRun(series('step', 'loss')));
  add('Validation loss per token (every run)', 'step', 'cross-entropy', perRun(series('epoch', 'valLoss')));
  add(
    'Gradient norm before clipping (every run)',
    'step',
    'global norm (log)',
    perRun(series('step', 'gradNorm')),
    true,
  );
  add(
    "Last word's gradient at earlier states, start of training",
    'distance k back, in time steps',
    '‖∂Lₙ/∂hₙ₋ₖ‖ (log)',
    perRun(flowAt('first')),
    true,
  );
  add(
    "Last word's gradient at earlier states, end of training",
    'distance k back, in time steps',
    '‖∂Lₙ/∂hₙ₋ₖ‖ (log)',
    perRun(flowAt('last')),
    true,
  );
  /** One line per arm of a per-position figure's means over seeds, positions counted from 1. */
  const curve = (key: 'positions' | 'exposureGap' | 'recoveryByPosition'): ChartSeries[] =>
    armNames.map((arm) => ({
      name: arm,
      colour: colour(arm),
      points: (results.arms[arm]?.[key] ?? [])
        .map((s, k) => [k + 1, s.mean] as [number, number])
        .filter(([, y]) => Number.isFinite(y)),
    }));
  const positions = curve('positions');
  if (positions.some((s) => s.points.length > 1))
    add('Objects named right, by position (mean over seeds)', 'k-th object named', 'share right', positions);
  const gap = curve('exposureGap');
  if (gap.some((s) => s.points.length > 0))
    add(
      'Exposure gap: free-running minus teacher-forced loss, by position (mean over seeds)',
      'position t in the caption',
      'loss difference, nats',
      gap,
    );
  const recovery = curve('recoveryByPosition');
  if (recovery.some((s) => s.points.length > 0))
    add(
      'Recovery: captions right after a wrong word at position k (mean over seeds)',
      'position k of the wrong word',
      'share recovered',
      recovery,
    );
  return out;
}

const TEMPLATE = new URL('../views/experiment-report.hbs', import.meta.url);

/** The report's HTML: tables of the arms and runs, the charts, examples; self-contained. */
export async function renderExperimentReport(
  results: ExperimentResults,
  logs: Map<string, MetricsRecord[]>,
): Promise<string> {
  const armNames = Object.keys(results.arms);
  const shown = SCALAR_FIGURES.filter((key) => armNames.some((a) => results.arms[a]!.figures[key]));
  const hb = Handlebars.create();
  hb.registerHelper('eq', (a: unknown, b: unknown) => a === b);
  const template = hb.compile(await readFile(TEMPLATE, 'utf8'), { strict: false });
  const width = Math.max(0, ...armNames.map((a) => results.arms[a]!.positions.length));
  return template({
    ...results,
    figureHeads: shown.map((key) => FIGURE_LABELS[key].label),
    armRows: armNames.map((arm) => ({
      arm,
      overrides: JSON.stringify(results.arms[arm]!.overrides),
      runs: results.arms[arm]!.runs,
      cells: shown.map((key) => showSummary(key, results.arms[arm]!.figures[key])),
    })),
    runRows: results.runs.map((r) => ({
      ...r,
      cells: shown.map((key) => (r.figures[key] === null ? '–' : FIGURE_LABELS[key].show(r.figures[key]!))),
    })),
    positionHeads: Array.from({ length: width }, (_, k) => k + 1),
    positionRows: armNames.map((arm) => ({
      arm,
      cells: results.arms[arm]!.positions.map((s) =>
        s.n ? `${formatRate(s.mean)}${s.sd === null ? '' : ` ± ${formatRate(s.sd)}`}` : '–',
      ),
    })),
    exampleRows: armNames.flatMap((arm) => {
      const first = results.runs.find((r) => r.arm === arm && r.examples.length);
      return first ? [{ arm, seed: first.seed, examples: first.examples }] : [];
    }),
    charts: charts(results, logs, armNames),
    loadAverage: results.machine.loadAverage.map((x) => x.toFixed(2)).join(', '),
  });
}

/**
 * Reads every planned run of the experiment in `out`, writes OUT/results.json and OUT/report.html
 * (atomically); `failed`: the failures of the run that just ended, to list.
 */
export async function writeExperimentResults(
  out: string,
  failed: ExperimentResults['failed'] = [],
): Promise<{ resultsFile: string; reportFile: string; results: ExperimentResults }> {
  const plan = await readJsonIfExists<ExperimentPlan>(join(out, 'experiment.json'));
  if (!plan) throw new ExperimentDirError(`${out}: not an experiment directory (no experiment.json)`);
  const logs = new Map<string, MetricsRecord[]>();
  const runs: RunResult[] = [];
  for (const run of plan.runs) {
    const { result, log } = await runResult(out, plan, run.arm, run.seed, run.dir);
    runs.push(result);
    logs.set(run.dir, log);
  }
  const armNames = plan.spec.arms.map((a) => a.name);
  const summaries = armSummaries(runs, armNames);
  const results: ExperimentResults = {
    experiment: plan.name,
    description: plan.description,
    command: plan.command,
    file: plan.file,
    data: plan.dataGiven ?? plan.data,
    dataCommand: plan.spec.data,
    seeds: plan.seeds,
    maxSteps: plan.maxSteps,
    eval: plan.spec.eval,
    complete: runs.every((r) => r.status === 'done' || r.status === 'diverged'),
    failed,
    generatedAt: new Date().toISOString(),
    machine: { cpus: cpus().length, loadAverage: loadavg() },
    arms: Object.fromEntries(plan.spec.arms.map((a) => [a.name, { overrides: a.overrides, ...summaries[a.name]! }])),
    runs,
  };
  const resultsFile = join(out, 'results.json');
  const reportFile = join(out, 'report.html');
  await writeFileAtomic(resultsFile, JSON.stringify(results, null, 2) + '\n');
  await writeFileAtomic(reportFile, await renderExperimentReport(results, logs));
  return { resultsFile, reportFile, results };
}
