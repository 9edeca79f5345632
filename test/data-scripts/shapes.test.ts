/** The shapes data set: determinism, splits, caption/ground-truth agreement, the semantics scorer. */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readManifest, ImageCache, type DatasetImage } from '../../model/data/dataset.ts';
import { loadImagePixels } from '../../model/data/image.ts';
import { generateShapes, shapesScene } from '../../data-scripts/shapes/generate.ts';
import { MAX_CAPTION_WORDS } from '../../data-scripts/shapes/grammar.ts';
import { HELD_OUT_PAIRS, isHeldOut, type Scene, type SceneObject } from '../../data-scripts/shapes/scene.ts';
import { attributeF1, compareScenes, parseShapesCaption, semanticScores } from '../../data-scripts/shapes/semantics.ts';
import { ptbTokenize } from '../../model/text/tokenize.ts';
import { train } from '../../model/train/trainer.ts';
import { tinyConfig } from '../helpers/tiny-model.ts';

const root = await mkdtemp(join(tmpdir(), 'captioner-shapes-test-'));
after(() => rm(root, { recursive: true, force: true }));

async function filesOf(dir: string, prefix = ''): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  for (const entry of await readdir(join(dir, prefix), { withFileTypes: true })) {
    const rel = join(prefix, entry.name);
    if (entry.isDirectory()) for (const [k, v] of await filesOf(dir, rel)) out.set(k, v);
    else out.set(rel, await readFile(join(dir, rel)));
  }
  return out;
}

const small = { count: 60, size: 32, seed: 11 };
const first = join(root, 'a');
await generateShapes({ ...small, out: first, concurrency: 3 });

test('same seed, same bytes: every file of two generations is identical', async () => {
  const second = join(root, 'b');
  await generateShapes({ ...small, out: second, concurrency: 1 }); // a different interleaving of the work
  const [a, b] = [await filesOf(first), await filesOf(second)];
  assert.deepEqual([...a.keys()].sort(), [...b.keys()].sort());
  for (const [name, bytes] of a) assert.ok(bytes.equals(b.get(name)!), `${name} differs`);
  const other = join(root, 'c');
  await generateShapes({ ...small, seed: 12, out: other });
  assert.ok(
    !(await readFile(join(other, 'shards/0000.bin'))).equals(a.get('shards/0000.bin')!),
    'another seed draws other images',
  );
});

test('the manifest: generator version, splits, captions, scenes, a PNG per image, statistics', async () => {
  const m = await readManifest(first);
  assert.equal((m as { generatorVersion?: unknown }).generatorVersion, 2);
  assert.equal(m.source, 'captioner data shapes --count 60 --size 32 --seed 11 --generator-version 2');
  assert.equal(m.images.length, 60);
  assert.deepEqual(m.shards, { imageSize: 32, imagesPerShard: 4096, files: ['shards/0000.bin'] });
  for (const img of m.images) {
    assert.equal(img.captions.length, 5);
    assert.equal(new Set(img.captions).size, 5, `${img.id}: five different captions`);
    assert.ok((await stat(join(first, img.file))).size > 0);
    const scene = img.scene as Scene;
    assert.ok(scene.objects.length >= 1 && scene.objects.length <= 3);
  }
  const stats = m.stats as {
    splits: Record<string, { images: number }>;
    lengthHistogram: Record<string, number>;
    wordCounts: Record<string, number>;
  };
  assert.equal(
    Object.values(stats.splits).reduce((s, x) => s + x.images, 0),
    60,
  );
  const trainCaptions = m.images.filter((i) => i.split === 'train').flatMap((i) => i.captions);
  assert.equal(
    Object.values(stats.lengthHistogram).reduce((s, x) => s + x, 0),
    trainCaptions.length,
  );
  assert.equal(stats.wordCounts.a, trainCaptions.flatMap((c) => ptbTokenize(c)).filter((w) => w === 'a').length);
});

test('splits are disjoint and the compositional split holds exactly the held-out colour+shape pairs', () => {
  const splits = new Map<string, number>();
  for (let i = 0; i < 3000; i++) {
    const { split, drawing } = shapesScene(5, i);
    splits.set(split, (splits.get(split) ?? 0) + 1);
    const heldOut = drawing.scene.objects.some(isHeldOut);
    assert.equal(heldOut, split === 'test-compositional', `scene ${i} (${split}): held-out pair ${heldOut}`);
  }
  assert.deepEqual([...splits.keys()].sort(), ['test', 'test-compositional', 'train', 'val']);
  assert.ok(splits.get('train')! > 2000 && splits.get('test-compositional')! > 200, JSON.stringify([...splits]));
  // Every held-out pair occurs in the compositional split; each colour and shape still in training.
  const seen = new Set<string>();
  const trainColours = new Set<string>();
  const trainShapes = new Set<string>();
  for (let i = 0; i < 3000; i++) {
    const { split, drawing } = shapesScene(5, i);
    for (const o of drawing.scene.objects) {
      if (split === 'test-compositional' && isHeldOut(o)) seen.add(`${o.colour} ${o.shape}`);
      if (split === 'train') {
        trainColours.add(o.colour);
        trainShapes.add(o.shape);
      }
    }
  }
  assert.equal(seen.size, HELD_OUT_PAIRS.length);
  assert.equal(trainColours.size, 6);
  assert.equal(trainShapes.size, 6);
});

test('manifest ids are unique and each image is in one split', async () => {
  const m = await readManifest(first);
  const bySplit = new Map<string, Set<string>>();
  for (const img of m.images) bySplit.set(img.split, (bySplit.get(img.split) ?? new Set()).add(img.id));
  const all = [...bySplit.values()].flatMap((s) => [...s]);
  assert.equal(new Set(all).size, m.images.length);
});

for (const generatorVersion of [2, 1] as const) {
  test(`caption/ground-truth agreement: every v${generatorVersion} caption parses back to its scene exactly`, () => {
    let relations = 0;
    const lengths = new Set<number>();
    for (let i = 0; i < 1500; i++) {
      const { drawing, captions } = shapesScene(9, i, { generatorVersion });
      const truth = drawing.scene;
      relations += truth.relations.length;
      for (const caption of captions) {
        const parsed = parseShapesCaption(caption);
        assert.ok(parsed, `does not parse: "${caption}"`);
        assert.equal(captions.length, 5);
        const cmp = compareScenes(parsed, truth);
        assert.deepEqual(
          cmp,
          { exact: true, tp: 3 * truth.objects.length + truth.relations.length, fp: 0, fn: 0 },
          `"${caption}" vs ${JSON.stringify(truth)}`,
        );
        lengths.add(ptbTokenize(caption).length);
      }
    }
    assert.ok(relations > 200, 'relations occur');
    assert.ok(
      Math.min(...lengths) <= 4 && Math.max(...lengths) === MAX_CAPTION_WORDS,
      `caption lengths ${[...lengths].sort((a, b) => a - b)}`,
    );
  });
}

test('the relation in the ground truth holds in the geometry, and two shapes with none sit on a diagonal', () => {
  let unrelated = 0;
  for (let i = 0; i < 500; i++) {
    const { scene } = shapesScene(2, i).drawing;
    for (const r of scene.relations) {
      const [a, b] = [scene.objects[r.subject]!, scene.objects[r.object]!];
      const [along, across] =
        r.relation === 'left of' ? [b.x! - a.x!, Math.abs(b.y! - a.y!)] : [b.y! - a.y!, Math.abs(b.x! - a.x!)];
      assert.ok(r.relation === 'left of' || r.relation === 'above');
      assert.ok(along > 0 && across < 0.5 * along + 0.002, `scene ${i}: "${r.relation}" is not plain to see`);
    }
    if (scene.objects.length === 2 && scene.relations.length === 0) {
      // Neither axis dominates, so no caption could fairly say "left of" or "above".
      unrelated += 1;
      const [a, b] = scene.objects as [SceneObject, SceneObject];
      const [dx, dy] = [Math.abs(a.x! - b.x!), Math.abs(a.y! - b.y!)];
      assert.ok(
        Math.min(dx, dy) >= 0.74 * Math.max(dx, dy),
        `scene ${i}: two shapes with no relation at dx ${dx}, dy ${dy}`,
      );
    }
  }
  assert.ok(unrelated > 20, `${unrelated} two-shape scenes without a relation`);
});

const truth: Scene = {
  objects: [
    { shape: 'square', colour: 'blue', size: 'small', x: 0.5, y: 0.2 },
    { shape: 'triangle', colour: 'yellow', size: 'large', x: 0.5, y: 0.7 },
  ],
  relations: [{ subject: 0, relation: 'above', object: 1 }],
};

test('compareScenes: paraphrases and converses are exact; wrong facts count', () => {
  const score = (c: string) => compareScenes(parseShapesCaption(c)!, truth);
  assert.equal(score('A small blue square above a large yellow triangle.').exact, true);
  assert.equal(score('a big yellow triangle is beneath a tiny blue square').exact, true);
  assert.equal(
    score('there are two shapes: a large yellow triangle and a small blue square').exact,
    false,
    'the relation is missed',
  );
  assert.deepEqual(score('there are two shapes: a large yellow triangle and a small blue square'), {
    exact: false,
    tp: 6,
    fp: 0,
    fn: 1,
  });
  assert.deepEqual(score('a small blue square below a large yellow triangle'), { exact: false, tp: 6, fp: 1, fn: 1 });
  assert.deepEqual(score('a small red square above a large yellow triangle'), { exact: false, tp: 6, fp: 1, fn: 1 });
  assert.deepEqual(score('a small blue square'), { exact: false, tp: 3, fp: 0, fn: 4 });
  assert.deepEqual(score('a small blue square above a large yellow triangle and a green star'), {
    exact: false,
    tp: 7,
    fp: 3,
    fn: 0,
  });
  assert.deepEqual(compareScenes({ objects: [], relations: [] }, truth), { exact: false, tp: 0, fp: 0, fn: 7 });
  const sideBySide: Scene = {
    objects: [
      { ...truth.objects[0]!, x: 0.2, y: 0.5 },
      { ...truth.objects[1]!, x: 0.8, y: 0.5 },
    ],
    relations: [{ subject: 1, relation: 'right of', object: 0 }],
  };
  assert.equal(
    compareScenes(parseShapesCaption('a small blue square next to a large yellow triangle')!, sideBySide).exact,
    true,
  );
  assert.equal(
    compareScenes(parseShapesCaption('a large yellow triangle to the left of a small blue square')!, sideBySide).exact,
    false,
  );
  assert.deepEqual(attributeF1({ tp: 6, fp: 1, fn: 1 }), { precision: 6 / 7, recall: 6 / 7, f1: 12 / 14 });
  const scores = semanticScores([
    { caption: 'a small blue square over a large yellow triangle', truth },
    { caption: 'a small blue square', truth },
    { caption: 'a dog on a skateboard', truth },
  ]);
  // Counts summed: (7,0,0) + (3,0,4) + (0,0,7).
  // Positions: the first object is named right by the first two captions, the second by the first only.
  assert.deepEqual(scores, {
    count: 3,
    exactRate: 1 / 3,
    unparsed: 1,
    precision: 1,
    recall: 10 / 21,
    f1: 20 / 31,
    positions: [
      { captions: 3, right: 2, rate: 2 / 3 },
      { captions: 3, right: 1, rate: 1 / 3 },
    ],
    // All three scenes hold two objects; only the first caption states its scene exactly.
    byObjects: [{ objects: 2, captions: 3, exact: 1, rate: 1 / 3 }],
  });
});

test('parseShapesCaption rejects what the grammar cannot say', () => {
  for (const bad of [
    '',
    'a red',
    'a circle',
    'red circle',
    'a red circle and',
    'there are three shapes: a red circle and a blue square',
    'a red circle near a blue square',
    'a red circle a',
    'a dog on a skateboard',
  ]) {
    assert.equal(parseShapesCaption(bad), null, JSON.stringify(bad));
  }
  assert.deepEqual(
    parseShapesCaption('a red circle, a blue square and a green star')?.objects.map((o) => o.shape),
    ['circle', 'square', 'star'],
  );
});

test('shards hold exactly the PNG pixels, and ImageCache reads them back (same size, resized, files)', async () => {
  const m = await readManifest(first);
  const images: DatasetImage[] = m.images.slice(0, 6);
  const cache = await ImageCache.load(first, images, 32);
  assert.equal(cache.source, 'shards');
  for (const img of images) {
    const fromPng = await loadImagePixels(join(first, img.file), 32);
    assert.deepEqual(cache.imagePixels(img.id), fromPng, `${img.id}: shard pixels = decoded PNG`);
  }
  const batch = cache.batch([images[2]!.id]);
  assert.equal(batch[5], Math.fround(cache.imagePixels(images[2]!.id)[5]! / 255));

  const smaller = await ImageCache.load(first, images, 16);
  assert.equal(smaller.source, 'shards-resized');
  assert.match(smaller.sourceDescription, /resized to 16×16/);
  const noShards = images.map(({ shard: _s, slot: _t, ...rest }) => rest);
  const files = await ImageCache.load(first, noShards, 16);
  assert.equal(files.source, 'files');
  // Resizing the shard pixels is close to decoding the file at the smaller size.
  let diff = 0;
  for (const img of images) {
    const a = smaller.imagePixels(img.id);
    const b = files.imagePixels(img.id);
    for (let k = 0; k < a.length; k++) diff += Math.abs(a[k]! - b[k]!);
  }
  assert.ok(diff / (images.length * 16 * 16 * 3) < 4, `mean abs difference ${diff / (images.length * 768)}`);
});

test('training reads a generated data set from its shards, with length bucketing', async () => {
  const dir = join(root, 'train-data/'); // a trailing slash must not matter
  await generateShapes({ count: 30, size: 16, seed: 3, out: dir });
  const config = await tinyConfig(dir, { maxSteps: 3, bucketing: true, maxLength: 16, out: join(root, 'model') });
  const lines: string[] = [];
  const result = await train(config, { log: (line) => lines.push(line) });
  assert.equal(result.steps, 3);
  assert.ok(
    lines.some((l) => /images: \d+ images read from shards at 16×16 \(no decoding\)/.test(l)),
    lines.join('\n'),
  );
});
