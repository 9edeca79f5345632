/**
 * The evaluation report: one self-contained HTML file (views/eval-report.hbs, a Handlebars view)
 * with the metrics table, the training curves from the model's metrics.jsonl drawn as inline SVG,
 * and a gallery of the best and worst captioned test images by CIDEr-D, each image embedded as a
 * PNG data: URI. Nothing is fetched when the file is opened.
 */
import { readFile } from 'node:fs/promises';
import Handlebars from 'handlebars';
import sharp from 'sharp';
import type { WordMap } from './attention-maps.ts';
import { svgLineChart, type ChartSeries } from './charts.ts';
import { gradientFlowCharts } from './gradient-flow-charts.ts';
import type { ExposureFigures } from './exposure.ts';
import type { ImageScore } from './score.ts';
import { METRIC_NAMES, NOT_COMPUTED, type CorpusScores } from './score.ts';
import type { SemanticScores } from '../data-scripts/shapes/semantics.ts';
import type { MetricsRecord } from '../model/io/metrics-log.ts';

export interface Chart {
  title: string;
  svg: string;
}

/** A rate in [0, 1] as a percentage with one decimal ("96.5%"), as the report and `captioner eval` print it. */
export function formatRate(rate: number): string {
  return `${(rate * 100).toFixed(1)}%`;
}

function seriesOf(records: readonly MetricsRecord[], type: string, key: string, name: string): ChartSeries {
  return {
    name,
    points: records
      .filter((r) => r.type === type && typeof r[key] === 'number')
      .map((r) => [r.step!, r[key] as number] as const),
  };
}

const EPOCH_KEYS_NOT_CHARTED = new Set(['step', 'epoch', 'trainLoss', 'trainScstLoss', 'valLoss', 'best']);

/**
 * Charts of a training log: loss per token (training steps and validation epochs together), each
 * other numeric validation metric, the scheduled-sampling ε (the probability of feeding the true
 * word; Bengio et al. 2015), the learning rate and, for self-critical training, its rewards and
 * loss, all over optimiser steps; and with
 * --log-gradient-flow, the gradient's flow through time at the first and last measurement
 * (eval/gradient-flow-charts.ts), on a log scale.
 */
export function trainingCharts(records: readonly MetricsRecord[]): Chart[] {
  const charts: Chart[] = [];
  const add = (title: string, yLabel: string, series: ChartSeries[], yRange?: [number, number]) => {
    const svg = svgLineChart({ title, xLabel: 'step', yLabel, series, yRange });
    if (svg) charts.push({ title, svg });
  };
  add('Loss per token', 'cross-entropy', [
    seriesOf(records, 'step', 'loss', 'training'),
    seriesOf(records, 'epoch', 'valLoss', 'validation'),
  ]);
  const epochKeys = new Set<string>();
  for (const r of records) {
    if (r.type !== 'epoch') continue;
    for (const [k, v] of Object.entries(r))
      if (typeof v === 'number' && !EPOCH_KEYS_NOT_CHARTED.has(k)) epochKeys.add(k);
  }
  for (const key of epochKeys) add(`Validation: ${key}`, key, [seriesOf(records, 'epoch', key, key)]);
  add(
    'Scheduled sampling ε (probability of feeding the true word)',
    'ε',
    [seriesOf(records, 'step', 'epsilon', 'ε')],
    [0, 1],
  );
  add('Learning rate', 'learning rate', [seriesOf(records, 'step', 'learningRate', 'learning rate')]);
  // Self-critical training (--objective scst, model/train/scst.ts): its rewards and its own loss.
  add('Self-critical training: reward (CIDEr-D against the training references)', 'CIDEr-D', [
    seriesOf(records, 'step', 'sampleReward', 'sampled captions'),
    seriesOf(records, 'step', 'greedyReward', 'greedy captions (the baseline)'),
  ]);
  add('Self-critical training: loss −(r(sample) − r(greedy))·log p(sample)', 'SCST loss', [
    seriesOf(records, 'step', 'scstLoss', 'SCST loss'),
  ]);
  for (const flow of gradientFlowCharts(records)) {
    const svg = svgLineChart({ ...flow, yScale: 'log', width: 640 });
    if (svg) charts.push({ title: flow.title, svg });
  }
  return charts;
}

/** What the report shows of a split's exposure-bias figures (eval/exposure.ts). */
export interface ExposureView {
  figures: ExposureFigures;
  charts: Chart[];
}

/**
 * The exposure-bias charts of a split: loss and accuracy per position, teacher-forced beside
 * free-running, and with recovery figures the share of captions still exact and parsable after a
 * wrong word at position k.
 */
export function exposureCharts(figures: ExposureFigures): ExposureView {
  const charts: Chart[] = [];
  const add = (title: string, xLabel: string, yLabel: string, series: ChartSeries[], yRange?: [number, number]) => {
    const svg = svgLineChart({ title, xLabel, yLabel, series, yRange });
    if (svg) charts.push({ title, svg });
  };
  const curve = (name: string, points: readonly { position: number }[], key: 'loss' | 'accuracy') => ({
    name,
    points: points.map((p) => [p.position, (p as Record<string, number>)[key]!] as const),
  });
  add('Loss per position: teacher-forced vs free-running', 'position in the caption', 'cross-entropy (nats)', [
    curve('teacher-forced (true prefix fed)', figures.teacherForced, 'loss'),
    curve('free-running (own words fed)', figures.freeRunning, 'loss'),
  ]);
  add(
    'Accuracy per position: teacher-forced vs free-running',
    'position in the caption',
    'share of best words that are the reference word',
    [
      curve('teacher-forced (true prefix fed)', figures.teacherForced, 'accuracy'),
      curve('free-running (own words fed)', figures.freeRunning, 'accuracy'),
    ],
    [0, 1],
  );
  const recovery = figures.recovery?.positions ?? [];
  add(
    'Recovery after a wrong word at position k',
    'position k of the wrong word',
    'share of exact captions',
    [
      { name: 'still exact (rest right)', points: recovery.map((r) => [r.position, r.exact] as const) },
      { name: 'still parsable', points: recovery.map((r) => [r.position, r.parsable] as const) },
    ],
    [0, 1],
  );
  return { figures, charts };
}

/**
 * An image file as a PNG data: URI, shrunk to fit `size` × `size` (never enlarged: the page
 * scales small images up itself, which keeps the file small).
 */
export async function imageDataUri(path: string, size = 160): Promise<string> {
  const png = await sharp(path)
    .rotate()
    .resize(size, size, { fit: 'inside', withoutEnlargement: true })
    .png()
    .toBuffer();
  return `data:image/png;base64,${png.toString('base64')}`;
}

export interface GalleryItem {
  id: string;
  /** A PNG data: URI, or null when the image file could not be read. */
  image: string | null;
  caption: string;
  references: string[];
  cider: number;
  rouge: number;
  /** For a model with attention: one shaded picture per word of the caption (eval/attention-maps.ts). */
  maps?: WordMap[];
}

/**
 * The `count` best and `count` worst images by CIDEr-D (ties by id, so the choice is stable);
 * when there are fewer than 2·count images the two lists share none.
 */
export function bestAndWorst<T extends Pick<ImageScore, 'id' | 'CIDEr-D'>>(
  scores: readonly T[],
  count: number,
): { best: T[]; worst: T[] } {
  const sorted = [...scores].sort((a, b) => b['CIDEr-D'] - a['CIDEr-D'] || String(a.id).localeCompare(String(b.id)));
  const best = sorted.slice(0, Math.min(count, Math.ceil(sorted.length / 2)));
  const worst = sorted.slice(best.length).slice(-count).reverse();
  return { best, worst };
}

export interface ReportSplit {
  name: string;
  images: number;
  scores: CorpusScores;
  semantic?: SemanticScores;
  /** How many images look familiar to the model (eval/evaluate.ts countFamiliar), for a calibrated model. */
  familiarity?: { familiar: number; images: number; rate: number; threshold: number };
  /** With `captioner eval --exposure`: the exposure-bias figures and charts. */
  exposure?: ExposureView;
  best: GalleryItem[];
  worst: GalleryItem[];
  resultsFile: string;
  referencesFile: string;
}

export interface ReportView {
  title: string;
  generatedAt: string;
  modelDir: string;
  dataDir: string;
  dataName: string;
  decoding: string;
  modelSummary: string;
  splits: ReportSplit[];
  charts: Chart[];
}

const DEFAULT_TEMPLATE = new URL('../views/eval-report.hbs', import.meta.url);

/** Renders the report's HTML from its view model (pure apart from reading the template). */
export async function renderReport(view: ReportView, templatePath: string | URL = DEFAULT_TEMPLATE): Promise<string> {
  const hb = Handlebars.create();
  hb.registerHelper('fixed', (v: unknown, digits: unknown) =>
    typeof v === 'number' ? v.toFixed(typeof digits === 'number' ? digits : 4) : 'n/a',
  );
  hb.registerHelper('percent', (v: unknown) => (typeof v === 'number' ? formatRate(v) : 'n/a'));
  const template = hb.compile(await readFile(templatePath, 'utf8'), { strict: false, noEscape: false });
  const metricRows = METRIC_NAMES.map((name) => ({ name, values: view.splits.map((s) => s.scores[name]) }));
  const notComputed = Object.entries(NOT_COMPUTED).map(([name, why]) => ({ name, why }));
  const hasSemantic = view.splits.some((s) => s.semantic);
  const hasFamiliarity = view.splits.some((s) => s.familiarity);
  const hasExposure = view.splits.some((s) => s.exposure);
  return template({
    ...view,
    metricRows,
    notComputed,
    hasSemantic,
    hasFamiliarity,
    hasExposure,
    ...positionTable(view.splits),
    ...objectCountTable(view.splits),
  });
}

/**
 * The report's table of exact match by the number of objects in the scene: a column per count
 * that occurs in any split, a row per split (metrics written before the figure have none).
 */
function objectCountTable(splits: readonly ReportSplit[]): {
  objectColumns: number[];
  objectRows: { name: string; cells: { rate: number | null; exact: number; captions: number }[] }[];
} {
  const objectColumns = [...new Set(splits.flatMap((s) => s.semantic?.byObjects?.map((g) => g.objects) ?? []))].sort(
    (a, b) => a - b,
  );
  const objectRows = splits.flatMap((s) =>
    s.semantic?.byObjects
      ? [
          {
            name: s.name,
            cells: objectColumns.map((objects) => {
              const g = s.semantic!.byObjects.find((x) => x.objects === objects);
              return { rate: g ? g.rate : null, exact: g?.exact ?? 0, captions: g?.captions ?? 0 };
            }),
          },
        ]
      : [],
  );
  return { objectColumns, objectRows };
}

/**
 * The report's table of per-position accuracy (was the k-th object named right?,
 * data-scripts/shapes/semantics.ts `positionsRight`): a column per position, a row per split.
 */
function positionTable(splits: readonly ReportSplit[]): {
  positionColumns: number[];
  positionRows: { name: string; cells: { rate: number | null; captions: number }[] }[];
} {
  const width = Math.max(0, ...splits.map((s) => s.semantic?.positions?.length ?? 0));
  const positionColumns = Array.from({ length: width }, (_, k) => k + 1);
  const positionRows = splits.flatMap((s) =>
    s.semantic?.positions
      ? [
          {
            name: s.name,
            cells: positionColumns.map((_, k) => {
              const at = s.semantic!.positions[k];
              return { rate: at ? at.rate : null, captions: at?.captions ?? 0 };
            }),
          },
        ]
      : [],
  );
  return { positionColumns, positionRows };
}
