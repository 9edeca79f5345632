/** A pretrained TF.js LayersModel as the encoder's backbone: frozen, fine-tuned, saved and restored. */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type * as TF from '@tensorflow/tfjs';
import { makeExamples, padBatch } from '../../../model/data/batch.ts';
import { Captioner, MODEL_DEFAULTS } from '../../../model/nn/captioner.ts';
import { ImageCache, readManifest } from '../../../model/data/dataset.ts';
import { saveLayersModelToPath } from '../../../model/io/layers-io.ts';
import { loadModel } from '../../../model/io/load.ts';
import { train, Trainer } from '../../../model/train/trainer.ts';
import { Vocabulary } from '../../../model/text/vocab.ts';
import { makeTinyDataset } from '../../helpers/tiny-data.ts';
import { TINY_MODEL, tinyConfig } from '../../helpers/tiny-model.ts';
import { setupBackend } from '../../helpers/tf.ts';

const tf = await setupBackend();
let work: string;
let data: string;
let backbonePath: string;

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'captioner-backbone-'));
  data = (await makeTinyDataset()).dir;
  // A small "pretrained" CNN, saved the way TF.js saves LayersModels.
  const net = tf.sequential({
    layers: [
      tf.layers.conv2d({ inputShape: [16, 16, 3], filters: 6, kernelSize: 3, padding: 'same', activation: 'relu' }),
      tf.layers.maxPooling2d({ poolSize: 2 }),
      tf.layers.conv2d({ filters: 12, kernelSize: 3, padding: 'same', activation: 'relu' }),
    ],
  });
  backbonePath = join(work, 'backbone');
  await saveLayersModelToPath(net, backbonePath);
  net.dispose();
});
after(async () => {
  await rm(work, { recursive: true, force: true });
  await rm(data, { recursive: true, force: true });
});

function snapshot(model: Captioner, prefix: string): Map<string, Float32Array> {
  return new Map(
    Object.entries(model.namedWeights())
      .filter(([n]) => n.startsWith(prefix))
      .map(([n, v]) => [n, v.dataSync().slice() as Float32Array]),
  );
}

function changed(before: Map<string, Float32Array>, model: Captioner): string[] {
  const now = model.namedWeights();
  return [...before].filter(([n, v]) => now[n]!.dataSync().some((x, i) => x !== v[i])).map(([n]) => n);
}

for (const trainable of [false, true]) {
  test(`a ${trainable ? 'fine-tuned' : 'frozen'} backbone ${trainable ? 'changes' : 'keeps its weights'} while the projection learns`, async () => {
    const manifest = await readManifest(data);
    const images = manifest.images.filter((i) => i.split === 'train');
    const vocab = Vocabulary.build(
      images.flatMap((i) => i.captions),
      1,
    );
    const config = { ...MODEL_DEFAULTS, ...TINY_MODEL, backbone: backbonePath, backboneTrainable: trainable };
    const model = await Captioner.create(config, vocab, 1);
    assert.equal(
      Object.keys(model.namedWeights()).filter((n) => n.startsWith('encoder/backbone/')).length,
      4,
      'two conv layers: kernel and bias each',
    );
    const cache = await ImageCache.load(data, images, 16);
    const batch = padBatch(makeExamples(images, vocab, 6));
    const backboneBefore = snapshot(model, 'encoder/backbone/');
    const projectBefore = snapshot(model, 'encoder/project/');
    const trainer = new Trainer(model, await tinyConfig(data, { ...config, out: join(work, 'unused') }));
    for (let s = 0; s < 3; s++) trainer.step(cache.batch(batch.imageIds), batch, s, 3);
    assert.equal(changed(projectBefore, model).length, 2, 'the projection is trained');
    assert.equal(changed(backboneBefore, model).length, trainable ? 4 : 0);
    trainer.optimizer.dispose();
    model.dispose();
  });
}

test('a model with a backbone trains, saves and loads on its own (the topology travels with the checkpoint)', async () => {
  const config = await tinyConfig(data, {
    backbone: backbonePath,
    backboneTrainable: true,
    epochs: 2,
    out: join(work, 'model'),
  });
  await train(config);
  await rm(backbonePath, { recursive: true }); // the model directory must not need the original file
  const { model } = await loadModel(config.out);
  const images = tf.randomUniform([2, 16, 16, 3], 0, 1, 'float32', 4) as TF.Tensor4D;
  const features = model.encode(images);
  assert.deepEqual(features.shape, [2, TINY_MODEL.featureSize]);
  tf.dispose([images, features]);
  model.dispose();
});

test('a backbone whose input does not match imageSize is refused with a clear message', async () => {
  const net = tf.sequential({ layers: [tf.layers.conv2d({ inputShape: [32, 32, 3], filters: 2, kernelSize: 3 })] });
  const path = join(work, 'wrong');
  await saveLayersModelToPath(net, path);
  net.dispose();
  const vocab = Vocabulary.build(['a b'], 1);
  await assert.rejects(
    Captioner.create({ ...MODEL_DEFAULTS, ...TINY_MODEL, backbone: path }, vocab, 1),
    /backbone input shape is \[null,32,32,3\], expected \[null, 16, 16, 3\]/,
  );
  await assert.rejects(
    Captioner.create({ ...MODEL_DEFAULTS, ...TINY_MODEL, backbone: join(work, 'missing') }, vocab, 1),
    /missing\/model\.json: cannot read a TF\.js LayersModel/,
  );
});
