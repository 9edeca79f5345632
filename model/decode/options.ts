/**
 * Decoding options, declared once. `DECODE_SPEC` is the typed spec of every setting a caller can
 * give the decoder: its type and bounds, its default, the strategies that use it and its help
 * text. Everything else is derived from it: the decoder's own check (`resolveDecodeOptions`), the
 * reader the front ends turn their raw values with (`readDecodeSettings`: the CLI's flags, the
 * server's form fields, eval's options), and the CLI's help (cli/options.ts).
 *
 * The decoder takes any settings and uses those of its strategy, so that a program can keep one
 * options object for several strategies. The front ends are stricter: a setting the chosen
 * strategy does not use (`topK` with beam search) is refused, naming it, so that a user never
 * believes it shaped the caption.
 */
import type { LanguagePrior } from './prior.ts';

export const STRATEGIES = ['greedy', 'beam', 'sample'] as const;
export type Strategy = (typeof STRATEGIES)[number];

/** How help text and messages call each strategy. */
export const STRATEGY_NAMES: Readonly<Record<Strategy, string>> = {
  greedy: 'greedy decoding',
  beam: 'beam search',
  sample: 'sampling',
};

/** The beam width when a caller asks for beam search and names none (the library, `eval`, `serve`). */
export const DEFAULT_BEAM_WIDTH = 3;

/** What a caller chooses: plain data, so that a server can post it to its workers. */
export interface DecodeSettings {
  strategy: Strategy;
  beamWidth?: number;
  lengthPenalty?: number;
  nBest?: number;
  temperature?: number;
  topK?: number;
  topP?: number;
  seed?: number;
  maxLength?: number;
  antiLm?: number;
  antiLmPlausibility?: number;
}

/** The settings that are numbers: all but `strategy`. */
export type NumericSetting = Exclude<keyof DecodeSettings, 'strategy'>;

/** What the decoders take: the settings, and what only a program passes. */
export interface DecodeOptions extends DecodeSettings {
  /**
   * Sampling: one seed per image of the batch, used instead of deriveSeed(seed, b), so that an
   * image draws the same words whatever batch it is decoded in (the CLI seeds by file path).
   */
  imageSeeds?: readonly number[];
  /**
   * The language prior of the model's training captions (model/io/load.ts returns it beside the
   * model), for anti-LM decoding; its `antiLm` settings are the defaults. Absent or null: no
   * anti-LM, whatever the model was trained with.
   */
  prior?: LanguagePrior | null;
}

/**
 * How much work an untrusted caller (a web request) may ask for, where a setting's bound is the
 * caller's to configure (`captioner serve`); the other settings' caps are in the spec.
 */
export interface DecodeLimits {
  maxBeamWidth: number;
  maxCaptionLength: number;
}

export const DEFAULT_DECODE_LIMITS: DecodeLimits = { maxBeamWidth: 10, maxCaptionLength: 40 };

/** One numeric setting: what it accepts, who uses it, what it defaults to. */
export interface SettingSpec {
  /** Help text, without the strategy (derived from `strategies`) and the default. */
  describe: string;
  /** The strategies that use it. */
  strategies: readonly Strategy[];
  integer: boolean;
  min: number;
  /** `min` itself is refused: the range is (min, max]. */
  minExclusive?: boolean;
  max?: number;
  /** The most an untrusted caller may ask for: a number, or the name of a configurable limit. */
  untrustedMax: number | keyof DecodeLimits;
  /** The value used when the caller gives none; null: decided elsewhere, as `defaultText` says. */
  default: number | null;
  /** The default in words, where the number alone would not say it (help text). */
  defaultText?: string;
}

/** The strategy setting: one of `STRATEGIES`; each front end says which it uses when none is given. */
export interface StrategySpec {
  describe: string;
  choices: readonly Strategy[];
}

const ALL = STRATEGIES;

/**
 * Every decoding setting, in the order help lists them. The anti-LM pair is read by
 * prior.ts too (its file's defaults and bounds are these).
 */
export const DECODE_SPEC = {
  strategy: {
    describe: 'greedy (the most probable word at each step), beam (beam search) or sample (sampling)',
    choices: STRATEGIES,
  },
  beamWidth: {
    describe: 'hypotheses kept per image',
    strategies: ['beam'],
    integer: true,
    min: 1,
    untrustedMax: 'maxBeamWidth',
    default: DEFAULT_BEAM_WIDTH,
  },
  lengthPenalty: {
    describe: 'α of the GNMT length penalty ((5+|Y|)/6)^α (Wu et al. 2016); 0 ranks by log p alone',
    strategies: ['beam'],
    integer: false,
    min: 0,
    untrustedMax: 10,
    default: 0,
  },
  nBest: {
    describe: 'also return the K best captions (K ≤ the beam width)',
    strategies: ['beam'],
    integer: true,
    min: 1,
    untrustedMax: 'maxBeamWidth',
    default: null,
    defaultText: 'the best caption only',
  },
  temperature: {
    describe: 'softmax temperature; 0 is greedy',
    strategies: ['sample'],
    integer: false,
    min: 0,
    untrustedMax: 100,
    default: 1,
  },
  topK: {
    describe: 'draw from the k most probable words only; 0: all',
    strategies: ['sample'],
    integer: true,
    min: 0,
    untrustedMax: 1_000_000,
    default: 0,
  },
  topP: {
    describe: 'draw from the nucleus of mass p only; 1: all',
    strategies: ['sample'],
    integer: false,
    min: 0,
    minExclusive: true,
    max: 1,
    untrustedMax: 1,
    default: 1,
  },
  seed: {
    describe: 'seed of the draws; image b of a batch draws from its own stream, deriveSeed(seed, b)',
    strategies: ['sample'],
    integer: true,
    min: 0,
    untrustedMax: 2 ** 31 - 1,
    default: 0,
  },
  maxLength: {
    describe: 'longest caption in words',
    strategies: ALL,
    integer: true,
    min: 1,
    untrustedMax: 'maxCaptionLength',
    default: null,
    defaultText: "the model's",
  },
  antiLm: {
    describe:
      "anti-LM weight λ: take λ·log p(word | previous word) of the training captions off each word's score (needs the model's language-prior.json); 0 is plain decoding",
    strategies: ALL,
    integer: false,
    min: 0,
    untrustedMax: 10,
    default: 0,
    defaultText: "the model's, else 0",
  },
  antiLmPlausibility: {
    describe: 'anti-LM: only words with p ≥ β·max p are chosen',
    strategies: ALL,
    integer: false,
    min: 0,
    minExclusive: true,
    max: 1,
    untrustedMax: 1,
    default: 0.15,
    defaultText: "the model's, else 0.15",
  },
} satisfies { strategy: StrategySpec } & Record<NumericSetting, SettingSpec>;

/** The numeric settings' specs, for code that goes through them by name. */
const SETTINGS: Readonly<Record<NumericSetting, SettingSpec>> = DECODE_SPEC;

/** The numeric settings, in the spec's order. */
export const NUMERIC_SETTINGS = Object.keys(DECODE_SPEC).filter((k) => k !== 'strategy') as NumericSetting[];

/** Options that cannot be decoded with; the CLI and the server map it to a usage error / 400. */
export class DecodeOptionsError extends Error {
  override name = 'DecodeOptionsError';
}

/** The spec of the numeric setting `key`. */
export function settingSpec(key: NumericSetting): SettingSpec {
  return SETTINGS[key];
}

/** Whether `key` names a decoding setting (own keys only: `constructor` or `__proto__` is none). */
function isDecodeSetting(key: string): key is keyof DecodeSettings {
  return Object.hasOwn(DECODE_SPEC, key);
}

/** The largest value `spec` accepts: its own bound, lowered to the untrusted cap when `limits` are given. */
function maxOf(spec: SettingSpec, limits?: DecodeLimits): number | undefined {
  if (!limits) return spec.max;
  const cap = typeof spec.untrustedMax === 'number' ? spec.untrustedMax : limits[spec.untrustedMax];
  return spec.max === undefined ? cap : Math.min(spec.max, cap);
}

function accepts(spec: SettingSpec, value: number, max: number | undefined): boolean {
  return (
    Number.isFinite(value) &&
    (!spec.integer || Number.isInteger(value)) &&
    (spec.minExclusive ? value > spec.min : value >= spec.min) &&
    (max === undefined || value <= max)
  );
}

/** What `spec` accepts, in words: "a whole number ≥ 1", "a number from 0 to 100", "≥ 0", "in (0, 1]". */
function acceptedRange(spec: SettingSpec, limits?: DecodeLimits): string {
  const max = maxOf(spec, limits);
  if (max === undefined) return `${spec.integer ? 'a whole number ' : ''}${spec.minExclusive ? '>' : '≥'} ${spec.min}`;
  if (spec.minExclusive) return `in (${spec.min}, ${max}]`;
  return `${spec.integer ? 'a whole number' : 'a number'} from ${spec.min} to ${max}`;
}

/** Whether `value` is within the decoder's bounds for `key` (prior.ts checks its file's anti-LM pair with it). */
export function isValidSetting(key: NumericSetting, value: number): boolean {
  const spec = SETTINGS[key];
  return accepts(spec, value, spec.max);
}

/**
 * Checks one value of `key` (a number; anything else is refused), as the front end calls it
 * (`name`: `--beam`, `field "beamWidth"`), within the untrusted caps when `limits` are given.
 * `shown` is how the message quotes the value as the caller gave it. Returns the number.
 */
export function checkSetting(
  key: NumericSetting,
  value: unknown,
  name: string = key,
  limits?: DecodeLimits,
  shown: string = typeof value === 'number' ? String(value) : JSON.stringify(value),
): number {
  const spec = SETTINGS[key];
  if (typeof value !== 'number' || !accepts(spec, value, maxOf(spec, limits)))
    throw new DecodeOptionsError(`${name} must be ${acceptedRange(spec, limits)}, got ${shown}`);
  return value;
}

/** A raw value as a number: form fields hold strings ("" and "abc" are NaN). */
function toNumber(raw: unknown): number {
  if (typeof raw === 'number') return raw;
  return typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : NaN;
}

/** "sampling", "beam search": who uses a setting, for help text and messages. */
export function usedBy(key: NumericSetting): string {
  return SETTINGS[key].strategies.map((s) => STRATEGY_NAMES[s]).join(' or ');
}

/** "greedy, beam or sample". */
const STRATEGY_CHOICES = `${STRATEGIES.slice(0, -1).join(', ')} or ${STRATEGIES.at(-1)!}`;

function isStrategy(value: unknown): value is Strategy {
  return (STRATEGIES as readonly unknown[]).includes(value);
}

/** How a front end reads settings: its names for them, its strategy default, its bounds. */
export interface SettingsReader {
  /** The strategy when the values name none. */
  strategy: Strategy;
  /** The front end's name of a setting, for messages: `--top-k`, `field "topK"`. */
  nameOf(key: string): string;
  /** How a user of the front end chooses `strategy`, ending the message that refuses another strategy's setting. */
  howToChoose(strategy: Strategy): string;
  /** The untrusted caller's caps (a web request); absent: the decoder's own bounds. */
  limits?: DecodeLimits;
  /** Settings dropped, not refused, when the strategy does not use them (a form that always sends them). */
  dropUnused?: readonly NumericSetting[];
}

/**
 * Decoding settings from a front end's raw values (numbers, or strings as form fields hold them;
 * undefined: not given). Every value is checked against DECODE_SPEC; a name that is not a
 * setting, a value out of bounds, and a setting the strategy does not use are errors
 * (DecodeOptionsError) that name it as the front end does. Only own keys of `values` count.
 */
export function readDecodeSettings(values: Readonly<Record<string, unknown>>, reader: SettingsReader): DecodeSettings {
  const given = Object.keys(values).filter((k) => values[k] !== undefined);
  const unknown = given.find((k) => !isDecodeSetting(k));
  if (unknown !== undefined)
    throw new DecodeOptionsError(`unknown ${reader.nameOf(unknown)}; expected ${Object.keys(DECODE_SPEC).join(', ')}`);
  const strategy = given.includes('strategy') ? values.strategy : reader.strategy;
  if (!isStrategy(strategy))
    throw new DecodeOptionsError(
      `${reader.nameOf('strategy')} must be ${STRATEGY_CHOICES}, got ${JSON.stringify(strategy)}`,
    );
  const settings: DecodeSettings = { strategy };
  for (const key of given as (keyof DecodeSettings)[]) {
    if (key === 'strategy') continue;
    const spec = SETTINGS[key];
    if (!spec.strategies.includes(strategy)) {
      if (reader.dropUnused?.includes(key)) continue;
      throw new DecodeOptionsError(
        `${reader.nameOf(key)} applies to ${usedBy(key)}, not to ${STRATEGY_NAMES[strategy]}: ${reader.howToChoose(spec.strategies[0]!)}`,
      );
    }
    const raw = values[key];
    const shown = typeof raw === 'number' ? String(raw) : JSON.stringify(raw);
    settings[key] = checkSetting(key, toNumber(raw), reader.nameOf(key), reader.limits, shown);
  }
  return settings;
}

/** Decode options with every default filled in and every value checked. */
export interface ResolvedOptions {
  strategy: Strategy;
  beamWidth: number;
  lengthPenalty: number;
  maxLength: number;
  temperature: number;
  topK: number;
  topP: number;
  seed: number;
  nBest: number | null;
  imageSeeds: readonly number[] | null;
  antiLm: number;
  antiLmPlausibility: number;
  prior: LanguagePrior | null;
}

/** What resolving options needs of a model. */
export interface ModelShape {
  readonly vocab: { readonly size: number };
  readonly config: { readonly maxLength: number };
}

/**
 * Fills in defaults (DECODE_SPEC's, the model's caption length, the prior's anti-LM settings)
 * and checks every option against DECODE_SPEC and the others, naming the one that is wrong.
 */
export function resolveDecodeOptions(model: ModelShape, options: DecodeOptions): ResolvedOptions {
  const fail = (what: string): never => {
    throw new DecodeOptionsError(what);
  };
  if (!isStrategy(options.strategy))
    fail(`strategy must be ${STRATEGY_CHOICES}, got ${JSON.stringify(options.strategy)}`);
  const prior = options.prior ?? null;
  const value = (key: NumericSetting, fallback: number) =>
    options[key] === undefined ? fallback : checkSetting(key, options[key]);
  const o: ResolvedOptions = {
    strategy: options.strategy,
    beamWidth: value('beamWidth', DECODE_SPEC.beamWidth.default),
    lengthPenalty: value('lengthPenalty', DECODE_SPEC.lengthPenalty.default),
    maxLength: value('maxLength', model.config.maxLength),
    temperature: value('temperature', DECODE_SPEC.temperature.default),
    topK: value('topK', DECODE_SPEC.topK.default),
    topP: value('topP', DECODE_SPEC.topP.default),
    seed: value('seed', DECODE_SPEC.seed.default),
    nBest: options.nBest === undefined ? null : checkSetting('nBest', options.nBest),
    imageSeeds: options.imageSeeds ?? null,
    antiLm: value('antiLm', prior?.antiLm.weight ?? DECODE_SPEC.antiLm.default),
    antiLmPlausibility: value(
      'antiLmPlausibility',
      prior?.antiLm.plausibility ?? DECODE_SPEC.antiLmPlausibility.default,
    ),
    prior,
  };
  if (prior && prior.vocabSize !== model.vocab.size)
    fail(
      `the language prior counts ${prior.vocabSize} words and the model has ${model.vocab.size}: it is another model's`,
    );
  if (o.antiLm > 0 && !prior)
    fail(
      "antiLm needs the language prior of the model's training captions, and this model has none (language-prior.json: make it with `captioner prior`; a program passes loadModel's `prior`)",
    );
  if (o.imageSeeds !== null && !o.imageSeeds.every((seed) => Number.isInteger(seed) && seed >= 0))
    fail('imageSeeds must be whole numbers ≥ 0');
  if (o.nBest !== null) {
    if (o.strategy !== 'beam' && o.nBest > 1) fail(`nBest ${o.nBest} needs beam search (strategy "beam")`);
    if (o.strategy === 'beam' && o.nBest > o.beamWidth)
      fail(`nBest ${o.nBest} is more than beamWidth ${o.beamWidth}: beam search finds at most beamWidth`);
  }
  return o;
}
