/**
 * Atomic file and directory writes: a reader (or a process restarted after a kill) sees either
 * the old content or the new, never a half-written file.
 */
import { randomBytes } from 'node:crypto';
import { open, readFile, rename, rm, mkdir } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/** A fresh name beside `path` for its temporary twin. */
export function tempSibling(path: string): string {
  return join(dirname(path), `.${basename(path)}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
}

async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Writes `data` to a temporary file beside `path`, flushes it to disk, then renames it over `path`. */
export async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = tempSibling(path);
  const handle = await open(tmp, 'w');
  try {
    await handle.writeFile(data);
    await handle.sync();
  } catch (err) {
    await handle.close();
    await rm(tmp, { force: true });
    throw err;
  }
  await handle.close();
  await rename(tmp, path);
  await fsyncDir(dirname(path));
}

/**
 * Fills a temporary directory with `fill`, then renames it to `path` (which must not exist):
 * the directory appears complete or not at all.
 */
export async function writeDirAtomic(path: string, fill: (tmpDir: string) => Promise<void>): Promise<void> {
  const tmp = tempSibling(path);
  await mkdir(tmp, { recursive: true });
  try {
    await fill(tmp);
    await fsyncDir(tmp);
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }
  await fsyncDir(dirname(path));
}

/**
 * The value of `pending` (a readFile, readdir or stat), or null when it failed because the path
 * does not exist (ENOENT). Any other failure — a directory where a file was expected (EISDIR),
 * a file where a directory was (ENOTDIR), no permission — is thrown: an absent file is not the
 * same thing as an unreadable one.
 */
export async function ifExists<T>(pending: Promise<T>): Promise<T | null> {
  try {
    return await pending;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/** The parsed JSON of the file at `path`, or null when it does not exist (as `ifExists`). */
export async function readJsonIfExists<T>(path: string): Promise<T | null> {
  const text = await ifExists(readFile(path, 'utf8'));
  return text === null ? null : (JSON.parse(text) as T);
}
