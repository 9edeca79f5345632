/**
 * Turning a typed spec into yargs options, and yargs' answer back into settings, so that each
 * setting is declared once (in model/) and the CLI only presents it: `train`'s config
 * (model/util/config.ts ConfigSpec) and the decoding settings of `caption` and `eval`
 * (model/decode/options.ts DECODE_SPEC).
 */
import { readFile } from 'node:fs/promises';
import type { Options } from 'yargs';
import { ConfigError, type ConfigLayer, type ConfigSpec } from '../model/util/config.ts';
import {
  STRATEGIES,
  readDecodeSettings,
  settingSpec,
  usedBy,
  type DecodeSettings,
  type NumericSetting,
  type Strategy,
} from '../model/decode/options.ts';
import { UsageError } from './errors.ts';

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

/** Decoding flags whose names are not their setting's in kebab case (the CLI's spelling since its first version). */
const DECODE_FLAGS: Partial<Record<NumericSetting, string>> = { beamWidth: 'beam', nBest: 'nbest' };

/** The flag of a decoding setting (model/decode/options.ts DECODE_SPEC), without dashes: "top-k", "beam". */
export function decodeFlag(key: string): string {
  return DECODE_FLAGS[key as NumericSetting] ?? kebab(key);
}

/**
 * yargs options for the decoding settings `keys`, from DECODE_SPEC: each a number, its help the
 * spec's text after the strategy that uses it, with the spec's default. No yargs default, so that
 * only the flags given count; `overrides` replace a flag's options where a command gives it
 * another meaning (`caption --beam` chooses beam search; `eval --beam 1` is greedy decoding).
 */
export function decodeFlagOptions(
  keys: readonly NumericSetting[],
  group: string,
  overrides: Partial<Record<NumericSetting, Options>> = {},
): Record<string, Options> {
  const out: Record<string, Options> = {};
  for (const key of keys) {
    const spec = settingSpec(key);
    const who = spec.strategies.length < STRATEGIES.length ? `${usedBy(key)}: ` : '';
    const def = spec.defaultText ?? String(spec.default);
    out[decodeFlag(key)] = {
      type: 'number',
      describe: `${who}${spec.describe} [default: ${def}]`,
      group,
      ...overrides[key],
    };
  }
  return out;
}

/**
 * The decoding settings among `keys` that the flags give, checked against DECODE_SPEC for
 * `strategy`: a value out of bounds, or a flag the strategy does not use, is an error naming the
 * flag (DecodeOptionsError: exit 2). `howToChoose` ends that error with how this command picks
 * the strategy the flag belongs to ("add --sample").
 */
export function decodeSettingsFromFlags(
  argv: Record<string, unknown>,
  keys: readonly NumericSetting[],
  strategy: Strategy,
  howToChoose: (strategy: Strategy) => string,
): DecodeSettings {
  const values: Record<string, unknown> = {};
  for (const key of keys) values[key] = argv[decodeFlag(key)];
  return readDecodeSettings(values, { strategy, nameOf: (key) => `--${decodeFlag(key)}`, howToChoose });
}

/** A flag that must be a whole number ≥ `min` (sizes and counts: --batch-size, --limit); undefined when not given. */
export function wholeNumberFlag(argv: Record<string, unknown>, name: string, min = 1): number | undefined {
  const v = argv[name];
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min)
    throw new UsageError(`--${name} must be a whole number ≥ ${min}, got ${String(v)}`);
  return v;
}
