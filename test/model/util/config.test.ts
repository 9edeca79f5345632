import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { MODEL_KEYS, MODEL_SPEC } from '../../../model/nn/captioner.ts';
import { ConfigError, inGroup, resolveConfig } from '../../../model/util/config.ts';
import { readConfigFile } from '../../../model/util/config-file.ts';
import { TRAIN_DEFAULTS, TRAIN_GROUPS, TRAIN_SPEC } from '../../../model/train/config.ts';

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
  assert.throws(() => run({ cell: 'elman' }), /"cell" must be one of lstm, gru, rnn, irnn/);
  assert.equal(run({ cell: 'irnn' }).cell, 'irnn');
  assert.throws(() => run({ decoderInput: 'word' }), /"decoderInput" must be one of previous-word, none/);
  assert.throws(() => run({ samplingMin: 2 }), /"samplingMin" must be <= 1/);
  assert.throws(() => run({ encoderChannels: [8, 'x'] }), /"encoderChannels\[1\]" must be a finite number/);
  assert.throws(() => run({ resume: 'yes' }), /"resume" must be a boolean/);
  assert.throws(() => run({ cell: null }), /may not be null/);
  assert.equal(run({ backbone: null }).backbone, null);
});

test('a config file is a JSON object; unreadable or other JSON is an error naming the file', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'captioner-config-'));
  try {
    const good = join(dir, 'good.json');
    await writeFile(good, JSON.stringify({ hiddenSize: 8 }));
    assert.deepEqual(await readConfigFile(good), { source: good, values: { hiddenSize: 8 } });
    await writeFile(join(dir, 'list.json'), '[1]');
    await assert.rejects(readConfigFile(join(dir, 'list.json')), /list\.json: a config file must hold a JSON object/);
    await writeFile(join(dir, 'cut.json'), '{"hiddenSize": 8');
    await assert.rejects(readConfigFile(join(dir, 'cut.json')), /cut\.json: cannot read config/);
    await assert.rejects(readConfigFile(join(dir, 'none.json')), /none\.json: cannot read config \(ENOENT/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('every training setting names a group of TRAIN_GROUPS, and every group has settings', () => {
  const keys = TRAIN_GROUPS.map((g) => g.key as string);
  const used = new Set<string>();
  for (const [key, field] of Object.entries(TRAIN_SPEC)) {
    assert.ok(keys.includes(field.group), `${key}: group ${field.group}`);
    used.add(field.group);
  }
  assert.deepEqual([...used].sort(), [...keys].sort());
  for (const key of MODEL_KEYS) assert.equal(TRAIN_SPEC[key].group, 'model', `${key} is architecture`);
});

test('inGroup puts every field of a spec in one group and leaves the rest of each field as it was', () => {
  const grouped = inGroup(MODEL_SPEC, 'model');
  assert.deepEqual(Object.keys(grouped), Object.keys(MODEL_SPEC));
  for (const key of MODEL_KEYS) assert.deepEqual(grouped[key], { ...MODEL_SPEC[key], group: 'model' });
  assert.equal((MODEL_SPEC.hiddenSize as { group?: string }).group, undefined, 'the source spec is untouched');
});
