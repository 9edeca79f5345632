/**
 * Decoding options from a request's form fields (all strings), checked and bounded so that one
 * request cannot ask for unbounded work. The decoder checks the combinations again
 * (model/decode/decode.ts resolveDecodeOptions); its refusal is a 400 too.
 */
import type { DecodeOptions } from '../model/decode/decode.ts';
import { BadRequestError } from './errors.ts';

export interface DecodeLimits {
  maxBeamWidth: number;
  maxCaptionLength: number;
}

export const DEFAULT_DECODE_LIMITS: DecodeLimits = { maxBeamWidth: 10, maxCaptionLength: 40 };

/** What a request gets when it says nothing: beam search, three alternatives. */
export const DEFAULT_DECODE: DecodeOptions = { strategy: 'beam', beamWidth: 3, nBest: 3 };

/** A server's default decoding with another beam width (`captioner serve --beam`): up to three alternatives. */
export function defaultDecode(beamWidth: number): DecodeOptions {
  return { strategy: 'beam', beamWidth, nBest: Math.min(3, beamWidth) };
}

// imageSeeds (per-image seeds of a batch) has no meaning for one uploaded image; `seed` is its seed.
type NumberField = Exclude<keyof DecodeOptions, 'strategy' | 'imageSeeds'>;

const NUMBER_FIELDS: Record<NumberField, { integer: boolean; min: number; max?: (l: DecodeLimits) => number }> = {
  beamWidth: { integer: true, min: 1, max: (l) => l.maxBeamWidth },
  nBest: { integer: true, min: 1, max: (l) => l.maxBeamWidth },
  lengthPenalty: { integer: false, min: 0, max: () => 10 },
  maxLength: { integer: true, min: 1, max: (l) => l.maxCaptionLength },
  temperature: { integer: false, min: 0, max: () => 100 },
  topK: { integer: true, min: 0, max: () => 1_000_000 },
  topP: { integer: false, min: 0, max: () => 1 },
  seed: { integer: true, min: 0, max: () => 2 ** 31 - 1 },
  antiLm: { integer: false, min: 0, max: () => 10 },
  antiLmPlausibility: { integer: false, min: 0, max: () => 1 },
};

/** Form fields that are not decoding options (the file, the page's own fields). */
const IGNORED = new Set(['image', 'format']);

/**
 * Parses decoding options from form fields. Empty fields mean "default"; unknown fields and
 * values out of range are errors naming the field.
 */
export function parseDecodeOptions(
  fields: Record<string, unknown>,
  limits: DecodeLimits = DEFAULT_DECODE_LIMITS,
  defaults: DecodeOptions = DEFAULT_DECODE,
): DecodeOptions {
  const given: Record<string, string> = {};
  for (const [k, v] of Object.entries(fields)) {
    if (IGNORED.has(k)) continue;
    if (Array.isArray(v)) throw new BadRequestError(`field "${k}" was given more than once`);
    const s = String(v).trim();
    if (s !== '') given[k] = s;
  }
  const strategy = given.strategy ?? defaults.strategy;
  if (strategy !== 'greedy' && strategy !== 'beam' && strategy !== 'sample') {
    throw new BadRequestError(`field "strategy" must be greedy, beam or sample, got ${JSON.stringify(strategy)}`);
  }
  const options: DecodeOptions = strategy === 'beam' ? { ...defaults } : { strategy };
  for (const [k, s] of Object.entries(given)) {
    if (k === 'strategy') continue;
    const spec = NUMBER_FIELDS[k as NumberField];
    if (!spec)
      throw new BadRequestError(`unknown field "${k}"; expected strategy, ${Object.keys(NUMBER_FIELDS).join(', ')}`);
    const n = Number(s);
    const max = spec.max?.(limits) ?? Infinity;
    if (!Number.isFinite(n) || (spec.integer && !Number.isInteger(n)) || n < spec.min || n > max) {
      throw new BadRequestError(
        `field "${k}" must be ${spec.integer ? 'a whole number' : 'a number'} from ${spec.min} to ${max}, got ${JSON.stringify(s)}`,
      );
    }
    options[k as NumberField] = n;
  }
  if (
    options.strategy === 'beam' &&
    options.nBest !== undefined &&
    options.beamWidth !== undefined &&
    options.nBest > options.beamWidth
  ) {
    // Asking for a narrower beam than the default n-best: return as many as the beam holds.
    if (given.nBest === undefined) options.nBest = options.beamWidth;
  }
  return options;
}
