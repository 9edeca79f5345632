/**
 * Anyone's own captions, as CSV or JSON Lines: one row per (image, caption), several rows per
 * image allowed.
 *   CSV (RFC 4180: quoted fields may hold commas, quotes doubled, newlines): a header naming
 *     the columns `image` and `caption`, optionally `split` and `id`.
 *   JSONL: {"image": "...", "caption": "..."} or {"image", "captions": [...]}, optionally
 *     "split" and "id".
 * Image paths are relative to --images (default: the input file's directory). Images whose rows
 * name no split get one from a hash of their id (train / val / test by the given fractions).
 */
import { dirname } from 'node:path';
import { parseCsv as parseCsvText } from '../../model/util/csv.ts';
import type { Issue } from '../build.ts';
import { cleanCaptions, hashedSplit, imagePath, readLines, readText, recordError, type ImportedImage } from './read.ts';

export interface TableOptions {
  input: string;
  images?: string;
  seed?: number;
  valFraction?: number;
  testFraction?: number;
}

interface Row {
  where: string;
  image: string;
  captions: string[];
  split?: string;
  id?: string;
}

/**
 * Splits CSV text into rows of fields (model/util/csv.ts), each with the line it starts on. A last
 * row without a line end is a row; a quote left open at the end of the file is an error.
 */
export function parseCsv(text: string, file: string): { line: number; fields: string[] }[] {
  const { rows, lines, tail } = parseCsvText(text);
  if (tail?.inQuotes) throw recordError(file, `line ${tail.line}`, 'a quoted field is not closed');
  const out = rows.map((fields, i) => ({ line: lines[i]!, fields }));
  if (tail && !(tail.fields.length === 1 && tail.fields[0] === '')) out.push({ line: tail.line, fields: tail.fields });
  return out;
}

async function csvRows(file: string): Promise<Row[]> {
  const rows = parseCsv(await readText(file), file);
  const header = rows.shift();
  if (!header) throw recordError(file, 'line 1', 'empty file: expected a header with "image" and "caption" columns');
  const col = (name: string) => header.fields.findIndex((f) => f.trim().toLowerCase() === name);
  const [image, caption, split, id] = ['image', 'caption', 'split', 'id'].map(col) as [number, number, number, number];
  if (image < 0 || caption < 0)
    throw recordError(
      file,
      'line 1',
      `the header must name "image" and "caption" columns (got ${header.fields.join(',')})`,
    );
  return rows.map(({ line, fields }) => {
    if (fields.length !== header.fields.length)
      throw recordError(file, `line ${line}`, `${fields.length} fields, the header has ${header.fields.length}`);
    return {
      where: `line ${line}`,
      image: fields[image]!,
      captions: [fields[caption]!],
      split: split >= 0 ? fields[split] || undefined : undefined,
      id: id >= 0 ? fields[id] || undefined : undefined,
    };
  });
}

async function jsonlRows(file: string, issues: Issue[]): Promise<Row[]> {
  const rows: Row[] = [];
  for (const [i, line] of (await readLines(file, issues)).entries()) {
    if (line === null || !line.trim()) continue;
    const where = `line ${i + 1}`;
    let obj: unknown;
    try {
      obj = JSON.parse(line);
    } catch (err) {
      throw recordError(file, where, `malformed JSON (${(err as Error).message})`);
    }
    const o = obj as Record<string, unknown> | null;
    if (!o || typeof o !== 'object' || typeof o.image !== 'string')
      throw recordError(file, where, 'needs "image" (string)');
    const captions =
      typeof o.caption === 'string'
        ? [o.caption]
        : Array.isArray(o.captions) && o.captions.every((c) => typeof c === 'string')
          ? (o.captions as string[])
          : null;
    if (!captions) throw recordError(file, where, 'needs "caption" (string) or "captions" (array of strings)');
    for (const key of ['split', 'id'] as const)
      if (o[key] !== undefined && typeof o[key] !== 'string')
        throw recordError(file, where, `"${key}" must be a string`);
    rows.push({
      where,
      image: o.image,
      captions,
      split: o.split as string | undefined,
      id: o.id as string | undefined,
    });
  }
  return rows;
}

/** Reads a CSV or JSONL caption table into images (rows of one image merged). */
export async function readTable(
  format: 'csv' | 'jsonl',
  opts: TableOptions,
  issues: Issue[],
): Promise<ImportedImage[]> {
  const file = opts.input;
  const rows = format === 'csv' ? await csvRows(file) : await jsonlRows(file, issues);
  const base = opts.images ?? dirname(file);
  const byImage = new Map<string, { id: string; split?: string; captions: string[]; where: string }>();
  const ids = new Map<string, string>();
  for (const row of rows) {
    if (!row.image.trim()) throw recordError(file, row.where, 'empty "image"');
    const path = imagePath(base, row.image.trim());
    const id = row.id?.trim() || row.image.trim();
    let entry = byImage.get(path);
    if (!entry) {
      const other = ids.get(id);
      if (other)
        throw recordError(
          file,
          row.where,
          `duplicate id ${JSON.stringify(id)} for a different image (first at ${other})`,
        );
      ids.set(id, row.where);
      entry = { id, split: row.split, captions: [], where: row.where };
      byImage.set(path, entry);
    } else if (row.split && entry.split && row.split !== entry.split) {
      throw recordError(
        file,
        row.where,
        `split ${JSON.stringify(row.split)} contradicts ${JSON.stringify(entry.split)} given at ${entry.where} for the same image`,
      );
    }
    entry.split ??= row.split;
    entry.captions.push(...cleanCaptions(row.captions, file, `${row.where} (${row.image})`, issues));
  }
  const out: ImportedImage[] = [];
  for (const [path, e] of byImage) {
    if (e.captions.length === 0) {
      issues.push({ file, record: `${e.where} (${e.id})`, problem: 'no non-empty captions; image skipped' });
      continue;
    }
    const split = e.split ?? hashedSplit(e.id, opts.seed ?? 1, opts.valFraction ?? 0.1, opts.testFraction ?? 0.1);
    out.push({ id: e.id, split, captions: e.captions, path });
  }
  return out;
}
