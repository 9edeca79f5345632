/** The benchmark's standard configuration is configs/std.json, and it is the model std-config.md describes. */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { STD_CONFIG_FILE, readStdConfig, stdFlops } from '../../bench/std-config.ts';
import { MODEL_KEYS } from '../../model/nn/captioner.ts';
import { TRAIN_DEFAULTS, TRAIN_SPEC } from '../../model/train/config.ts';
import { pick, resolveConfig } from '../../model/util/config.ts';
import { readConfigFile } from '../../model/util/config-file.ts';

test('the bench reads configs/std.json: its training and model settings are that recipe over the defaults', async () => {
  assert.equal(STD_CONFIG_FILE, join(import.meta.dirname, '../../configs/std.json'));
  const { train, model } = await readStdConfig();
  const recipe = resolveConfig(TRAIN_DEFAULTS, TRAIN_SPEC, [await readConfigFile(STD_CONFIG_FILE)]);
  assert.deepEqual(train, recipe);
  assert.deepEqual(model, pick(recipe, MODEL_KEYS));
});

test('std is the model and batch of docs/performance.md, about 0.19 GFLOP forward per image', async () => {
  const { train, model } = await readStdConfig();
  assert.deepEqual(
    {
      imageSize: model.imageSize,
      encoderChannels: model.encoderChannels,
      featureSize: model.featureSize,
      encoderPooling: model.encoderPooling,
      embeddingSize: model.embeddingSize,
      hiddenSize: model.hiddenSize,
      cell: model.cell,
      featureInput: model.featureInput,
      maxLength: model.maxLength,
    },
    {
      imageSize: 64,
      encoderChannels: [32, 64, 128, 256],
      featureSize: 256,
      encoderPooling: 'average',
      embeddingSize: 256,
      hiddenSize: 512,
      cell: 'lstm',
      featureInput: 'init',
      maxLength: 16,
    },
  );
  assert.deepEqual(
    [train.batchSize, train.learningRate, train.samplingSchedule, train.samplingK, train.clipNorm],
    [32, 1e-3, 'constant', 1, 0],
    'batch 32, Adam at 1e-3, teacher forcing (the peer feeds the true words), no clipping',
  );
  assert.deepEqual([train.labelSmoothing, train.wordDropout, train.wordSubstitution], [0, 0, 0], 'plain loss');
  const flops = stdFlops(model, 1000, 3);
  assert.equal((flops.forward / 1e9).toFixed(2), '0.19');
  assert.ok(Math.abs(flops.train / 1e9 - 0.57) < 0.01, `training ${flops.train / 1e9} GFLOP per image`);
});
