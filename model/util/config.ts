/**
 * Typed configuration with checked overrides (after nanoGPT's configurator): defaults live in
 * code, then an optional JSON file and command-line flags override them. Every override is
 * checked against the field's spec, so a misspelt key or a wrong type is an error that names
 * the key and where it came from, never a silently ignored setting.
 */

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** What a field accepts; `describe` doubles as the command's `--help` text. */
export interface FieldSpec {
  describe: string;
  /** The group (a `SpecGroup` key) the field is listed under in `--help` and the docs. */
  group?: string;
  type: 'number' | 'string' | 'boolean' | 'number[]';
  choices?: readonly string[];
  nullable?: boolean;
  integer?: boolean;
  min?: number;
  max?: number;
}

export type ConfigSpec<T> = { [K in keyof T]-?: FieldSpec };

/** A titled group of settings, in the order `--help` shows them: `title` heads the group. */
export interface SpecGroup {
  key: string;
  title: string;
  /** What the group is for, in a sentence (the docs' lead for the group). */
  describe: string;
}

/** A spec whose every field names its group, one of `G`. */
export type GroupedSpec<T, G extends string> = { [K in keyof T]-?: FieldSpec & { group: G } };

/** `spec` with every field put in `group`, e.g. a shared architecture spec inside a command's spec. */
export function inGroup<T, G extends string>(spec: ConfigSpec<T>, group: G): GroupedSpec<T, G> {
  const out = {} as Record<string, FieldSpec & { group: G }>;
  for (const [key, field] of Object.entries(spec) as [string, FieldSpec][]) out[key] = { ...field, group };
  return out as GroupedSpec<T, G>;
}

/** One layer of overrides and where it came from (a file name, "flags"). */
export interface ConfigLayer {
  source: string;
  values: Record<string, unknown>;
}

function show(value: unknown): string {
  return typeof value === 'number' ? String(value) : JSON.stringify(value);
}

function checkValue(key: string, spec: FieldSpec, value: unknown, source: string): unknown {
  const where = `${source}: "${key}"`;
  if (value === null) {
    if (spec.nullable) return null;
    throw new ConfigError(`${where} may not be null`);
  }
  if (spec.type === 'number[]') {
    // Flags arrive as "32,64" or as repeated numbers; files as arrays.
    const list = typeof value === 'string' ? value.split(',').map((s) => s.trim()) : value;
    if (!Array.isArray(list) || list.length === 0)
      throw new ConfigError(`${where} must be a non-empty list of numbers, got ${JSON.stringify(value)}`);
    return list.map((v, i) =>
      checkValue(`${key}[${i}]`, { ...spec, type: 'number' }, typeof v === 'string' ? Number(v) : v, source),
    );
  }
  if (spec.type === 'number') {
    if (typeof value !== 'number' || !Number.isFinite(value))
      throw new ConfigError(`${where} must be a finite number, got ${show(value)}`);
    if (spec.integer && !Number.isInteger(value)) throw new ConfigError(`${where} must be an integer, got ${value}`);
    if (spec.min !== undefined && value < spec.min)
      throw new ConfigError(`${where} must be >= ${spec.min}, got ${value}`);
    if (spec.max !== undefined && value > spec.max)
      throw new ConfigError(`${where} must be <= ${spec.max}, got ${value}`);
    return value;
  }
  if (typeof value !== spec.type)
    throw new ConfigError(`${where} must be a ${spec.type}, got ${JSON.stringify(value)}`);
  if (spec.choices && !spec.choices.includes(value as string)) {
    throw new ConfigError(`${where} must be one of ${spec.choices.join(', ')}, got ${JSON.stringify(value)}`);
  }
  return value;
}

/**
 * Applies `layers` in order on top of `defaults`. Unknown keys and values of the wrong type
 * are errors. Returns a new object; `defaults` is not touched.
 */
export function resolveConfig<T extends object>(defaults: T, spec: ConfigSpec<T>, layers: readonly ConfigLayer[]): T {
  const out = { ...defaults } as Record<string, unknown>;
  for (const layer of layers) {
    for (const [key, value] of Object.entries(layer.values)) {
      if (value === undefined) continue;
      const field = (spec as Record<string, FieldSpec>)[key];
      if (!field) throw new ConfigError(`${layer.source}: unknown setting "${key}"`);
      out[key] = checkValue(key, field, value, layer.source);
    }
  }
  return out as T;
}

/** Picks the keys of `keys` from an object, e.g. the architecture part of a training config. */
export function pick<T extends object, K extends keyof T>(obj: T, keys: readonly K[]): Pick<T, K> {
  const out = {} as Pick<T, K>;
  for (const k of keys) out[k] = obj[k];
  return out;
}
