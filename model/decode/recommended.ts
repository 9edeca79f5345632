/**
 * A model's recommended decoding: the strategy, beam width and anti-LM settings its figures were
 * measured with, kept beside the model as decoding.json (next to language-prior.json) and written
 * by `captioner train` from a recipe's `decoding` section. `caption`, `eval` and `serve` decode
 * with it unless their flags say otherwise, so that a model decodes as its card measured it.
 *
 *   {"strategy": "beam", "beamWidth": 8, "antiLm": 0.12, "antiLmPlausibility": 0.15}
 *
 * Pure functions only (no file system): the web app, the CLI and a browser bundle read the same
 * JSON through `parseRecommendedDecoding` and apply it with `applyRecommendation`.
 */
import {
  DecodeOptionsError,
  STRATEGY_NAMES,
  checkSetting,
  settingSpec,
  type DecodeSettings,
  type NumericSetting,
} from './options.ts';

/** The file's name, in a checkpoint directory or a flat model directory (models/default). */
export const DECODING_FILE = 'decoding.json';

/**
 * The settings a recommendation may hold: deterministic decoding only (a recommended sampling
 * would make a model's figures a draw), so `eval` can always follow it.
 */
export const RECOMMENDED_SETTINGS = ['beamWidth', 'lengthPenalty', 'antiLm', 'antiLmPlausibility'] as const;
export type RecommendedSetting = (typeof RECOMMENDED_SETTINGS)[number];

/** What a model recommends: greedy or beam search, and the settings of RECOMMENDED_SETTINGS it names. */
export type RecommendedDecoding = { strategy: 'greedy' | 'beam' } & Partial<Record<RecommendedSetting, number>>;

/**
 * Reads a recommendation from parsed JSON (decoding.json, a recipe's `decoding` section), every
 * value checked against the decoding spec (model/decode/options.ts DECODE_SPEC); an unknown key,
 * a value out of bounds, a strategy other than greedy or beam, or a beam setting with greedy
 * decoding is a DecodeOptionsError naming `source` and the field.
 */
export function parseRecommendedDecoding(json: unknown, source: string): RecommendedDecoding {
  if (!json || typeof json !== 'object' || Array.isArray(json))
    throw new DecodeOptionsError(`${source}: the recommended decoding must be a JSON object`);
  const values = json as Record<string, unknown>;
  const strategy = values.strategy;
  if (strategy !== 'greedy' && strategy !== 'beam')
    throw new DecodeOptionsError(`${source}: "strategy" must be "greedy" or "beam", got ${JSON.stringify(strategy)}`);
  const out: RecommendedDecoding = { strategy };
  for (const key of Object.keys(values)) {
    if (key === 'strategy') continue;
    if (!(RECOMMENDED_SETTINGS as readonly string[]).includes(key))
      throw new DecodeOptionsError(
        `${source}: unknown setting "${key}"; expected strategy, ${RECOMMENDED_SETTINGS.join(', ')}`,
      );
    const setting = key as RecommendedSetting;
    if (!settingSpec(setting).strategies.includes(strategy))
      throw new DecodeOptionsError(`${source}: "${key}" applies to beam search, not to ${STRATEGY_NAMES[strategy]}`);
    out[setting] = checkSetting(setting, values[key], `${source}: "${key}"`);
  }
  return out;
}

/**
 * The settings to decode with: what the caller gave (`given`, e.g. from flags), and for every
 * setting it left out that `strategy` uses, the model's recommendation. `strategy` is the
 * caller's choice, or the recommended one when the caller chose none. Without a recommendation,
 * `given` as it is (the decoder's defaults then apply).
 */
export function applyRecommendation(
  recommended: RecommendedDecoding | null,
  given: DecodeSettings,
  callerChoseStrategy: boolean,
): DecodeSettings {
  if (!recommended) return given;
  const strategy = callerChoseStrategy ? given.strategy : recommended.strategy;
  const out: DecodeSettings = { ...given, strategy };
  for (const key of RECOMMENDED_SETTINGS) {
    const value = recommended[key];
    if (value === undefined || out[key as NumericSetting] !== undefined) continue;
    if (!settingSpec(key).strategies.includes(strategy)) continue;
    out[key] = value;
  }
  return out;
}

/** The recommendation in words, for logs and help: "beam search, width 8, anti-LM λ 0.12 (β 0.15)". */
export function describeRecommendation(r: RecommendedDecoding): string {
  const parts = [
    r.strategy === 'beam' ? `beam search, width ${r.beamWidth ?? settingSpec('beamWidth').default}` : 'greedy',
  ];
  if (r.lengthPenalty) parts.push(`length penalty α ${r.lengthPenalty}`);
  if (r.antiLm !== undefined)
    parts.push(
      r.antiLm > 0
        ? `anti-LM λ ${r.antiLm}${r.antiLmPlausibility ? ` (β ${r.antiLmPlausibility})` : ''}`
        : 'no anti-LM',
    );
  return parts.join(', ');
}
