/**
 * Turning the caption command's arguments into image paths: files as named, folders searched
 * recursively, globs expanded (fast-glob). Folders and globs yield files with an image
 * extension only; a file named outright is taken whatever its name.
 */
import { stat } from 'node:fs/promises';
import { extname, join, resolve } from 'node:path';
import fg from 'fast-glob';
import { ifExists } from '../model/io/fsutil.ts';

export const IMAGE_EXTENSIONS = ['.jpg', '.jpeg', '.jpe', '.png', '.webp', '.gif', '.tif', '.tiff', '.avif'] as const;

export function hasImageExtension(path: string): boolean {
  return (IMAGE_EXTENSIONS as readonly string[]).includes(extname(path).toLowerCase());
}

export interface ExpandedInputs {
  /** Image paths in argument order (each folder's and glob's sorted), each once. */
  files: string[];
  /** Arguments that are neither a file, a folder nor a glob: reported as failed images. */
  missing: string[];
  /** Folders and globs that held no image, for a warning. */
  empty: string[];
}

const byName = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** Expands file, folder and glob arguments; paths keep the form they were given in (relative stays relative). */
export async function expandInputs(args: readonly string[]): Promise<ExpandedInputs> {
  const files: string[] = [];
  const missing: string[] = [];
  const empty: string[] = [];
  const seen = new Set<string>();
  const add = (path: string) => {
    const key = resolve(path);
    if (seen.has(key)) return;
    seen.add(key);
    files.push(path);
  };
  for (const arg of args) {
    const info = await ifExists(stat(arg));
    let found: string[];
    if (info?.isFile()) {
      add(arg);
      continue;
    } else if (info?.isDirectory()) {
      const inside = await fg('**/*', { cwd: arg, onlyFiles: true, dot: false, followSymbolicLinks: true });
      found = inside
        .filter(hasImageExtension)
        .sort(byName)
        .map((p) => join(arg, p));
    } else if (fg.isDynamicPattern(arg)) {
      found = (await fg(arg, { onlyFiles: true, dot: false })).filter(hasImageExtension).sort(byName);
    } else {
      missing.push(arg);
      continue;
    }
    if (found.length === 0) empty.push(arg);
    found.forEach(add);
  }
  return { files, missing, empty };
}
