/**
 * MODEL_DIR/metrics.jsonl, the training log: one JSON object per line, a "step" record every
 * `logEvery` steps, an "epoch" record at each validation, and with `logGradientFlow` a
 * "gradient-flow" record (model/train/gradient-flow.ts) every so many steps (model/train/loop.ts
 * writes them, appending each line whole). A kill during an append can leave the last line cut short: that
 * line, and only that one, is dropped. Any other line that is not a record is an error.
 */
import { appendFile, readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CheckpointError } from './checkpoint.ts';
import { ifExists, writeFileAtomic } from './fsutil.ts';

/** The log's name inside a model directory. */
export const METRICS_FILE = 'metrics.jsonl';
/** The state file of a run of phases (model/train/phased.ts), kept in the finished model's directory. */
export const PHASES_FILE = 'phases.json';

/** One line of the log. */
export interface MetricsRecord {
  /**
   * "step" (loss, ε, learning rate, throughput), "epoch" (validation loss, samples) or
   * "gradient-flow" (gradient norms through time).
   */
  type?: string;
  step: number;
  epoch?: number;
  [key: string]: unknown;
}

/** A log line that is not a record: a broken model directory, like any unreadable checkpoint file. */
export class MetricsLogError extends CheckpointError {
  override name = 'MetricsLogError';
}

/**
 * The records of a log's text, in order. The last line counts as cut short when the text does
 * not end with a newline; if it does not parse it is dropped (`cutShort` says so).
 */
export function parseMetricsLog(text: string, source: string): { records: MetricsRecord[]; cutShort: boolean } {
  const lines = text.split('\n');
  const last = lines.length - 1; // '' when the text ends with a newline
  const records: MetricsRecord[] = [];
  let cutShort = false;
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (!line.trim()) continue;
    let record: unknown;
    try {
      record = JSON.parse(line);
    } catch (err) {
      if (i === last) {
        cutShort = true;
        continue;
      }
      throw new MetricsLogError(`${source}:${i + 1}: not a JSON line (${(err as Error).message})`);
    }
    if (!record || typeof record !== 'object' || typeof (record as MetricsRecord).step !== 'number')
      throw new MetricsLogError(`${source}:${i + 1}: not a metrics record (no numeric "step")`);
    records.push(record as MetricsRecord);
  }
  return { records, cutShort };
}

/** The records of the log at `path`; [] when there is no log. */
export async function readMetricsLog(path: string): Promise<MetricsRecord[]> {
  const text = await ifExists(readFile(path, 'utf8'));
  return text === null ? [] : parseMetricsLog(text, path).records;
}

/** Appends one record (a `MetricsRecord`) as one line, written whole by a single append. */
export async function appendMetrics(path: string, record: Readonly<Record<string, unknown>>): Promise<void> {
  await appendFile(path, JSON.stringify(record) + '\n');
}

/**
 * Keeps only the records at or before `step` (and drops a line cut short): a resumed run
 * rewrites what came after the checkpoint it resumes from.
 */
export async function truncateMetrics(path: string, step: number): Promise<void> {
  const kept = (await readMetricsLog(path)).filter((r) => r.step <= step);
  await writeFileAtomic(path, kept.map((r) => JSON.stringify(r) + '\n').join(''));
}

/** The training log of one stage a model went through. */
export interface TrainingStage {
  /** "stage 1", …; the model's own metrics.jsonl is the last stage. */
  name: string;
  /** The log's file name inside the model directory. */
  file: string;
  records: MetricsRecord[];
}

/** A log of an earlier stage kept beside the model's own: metrics-stage1.jsonl, metrics-pretrain.jsonl. */
const STAGE_FILE = /^metrics-(.+)\.jsonl$/;

/**
 * The training logs of every stage a model went through, in the order it went through them. A
 * model fine-tuned from another (`--init-from`) has in its own metrics.jsonl only its last run;
 * the logs of the runs before it are kept beside it as metrics-NAME.jsonl (models/default has
 * metrics-stage1.jsonl … metrics-stage4.jsonl), ordered by NAME with numbers compared as numbers,
 * and metrics.jsonl comes last. Each is read by `readMetricsLog`; a stage with no records is left
 * out. Stages named "stageN" are shown as "stage N", and metrics.jsonl after stages 1…k as
 * "stage k+1" (else "last stage"; "training" when it is the only log). A model made by a run of
 * phases (phases.json beside it, one phase per log) names each stage after its phase:
 * "scheduled-sampling", "label-smoothing", ….
 */
export async function readTrainingStages(modelDir: string): Promise<TrainingStage[]> {
  const names = (await ifExists(readdir(modelDir))) ?? [];
  const earlier = names
    .filter((n) => STAGE_FILE.test(n))
    .sort((a, b) => a.localeCompare(b, 'en', { numeric: true }))
    .map((file) => ({ file, label: STAGE_FILE.exec(file)![1]! }));
  const numbered = earlier.every((s, i) => s.label === `stage${i + 1}`);
  const stages: TrainingStage[] = [];
  for (const { file, label } of earlier) {
    const records = await readMetricsLog(join(modelDir, file));
    if (records.length) stages.push({ name: label.replace(/^stage(\d+)$/, 'stage $1'), file, records });
  }
  const own = await readMetricsLog(join(modelDir, METRICS_FILE));
  if (own.length) {
    const name = earlier.length === 0 ? 'training' : numbered ? `stage ${earlier.length + 1}` : 'last stage';
    stages.push({ name, file: METRICS_FILE, records: own });
  }
  const phases = await phaseNames(modelDir);
  // A run of phases keeps phase K's log as metrics-stageK.jsonl, the last phase's as metrics.jsonl.
  if (phases && numbered && earlier.length === phases.length - 1) {
    for (const stage of stages) {
      const k = stage.file === METRICS_FILE ? phases.length : Number(/\d+/.exec(stage.file)![0]);
      stage.name = phases[k - 1]!;
    }
  }
  return stages;
}

/** The phase names of phases.json in `modelDir`, in order; null without one (or one that names none). */
async function phaseNames(modelDir: string): Promise<string[] | null> {
  const text = await ifExists(readFile(join(modelDir, PHASES_FILE), 'utf8'));
  if (text === null) return null;
  try {
    const phases = (JSON.parse(text) as { phases?: { name?: unknown }[] }).phases;
    const names = Array.isArray(phases) ? phases.map((p) => p?.name) : [];
    return names.length && names.every((n): n is string => typeof n === 'string' && n !== '') ? names : null;
  } catch {
    return null; // the names are a courtesy: a damaged phases.json leaves the stages numbered
  }
}
