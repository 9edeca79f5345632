/**
 * What the web app shows of file paths: never an absolute path. A model's saved configuration
 * names the training machine's folders (its data set, output and starting checkpoint, e.g.
 * "/srv/data/shapes60d"), and the server's own model directory may be absolute too; pages and
 * the API show a path inside the model directory relative to it, and any other by its name.
 */
import { basename, isAbsolute, relative, resolve, sep } from 'node:path';
import type { ModelDescription } from './model-info.ts';

/** A path on a POSIX or a Windows machine (the model may have been trained on either). */
function looksAbsolute(path: string): boolean {
  return isAbsolute(path) || path.startsWith('/') || /^[A-Za-z]:[\\/]/.test(path) || path.startsWith('\\\\');
}

/** The last component of a POSIX or Windows path: "/a/b/" → "b", "C:\\a\\b" → "b". */
function lastComponent(path: string): string {
  const parts = path.split(/[\\/]+/).filter(Boolean);
  return parts.at(-1) ?? '';
}

/**
 * `path` as the app shows it: relative to `modelDir` when inside it ("." for the directory
 * itself), its name when absolute elsewhere, unchanged when already relative.
 */
export function displayPath(path: string, modelDir: string): string {
  if (!looksAbsolute(path)) return path;
  const inside = relative(resolve(modelDir), resolve(path));
  if (inside === '') return '.';
  if (isAbsolute(path) && !inside.startsWith('..') && !isAbsolute(inside)) return inside.split(sep).join('/');
  return lastComponent(path) || '.';
}

/** A JSON value with every string that is an absolute path shown by `displayPath`. */
export function withDisplayPaths<T>(value: T, modelDir: string): T {
  if (typeof value === 'string') return displayPath(value, modelDir) as T;
  if (Array.isArray(value)) return value.map((v: unknown) => withDisplayPaths(v, modelDir)) as T;
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, withDisplayPaths(v, modelDir)])) as T;
  }
  return value;
}

/** The model page's description with no absolute path in it: the directory by its name. */
export function publicDescription(description: ModelDescription, modelDir: string): ModelDescription {
  return {
    ...description,
    modelDir: description.name || basename(resolve(modelDir)),
    config: withDisplayPaths(description.config, modelDir),
    dataset: description.dataset
      ? { ...description.dataset, dir: displayPath(description.dataset.dir, modelDir) }
      : null,
  };
}
