/**
 * `train --init-from` a model that is decoded with anti-LM by default (its language-prior.json
 * says so): the new run takes the weights, not the decoding settings, so its validation samples
 * are plain greedy captions and its checkpoints carry the new run's own prior.
 */
import assert from 'node:assert/strict';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { ImageCache, readManifest, splitImages } from '../../../model/data/dataset.ts';
import { captionImages } from '../../../model/decode/decode.ts';
import { PRIOR_FILE, type PriorJson } from '../../../model/decode/prior.ts';
import { readCheckpointConfig } from '../../../model/io/checkpoint.ts';
import { loadModel } from '../../../model/io/load.ts';
import { resolveTrainConfig, train } from '../../../model/train/trainer.ts';
import { makeTinyDataset } from '../../helpers/tiny-data.ts';
import { tinyConfig } from '../../helpers/tiny-model.ts';
import { setupBackend } from '../../helpers/tf.ts';

const tf = await setupBackend();

/** The validation samples of the last record of a run's metrics.jsonl. */
async function lastSamples(out: string): Promise<{ id: string; caption: string }[]> {
  const records = (await readFile(join(out, 'metrics.jsonl'), 'utf8'))
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as { samples?: { id: string; caption: string }[] });
  const samples = records.findLast((r) => r.samples)?.samples;
  assert.ok(samples, 'the run recorded validation samples');
  return samples;
}

test("--init-from a model with anti-LM on: the run's validation samples decode plainly; its prior is its own", async () => {
  const { dir: data } = await makeTinyDataset();
  const start = await tinyConfig(data, { maxSteps: 3 });
  const tunedOut = start.out + '-tuned';
  try {
    await train(start);
    const val = splitImages(await readManifest(data), 'val').slice(0, start.valSamples);
    const cache = await ImageCache.load(data, val, start.imageSize);
    const images = tf.tensor4d(cache.batch(val.map((i) => i.id)), [val.length, start.imageSize, start.imageSize, 3]);
    const captions = async () => {
      const { model, prior } = await loadModel(start.out);
      const plain = captionImages(model, images, { strategy: 'greedy' }).map((r) => r.caption);
      const byDefault = captionImages(model, images, { strategy: 'greedy', prior }).map((r) => r.caption);
      model.dispose();
      return { plain, byDefault };
    };
    const before = await captions();
    assert.deepEqual(before.byDefault, before.plain, 'a new prior decodes plainly by default');

    // The starting model is then decoded by default with a strong anti-LM, under a prior in which
    // every caption starts with the word it says first: at a weight far above any useful one, its
    // captions become something else.
    const { dir } = await readCheckpointConfig(start.out);
    const file = join(dir, PRIOR_FILE);
    const json = JSON.parse(await readFile(file, 'utf8')) as PriorJson;
    json.antiLm = { weight: 5, plausibility: 0.001 };
    json.counts['<start>'] = { [before.plain[0]!.split(' ')[0] || '<end>']: 1000 };
    await writeFile(file, JSON.stringify(json));
    const { plain, byDefault } = await captions();
    assert.deepEqual(plain, before.plain);
    assert.notDeepEqual(
      byDefault,
      plain,
      "the old model's anti-LM changes these captions, else this test proves nothing",
    );

    // A learning rate of 0: the new run's model is the starting model, weight for weight.
    const tuned = await resolveTrainConfig([
      { source: 'flags', values: { data, initFrom: start.out, out: tunedOut, learningRate: 0, maxSteps: 1 } },
    ]);
    await train(tuned);
    images.dispose();
    const samples = await lastSamples(tunedOut);
    assert.deepEqual(
      samples.map((s) => s.id),
      val.map((i) => i.id),
    );
    assert.deepEqual(
      samples.map((s) => s.caption),
      plain,
      'validation samples are plain greedy captions',
    );

    // The new run's checkpoint carries the prior of its own captions, with its own (default) settings.
    const tunedModel = await loadModel(tunedOut, 'latest');
    tunedModel.model.dispose();
    assert.deepEqual(tunedModel.prior?.antiLm, { weight: 0, plausibility: 0.15 });
  } finally {
    for (const d of [data, start.out, tunedOut]) await rm(d, { recursive: true, force: true });
  }
});
