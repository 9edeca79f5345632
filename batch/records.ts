/**
 * Batch captioning's output records in JSON Lines, CSV (RFC 4180) and TSV, written one whole
 * record per line and read back for resuming. A file cut short by a kill ends in a partial
 * record with no line end; reading drops it, so a resumed run rewrites that image whole.
 *
 * A record's `path` is the image's path as the user gave it. A record file (not stdout) also
 * keeps the image's real path (absolute, symbolic links resolved) wherever it differs from
 * `path`, so that a rerun from another directory or through another alias finds it: JSON Lines
 * as "realPath", CSV and TSV in a last column `real_path` (empty where it equals `path`).
 *
 * A model with a familiarity calibration (model/familiarity/) adds to each record how familiar
 * the image looks to it: JSON Lines as "familiarity": {"score", "threshold", "familiar"}, CSV
 * and TSV in the columns `familiar` (true/false), `familiarity_score`, `familiarity_threshold`
 * before `error` (a file's header says whether it has them).
 */
import type { AttentionMaps } from '../model/decode/decode.ts';
import type { Familiarity } from '../model/familiarity/familiarity.ts';
import { parseCsv as parseCsvText } from '../model/util/csv.ts';

export type RecordFormat = 'jsonl' | 'csv' | 'tsv';
export const RECORD_FORMATS: readonly RecordFormat[] = ['jsonl', 'csv', 'tsv'];

/** One image's result: its caption and log-probability (with the alternatives of --nbest), or why it failed. */
export interface CaptionRecord {
  path: string;
  /** The image's real path, where it differs from `path` (record files only). */
  realPath?: string;
  caption?: string;
  logProb?: number;
  /** The n best captions, best first (the first is `caption`). */
  nbest?: { caption: string; logProb: number }[];
  /**
   * With `caption --attention` (JSON Lines only): where the model looked for each word, `{grid:
   * [rows, cols], weights}`, one row of weights per word of `caption`, row-major over the grid.
   */
  attention?: AttentionMaps;
  /** How familiar the image looks to the model; only from a calibrated model. */
  familiarity?: Familiarity;
  error?: string;
}

export class RecordFileError extends Error {
  override name = 'RecordFileError';
}

/** Whether the record holds a caption (and so is not to be redone on resume). */
export function isCaptioned(r: CaptionRecord): boolean {
  return r.error === undefined && typeof r.caption === 'string';
}

/** The CSV/TSV columns of a record's familiarity. */
const FAMILIARITY_COLUMNS = ['familiar', 'familiarity_score', 'familiarity_threshold'];

/**
 * The columns of CSV/TSV output: path, caption, log_prob, then each alternative, then (for a
 * calibrated model) the familiarity's, then error, then (in record files) real_path.
 */
export function columns(nbest: number, realPath = false, familiarity = false): string[] {
  const cols = ['path', 'caption', 'log_prob'];
  for (let i = 2; i <= nbest; i++) cols.push(`caption_${i}`, `log_prob_${i}`);
  if (familiarity) cols.push(...FAMILIARITY_COLUMNS);
  cols.push('error');
  if (realPath) cols.push('real_path');
  return cols;
}

function toRow(r: CaptionRecord, nbest: number, realPath: boolean, familiarity: boolean): string[] {
  const row = [r.path, r.caption ?? '', r.logProb === undefined ? '' : String(r.logProb)];
  for (let i = 1; i < nbest; i++) {
    const alt = r.nbest?.[i];
    row.push(alt?.caption ?? '', alt === undefined ? '' : String(alt.logProb));
  }
  if (familiarity) {
    const f = r.familiarity;
    row.push(f ? String(f.familiar) : '', f ? String(f.score) : '', f ? String(f.threshold) : '');
  }
  row.push(r.error ?? '');
  if (realPath) row.push(r.realPath ?? '');
  return row;
}

function fromRow(row: string[], cols: string[], where: string): CaptionRecord {
  if (row.length !== cols.length)
    throw new RecordFileError(`${where}: ${row.length} fields, the header has ${cols.length}`);
  const get = (name: string) => row[cols.indexOf(name)] ?? '';
  const num = (text: string, name: string) => {
    const v = Number(text);
    if (text === '' || !Number.isFinite(v))
      throw new RecordFileError(`${where}: ${name} ${JSON.stringify(text)} is not a number`);
    return v;
  };
  const r: CaptionRecord = { path: get('path') };
  if (!r.path) throw new RecordFileError(`${where}: empty path`);
  if (get('real_path') !== '') r.realPath = get('real_path');
  if (get('error') !== '') {
    r.error = get('error');
    return r;
  }
  r.caption = get('caption');
  r.logProb = num(get('log_prob'), 'log_prob');
  if (cols.includes('familiar') && get('familiar') !== '') {
    const familiar = get('familiar');
    if (familiar !== 'true' && familiar !== 'false')
      throw new RecordFileError(`${where}: familiar ${JSON.stringify(familiar)} is neither true nor false`);
    r.familiarity = {
      score: num(get('familiarity_score'), 'familiarity_score'),
      threshold: num(get('familiarity_threshold'), 'familiarity_threshold'),
      familiar: familiar === 'true',
    };
  }
  if (cols.includes('caption_2')) {
    r.nbest = [{ caption: r.caption, logProb: r.logProb }];
    for (let i = 2; cols.includes(`caption_${i}`); i++) {
      if (get(`log_prob_${i}`) === '') break; // fewer hypotheses than asked for
      r.nbest.push({ caption: get(`caption_${i}`), logProb: num(get(`log_prob_${i}`), `log_prob_${i}`) });
    }
  }
  return r;
}

/** RFC 4180: quote a field holding a comma, quote, CR or LF, doubling its quotes. */
export function csvField(value: string): string {
  return /[",\r\n]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
}

/** TSV with backslash escapes (\\t \\n \\r \\\\), so that every record is one line. */
export function tsvField(value: string): string {
  return value.replace(/[\\\t\n\r]/g, (c) => ({ '\\': '\\\\', '\t': '\\t', '\n': '\\n', '\r': '\\r' })[c]!);
}

function tsvUnescape(value: string): string {
  return value.replace(/\\(.)/g, (_, c: string) => ({ t: '\t', n: '\n', r: '\r', '\\': '\\' })[c] ?? c);
}

/**
 * The header line of a new file ('' for JSON Lines); `realPath`: with the real_path column;
 * `familiarity`: with the familiarity columns.
 */
export function headerText(format: RecordFormat, nbest: number, realPath = false, familiarity = false): string {
  if (format === 'jsonl') return '';
  return formatRow(format, columns(nbest, realPath, familiarity));
}

function formatRow(format: 'csv' | 'tsv', row: string[]): string {
  return format === 'csv' ? row.map(csvField).join(',') + '\r\n' : row.map(tsvField).join('\t') + '\n';
}

/**
 * One record as text, line end included. JSON Lines carries `realPath` and `familiarity` when
 * the record has them; CSV and TSV have columns for them when `realPath` and `familiarity` are
 * set (the file's header says which).
 */
export function formatRecord(
  format: RecordFormat,
  r: CaptionRecord,
  nbest: number,
  realPath = false,
  familiarity = false,
): string {
  if (format === 'jsonl') {
    const out: CaptionRecord = { path: r.path };
    if (r.realPath !== undefined) out.realPath = r.realPath;
    if (r.caption !== undefined) out.caption = r.caption;
    if (r.logProb !== undefined) out.logProb = r.logProb;
    if (r.nbest !== undefined) out.nbest = r.nbest;
    if (r.attention !== undefined) out.attention = r.attention;
    if (r.familiarity !== undefined) out.familiarity = r.familiarity;
    if (r.error !== undefined) out.error = r.error;
    return JSON.stringify(out) + '\n';
  }
  return formatRow(format, toRow(r, nbest, realPath, familiarity));
}

/**
 * Splits CSV text into complete records (model/util/csv.ts). A last record with no line end after
 * it is not among `rows`: `partial` says there was one.
 */
export function parseCsv(text: string): { rows: string[][]; partial: boolean } {
  const { rows, partial } = parseCsvText(text);
  return { rows, partial };
}

/** What an existing output file holds: its complete records, and whether a partial one was dropped. */
export interface ExistingRecords {
  records: CaptionRecord[];
  droppedPartial: boolean;
  /** CSV/TSV: whether the file has the real_path column (files written before it had none). */
  realPathColumn: boolean;
  /** CSV/TSV: whether the file has the familiarity columns; null when it has no header yet (the run chooses). */
  familiarityColumns: boolean | null;
}

/**
 * Reads an output file written by an earlier run in `format` with `nbest` alternatives. A
 * record cut short (no line end) is dropped; anything else that is not a record of this
 * format and these columns is an error naming the file and line, so that a run never
 * appends to (or resumes over) a file it did not write.
 */
export function parseRecords(text: string, format: RecordFormat, nbest: number, file: string): ExistingRecords {
  if (text === '') return { records: [], droppedPartial: false, realPathColumn: true, familiarityColumns: null };
  if (format === 'jsonl') {
    const lines = text.split('\n');
    const tail = lines.pop()!; // after the last '\n': '' when the file ends whole
    const records = lines.map((line, i) => {
      let r: unknown;
      try {
        r = JSON.parse(line);
      } catch {
        throw new RecordFileError(`${file}:${i + 1}: not a JSON record; is --format right? (refusing to append to it)`);
      }
      const rec = r as CaptionRecord;
      if (
        !rec ||
        typeof rec.path !== 'string' ||
        (rec.error === undefined && (typeof rec.caption !== 'string' || typeof rec.logProb !== 'number'))
      ) {
        throw new RecordFileError(
          `${file}:${i + 1}: not a caption record (expected {"path", "caption", "logProb"} or {"path", "error"})`,
        );
      }
      if (rec.realPath !== undefined && (typeof rec.realPath !== 'string' || !rec.realPath))
        throw new RecordFileError(`${file}:${i + 1}: "realPath" must be a non-empty string`);
      const f = rec.familiarity as Partial<Familiarity> | undefined;
      if (
        f !== undefined &&
        (typeof f?.score !== 'number' || typeof f.threshold !== 'number' || typeof f.familiar !== 'boolean')
      )
        throw new RecordFileError(`${file}:${i + 1}: "familiarity" must be {"score", "threshold", "familiar"}`);
      return rec;
    });
    return { records, droppedPartial: tail !== '', realPathColumn: true, familiarityColumns: null };
  }
  let rows: string[][];
  let partial: boolean;
  if (format === 'csv') ({ rows, partial } = parseCsv(text));
  else {
    const lines = text.split('\n');
    partial = lines.pop() !== '';
    rows = lines.map((l) => l.split('\t').map(tsvUnescape));
  }
  const header = rows.shift();
  if (!header) return { records: [], droppedPartial: partial, realPathColumn: true, familiarityColumns: null };
  // Files written before the real_path column was added, or by a model without a familiarity
  // calibration, are read (and appended to) as they are.
  const layouts = [true, false].flatMap((realPath) => [true, false].map((familiarity) => ({ realPath, familiarity })));
  const layout = layouts.find((l) => header.join('\t') === columns(nbest, l.realPath, l.familiarity).join('\t'));
  if (layout === undefined) {
    throw new RecordFileError(
      `${file}: its columns are ${header.join(',')}; this run writes ${columns(nbest, true).join(',')} (same --format and --nbest as the first run, or another --out)`,
    );
  }
  const expected = columns(nbest, layout.realPath, layout.familiarity);
  return {
    records: rows.map((row, i) => fromRow(row, expected, `${file}: record ${i + 1}`)),
    droppedPartial: partial,
    realPathColumn: layout.realPath,
    familiarityColumns: layout.familiarity,
  };
}
