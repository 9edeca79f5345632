/**
 * Reading a JSON config file as a layer of model/util/config.ts's resolution. Apart from it
 * because it reads files: config.ts itself is pure, and the browser bundle uses it.
 */
import { readFile } from 'node:fs/promises';
import { ConfigError, type ConfigLayer } from './config.ts';

/** The layer of a JSON config file (a recipe in configs/, `captioner train --config FILE`). */
export async function readConfigFile(path: string): Promise<ConfigLayer> {
  let values: unknown;
  try {
    values = JSON.parse(await readFile(path, 'utf8'));
  } catch (err) {
    throw new ConfigError(`${path}: cannot read config (${(err as Error).message})`);
  }
  if (!values || typeof values !== 'object' || Array.isArray(values))
    throw new ConfigError(`${path}: a config file must hold a JSON object`);
  return { source: path, values: values as Record<string, unknown> };
}
