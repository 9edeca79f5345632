/**
 * What the model page shows about the loaded model, read from its directory (see
 * model/io/checkpoint.ts for the layout): the saved configuration, the data set it was trained on,
 * the training curves from metrics.jsonl, and evaluation figures from any eval*.json file in the
 * directory (or in its eval/ folder). Everything here is optional but the configuration.
 */
import { readdir, readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { formatTick, logDecades, niceTicks } from '../eval/charts.ts';
import { gradientFlowCharts } from '../eval/gradient-flow-charts.ts';
import { formatPercent } from './public/percent.js';
import { readCheckpointConfig, type SavedConfig } from '../model/io/checkpoint.ts';
import { ifExists } from '../model/io/fsutil.ts';
import { METRICS_FILE, readTrainingStages, type MetricsRecord } from '../model/io/metrics-log.ts';
import type { ModelConfig } from '../model/nn/captioner.ts';
import { displayPath } from './public-paths.ts';
import type { AntiLmDefaults } from '../model/decode/prior.ts';
import { readPrior } from '../model/decode/prior-files.ts';
import { describeRecommendation } from '../model/decode/recommended.ts';
import { readRecommendedDecoding } from '../model/io/decoding-file.ts';
import { Vocabulary } from '../model/text/vocab.ts';
import { readFamiliarity, type CalibrationInfo } from '../model/familiarity/store.ts';

export interface CurvePoint {
  x: number;
  y: number;
}

export interface Curve {
  label: string;
  points: CurvePoint[];
}

/** A line chart, laid out for an SVG of `width` × `height` (all coordinates precomputed). */
export interface Chart {
  title: string;
  width: number;
  height: number;
  series: { label: string; path: string; colour: string; last: string; dots: { x: number; y: number }[] }[];
  /**
   * Vertical marks with a label at their top: where each stage of training starts. `labelY` puts
   * a label on a second row when it would run into the one before it.
   */
  markers: { x: number; label: string; labelY: number }[];
  xTicks: { x: number; label: string }[];
  yTicks: { y: number; label: string }[];
  plot: { left: number; top: number; right: number; bottom: number };
  xLabel: string;
}

/** One evaluation file's figures as a table: a row per figure, a column per split. */
export interface EvalFigures {
  /** The file, relative to the model directory. */
  file: string;
  /** How the captions were decoded ("beam search, width 8"), when the file says. */
  decoding: string | null;
  /** The columns: split names ("test"), or "value" for a file of other figures. */
  columns: string[];
  rows: { name: string; values: string[] }[];
}

export interface ModelDescription {
  name: string;
  /** What the model knows, from its README.md (see `readModelCard`); null when it has none. */
  card: ModelCard | null;
  modelDir: string;
  checkpoint: string;
  config: SavedConfig;
  /** The architecture in words (`describeArchitecture`). */
  architecture: string;
  /**
   * The anti-LM decoding a request gets unless it asks otherwise (model/decode/prior.ts); null: the checkpoint has no
   * language prior.
   */
  antiLm: AntiLmDefaults | null;
  /** The model's recommended decoding in words (its decoding.json, model/decode/recommended.ts); null: none. */
  recommendedDecoding: string | null;
  /**
   * The familiarity calibration (model/familiarity/store.ts): the threshold and what it was fitted
   * and chosen on; null when the model was never calibrated.
   */
  familiarity: (CalibrationInfo & { threshold: number }) | null;
  /** The data set from config.train.data, when its manifest is still there. */
  dataset: { dir: string; name: string; source: string; images: number; splits: string } | null;
  training: {
    /** Steps and epochs of the last stage (the model's own metrics.jsonl). */
    steps: number;
    epochs: number;
    lastLoss: number | null;
    bestValLoss: number | null;
    raisedBy: string | null;
    /** Every stage the model went through, in order (model/io/metrics-log.ts `readTrainingStages`). */
    stages: { name: string; file: string; steps: number; epochs: number }[];
    /** Steps over all stages. */
    totalSteps: number;
  } | null;
  charts: Chart[];
  evaluations: EvalFigures[];
}

/**
 * The training settings that make the logged training loss higher than plain cross-entropy on
 * the true words (which is what validation measures), as words for the page; null when none is on.
 */
export function lossRaisedBy(config: SavedConfig): string | null {
  const parts: string[] = [];
  if (config.train?.labelSmoothing) parts.push(`label smoothing ${config.train.labelSmoothing}`);
  const rates = config.train?.wordSubstitutionRates;
  if (config.train?.wordSubstitution || rates)
    parts.push(`word substitution ${config.train!.wordSubstitution ?? 0}${rates ? ` (${rates})` : ''}`);
  if (config.train?.wordDropout) parts.push(`word dropout ${config.train.wordDropout}`);
  if (config.train?.greyscale) parts.push(`greyscale ${config.train.greyscale}`);
  if (parts.length === 0) return null;
  return parts.length === 1 ? parts[0]! : `${parts.slice(0, -1).join(', ')} and ${parts.at(-1)}`;
}

const COLOURS = ['#1f6feb', '#d9480f', '#2b8a3e', '#9c36b5'];

function fmt(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e5)) return v.toExponential(2);
  return Number(v.toPrecision(4)).toString();
}

/**
 * Lays out `curves` as a line chart: SVG path data and axis ticks, in pixels. A point whose y is
 * not finite breaks its curve (a gap between stages); `markers` are x values to mark with a
 * labelled vertical line. A curve of few points also gets a dot at each. `yScale` 'log': log₁₀
 * of y over whole decades, ticks at powers of ten; a point with y ≤ 0 has no place there and
 * breaks the curve like a non-finite one.
 */
export function layoutChart(
  title: string,
  curves: Curve[],
  xLabel: string,
  width = 640,
  height = 260,
  markers: { x: number; label: string }[] = [],
  yScale: 'linear' | 'log' = 'linear',
): Chart | null {
  const log = yScale === 'log';
  if (log)
    curves = curves.map((c) => ({
      ...c,
      points: c.points.map((p) => ({ x: p.x, y: p.y > 0 ? Math.log10(p.y) : NaN })),
    }));
  const finite = (p: CurvePoint) => Number.isFinite(p.x) && Number.isFinite(p.y);
  const all = curves.flatMap((c) => c.points).filter(finite);
  if (all.length < 2) return null;
  const plot = { left: 56, top: markers.length ? 40 : 16, right: width - 16, bottom: height - 36 };
  let [xMin, xMax] = [Math.min(...all.map((p) => p.x)), Math.max(...all.map((p) => p.x))];
  let [yMin, yMax] = [Math.min(...all.map((p) => p.y)), Math.max(...all.map((p) => p.y))];
  if (markers.length) xMin = Math.min(xMin, ...markers.map((m) => m.x));
  if (xMax === xMin) [xMin, xMax] = [xMin - 1, xMax + 1];
  const decades = log ? logDecades(all.map((p) => 10 ** p.y)) : null;
  if (decades) {
    [yMin, yMax] = [decades.lo, decades.hi];
  } else {
    if (yMax === yMin) [yMin, yMax] = [yMin - 1, yMax + 1];
    const yPad = (yMax - yMin) * 0.05;
    [yMin, yMax] = [yMin - yPad, yMax + yPad];
  }
  const sx = (x: number) => plot.left + ((x - xMin) / (xMax - xMin)) * (plot.right - plot.left);
  const sy = (y: number) => plot.bottom - ((y - yMin) / (yMax - yMin)) * (plot.bottom - plot.top);
  const series = curves
    .filter((c) => c.points.some(finite))
    .map((c, i) => {
      const pts = c.points;
      // A long run logs many thousands of points; a few hundred draw the same curve. Gaps and the
      // points either side of them are kept.
      const every = Math.ceil(pts.length / 600);
      const kept = pts.filter(
        (p, j) =>
          j % every === 0 || j === pts.length - 1 || !finite(p) || !finite(pts[j - 1] ?? p) || !finite(pts[j + 1] ?? p),
      );
      let move = true;
      const segments: string[] = [];
      for (const p of kept) {
        if (!finite(p)) {
          move = true;
          continue;
        }
        segments.push(`${move ? 'M' : 'L'}${sx(p.x).toFixed(1)},${sy(p.y).toFixed(1)}`);
        move = false;
      }
      const drawn = pts.filter(finite);
      const dots =
        drawn.length <= 30 ? drawn.map((p) => ({ x: Number(sx(p.x).toFixed(1)), y: Number(sy(p.y).toFixed(1)) })) : [];
      return {
        label: c.label,
        path: segments.join(' '),
        colour: COLOURS[i % COLOURS.length]!,
        last: fmt(log ? 10 ** drawn[drawn.length - 1]!.y : drawn[drawn.length - 1]!.y),
        dots,
      };
    });
  const xTicks = niceTicks(xMin, xMax).map((t) => ({ x: Number(sx(t).toFixed(1)), label: formatTick(t) }));
  const yTicks = (decades?.ticks ?? niceTicks(yMin, yMax)).map((t) => ({
    y: Number(sy(t).toFixed(1)),
    label: formatTick(decades ? 10 ** t : t),
  }));
  // About 6 px per character at font size 10: a label closer than that to the one before it on
  // its row goes on the other row.
  let rowEnds = [-Infinity, -Infinity];
  const marks = markers.map((m) => {
    const x = Number(sx(m.x).toFixed(1));
    const row = x + 3 >= rowEnds[0]! ? 0 : 1;
    rowEnds = rowEnds.map((end, r) => (r === row ? x + 3 + m.label.length * 6 + 4 : end));
    return { x, label: m.label, labelY: plot.top - 6 - row * 13 };
  });
  return { title, width, height, series, markers: marks, xTicks, yTicks, plot, xLabel };
}

/** The fields of a training-log record that the page draws. */
interface MetricLine extends MetricsRecord {
  loss?: number;
  valLoss?: number;
  trainLoss?: number;
  epsilon?: number;
  learningRate?: number;
}

/** Numeric leaves of a JSON value, keyed by their path ("semantic.exactRate"); per-image detail is skipped. */
function numericLeaves(value: unknown, prefix = '', depth = 0): [string, number][] {
  if (typeof value === 'number') return [[prefix, value]];
  if (!value || typeof value !== 'object' || Array.isArray(value) || depth > 3) return [];
  return Object.entries(value)
    .filter(([k]) => k !== 'perImage')
    .flatMap(([k, v]) => numericLeaves(v, prefix ? `${prefix}.${k}` : k, depth + 1));
}

const count = (v: number) => (Number.isInteger(v) ? v.toLocaleString('en') : fmt(v));
const score = (digits: number) => (v: number) => v.toFixed(digits);

/**
 * How the model page names and shows each figure of `captioner eval`'s metrics.json (a split's
 * `images`, its `scores`, its `semantic` scores from data-scripts/shapes/semantics.ts): the one
 * table of labels. BLEU, ROUGE-L and CIDEr-D keep their names and scales, as the literature
 * prints them; rates are percentages. A figure not listed is shown by its key in words.
 */
export const FIGURE_LABELS: ReadonlyMap<string, { label: string; show: (v: number) => string }> = new Map([
  ['images', { label: 'images', show: count }],
  ['BLEU-1', { label: 'BLEU-1', show: score(3) }],
  ['BLEU-2', { label: 'BLEU-2', show: score(3) }],
  ['BLEU-3', { label: 'BLEU-3', show: score(3) }],
  ['BLEU-4', { label: 'BLEU-4', show: score(3) }],
  ['METEOR', { label: 'METEOR', show: score(3) }],
  ['ROUGE-L', { label: 'ROUGE-L', show: score(3) }],
  ['CIDEr-D', { label: 'CIDEr-D', show: score(2) }],
  ['SPICE', { label: 'SPICE', show: score(3) }],
  ['semantic.exactRate', { label: 'exact match', show: (v: number) => formatPercent(v, 1) }],
  ['semantic.precision', { label: 'attribute precision', show: score(3) }],
  ['semantic.recall', { label: 'attribute recall', show: score(3) }],
  ['semantic.f1', { label: 'attribute F1', show: score(3) }],
  ['semantic.unparsed', { label: 'captions that could not be parsed back', show: count }],
  ['semantic.count', { label: 'captions checked against their scene', show: count }],
]);

/** A figure's key in words when the table has no label for it: "semantic.meanLength" → "semantic mean length". */
function keyInWords(key: string): string {
  return key
    .replace(/[._]/g, ' ')
    .replace(/([a-z])([A-Z])/g, '$1 $2')
    .toLowerCase();
}

/** A figure as the page shows it: its label and its value, formatted (`FIGURE_LABELS`). */
export function showFigure(key: string, value: number): { name: string; value: string } {
  const known = FIGURE_LABELS.get(key);
  return known ? { name: known.label, value: known.show(value) } : { name: keyInWords(key), value: fmt(value) };
}

/** Rows of figures, one column per source, in the order of `FIGURE_LABELS`, then the others. */
function figureRows(columns: [string, number][][]): EvalFigures['rows'] {
  const keys = [...new Set(columns.flatMap((c) => c.map(([k]) => k)))];
  const order = [...FIGURE_LABELS.keys()];
  const rank = (k: string) => (order.includes(k) ? order.indexOf(k) : order.length);
  return keys
    .sort((a, b) => rank(a) - rank(b))
    .slice(0, 40)
    .map((key) => {
      const values = columns.map((c) => {
        const v = c.find(([k]) => k === key)?.[1];
        return v === undefined ? '' : showFigure(key, v).value;
      });
      return { name: showFigure(key, 0).name, values };
    });
}

/**
 * The figures of one evaluation file. `captioner eval` writes {decoding, splits: {NAME: {images,
 * scores, semantic, …}}}: a column per split; any other JSON shows its numeric leaves.
 */
function evaluationFigures(file: string, json: unknown): EvalFigures {
  const splits = (json as { splits?: unknown })?.splits;
  if (splits && typeof splits === 'object' && !Array.isArray(splits)) {
    const decoding = (json as { decoding?: unknown }).decoding;
    // "beam search, width 3" (captioner eval), or an object of settings.
    const how =
      typeof decoding === 'string'
        ? decoding
        : decoding && typeof decoding === 'object'
          ? Object.entries(decoding)
              .map(([k, v]) => `${k} ${String(v)}`)
              .join(', ')
          : null;
    const entries = Object.entries(splits);
    return {
      file,
      decoding: how,
      columns: entries.map(([split]) => split),
      rows: figureRows(
        entries.map(([, v]) =>
          numericLeaves({
            images: (v as { images?: unknown }).images,
            ...(v as { scores?: object }).scores,
            semantic: (v as { semantic?: unknown }).semantic,
          }),
        ),
      ),
    };
  }
  return { file, decoding: null, columns: ['value'], rows: figureRows([numericLeaves(json)]) };
}

/**
 * Evaluation files in the model directory: eval*.json, eval/*.json, and metrics.json in eval-SPLIT folders (captioner
 * eval).
 */
async function readEvaluations(modelDir: string): Promise<EvalFigures[]> {
  const entries = (await ifExists(readdir(modelDir, { withFileTypes: true }))) ?? [];
  const files: string[] = [];
  for (const e of entries.filter((e) => e.name.startsWith('eval')).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    if (e.isFile() && e.name.endsWith('.json')) files.push(e.name);
    if (!e.isDirectory()) continue;
    const inner = (await ifExists(readdir(join(modelDir, e.name)))) ?? [];
    if (e.name === 'eval')
      files.push(
        ...inner
          .filter((n) => n.endsWith('.json'))
          .sort()
          .map((n) => `eval/${n}`),
      );
    else if (inner.includes('metrics.json')) files.push(`${e.name}/metrics.json`);
  }
  const out: EvalFigures[] = [];
  for (const file of files) {
    try {
      const figures = evaluationFigures(file, JSON.parse(await readFile(join(modelDir, file), 'utf8')));
      if (figures.rows.length > 0) out.push(figures);
    } catch {
      // Not JSON we can read: not an evaluation file.
    }
  }
  return out;
}

async function readDataset(dataDir: unknown): Promise<ModelDescription['dataset']> {
  if (typeof dataDir !== 'string' || !dataDir) return null;
  try {
    const m = JSON.parse(await readFile(join(dataDir, 'manifest.json'), 'utf8')) as {
      name?: string;
      source?: string;
      images?: { split?: string }[];
    };
    const counts = new Map<string, number>();
    for (const img of m.images ?? []) counts.set(String(img.split), (counts.get(String(img.split)) ?? 0) + 1);
    const splits = [...counts].map(([s, n]) => `${s}: ${n}`).join(', ');
    return {
      dir: dataDir,
      name: String(m.name ?? basename(dataDir)),
      source: String(m.source ?? ''),
      images: m.images?.length ?? 0,
      splits,
    };
  } catch {
    return null;
  }
}

/** The first paragraph of a model directory's README.md: what the model knows, in plain words. */
export interface ModelCard {
  /** Plain text (Markdown emphasis and code marks removed). */
  summary: string;
  /** The README's title, if it has one. */
  title: string | null;
}

/**
 * Reads the model's card: the first paragraph of MODEL_DIR/README.md after its title. The page
 * shows it beside the upload form, so that nobody takes a shapes model for a photo captioner.
 */
export async function readModelCard(modelDir: string): Promise<ModelCard | null> {
  const text = await ifExists(readFile(join(modelDir, 'README.md'), 'utf8'));
  if (text === null) return null;
  const blocks = text
    .replace(/\r\n/g, '\n')
    .split(/\n\s*\n/)
    .map((b) => b.trim())
    .filter(Boolean);
  const heading = blocks[0]?.startsWith('#') ? blocks[0] : null;
  const first = blocks.find((b) => !b.startsWith('#') && !b.startsWith('|') && !b.startsWith('    '));
  if (!first) return null;
  const plain = (md: string) =>
    md
      .replace(/`([^`]*)`/g, '$1')
      .replace(/\*\*([^*]+)\*\*/g, '$1')
      .replace(/\s+/g, ' ')
      .trim();
  return { summary: plain(first), title: heading ? plain(heading.replace(/^#+\s*/, '')) : null };
}

/**
 * The model's architecture in words, from its configuration (MODEL_SPEC in model/nn/captioner.ts):
 * the encoder, what it hands the decoder (a grid of features or one pooled vector), the decoder's
 * cell, and whether it attends. `gridPositions` is the number of grid positions the weights hold
 * (null when unknown); `backbone` the backbone as the page may show it (no absolute path).
 */
export function describeArchitecture(
  model: ModelConfig,
  vocabSize: number,
  gridPositions: number | null,
  backbone: string | null,
): string {
  const size = `${model.imageSize}×${model.imageSize}`;
  const encoder = backbone
    ? `The CNN backbone ${backbone} (${model.backboneTrainable ? 'fine-tuned' : 'frozen'})`
    : `A CNN of ${model.encoderChannels.length} convolution blocks (${model.encoderChannels.join('-')} channels)` +
      (model.encoderInput === 'chroma' ? ' on each pixel’s chroma (outlines without their hue)' : '') +
      (model.colourStream > 0
        ? `, beside a ${model.colourStream}-wide colour stream that reads each ${model.colourStreamPool > 1 ? `${model.colourStreamPool}×${model.colourStreamPool} square of pixels, averaged,` : 'pixel'} alone,`
        : '');
  const side = gridPositions === null ? null : Math.sqrt(gridPositions);
  const grid =
    gridPositions === null
      ? 'a grid'
      : Number.isInteger(side)
        ? `a ${side}×${side} grid`
        : `a grid of ${gridPositions} positions`;
  const features = {
    grid: `${grid} of ${model.featureSize}-wide features, one per region of the image`,
    average: `one ${model.featureSize}-wide feature vector (the feature map averaged: what is in the image, not where)`,
    flatten: `one ${model.featureSize}-wide feature vector (the feature map flattened: it keeps where things are)`,
  }[model.encoderPooling];
  // "an LSTM" (el-), "a GRU" (gee-): the article goes by how the letters are said.
  const cell = {
    lstm: 'An LSTM',
    gru: 'A GRU',
    rnn: 'A plain RNN (Elman, tanh)',
    irnn: 'An IRNN (ReLU, recurrent weights started as the identity)',
  }[model.cell];
  const decoder = {
    attention:
      model.attentionQuery === 'new-state'
        ? 'attending over the grid (soft attention asked after each step has read the word before, Luong et al. 2015: for each word it weighs the regions anew, steered by what it just said)'
        : 'attending over the grid (soft attention, Xu et al. 2015: for each word it weighs the regions anew)',
    'every-step': 'without attention (it is given the image vector at every step)',
    init: 'without attention (it sees the image vector only in its initial state)',
  }[model.featureInput];
  return (
    `${encoder} reads a ${size} image into ${features}. ` +
    `${cell} decoder of ${model.hiddenSize} units, ${decoder}, writes captions of up to ${model.maxLength} ` +
    `words from a vocabulary of ${vocabSize} (${model.embeddingSize}-wide word embeddings)` +
    (model.decoderInput === 'none'
      ? ', without being fed the word before: each step reads only its position (a non-autoregressive control).'
      : '.')
  );
}

/** The grid positions the saved weights hold (the encoder's position embedding), or null. */
async function gridPositions(checkpointDir: string): Promise<number | null> {
  const text = await ifExists(readFile(join(checkpointDir, 'weights.json'), 'utf8'));
  if (text === null) return null;
  const manifest = JSON.parse(text) as { weightsManifest?: { weights?: { name?: string; shape?: number[] }[] }[] };
  const position = manifest.weightsManifest?.flatMap((g) => g.weights ?? []).find((w) => w.name === 'encoder/position');
  return position?.shape?.[0] ?? null;
}

/**
 * The training curves of every stage, one after another: each stage's steps count on from where
 * the stage before it ended, a gap between stages, and a marker where each starts. Training loss,
 * validation loss (plain cross-entropy, so comparable across stages even where label smoothing
 * changes the training loss), and scheduled sampling's ε.
 */
export function stageCharts(stages: readonly { name: string; records: readonly MetricsRecord[] }[]): Chart[] {
  const training: CurvePoint[] = [];
  const validation: CurvePoint[] = [];
  const epsilon: CurvePoint[] = [];
  const markers: { x: number; label: string }[] = [];
  let offset = 0;
  for (const stage of stages) {
    const records = stage.records as MetricLine[];
    const steps = records.filter((m) => m.type === 'step');
    if (markers.length) for (const curve of [training, epsilon]) curve.push({ x: offset, y: NaN });
    markers.push({ x: offset, label: stage.name });
    training.push(...steps.map((m) => ({ x: offset + m.step, y: m.loss ?? NaN })));
    epsilon.push(...steps.map((m) => ({ x: offset + m.step, y: m.epsilon ?? NaN })));
    validation.push(
      ...records
        .filter((m) => m.type === 'epoch' && typeof m.valLoss === 'number')
        .map((m) => ({ x: offset + m.step, y: m.valLoss! })),
    );
    offset += Math.max(0, ...records.map((m) => m.step));
  }
  const staged = stages.length > 1;
  const marks = staged ? markers : [];
  const xLabel = staged ? `step (the ${stages.length} stages one after another)` : 'step';
  const charts = [
    layoutChart(
      staged ? `Loss per token, over the ${stages.length} stages of training` : 'Loss per token',
      [
        { label: 'training', points: training },
        { label: 'validation', points: validation },
      ],
      xLabel,
      640,
      260,
      marks,
    ),
    layoutChart(
      'Scheduled sampling ε (probability of feeding the true word)',
      [{ label: 'ε', points: epsilon }],
      xLabel,
      640,
      200,
      marks,
    ),
  ];
  return charts.filter((c): c is Chart => c !== null);
}

/**
 * The gradient-flow charts of a run's own log (eval/gradient-flow-charts.ts: its first and last
 * measurement), laid out on a log scale.
 */
export function gradientFlowPageCharts(records: readonly MetricsRecord[]): Chart[] {
  return gradientFlowCharts(records)
    .map((flow) =>
      layoutChart(
        `${flow.title}, log scale`,
        flow.series.map((s) => ({ label: s.name, points: s.points.map(([x, y]) => ({ x, y })) })),
        flow.xLabel,
        640,
        260,
        [],
        'log',
      ),
    )
    .filter((c): c is Chart => c !== null);
}

/** Describes the model in `modelDir` for the model page. */
export async function describeModel(modelDir: string): Promise<ModelDescription> {
  const { dir, config } = await readCheckpointConfig(modelDir);
  const stages = await readTrainingStages(modelDir);
  const own = stages.at(-1)?.file === METRICS_FILE ? (stages.at(-1)!.records as MetricLine[]) : [];
  const steps = own.filter((m) => m.type === 'step');
  const epochs = own.filter((m) => m.type === 'epoch');
  const valLosses = epochs.map((m) => m.valLoss).filter((v): v is number => typeof v === 'number');
  const last = steps[steps.length - 1];
  const stageFacts = stages.map((s) => ({
    name: s.name,
    file: s.file,
    steps: Math.max(0, ...s.records.map((r) => r.step)),
    epochs: Math.max(0, ...s.records.map((r) => r.epoch ?? 0)),
  }));
  const vocab = Vocabulary.fromJSON(
    JSON.parse(await readFile(join(dir, 'vocab.json'), 'utf8')),
    join(dir, 'vocab.json'),
  );
  const backbone = config.model.backbone ? displayPath(config.model.backbone, modelDir) : null;
  return {
    name: basename(modelDir.replace(/\/+$/, '')) || modelDir,
    card: await readModelCard(modelDir),
    modelDir,
    checkpoint: basename(dir),
    config,
    architecture: describeArchitecture(
      config.model,
      vocab.size,
      config.model.encoderPooling === 'grid' ? await gridPositions(dir) : null,
      backbone,
    ),
    antiLm: (await readPrior(dir, vocab))?.antiLm ?? null,
    recommendedDecoding: await readRecommendedDecoding(dir).then((r) => (r ? describeRecommendation(r) : null)),
    familiarity: await readFamiliarity(dir).then((f) => (f ? { ...f.calibration, threshold: f.threshold } : null)),
    dataset: await readDataset(config.train?.data),
    training: last
      ? {
          steps: last.step,
          epochs: last.epoch ?? epochs.length,
          lastLoss: last.loss ?? null,
          bestValLoss: valLosses.length ? Math.min(...valLosses) : null,
          raisedBy: lossRaisedBy(config),
          stages: stageFacts,
          totalSteps: stageFacts.reduce((sum, s) => sum + s.steps, 0),
        }
      : null,
    charts: [...stageCharts(stages), ...gradientFlowPageCharts(own)],
    evaluations: await readEvaluations(modelDir),
  };
}
