/**
 * What the model page shows about the loaded model, read from its directory (see
 * model/io/checkpoint.ts for the layout): the saved configuration, the data set it was trained on,
 * the training curves from metrics.jsonl, and evaluation figures from any eval*.json file in the
 * directory (or in its eval/ folder). Everything here is optional but the configuration.
 */
import { readdir, readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { formatTick, niceTicks } from '../eval/charts.ts';
import { readCheckpointConfig, type SavedConfig } from '../model/io/checkpoint.ts';
import { ifExists } from '../model/io/fsutil.ts';
import { METRICS_FILE, readMetricsLog, type MetricsRecord } from '../model/io/metrics-log.ts';
import { readPrior, type AntiLmDefaults } from '../model/decode/prior.ts';
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
  series: { label: string; path: string; colour: string; last: string }[];
  xTicks: { x: number; label: string }[];
  yTicks: { y: number; label: string }[];
  plot: { left: number; top: number; right: number; bottom: number };
  xLabel: string;
}

export interface EvalFigures {
  file: string;
  figures: { name: string; value: string }[];
}

export interface ModelDescription {
  name: string;
  /** What the model knows, from its README.md (see `readModelCard`); null when it has none. */
  card: ModelCard | null;
  modelDir: string;
  checkpoint: string;
  config: SavedConfig;
  /**
   * The anti-LM decoding a request gets unless it asks otherwise (model/decode/prior.ts); null: the checkpoint has no
   * language prior.
   */
  antiLm: AntiLmDefaults | null;
  /**
   * The familiarity calibration (model/familiarity/store.ts): the threshold and what it was fitted
   * and chosen on; null when the model was never calibrated.
   */
  familiarity: (CalibrationInfo & { threshold: number }) | null;
  /** The data set from config.train.data, when its manifest is still there. */
  dataset: { dir: string; name: string; source: string; images: number; splits: string } | null;
  training: {
    steps: number;
    epochs: number;
    lastLoss: number | null;
    bestValLoss: number | null;
    raisedBy: string | null;
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

/** Lays out `curves` as a line chart: SVG path data and axis ticks, in pixels. */
export function layoutChart(title: string, curves: Curve[], xLabel: string, width = 640, height = 260): Chart | null {
  const all = curves.flatMap((c) => c.points).filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y));
  if (all.length < 2) return null;
  const plot = { left: 56, top: 16, right: width - 16, bottom: height - 36 };
  let [xMin, xMax] = [Math.min(...all.map((p) => p.x)), Math.max(...all.map((p) => p.x))];
  let [yMin, yMax] = [Math.min(...all.map((p) => p.y)), Math.max(...all.map((p) => p.y))];
  if (xMax === xMin) [xMin, xMax] = [xMin - 1, xMax + 1];
  if (yMax === yMin) [yMin, yMax] = [yMin - 1, yMax + 1];
  const yPad = (yMax - yMin) * 0.05;
  [yMin, yMax] = [yMin - yPad, yMax + yPad];
  const sx = (x: number) => plot.left + ((x - xMin) / (xMax - xMin)) * (plot.right - plot.left);
  const sy = (y: number) => plot.bottom - ((y - yMin) / (yMax - yMin)) * (plot.bottom - plot.top);
  const series = curves
    .filter((c) => c.points.length > 0)
    .map((c, i) => {
      const finite = c.points.filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y));
      // A long run logs many thousands of points; a few hundred draw the same curve.
      const every = Math.ceil(finite.length / 600);
      const pts = finite.filter((_, j) => j % every === 0 || j === finite.length - 1);
      const path = pts.map((p, j) => `${j ? 'L' : 'M'}${sx(p.x).toFixed(1)},${sy(p.y).toFixed(1)}`).join(' ');
      return { label: c.label, path, colour: COLOURS[i % COLOURS.length]!, last: fmt(pts[pts.length - 1]!.y) };
    });
  const xTicks = niceTicks(xMin, xMax).map((t) => ({ x: Number(sx(t).toFixed(1)), label: formatTick(t) }));
  const yTicks = niceTicks(yMin, yMax).map((t) => ({ y: Number(sy(t).toFixed(1)), label: formatTick(t) }));
  return { title, width, height, series, xTicks, yTicks, plot, xLabel };
}

/** The fields of a training-log record that the page draws. */
interface MetricLine extends MetricsRecord {
  loss?: number;
  valLoss?: number;
  trainLoss?: number;
  epsilon?: number;
  learningRate?: number;
}

/** Numeric leaves of a JSON value, named by their path ("scores.CIDEr-D"); per-image detail is skipped. */
function numericFigures(value: unknown, prefix = '', depth = 0): { name: string; value: string }[] {
  if (typeof value === 'number') return [{ name: prefix, value: fmt(value) }];
  if (!value || typeof value !== 'object' || Array.isArray(value) || depth > 3) return [];
  return Object.entries(value)
    .filter(([k]) => k !== 'perImage')
    .flatMap(([k, v]) => numericFigures(v, prefix ? `${prefix}.${k}` : k, depth + 1));
}

/**
 * The figures of one evaluation file. `captioner eval` writes {decoding, splits: {NAME: {images,
 * scores, semantic, …}}}: one table per split; any other JSON shows its numeric leaves.
 */
function evaluationFigures(file: string, json: unknown): EvalFigures[] {
  const splits = (json as { splits?: unknown })?.splits;
  if (splits && typeof splits === 'object' && !Array.isArray(splits)) {
    const decoding = (json as { decoding?: unknown }).decoding;
    // "beam search, width 3" (captioner eval), or an object of settings.
    const how =
      typeof decoding === 'string'
        ? ` (${decoding})`
        : decoding && typeof decoding === 'object'
          ? ` (${Object.entries(decoding)
              .map(([k, v]) => `${k} ${String(v)}`)
              .join(', ')})`
          : '';
    return Object.entries(splits).map(([split, v]) => ({
      file: `${file}: ${split}${how}`,
      figures: numericFigures({
        images: (v as { images?: unknown }).images,
        ...(v as { scores?: object }).scores,
        semantic: (v as { semantic?: unknown }).semantic,
      }).slice(0, 40),
    }));
  }
  return [{ file, figures: numericFigures(json).slice(0, 40) }];
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
      out.push(
        ...evaluationFigures(file, JSON.parse(await readFile(join(modelDir, file), 'utf8'))).filter(
          (f) => f.figures.length > 0,
        ),
      );
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

/** Describes the model in `modelDir` for the model page. */
export async function describeModel(modelDir: string): Promise<ModelDescription> {
  const { dir, config } = await readCheckpointConfig(modelDir);
  const metrics = (await readMetricsLog(join(modelDir, METRICS_FILE))) as MetricLine[];
  const steps = metrics.filter((m) => m.type === 'step' && typeof m.step === 'number');
  const epochs = metrics.filter((m) => m.type === 'epoch' && typeof m.step === 'number');
  const charts: Chart[] = [];
  const loss = layoutChart(
    'Loss per token',
    [
      { label: 'training', points: steps.map((m) => ({ x: m.step!, y: m.loss ?? NaN })) },
      {
        label: 'validation',
        points: epochs.map((m) => ({ x: m.step!, y: m.valLoss ?? NaN })).filter((p) => Number.isFinite(p.y)),
      },
    ],
    'step',
  );
  if (loss) charts.push(loss);
  const eps = layoutChart(
    'Scheduled sampling ε (probability of feeding the true word)',
    [{ label: 'ε', points: steps.map((m) => ({ x: m.step!, y: m.epsilon ?? NaN })) }],
    'step',
    640,
    200,
  );
  if (eps) charts.push(eps);
  const valLosses = epochs.map((m) => m.valLoss).filter((v): v is number => typeof v === 'number');
  const last = steps[steps.length - 1];
  return {
    name: basename(modelDir.replace(/\/+$/, '')) || modelDir,
    card: await readModelCard(modelDir),
    modelDir,
    checkpoint: basename(dir),
    config,
    antiLm:
      (
        await readPrior(
          dir,
          Vocabulary.fromJSON(JSON.parse(await readFile(join(dir, 'vocab.json'), 'utf8')), join(dir, 'vocab.json')),
        )
      )?.antiLm ?? null,
    familiarity: await readFamiliarity(dir).then((f) => (f ? { ...f.calibration, threshold: f.threshold } : null)),
    dataset: await readDataset(config.train?.data),
    training: last
      ? {
          steps: last.step!,
          epochs: last.epoch ?? epochs.length,
          lastLoss: last.loss ?? null,
          bestValLoss: valLosses.length ? Math.min(...valLosses) : null,
          raisedBy: lossRaisedBy(config),
        }
      : null,
    charts,
    evaluations: await readEvaluations(modelDir),
  };
}
