/**
 * An experiment's figures: what each run measured (read off its training log, its evaluation's
 * metrics.json and its weights) and, per arm, their mean ± standard deviation over seeds. Pure
 * functions of the files, so that `captioner experiment report` rebuilds the same results.
 */
import type { ExposureFigures } from '../eval/exposure.ts';
import type { MetricsRecord } from '../model/io/metrics-log.ts';

/** A run's figures: every number is null when the run did not measure it. */
export interface RunFigures {
  /** Optimiser steps taken. */
  steps: number | null;
  /** Wall time of the training attempt that finished the run, seconds (a shared machine: compare with care). */
  trainSeconds: number | null;
  /** Mean of the logged tokens per second (the trainer's own windows). */
  tokensPerSecond: number | null;
  /** Mean share of the logged batches' target positions that were padding. */
  paddingFraction: number | null;
  /** The last logged training loss per token. */
  finalTrainLoss: number | null;
  /** The last validation loss per token (teacher-forced, masked). */
  finalValLoss: number | null;
  gradNormMedian: number | null;
  gradNormMax: number | null;
  /** Logged steps whose gradient norm exceeds 10 × the run's median (our definition of an exploding step). */
  explodingSteps: number | null;
  /** Logged steps whose loss exceeds twice the lowest loss logged before them (our definition of a loss spike). */
  lossSpikes: number | null;
  /** 1 when the loss became NaN or infinite and training stopped, else 0 (the arm's mean: the share of seeds). */
  diverged: number;
  /** The step at which it diverged. */
  divergedAtStep: number | null;
  /**
   * 1 when the loss blew up and stayed up without turning NaN: the median of the last ten logged
   * losses above the first logged loss, i.e. training left the model worse than untrained (else
   * 0; the arm's mean: the share of seeds).
   */
  blewUp: number | null;
  bleu4: number | null;
  cider: number | null;
  /** Semantic exact match on the evaluated split (shapes data). */
  exactMatch: number | null;
  attributeF1: number | null;
  /** Captions the shapes grammar cannot read, as a share of the split. */
  unparsed: number | null;
  /** Exact match on test-compositional, when the split was test. */
  compositionalExactMatch: number | null;
  /** Was the k-th object named right, k = 1, 2, … (data-scripts/shapes/semantics.ts positionsRight). */
  positions: number[] | null;
  /**
   * With the experiment's `eval.exposure` (eval/exposure.ts), over every position of the split: the
   * teacher-forced and the free-running loss per token and accuracy (the true prefix fed, or the
   * model's own greedy words), and the share of recovery trials (a wrong word forced into an exact
   * caption) after which every later word was right.
   */
  teacherForcedLoss: number | null;
  freeRunningLoss: number | null;
  teacherForcedAccuracy: number | null;
  freeRunningAccuracy: number | null;
  recovery: number | null;
  /** Per position t = 1, 2, …: the free-running minus the teacher-forced loss (the exposure gap). */
  exposureGap: number[] | null;
  /** Per position k = 1, 2, … of the wrong word: the share of trials that recovered. */
  recoveryByPosition: number[] | null;
  /** Weights of the decoder's recurrent cell (one set, shared by every time step). */
  cellParameters: number | null;
  /** Weights of the whole model. */
  parameters: number | null;
}

export const EMPTY_FIGURES: RunFigures = {
  steps: null,
  trainSeconds: null,
  tokensPerSecond: null,
  paddingFraction: null,
  finalTrainLoss: null,
  finalValLoss: null,
  gradNormMedian: null,
  gradNormMax: null,
  explodingSteps: null,
  lossSpikes: null,
  diverged: 0,
  divergedAtStep: null,
  blewUp: null,
  bleu4: null,
  cider: null,
  exactMatch: null,
  attributeF1: null,
  unparsed: null,
  compositionalExactMatch: null,
  positions: null,
  teacherForcedLoss: null,
  freeRunningLoss: null,
  teacherForcedAccuracy: null,
  freeRunningAccuracy: null,
  recovery: null,
  exposureGap: null,
  recoveryByPosition: null,
  cellParameters: null,
  parameters: null,
};

const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);
const mean = (xs: readonly number[]): number | null => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null);

function median(xs: readonly number[]): number | null {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** The training log's figures (metrics.jsonl records, model/io/metrics-log.ts). */
export function trainingFigures(records: readonly MetricsRecord[]): Partial<RunFigures> {
  const steps = records.filter((r) => r.type === 'step');
  const values = (key: string) => steps.flatMap((r) => (num(r[key]) === null ? [] : [r[key] as number]));
  const grads = values('gradNorm');
  const gradMedian = median(grads);
  const losses = values('loss');
  let lowest = Infinity;
  let spikes = 0;
  for (const loss of losses) {
    if (loss > 2 * lowest) spikes += 1;
    lowest = Math.min(lowest, loss);
  }
  const epochs = records.filter((r) => r.type === 'epoch' && num(r.valLoss) !== null);
  const lastLosses = median(losses.slice(-10));
  return {
    steps: num(records.at(-1)?.step) ?? null,
    tokensPerSecond: mean(values('tokensPerSecond')),
    paddingFraction: mean(values('paddingFraction')),
    finalTrainLoss: losses.at(-1) ?? null,
    finalValLoss: num(epochs.at(-1)?.valLoss),
    gradNormMedian: gradMedian,
    gradNormMax: grads.length ? Math.max(...grads) : null,
    explodingSteps: gradMedian === null ? null : grads.filter((g) => g > 10 * gradMedian).length,
    lossSpikes: steps.length ? spikes : null,
    // An untrained model's loss is the first logged one (about ln of the vocabulary size); a run
    // that trains ends far below it, the plain RNN that explodes under SGD 3 to 40 times above it.
    blewUp: lastLosses === null ? null : lastLosses > losses[0]! ? 1 : 0,
  };
}

/** The evaluation's figures (eval/evaluate.ts metrics.json) on `split`. */
export function evaluationFigures(metrics: unknown, split: string): Partial<RunFigures> {
  const splits = (metrics as { splits?: Record<string, Record<string, unknown>> } | null)?.splits ?? {};
  const s = splits[split];
  if (!s) return {};
  const scores = (s.scores ?? {}) as Record<string, unknown>;
  const semantic = s.semantic as {
    exactRate?: number;
    f1?: number;
    unparsed?: number;
    count?: number;
    positions?: { rate: number }[];
  } | null;
  const compositional = splits['test-compositional']?.semantic as { exactRate?: number } | undefined;
  return {
    bleu4: num(scores['BLEU-4']),
    cider: num(scores['CIDEr-D']),
    exactMatch: num(semantic?.exactRate),
    attributeF1: num(semantic?.f1),
    unparsed: semantic && semantic.count ? (semantic.unparsed ?? 0) / semantic.count : null,
    compositionalExactMatch: split === 'test' ? num(compositional?.exactRate) : null,
    positions: semantic?.positions ? semantic.positions.map((p) => p.rate) : null,
    ...exposureFigures(s.exposure as ExposureFigures | undefined),
  };
}

/** The exposure-bias figures of one split (eval/exposure.ts), when the evaluation measured them. */
export function exposureFigures(exposure: ExposureFigures | undefined): Partial<RunFigures> {
  if (!exposure) return {};
  const freeRunning = new Map(exposure.freeRunning.map((p) => [p.position, p.loss]));
  const trials = exposure.recovery?.positions ?? [];
  const tried = trials.reduce((sum, p) => sum + p.captions, 0);
  return {
    teacherForcedLoss: num(exposure.overall.teacherForced.loss),
    freeRunningLoss: num(exposure.overall.freeRunning.loss),
    teacherForcedAccuracy: num(exposure.overall.teacherForced.accuracy),
    freeRunningAccuracy: num(exposure.overall.freeRunning.accuracy),
    recovery: tried ? trials.reduce((sum, p) => sum + p.exact * p.captions, 0) / tried : null,
    exposureGap: exposure.teacherForced.map((p) => (freeRunning.get(p.position) ?? NaN) - p.loss),
    recoveryByPosition: exposure.recovery ? trials.map((p) => p.exact) : null,
  };
}

/** Parameter counts from a checkpoint's weights manifest (weights.json). */
export function parameterCounts(weightsJson: unknown): Pick<RunFigures, 'cellParameters' | 'parameters'> {
  const manifest = (weightsJson as { weightsManifest?: { weights?: { name: string; shape: number[] }[] }[] })
    ?.weightsManifest;
  const weights = (manifest ?? []).flatMap((group) => group.weights ?? []);
  if (weights.length === 0) return { cellParameters: null, parameters: null };
  const size = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);
  return {
    parameters: weights.reduce((sum, w) => sum + size(w.shape), 0),
    cellParameters: weights.filter((w) => w.name.startsWith('decoder/cell/')).reduce((s, w) => s + size(w.shape), 0),
  };
}

/** A figure's mean and sample standard deviation over seeds (sd null for one seed), and how many seeds had it. */
export interface Summary {
  mean: number;
  sd: number | null;
  n: number;
}

/** Mean ± sample standard deviation (n − 1) of the finite values; null when there are none. */
export function summarise(values: readonly (number | null)[]): Summary | null {
  const xs = values.filter((v): v is number => v !== null && Number.isFinite(v));
  if (!xs.length) return null;
  const m = xs.reduce((a, b) => a + b, 0) / xs.length;
  const sd = xs.length > 1 ? Math.sqrt(xs.reduce((a, b) => a + (b - m) ** 2, 0) / (xs.length - 1)) : null;
  return { mean: m, sd, n: xs.length };
}

/** The scalar figures of RunFigures, in the order the report's tables show them. */
export const SCALAR_FIGURES = [
  'exactMatch',
  'compositionalExactMatch',
  'unparsed',
  'attributeF1',
  'bleu4',
  'cider',
  'finalTrainLoss',
  'finalValLoss',
  'paddingFraction',
  'tokensPerSecond',
  'trainSeconds',
  'gradNormMedian',
  'gradNormMax',
  'explodingSteps',
  'lossSpikes',
  'diverged',
  'blewUp',
  'teacherForcedLoss',
  'freeRunningLoss',
  'teacherForcedAccuracy',
  'freeRunningAccuracy',
  'recovery',
  'steps',
  'cellParameters',
  'parameters',
] as const satisfies readonly (keyof RunFigures)[];

export type ScalarFigure = (typeof SCALAR_FIGURES)[number];

/** The per-position figures of RunFigures, each summarised position by position over an arm's seeds. */
export const CURVE_FIGURES = [
  'positions',
  'exposureGap',
  'recoveryByPosition',
] as const satisfies readonly (keyof RunFigures)[];

export type CurveFigure = (typeof CURVE_FIGURES)[number];

/** Mean ± sd over runs at each position of a per-position figure (n 0 and mean NaN where none has it). */
function curveSummary(runs: readonly { figures: RunFigures }[], key: CurveFigure): Summary[] {
  const width = Math.max(0, ...runs.map((r) => r.figures[key]?.length ?? 0));
  return Array.from({ length: width }, (_, k) => summarise(runs.map((r) => r.figures[key]?.[k] ?? null))).map(
    (s) => s ?? { mean: NaN, sd: null, n: 0 },
  );
}

export interface ArmSummary {
  runs: number;
  figures: Partial<Record<ScalarFigure, Summary>>;
  /** The mean accuracy at each position (the k-th object named). */
  positions: Summary[];
  /** With the exposure measures: the gap and the recovery at each position. */
  exposureGap?: Summary[];
  recoveryByPosition?: Summary[];
}

/** Per arm: every scalar figure summarised over its runs, and the per-position figures position by position. */
export function armSummaries(
  runs: readonly { arm: string; figures: RunFigures }[],
  arms: readonly string[],
): Record<string, ArmSummary> {
  const out: Record<string, ArmSummary> = {};
  for (const arm of arms) {
    const mine = runs.filter((r) => r.arm === arm);
    const figures: Partial<Record<ScalarFigure, Summary>> = {};
    for (const key of SCALAR_FIGURES) {
      const s = summarise(mine.map((r) => r.figures[key]));
      if (s) figures[key] = s;
    }
    const summary: ArmSummary = { runs: mine.length, figures, positions: curveSummary(mine, 'positions') };
    for (const key of ['exposureGap', 'recoveryByPosition'] as const) {
      const curve = curveSummary(mine, key);
      if (curve.length) summary[key] = curve;
    }
    out[arm] = summary;
  }
  return out;
}
