/**
 * Turning batch captioning's arguments into image files: files as named, folders searched
 * recursively, globs expanded (fast-glob). Folders and globs yield files with an image
 * extension only; a file named outright is taken whatever its name.
 *
 * Symbolic links are followed, but a link to a folder on its own path (`sub/up -> ..`, or
 * `a/to-b -> ../b` beside `b/to-a -> ../a`) is a loop and is not entered, so every walk ends.
 * Each file is listed once, by its real path (links resolved): of several paths to one file, the
 * first argument's wins, and within a folder or a glob the path without links in it, else the
 * first by name.
 */
import { stat, type Stats } from 'node:fs';
import { realpath as realpathAsync, stat as statAsync } from 'node:fs/promises';
import { dirname, extname, join, relative, resolve } from 'node:path';
import fg from 'fast-glob';

/** The extensions folders and globs are searched for (compared without case). */
export const IMAGE_EXTENSIONS = ['.jpg', '.jpeg', '.jpe', '.png', '.webp', '.gif', '.tif', '.tiff', '.avif'] as const;

/** Whether the file name ends in one of IMAGE_EXTENSIONS. */
export function hasImageExtension(path: string): boolean {
  return (IMAGE_EXTENSIONS as readonly string[]).includes(extname(path).toLowerCase());
}

/** An image to caption: its path as the user gave it (or as found in their folder or glob), and its real path. */
export interface InputFile {
  path: string;
  /** Absolute, with every symbolic link resolved: what identifies the file. */
  realPath: string;
}

/** An argument that names nothing to caption, and why: reported as a failed image. */
export interface InputError {
  path: string;
  error: string;
}

export interface ExpandedInputs {
  /** Image files in argument order (each folder's and glob's sorted by path), each file once. */
  files: InputFile[];
  /** Arguments that are neither a file, a folder nor a glob match, or cannot be read. */
  unreadable: InputError[];
  /** Folders and globs that held no image, for a warning. */
  empty: string[];
}

const byName = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** The real path of `path`, or null when it does not exist (any other error is thrown). */
export async function realPathOrNull(path: string): Promise<string | null> {
  try {
    return await realpathAsync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'ELOOP') return null;
    throw err;
  }
}

/**
 * fast-glob's file-system hooks with one change: `stat` of a symbolic link that leads back to a
 * folder on its own path (its real path is that of one of the folders it sits in) fails, as a
 * broken link does, so the walk does not enter it. The test needs only the path, so the result
 * does not depend on the order fast-glob walks in.
 */
function loopGuard(): Partial<fg.FileSystemAdapter> {
  const reals = new Map<string, Promise<string | null>>();
  const real = (path: string): Promise<string | null> => {
    let found = reals.get(path);
    if (!found) {
      found = realPathOrNull(path);
      reals.set(path, found);
    }
    return found;
  };
  const isLoop = async (path: string): Promise<boolean> => {
    const target = await real(path);
    if (target === null) return false;
    for (let dir = dirname(path); ; dir = dirname(dir)) {
      if ((await real(dir)) === target) return true;
      if (dirname(dir) === dir) return false;
    }
  };
  return {
    stat: ((path: string, done: (err: NodeJS.ErrnoException | null, stats?: Stats) => void) => {
      isLoop(resolve(path)).then(
        (loop) => {
          if (!loop) return stat(path, done);
          const err: NodeJS.ErrnoException = new Error(`${path}: a symbolic link back into its own folder`);
          err.code = 'ELOOP';
          done(err);
        },
        (err: NodeJS.ErrnoException) => done(err),
      );
    }) as fg.FileSystemAdapter['stat'],
  };
}

/**
 * One file per real path among `paths` (found under one argument): the path with no link in
 * it (its real path is `base`'s real path joined with its path from `base`) if there is one,
 * else the first by name. Returned sorted by name.
 */
async function oneEach(paths: readonly string[], base: string): Promise<InputFile[]> {
  const realBase = await realpathAsync(base);
  const chosen = new Map<string, { path: string; direct: boolean }>();
  for (const path of [...paths].sort(byName)) {
    let realPath: string;
    try {
      realPath = await realpathAsync(path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue; // gone since it was listed
      throw err;
    }
    const direct = realPath === join(realBase, relative(base, path));
    const prior = chosen.get(realPath);
    if (!prior || (direct && !prior.direct)) chosen.set(realPath, { path, direct });
  }
  return [...chosen].map(([realPath, { path }]) => ({ path, realPath })).sort((a, b) => byName(a.path, b.path));
}

/** The image files of a folder, recursively (dot files and folders left out). */
async function folderImages(folder: string): Promise<InputFile[]> {
  const inside = await fg('**/*', {
    cwd: folder,
    onlyFiles: true,
    dot: false,
    followSymbolicLinks: true,
    fs: loopGuard(),
  });
  return oneEach(
    inside.filter(hasImageExtension).map((p) => join(folder, p)),
    folder,
  );
}

/** The image files a glob matches. */
async function globImages(pattern: string): Promise<InputFile[]> {
  const found = await fg(pattern, { onlyFiles: true, dot: false, followSymbolicLinks: true, fs: loopGuard() });
  return oneEach(found.filter(hasImageExtension), '.');
}

async function statOrNull(path: string): Promise<Stats | null> {
  try {
    return await statAsync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return null;
    throw err;
  }
}

/** Expands file, folder and glob arguments; paths keep the form they were given in (relative stays relative). */
export async function expandInputs(args: readonly string[]): Promise<ExpandedInputs> {
  const files: InputFile[] = [];
  const unreadable: InputError[] = [];
  const empty: string[] = [];
  const seen = new Set<string>();
  for (const arg of args) {
    let found: InputFile[];
    try {
      const info = await statOrNull(arg);
      if (info?.isFile()) found = [{ path: arg, realPath: await realpathAsync(arg) }];
      else if (info?.isDirectory()) found = await folderImages(arg);
      else if (fg.isDynamicPattern(arg)) found = await globImages(arg);
      else {
        unreadable.push({ path: arg, error: 'no such file, folder or glob match' });
        continue;
      }
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      unreadable.push({ path: arg, error: `cannot read it (${e.message})` });
      continue;
    }
    if (found.length === 0) empty.push(arg);
    for (const file of found) {
      if (seen.has(file.realPath)) continue;
      seen.add(file.realPath);
      files.push(file);
    }
  }
  return { files, unreadable, empty };
}
