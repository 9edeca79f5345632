/** The one spec of decoding settings: what the front ends read with it, and what the decoder fills in from it. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  DECODE_SPEC,
  DEFAULT_BEAM_WIDTH,
  DEFAULT_DECODE_LIMITS,
  DecodeOptionsError,
  NUMERIC_SETTINGS,
  STRATEGIES,
  checkSetting,
  readDecodeSettings,
  resolveDecodeOptions,
  type SettingsReader,
  type Strategy,
} from '../../../model/decode/options.ts';
import { DEFAULT_ANTI_LM, LanguagePrior, isAntiLmPlausibility, isAntiLmWeight } from '../../../model/decode/prior.ts';

const MODEL = { vocab: { size: 7 }, config: { maxLength: 12 } };

/** A reader as the server's: fields named `field "x"`, beam search unless told, the untrusted caps. */
const FORM: SettingsReader = {
  strategy: 'beam',
  nameOf: (key) => `field "${key}"`,
  howToChoose: (s) => `send strategy=${s}`,
  limits: DEFAULT_DECODE_LIMITS,
};

function refused(fn: () => unknown, message: RegExp): void {
  assert.throws(fn, (e: unknown) => e instanceof DecodeOptionsError && message.test(e.message), String(message));
}

test('every numeric setting has a spec the strategies name, a default, and a help text', () => {
  assert.deepEqual(NUMERIC_SETTINGS, Object.keys(DECODE_SPEC).slice(1));
  assert.deepEqual(DECODE_SPEC.strategy.choices, STRATEGIES);
  for (const key of NUMERIC_SETTINGS) {
    const spec = DECODE_SPEC[key];
    assert.ok(spec.describe.length > 10, key);
    assert.ok(spec.strategies.length > 0 && spec.strategies.every((s) => STRATEGIES.includes(s)), key);
    if (spec.default === null) assert.ok(spec.defaultText, `${key}: a default decided elsewhere says where`);
    else checkSetting(key, spec.default); // every default is within its own bounds
  }
  // The beam width is named once, and the decoder's default is it.
  assert.equal(DECODE_SPEC.beamWidth.default, DEFAULT_BEAM_WIDTH);
  assert.equal(resolveDecodeOptions(MODEL, { strategy: 'beam' }).beamWidth, DEFAULT_BEAM_WIDTH);
  // The anti-LM pair's defaults and bounds are the prior file's.
  assert.deepEqual(DEFAULT_ANTI_LM, { weight: DECODE_SPEC.antiLm.default, plausibility: 0.15 });
  assert.ok(isAntiLmWeight(0) && !isAntiLmWeight(-0.1) && !isAntiLmWeight(Infinity));
  assert.ok(isAntiLmPlausibility(1) && !isAntiLmPlausibility(0) && !isAntiLmPlausibility(1.1));
});

test('names like built-in properties are not settings: own keys only, of any object', () => {
  for (const name of ['constructor', 'toString', 'valueOf', 'hasOwnProperty', '__proto__', 'isPrototypeOf']) {
    const bare = Object.create(null) as Record<string, unknown>;
    bare[name] = '1';
    refused(() => readDecodeSettings(bare, FORM), new RegExp(`unknown field "${name}"`));
    // JSON.parse makes "__proto__" an own key of an ordinary object.
    refused(() => readDecodeSettings(JSON.parse(`{"${name}": "1"}`) as Record<string, unknown>, FORM), /unknown field/);
  }
  // Inherited properties are not read as given.
  assert.deepEqual(readDecodeSettings(Object.create({ topK: '3' }) as Record<string, unknown>, FORM), {
    strategy: 'beam',
  });
});

test('a setting the strategy does not use is refused, naming it and how to choose the strategy that does', () => {
  const cases: [Strategy, Record<string, string>, RegExp][] = [
    ['beam', { topK: '5' }, /field "topK" applies to sampling, not to beam search: send strategy=sample/],
    ['beam', { temperature: '0.5' }, /field "temperature" applies to sampling/],
    ['greedy', { beamWidth: '3' }, /field "beamWidth" applies to beam search, not to greedy decoding/],
    ['sample', { nBest: '2' }, /field "nBest" applies to beam search, not to sampling: send strategy=beam/],
    ['sample', { lengthPenalty: '1' }, /field "lengthPenalty" applies to beam search/],
  ];
  for (const [strategy, values, message] of cases) {
    refused(() => readDecodeSettings({ strategy, ...values }, FORM), message);
  }
  // The strategy given in the values counts, not the reader's default.
  assert.deepEqual(readDecodeSettings({ strategy: 'sample', topK: '5', seed: '2' }, FORM), {
    strategy: 'sample',
    topK: 5,
    seed: 2,
  });
  // Settings every strategy uses pass with any.
  for (const strategy of STRATEGIES)
    assert.deepEqual(readDecodeSettings({ strategy, maxLength: '4', antiLm: '0' }, FORM), {
      strategy,
      maxLength: 4,
      antiLm: 0,
    });
  // A form that always sends its beam width field: dropped, not refused, under another strategy.
  assert.deepEqual(readDecodeSettings({ strategy: 'greedy', beamWidth: '3' }, { ...FORM, dropUnused: ['beamWidth'] }), {
    strategy: 'greedy',
  });
  refused(() => readDecodeSettings({ strategy: 'greedy', topK: '3' }, { ...FORM, dropUnused: ['beamWidth'] }), /topK/);
});

test('values: numbers or numeric strings within the bounds; the untrusted caps only with limits', () => {
  assert.deepEqual(readDecodeSettings({ beamWidth: 4, lengthPenalty: '0.5' }, FORM), {
    strategy: 'beam',
    beamWidth: 4,
    lengthPenalty: 0.5,
  });
  const bad: [Record<string, unknown>, RegExp][] = [
    [{ beamWidth: '11' }, /field "beamWidth" must be a whole number from 1 to 10, got "11"/],
    [{ beamWidth: '2.5' }, /whole number/],
    [{ beamWidth: 'x' }, /got "x"/],
    [{ maxLength: '41' }, /field "maxLength" must be a whole number from 1 to 40/],
    [{ strategy: 'sample', topP: '0' }, /field "topP" must be in \(0, 1\], got "0"/],
    [{ strategy: 'sample', temperature: 'Infinity' }, /"temperature" must be a number from 0 to 100/],
    [{ antiLmPlausibility: '1.5' }, /"antiLmPlausibility" must be in \(0, 1\]/],
    [{ strategy: 'best' }, /field "strategy" must be greedy, beam or sample, got "best"/],
  ];
  for (const [values, message] of bad) refused(() => readDecodeSettings(values, FORM), message);
  // Without limits (a program, the CLI), only the decoder's own bounds.
  const cli: SettingsReader = { strategy: 'beam', nameOf: (k) => `--${k}`, howToChoose: () => '' };
  assert.deepEqual(readDecodeSettings({ beamWidth: 50, maxLength: 100 }, cli), {
    strategy: 'beam',
    beamWidth: 50,
    maxLength: 100,
  });
  refused(() => readDecodeSettings({ beamWidth: 0 }, cli), /--beamWidth must be a whole number ≥ 1, got 0/);
  refused(() => checkSetting('beamWidth', '3'), /beamWidth must be a whole number ≥ 1, got "3"/);
});

test('the decoder fills in defaults from the spec, the model and the prior it is passed', () => {
  const o = resolveDecodeOptions(MODEL, { strategy: 'sample' });
  assert.deepEqual(
    { ...o, prior: null },
    {
      strategy: 'sample',
      beamWidth: 3,
      lengthPenalty: 0,
      maxLength: 12,
      temperature: 1,
      topK: 0,
      topP: 1,
      seed: 0,
      nBest: null,
      imageSeeds: null,
      antiLm: 0,
      antiLmPlausibility: 0.15,
      prior: null,
    },
  );
  const prior = LanguagePrior.fromCaptions([[1, 4, 2]], MODEL.vocab.size, 1, { weight: 0.3, plausibility: 0.2 });
  const withPrior = resolveDecodeOptions(MODEL, { strategy: 'greedy', prior });
  assert.equal(withPrior.antiLm, 0.3);
  assert.equal(withPrior.antiLmPlausibility, 0.2);
  assert.equal(withPrior.prior, prior);
  assert.equal(resolveDecodeOptions(MODEL, { strategy: 'greedy', prior, antiLm: 0 }).antiLm, 0);
  // The same prior with another model: refused, not silently misread.
  const other = LanguagePrior.fromCaptions([[1, 4, 2]], 9);
  refused(
    () => resolveDecodeOptions(MODEL, { strategy: 'greedy', prior: other }),
    /counts 9 words and the model has 7/,
  );
  refused(() => resolveDecodeOptions(MODEL, { strategy: 'greedy', antiLm: 0.1 }), /language-prior\.json/);
});
