/**
 * Reading the files users download (annotation JSON, caption lists, CSV), with errors that name
 * the file and the record: the user should know exactly what to fix.
 */
import { access, readFile } from 'node:fs/promises';
import { isAbsolute, join, relative, resolve } from 'node:path';
import { DatasetError } from '../../model/data/dataset.ts';
import { loadImagePixels } from '../../model/data/image.ts';
import { deriveSeed, Rng } from '../../model/util/rng.ts';
import type { BuildRecord, Issue } from '../build.ts';

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

async function readBytes(path: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (err) {
    throw new DatasetError(`${path}: cannot read (${(err as Error).message})`);
  }
}

/** A file's text; not UTF-8 is an error naming the line of the first bad byte. */
export async function readText(path: string): Promise<string> {
  const bytes = await readBytes(path);
  try {
    return strictUtf8.decode(bytes);
  } catch {
    const lossy = new TextDecoder('utf-8').decode(bytes);
    const line = lossy.slice(0, lossy.indexOf('\uFFFD')).split('\n').length;
    throw new DatasetError(`${path}: line ${line}: not valid UTF-8 (the file must be UTF-8 encoded)`);
  }
}

/** A JSON file; a syntax error names the file and where. */
export async function readJson(path: string): Promise<unknown> {
  const text = await readText(path);
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new DatasetError(`${path}: malformed JSON (${(err as Error).message})`);
  }
}

/**
 * A line-oriented file: each line decoded on its own, so that one line of bad bytes is an issue
 * of that line (returned as null) rather than of the whole file.
 */
export async function readLines(path: string, issues: Issue[]): Promise<(string | null)[]> {
  const bytes = await readBytes(path);
  const out: (string | null)[] = [];
  let start = 0;
  while (start < bytes.length) {
    let end = bytes.indexOf(0x0a, start);
    if (end < 0) end = bytes.length;
    const raw = bytes.subarray(start, end);
    try {
      out.push(strictUtf8.decode(raw).replace(/\r$/, ''));
    } catch {
      issues.push({ file: path, record: `line ${out.length + 1}`, problem: 'not valid UTF-8; line skipped' });
      out.push(null);
    }
    start = end + 1;
  }
  return out;
}

/** Trimmed, whitespace-collapsed captions; empty ones dropped and reported. */
export function cleanCaptions(captions: readonly string[], file: string, record: string, issues: Issue[]): string[] {
  const out: string[] = [];
  for (const c of captions) {
    const clean = c.replace(/\s+/g, ' ').trim();
    if (clean) out.push(clean);
    else issues.push({ file, record, problem: 'empty caption dropped' });
  }
  return out;
}

export const exists = (path: string): Promise<boolean> =>
  access(path).then(
    () => true,
    () => false,
  );

/** The first candidate path that exists, else the first (its absence is reported when read). */
export async function firstExisting(candidates: readonly string[]): Promise<string> {
  for (const c of candidates) if (await exists(c)) return c;
  return candidates[0]!;
}

/** An imported image: its record, plus where its pixels come from. */
export interface ImportedImage {
  id: string;
  /** The id as a number where the source numbers its images (COCO's ids, Karpathy's cocoid/imgid); `id` is its text. */
  sourceId?: number;
  split: string;
  captions: string[];
  /** Absolute path of the user's image file. */
  path: string;
}

/** Build records pointing (relatively) from the output directory at the user's files. */
export function toRecords(images: readonly ImportedImage[], out: string): BuildRecord[] {
  const base = resolve(out);
  return images.map((img) => ({
    id: img.id,
    ...(img.sourceId === undefined ? {} : { sourceId: img.sourceId }),
    split: img.split,
    captions: img.captions,
    file: relative(base, img.path),
  }));
}

/** The shared `pixels` callback of importers: the project's one preprocessing path. */
export function importPixels(
  images: readonly ImportedImage[],
  size: number,
): (record: BuildRecord, index: number) => Promise<Uint8Array> {
  return (_record, index) => loadImagePixels(images[index]!.path, size);
}

/** `sourceId` of an imported image whose source gave `value` as its id: set for an integer only. */
export function numericId(value: unknown): { sourceId?: number } {
  return typeof value === 'number' && Number.isSafeInteger(value) ? { sourceId: value } : {};
}

/** Resolves an image path given in an input file against a base directory. */
export function imagePath(base: string, file: string): string {
  return isAbsolute(file) ? file : resolve(join(base, file));
}

/**
 * A split for an image whose source names none: deterministic from (seed, id), so re-running
 * an import gives the same splits. (FNV-1a hash of the id, then the project's generator.)
 */
export function hashedSplit(id: string, seed: number, valFraction: number, testFraction: number): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 0x01000193) >>> 0;
  const u = new Rng(deriveSeed(seed, h)).next();
  return u < valFraction ? 'val' : u < valFraction + testFraction ? 'test' : 'train';
}

/** A DatasetError naming the file and record. */
export function recordError(file: string, record: string, problem: string): DatasetError {
  return new DatasetError(`${file}: ${record}: ${problem}`);
}
