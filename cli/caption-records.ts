/**
 * The caption command's output records in JSON Lines, CSV (RFC 4180) and TSV, written one whole
 * record per line and read back for resuming. A file cut short by a kill ends in a partial
 * record with no line end; reading drops it, so a resumed run rewrites that image whole.
 */

export type RecordFormat = 'jsonl' | 'csv' | 'tsv';
export const RECORD_FORMATS: readonly RecordFormat[] = ['jsonl', 'csv', 'tsv'];

/** One image's result: its caption and log-probability (with the alternatives of --nbest), or why it failed. */
export interface CaptionRecord {
  path: string;
  caption?: string;
  logProb?: number;
  /** The n best captions, best first (the first is `caption`). */
  nbest?: { caption: string; logProb: number }[];
  error?: string;
}

export class RecordFileError extends Error {
  override name = 'RecordFileError';
}

/** Whether the record holds a caption (and so is not to be redone on resume). */
export function isCaptioned(r: CaptionRecord): boolean {
  return r.error === undefined && typeof r.caption === 'string';
}

/** The columns of CSV/TSV output: path, caption, log_prob, then each alternative, then error. */
export function columns(nbest: number): string[] {
  const cols = ['path', 'caption', 'log_prob'];
  for (let i = 2; i <= nbest; i++) cols.push(`caption_${i}`, `log_prob_${i}`);
  cols.push('error');
  return cols;
}

function toRow(r: CaptionRecord, nbest: number): string[] {
  const row = [r.path, r.caption ?? '', r.logProb === undefined ? '' : String(r.logProb)];
  for (let i = 1; i < nbest; i++) {
    const alt = r.nbest?.[i];
    row.push(alt?.caption ?? '', alt === undefined ? '' : String(alt.logProb));
  }
  row.push(r.error ?? '');
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
  if (get('error') !== '') {
    r.error = get('error');
    return r;
  }
  r.caption = get('caption');
  r.logProb = num(get('log_prob'), 'log_prob');
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

/** The header line of a new file ('' for JSON Lines). */
export function headerText(format: RecordFormat, nbest: number): string {
  if (format === 'jsonl') return '';
  return formatRow(format, columns(nbest));
}

function formatRow(format: 'csv' | 'tsv', row: string[]): string {
  return format === 'csv' ? row.map(csvField).join(',') + '\r\n' : row.map(tsvField).join('\t') + '\n';
}

/** One record as text, line end included. */
export function formatRecord(format: RecordFormat, r: CaptionRecord, nbest: number): string {
  if (format === 'jsonl') {
    const out: CaptionRecord = { path: r.path };
    if (r.caption !== undefined) out.caption = r.caption;
    if (r.logProb !== undefined) out.logProb = r.logProb;
    if (r.nbest !== undefined) out.nbest = r.nbest;
    if (r.error !== undefined) out.error = r.error;
    return JSON.stringify(out) + '\n';
  }
  return formatRow(format, toRow(r, nbest));
}

/**
 * Splits CSV text into complete records (RFC 4180: quoted fields may hold commas, quotes and
 * line breaks). A last record with no line end after it is returned apart, as `partial`.
 */
export function parseCsv(text: string): { rows: string[][]; partial: boolean } {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  let i = 0;
  let started = false;
  while (i < text.length) {
    const c = text[i]!;
    started = true;
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        field += '"';
        i += 2;
        continue;
      }
      if (c === '"') quoted = false;
      else field += c;
      i += 1;
      continue;
    }
    if (c === '"') quoted = true;
    else if (c === ',') {
      row.push(field);
      field = '';
    } else if (c === '\n' || (c === '\r' && text[i + 1] === '\n')) {
      // A record ends at LF or CRLF; a CR the file ends on is a record cut short.
      row.push(field);
      rows.push(row);
      row = [];
      field = '';
      started = false;
      if (c === '\r') i += 1;
    } else field += c;
    i += 1;
  }
  return { rows, partial: started };
}

/** What an existing output file holds: its complete records, and whether a partial one was dropped. */
export interface ExistingRecords {
  records: CaptionRecord[];
  droppedPartial: boolean;
}

/**
 * Reads an output file written by an earlier run in `format` with `nbest` alternatives. A
 * record cut short (no line end) is dropped; anything else that is not a record of this
 * format and these columns is an error naming the file and line, so that a run never
 * appends to (or resumes over) a file it did not write.
 */
export function parseRecords(text: string, format: RecordFormat, nbest: number, file: string): ExistingRecords {
  if (text === '') return { records: [], droppedPartial: false };
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
      return rec;
    });
    return { records, droppedPartial: tail !== '' };
  }
  let rows: string[][];
  let partial: boolean;
  if (format === 'csv') ({ rows, partial } = parseCsv(text));
  else {
    const lines = text.split('\n');
    partial = lines.pop() !== '';
    rows = lines.map((l) => l.split('\t').map(tsvUnescape));
  }
  const expected = columns(nbest);
  const header = rows.shift();
  if (!header) return { records: [], droppedPartial: partial };
  if (header.join('\t') !== expected.join('\t')) {
    throw new RecordFileError(
      `${file}: its columns are ${header.join(',')}; this run writes ${expected.join(',')} (same --format and --nbest as the first run, or another --out)`,
    );
  }
  return { records: rows.map((row, i) => fromRow(row, expected, `${file}: record ${i + 1}`)), droppedPartial: partial };
}
