/**
 * The image's way into the initial state (`initState`): linear, h0 = W·feature + b (the default
 * for new models), or through tanh (every model saved before the key existed loads that way).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type * as TF from '@tensorflow/tfjs';
import { Captioner, MODEL_DEFAULTS, type ModelConfig } from '../../../model/nn/captioner.ts';
import { withAddedModelKeys } from '../../../model/io/model-files.ts';
import { Vocabulary } from '../../../model/text/vocab.ts';
import { TINY_MODEL } from '../../helpers/tiny-model.ts';
import { setupBackend } from '../../helpers/tf.ts';

const tf = await setupBackend();

const vocab = Vocabulary.build(['a red circle', 'a blue square'], 1);
const versions = { captioner: 'test', tfjs: 'test' };

for (const cell of ['lstm', 'gru'] as const) {
  test(`${cell}: the initial state is W·feature + b, or tanh of it, from the same weights`, async () => {
    const config: ModelConfig = { ...MODEL_DEFAULTS, ...TINY_MODEL, cell };
    const [linear, squashed] = await Promise.all([
      Captioner.create({ ...config, initState: 'linear' }, vocab, 5),
      Captioner.create({ ...config, initState: 'tanh' }, vocab, 5),
    ]);
    const images = tf.randomUniform([3, config.imageSize, config.imageSize, 3], 0, 1, 'float32', 2) as TF.Tensor4D;
    const features = linear.encode(images) as TF.Tensor2D; // average pooling: one vector an image
    const weights = linear.namedWeights();
    const expected = (name: string) =>
      tf.add(tf.matMul(features, weights[`decoder/${name}/kernel`]!), weights[`decoder/${name}/bias`]!);
    const close = (a: TF.Tensor | undefined, b: TF.Tensor, what: string) => {
      assert.ok(a, what);
      const [x, y] = [a.dataSync(), b.dataSync()];
      assert.equal(x.length, y.length, what);
      for (let i = 0; i < x.length; i++) assert.ok(Math.abs(x[i]! - y[i]!) < 1e-5, `${what}[${i}]: ${x[i]} vs ${y[i]}`);
    };
    const a = linear.initialState(features);
    const b = squashed.initialState(features);
    close(a.h, expected('init_h'), 'linear h0');
    close(b.h, tf.tanh(expected('init_h')), 'tanh h0');
    if (cell === 'lstm') {
      close(a.c, expected('init_c'), 'linear c0');
      close(b.c, tf.tanh(expected('init_c')), 'tanh c0');
    } else assert.equal(a.c, undefined);
    // Linear is not bounded: the weights can place h0 outside (-1, 1), which tanh never does.
    const big = tf.mul(features, 1000) as TF.Tensor2D;
    assert.ok(Math.max(...tf.abs(linear.initialState(big).h).dataSync()) > 1);
    assert.ok(Math.max(...tf.abs(squashed.initialState(big).h).dataSync()) <= 1);
  });
}

test('a saved config without initState is the tanh model it was saved as; one with it keeps its own', () => {
  const { initState: _, ...old } = { ...MODEL_DEFAULTS, ...TINY_MODEL };
  assert.equal(withAddedModelKeys({ model: old as ModelConfig, versions }, 'config.json').model.initState, 'tanh');
  const saved = { ...MODEL_DEFAULTS, ...TINY_MODEL, initState: 'linear' as const };
  assert.equal(withAddedModelKeys({ model: saved, versions }, 'config.json').model.initState, 'linear');
  assert.equal(MODEL_DEFAULTS.initState, 'linear', 'new models start linear');
});
