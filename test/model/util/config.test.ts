import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError, resolveConfig } from '../../../model/util/config.ts';
import { TRAIN_DEFAULTS, TRAIN_SPEC } from '../../../model/train/config.ts';

test('layers override defaults in order', () => {
  const c = resolveConfig(TRAIN_DEFAULTS, TRAIN_SPEC, [
    { source: 'a.json', values: { hiddenSize: 64, cell: 'gru' } },
    { source: 'flags', values: { hiddenSize: 32, encoderChannels: '8,16' } },
  ]);
  assert.equal(c.hiddenSize, 32);
  assert.equal(c.cell, 'gru');
  assert.deepEqual(c.encoderChannels, [8, 16]);
  assert.equal(TRAIN_DEFAULTS.hiddenSize, 512, 'defaults untouched');
});

test('unknown keys, wrong types, bad choices and ranges are errors naming the key and source', () => {
  const run = (values: Record<string, unknown>) =>
    resolveConfig(TRAIN_DEFAULTS, TRAIN_SPEC, [{ source: 'cfg.json', values }]);
  assert.throws(
    () => run({ hiddenSzie: 3 }),
    (e: unknown) => e instanceof ConfigError && /cfg\.json: unknown setting "hiddenSzie"/.test(e.message),
  );
  assert.throws(() => run({ hiddenSize: '3' }), /cfg\.json: "hiddenSize" must be a finite number/);
  assert.throws(() => run({ hiddenSize: 2.5 }), /must be an integer/);
  assert.throws(() => run({ cell: 'rnn' }), /"cell" must be one of lstm, gru/);
  assert.throws(() => run({ samplingMin: 2 }), /"samplingMin" must be <= 1/);
  assert.throws(() => run({ encoderChannels: [8, 'x'] }), /"encoderChannels\[1\]" must be a finite number/);
  assert.throws(() => run({ resume: 'yes' }), /"resume" must be a boolean/);
  assert.throws(() => run({ cell: null }), /may not be null/);
  assert.equal(run({ backbone: null }).backbone, null);
});
