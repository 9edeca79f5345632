/**
 * The selection splits of `captioner data shapes --selection-count N --selection-seed S`: scenes
 * of another seed, so that a recipe's choices are made on data no train, val or test scene
 * shares; and `eval --split selection`, which brings `selection-compositional` along.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { generateShapes, shapesScene } from '../../data-scripts/shapes/generate.ts';
import { isHeldOut, type Scene } from '../../data-scripts/shapes/scene.ts';
import { readManifest, splitImages } from '../../model/data/dataset.ts';
import { runEvaluation } from '../../eval/evaluate.ts';
import { trainTinyModel } from '../helpers/tiny-model.ts';
import { setupBackend } from '../helpers/tf.ts';

await setupBackend();

let work = '';
before(async () => {
  work = await mkdtemp(join(tmpdir(), 'captioner-selection-'));
});
after(async () => {
  await rm(work, { recursive: true, force: true });
});

const key = (scene: unknown) => JSON.stringify(scene);
const heldOut = (scene: Scene) => scene.objects.some(isHeldOut);

test('selection scenes come from their own seed, apart from the data set’s, and a model is evaluated on both halves', async () => {
  const out = join(work, 'shapes');
  await generateShapes({
    out,
    count: 60,
    size: 16,
    seed: 1,
    valFraction: 0.2,
    selectionCount: 30,
    selectionSeed: 2,
    selectionCompositionalFraction: 0.5,
  });
  const manifest = await readManifest(out);
  const selection = splitImages(manifest, 'selection');
  const compositional = splitImages(manifest, 'selection-compositional');
  assert.equal(selection.length + compositional.length, 30);
  assert.ok(selection.length > 5 && compositional.length > 5, `${selection.length} and ${compositional.length}`);
  assert.ok(
    compositional.every((img) => heldOut(img.scene as Scene)),
    'each compositional selection scene holds a held-out pair',
  );
  assert.ok(
    selection.every((img) => !heldOut(img.scene as Scene)),
    'no other selection scene does',
  );
  // Scene i of the selection is scene i of seed 2, drawn as shapesScene draws it.
  const ids = [...selection, ...compositional].map((img) => img.id).sort();
  assert.equal(ids[0], 'selection-000000');
  const first = manifest.images.find((img) => img.id === 'selection-000000')!;
  assert.deepEqual(first.scene, shapesScene(2, 0, { compositionalFraction: 0.5 }).drawing.scene);
  // The data set's own scenes are those it has without a selection, and none is a selection scene.
  const main = manifest.images.filter((img) => img.id.startsWith('shapes-'));
  assert.equal(main.length, 60);
  main.forEach((img, i) => assert.deepEqual(img.scene, shapesScene(1, i).drawing.scene));
  const mainScenes = new Set(main.map((img) => key(img.scene)));
  assert.ok([...selection, ...compositional].every((img) => !mainScenes.has(key(img.scene))));

  const modelDir = await trainTinyModel(out, 2, { batchSize: 16, familiarityImages: 0 });
  try {
    const result = await runEvaluation({
      modelDir,
      dataDir: out,
      split: 'selection',
      batchSize: 16,
      galleryCount: 1,
      outDir: join(work, 'eval'),
    });
    assert.deepEqual(
      result.splits.map((s) => [s.split, s.images]),
      [
        ['selection', selection.length],
        ['selection-compositional', compositional.length],
      ],
    );
    assert.ok(
      result.splits.every((s) => s.semantic !== null),
      'scored for meaning, as the test splits are',
    );
  } finally {
    await rm(modelDir, { recursive: true, force: true });
  }
});

test('a selection needs generator v2 and a seed of its own', async () => {
  const opts = { out: join(work, 'never'), count: 10, size: 16, seed: 1, selectionCount: 5 };
  await assert.rejects(generateShapes({ ...opts, selectionSeed: 1 }), /"selectionSeed" must differ from "seed" \(1\)/);
  await assert.rejects(generateShapes(opts), /"selectionSeed" must be a non-negative integer when selectionCount > 0/);
  await assert.rejects(
    generateShapes({ ...opts, selectionSeed: 2, generatorVersion: 1 }),
    /a selection split needs generator version 2/,
  );
});
