/** `eval` on the generated shapes data set: both test splits, semantic accuracy from the scenes, beam search. */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateShapes } from '../../data-scripts/shapes/generate.ts';
import { semanticScores, type Scene } from '../../data-scripts/shapes/semantics.ts';
import { readCaptionPairs } from '../../eval/coco-files.ts';
import { runEvaluation } from '../../eval/evaluate.ts';
import { readManifest, splitImages } from '../../model/data/dataset.ts';
import { trainTinyModel } from '../helpers/tiny-model.ts';
import { setupBackend } from '../helpers/tf.ts';

await setupBackend();
const root = await mkdtemp(join(tmpdir(), 'captioner-shapes-eval-'));
after(() => rm(root, { recursive: true, force: true }));

test('shapes: "test" brings "test-compositional"; semantic accuracy is the scenes\' parser applied to the written captions', async () => {
  const data = join(root, 'data');
  await generateShapes({ count: 40, size: 16, seed: 3, out: data, testFraction: 0.2, compositionalFraction: 0.2 });
  const manifest = await readManifest(data);
  for (const split of ['test', 'test-compositional'])
    assert.ok(splitImages(manifest, split).length > 0, `${split} is not empty`);
  const model = await trainTinyModel(data, 1, { out: join(root, 'model'), maxSteps: 10, maxLength: 16 });

  const outDir = join(root, 'eval');
  const result = await runEvaluation({
    modelDir: model,
    dataDir: data,
    split: 'test',
    beamWidth: 2,
    batchSize: 4,
    outDir,
    galleryCount: 2,
  });
  assert.equal(result.decoding, 'beam search, width 2');
  assert.deepEqual(
    result.splits.map((s) => s.split),
    ['test', 'test-compositional'],
  );
  for (const s of result.splits) {
    const images = splitImages(manifest, s.split);
    const pairs = await readCaptionPairs(join(outDir, s.referencesFile), join(outDir, s.resultsFile));
    assert.equal(pairs.length, images.length);
    const scenes = new Map(images.map((img) => [img.id, img.scene as Scene]));
    assert.deepEqual(
      s.semantic,
      semanticScores(pairs.map((p) => ({ caption: p.candidate, truth: scenes.get(String(p.id))! }))),
    );
    assert.equal(s.semantic!.count, images.length);
  }
  const html = await readFile(result.reportFile, 'utf8');
  assert.match(html, /<h2>Semantic accuracy<\/h2>/);
  assert.match(html, /<tr><td>test-compositional<\/td><td>\d+<\/td><td>\d+\.\d%<\/td>/);
});

test('--limit evaluates only the first N images of each split', async () => {
  const data = join(root, 'data-limit');
  await generateShapes({ count: 40, size: 16, seed: 4, out: data, testFraction: 0.3, compositionalFraction: 0.3 });
  const manifest = await readManifest(data);
  const model = await trainTinyModel(data, 1, { out: join(root, 'model-limit'), maxSteps: 2, maxLength: 16 });
  const outDir = join(root, 'eval-limit');
  const result = await runEvaluation({
    modelDir: model,
    dataDir: data,
    split: 'test',
    beamWidth: 1,
    batchSize: 4,
    outDir,
    galleryCount: 1,
    limit: 3,
  });
  for (const s of result.splits) {
    assert.ok(splitImages(manifest, s.split).length > 3, `${s.split} has more than 3 images`);
    assert.equal(s.images, 3);
    const pairs = await readCaptionPairs(join(outDir, s.referencesFile), join(outDir, s.resultsFile));
    assert.deepEqual(
      [...new Set(pairs.map((p) => String(p.id)))],
      splitImages(manifest, s.split)
        .slice(0, 3)
        .map((img) => img.id),
    );
  }
});
