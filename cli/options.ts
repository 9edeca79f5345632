/**
 * Turning a typed config spec into yargs options, and yargs' answer back into a config layer,
 * so that each setting is declared once (in model/) and the CLI only presents it.
 */
import { readFile } from 'node:fs/promises';
import type { Options } from 'yargs';
import { ConfigError, type ConfigLayer, type ConfigSpec } from '../model/util/config.ts';

/** "imageSize" → "image-size": flags are shown in kebab case; yargs hands both spellings back. */
export function kebab(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

/** yargs options for every field of `spec`, without defaults (so that only given flags override). */
export function specOptions<T>(spec: ConfigSpec<T>, defaults: T, group: string): Record<string, Options> {
  const out: Record<string, Options> = {};
  for (const [key, field] of Object.entries(spec) as [string, ConfigSpec<T>[keyof T]][]) {
    const def = JSON.stringify((defaults as Record<string, unknown>)[key]);
    out[kebab(key)] = {
      describe: `${field.describe} [default: ${def}]`,
      type: field.type === 'number[]' ? 'string' : field.type,
      choices: field.choices as string[] | undefined,
      group,
    };
  }
  return out;
}

/** The flags the user gave for fields of `spec`, as a config layer (yargs adds kebab-case twins; they are skipped). */
export function flagLayer<T>(spec: ConfigSpec<T>, argv: Record<string, unknown>): ConfigLayer {
  const values: Record<string, unknown> = {};
  for (const key of Object.keys(spec)) {
    const value = argv[key];
    if (value === undefined) continue;
    values[key] = (spec as Record<string, { nullable?: boolean }>)[key]?.nullable && value === 'null' ? null : value;
  }
  return { source: 'flags', values };
}

/** The layer from a JSON config file (`--config FILE`). */
export async function fileLayer(path: string): Promise<ConfigLayer> {
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

/** `--anti-lm` and `--anti-lm-plausibility`, as `caption` and `eval` take them (model/decode/decode.ts). */
export const ANTI_LM_OPTIONS: Record<string, Options> = {
  'anti-lm': {
    type: 'number',
    describe:
      "anti-LM weight λ: take λ·log p(word | previous word) of the training captions off each word's score (needs the model's language-prior.json) [default: the model's, else 0]",
  },
  'anti-lm-plausibility': {
    type: 'number',
    describe: "anti-LM: only words with p ≥ β·max p are chosen [default: the model's, else 0.15]",
  },
};
