/**
 * Turning a typed spec into yargs options, and yargs' answer back into settings, so that each
 * setting is declared once (in model/) and the CLI only presents it: `train`'s config
 * (model/util/config.ts ConfigSpec) and the decoding settings of `caption` and `eval`
 * (model/decode/options.ts DECODE_SPEC).
 */
import type { Options } from 'yargs';
import type { ConfigLayer, ConfigSpec, FieldSpec, SpecGroup } from '../model/util/config.ts';
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
export function specOptions<T>(spec: ConfigSpec<T>, defaults: T): Record<string, Options> {
  const out: Record<string, Options> = {};
  for (const [key, field] of Object.entries(spec) as [string, ConfigSpec<T>[keyof T]][]) {
    const def = JSON.stringify((defaults as Record<string, unknown>)[key]);
    out[kebab(key)] = {
      describe: `${field.describe} [default: ${def}]`,
      type: field.type === 'number[]' ? 'string' : field.type,
      choices: field.choices as string[] | undefined,
    };
  }
  return out;
}

/**
 * The flags of each group of `spec`, in the order of `groups` and, within a group, of the spec:
 * what yargs' `.group(flags, title)` takes. `extra` puts a command's own flags (not in the spec)
 * first in a group. A field whose group is not in `groups` is an error.
 */
export function specGroups<T>(
  spec: ConfigSpec<T>,
  groups: readonly SpecGroup[],
  extra: Readonly<Record<string, readonly string[]>> = {},
): { title: string; flags: string[] }[] {
  const byKey = new Map(groups.map((g) => [g.key, { title: `${g.title}:`, flags: [...(extra[g.key] ?? [])] }]));
  for (const [key, field] of Object.entries(spec) as [string, FieldSpec][]) {
    const group = byKey.get(field.group ?? '');
    if (!group) throw new Error(`spec field "${key}" names no known group (${JSON.stringify(field.group)})`);
    group.flags.push(kebab(key));
  }
  return [...byKey.values()].filter((g) => g.flags.length > 0);
}

/**
 * The settings of `spec` as Markdown for the docs: per group, a heading, what the group is for,
 * and a table of flag, default and description, in `--help`'s order. Docs derive from the spec
 * as `--help` does (`node --import tsx scripts/train-options.ts` prints the training options).
 */
export function specMarkdown<T>(spec: ConfigSpec<T>, defaults: T, groups: readonly SpecGroup[]): string {
  const escape = (text: string) => text.replace(/\|/g, '\\|');
  const fields = Object.entries(spec) as [string, FieldSpec][];
  const parts: string[] = [];
  for (const group of groups) {
    const rows = fields
      .filter(([, f]) => f.group === group.key)
      .map(([key, f]) => {
        const def = JSON.stringify((defaults as Record<string, unknown>)[key]);
        const choices = f.choices ? ` (${f.choices.join(', ')})` : '';
        return `| \`--${kebab(key)}\` | \`${escape(def)}\` | ${escape(f.describe)}${choices} |`;
      });
    if (rows.length === 0) continue;
    const lead = group.describe.charAt(0).toUpperCase() + group.describe.slice(1);
    parts.push(
      `### ${group.title}\n\n${lead}.\n\n| option | default | what it does |\n| --- | --- | --- |\n${rows.join('\n')}\n`,
    );
  }
  return parts.join('\n');
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

/** The whole-number flag `--name`, at least `min`; anything else is a usage error naming the flag and the value. */
export function integerFlag(argv: Record<string, unknown>, name: string, min = 1): number {
  const v = argv[name];
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min)
    throw new UsageError(`--${name} must be a whole number ≥ ${min}, got ${String(v)}`);
  return v;
}

/** As `integerFlag`, or undefined when the flag was not given. */
export function optionalIntegerFlag(argv: Record<string, unknown>, name: string, min = 1): number | undefined {
  return argv[name] === undefined ? undefined : integerFlag(argv, name, min);
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
