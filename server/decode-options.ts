/**
 * Decoding options from a request's form fields (all strings), read with the one spec of
 * decoding settings (model/decode/options.ts DECODE_SPEC): a field is a setting's name, its value
 * within the setting's bounds and the untrusted caps (so that one request cannot ask for
 * unbounded work), and used by the chosen strategy. Anything else is a 400 naming the field. The
 * decoder checks the combinations again (resolveDecodeOptions); its refusal is a 400 too.
 */
import {
  DEFAULT_BEAM_WIDTH,
  DEFAULT_DECODE_LIMITS,
  DecodeOptionsError,
  checkSetting,
  readDecodeSettings,
  type DecodeLimits,
  type DecodeSettings,
} from '../model/decode/options.ts';
import type { RecommendedDecoding } from '../model/decode/recommended.ts';
import { BadRequestError } from './errors.ts';

export { DEFAULT_DECODE_LIMITS, type DecodeLimits };

/** How many alternatives a request that names no n-best gets from beam search (the page lists them). */
const DEFAULT_ALTERNATIVES = 3;

/**
 * What a request that names no strategy gets: beam search (the page lists its alternatives, up
 * to three) of `beamWidth` (`captioner serve --beam`), else of the width the model recommends
 * (its decoding.json, model/decode/recommended.ts), else DEFAULT_BEAM_WIDTH; with the
 * recommendation's length penalty and anti-LM settings. A width outside 1…limits.maxBeamWidth is a
 * RangeError.
 */
export function defaultDecode(
  beamWidth?: number,
  limits: DecodeLimits = DEFAULT_DECODE_LIMITS,
  recommended: RecommendedDecoding | null = null,
): DecodeSettings {
  const width =
    beamWidth ?? (recommended?.strategy === 'beam' ? recommended.beamWidth : undefined) ?? DEFAULT_BEAM_WIDTH;
  const name =
    beamWidth === undefined && recommended?.beamWidth !== undefined ? "the model's beamWidth" : 'defaultBeamWidth';
  try {
    checkSetting('beamWidth', width, name, limits);
  } catch (err) {
    if (err instanceof DecodeOptionsError) throw new RangeError(err.message, { cause: err });
    throw err;
  }
  const settings: DecodeSettings = { strategy: 'beam', beamWidth: width, nBest: Math.min(DEFAULT_ALTERNATIVES, width) };
  for (const key of ['lengthPenalty', 'antiLm', 'antiLmPlausibility'] as const)
    if (recommended?.[key] !== undefined) settings[key] = recommended[key];
  return settings;
}

/** What a request gets when it says nothing: beam search, three alternatives. */
export const DEFAULT_DECODE: DecodeSettings = defaultDecode();

/** Form fields that are not decoding options (the file, the page's own fields). */
const NOT_DECODING = new Set(['image', 'format']);

/**
 * Which form a request comes from: 'api' (a client that sends only what it means) or 'page'
 * (the no-JavaScript form, which always sends its Beam width field; it is dropped, not refused,
 * when another strategy is chosen).
 */
export type FieldSource = 'api' | 'page';

/**
 * Parses decoding options from form fields. Empty fields mean "default"; a field given twice, a
 * name that is not a setting (`constructor` and `__proto__` included: only own keys are read,
 * into a null-prototype object), a value out of range, and a setting the chosen strategy does not
 * use (`topK` with beam search) are 400s naming the field.
 */
export function parseDecodeOptions(
  fields: Readonly<Record<string, unknown>>,
  limits: DecodeLimits = DEFAULT_DECODE_LIMITS,
  defaults: DecodeSettings = DEFAULT_DECODE,
  source: FieldSource = 'api',
): DecodeSettings {
  const given: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const k of Object.keys(fields)) {
    if (NOT_DECODING.has(k)) continue;
    const v = fields[k];
    if (Array.isArray(v)) throw new BadRequestError(`field "${k}" was given more than once`);
    const s = String(v).trim();
    if (s !== '') given[k] = s;
  }
  let settings: DecodeSettings;
  try {
    settings = readDecodeSettings(given, {
      strategy: defaults.strategy,
      nameOf: (key) => `field "${key}"`,
      howToChoose: (strategy) => `send strategy=${strategy}`,
      limits,
      dropUnused: source === 'page' ? ['beamWidth'] : [],
    });
  } catch (err) {
    if (err instanceof DecodeOptionsError) throw new BadRequestError(err.message);
    throw err;
  }
  if (settings.strategy !== defaults.strategy) return settings;
  const options: DecodeSettings = { ...defaults, ...settings };
  // Asking for a narrower beam than the default n-best: return as many as the beam holds.
  if (
    options.nBest !== undefined &&
    options.beamWidth !== undefined &&
    options.nBest > options.beamWidth &&
    settings.nBest === undefined
  )
    options.nBest = options.beamWidth;
  return options;
}
