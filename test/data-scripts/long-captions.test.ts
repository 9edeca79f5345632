/**
 * Long captions (`--min-shapes` / `--max-shapes`, the RNN lab's long-memory data): the default
 * scenes stay generator v2's bit for bit, scenes of many objects fit and parse back exactly, their
 * captions run past 30 words, and per-position accuracy says which named object was wrong.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { generateShapes, shapesScene } from '../../data-scripts/shapes/generate.ts';
import { maxCaptionWords } from '../../data-scripts/shapes/grammar.ts';
import type { Scene } from '../../data-scripts/shapes/scene.ts';
import {
  compareScenes,
  parseShapesCaption,
  positionsRight,
  semanticScores,
} from '../../data-scripts/shapes/semantics.ts';
import { ptbTokenize } from '../../model/text/tokenize.ts';

const root = await mkdtemp(join(tmpdir(), 'captioner-long-captions-'));
after(() => rm(root, { recursive: true, force: true }));

const v2 = JSON.parse(await readFile(join(import.meta.dirname, 'fixtures/shapes-v2-digest.json'), 'utf8')) as {
  count: number;
  runs: { seed: number; sha256: string }[];
};

test('generator v2 without --max-shapes: the scenes of the digest committed before it existed', () => {
  for (const { seed, sha256 } of v2.runs) {
    const hash = createHash('sha256');
    for (let i = 0; i < v2.count; i++) {
      const s = shapesScene(seed, i, { generatorVersion: 2 });
      const line = { split: s.split, drawing: s.drawing, captions: s.captions, noiseSeed: s.noiseSeed };
      hash.update(JSON.stringify(line) + '\n');
    }
    assert.equal(hash.digest('hex'), sha256, `seed ${seed}`);
  }
});

test('--min-shapes 6 --max-shapes 8: 6 to 8 objects, apart, every caption parsing back exactly, 30+ words', () => {
  const counts = new Set<number>();
  let longest = 0;
  let atLeast30 = 0;
  let captions = 0;
  for (let i = 0; i < 150; i++) {
    const { drawing, captions: texts } = shapesScene(3, i, { minShapes: 6, maxShapes: 8 });
    const { objects, relations } = drawing.scene;
    counts.add(objects.length);
    assert.equal(relations.length, 0);
    objects.forEach((a, j) =>
      objects.slice(j + 1).forEach((b, k) => {
        const gap = Math.hypot(a.x! - b.x!, a.y! - b.y!);
        assert.ok(gap > drawing.styles[j]!.radius + drawing.styles[j + 1 + k]!.radius, `scene ${i}: objects overlap`);
      }),
    );
    for (const text of texts) {
      const words = ptbTokenize(text).length;
      assert.ok(words <= maxCaptionWords(8), text);
      longest = Math.max(longest, words);
      if (words >= 30) atLeast30 += 1;
      captions += 1;
      const parsed = parseShapesCaption(text);
      assert.ok(parsed && compareScenes(parsed, drawing.scene).exact, text);
    }
  }
  assert.deepEqual([...counts].sort(), [6, 7, 8]);
  assert.ok(longest >= 34, `longest caption ${longest} words`);
  assert.ok(atLeast30 > captions / 4, `${atLeast30} of ${captions} captions have 30 words or more`);
});

test('shape ranges are checked, naming the field; generator v1 writes 1 to 3 objects only', async () => {
  assert.throws(() => shapesScene(1, 0, { maxShapes: 9 }), /"maxShapes" must be an integer from 1 to 8, got 9/);
  assert.throws(() => shapesScene(1, 0, { minShapes: 0 }), /"minShapes" must be an integer from 1 to 8/);
  assert.throws(() => shapesScene(1, 0, { minShapes: 5, maxShapes: 4 }), /"minShapes" \(5\) must not exceed/);
  assert.throws(() => shapesScene(1, 0, { maxShapes: 6, generatorVersion: 1 }), /version 1 .*"maxShapes"/);
  await assert.rejects(
    generateShapes({ out: join(root, 'bad'), count: 2, size: 16, seed: 1, maxShapes: 12 }),
    /"maxShapes"/,
  );
});

test('a long-caption data set records its range in its source command', async () => {
  const out = join(root, 'long');
  await generateShapes({ out, count: 6, size: 16, seed: 2, minShapes: 4, maxShapes: 6, concurrency: 2 });
  const manifest = JSON.parse(await readFile(join(out, 'manifest.json'), 'utf8')) as {
    source: string;
    images: { scene: Scene }[];
  };
  assert.match(manifest.source, /--min-shapes 4 --max-shapes 6$/);
  for (const img of manifest.images) assert.ok(img.scene.objects.length >= 4 && img.scene.objects.length <= 6);
});

test('positionsRight: the k-th named object is right when it is a true object not named before', () => {
  const truth: Scene = {
    objects: [
      { shape: 'circle', colour: 'red', size: 'small' },
      { shape: 'square', colour: 'blue', size: 'medium' },
      { shape: 'star', colour: 'green', size: 'large' },
    ],
    relations: [],
  };
  const right = (caption: string) => positionsRight(parseShapesCaption(caption), truth);
  // Any order is right: the caption lists objects in its own order.
  assert.deepEqual(right('a large green star, a small red circle and a blue square'), [true, true, true]);
  // A wrong size at position 2; the object named twice counts once; a short caption misses the rest.
  assert.deepEqual(right('a small red circle, a large blue square and a large green star'), [true, false, true]);
  assert.deepEqual(right('a small red circle, a small red circle and a blue square'), [true, false, true]);
  assert.deepEqual(right('a small red circle'), [true, false, false]);
  assert.deepEqual(right('a dog on a skateboard'), [false, false, false]);
  const scores = semanticScores([
    { caption: 'a small red circle and a blue square', truth: { objects: truth.objects.slice(0, 2), relations: [] } },
    { caption: 'a small red circle, a blue square and a green star', truth },
  ]);
  assert.deepEqual(scores.positions, [
    { captions: 2, right: 2, rate: 1 },
    { captions: 2, right: 2, rate: 1 },
    { captions: 1, right: 0, rate: 0 },
  ]);
  // The first caption states its two-object scene exactly; the second misses its third object.
  assert.deepEqual(scores.byObjects, [
    { objects: 2, captions: 1, exact: 1, rate: 1 },
    { objects: 3, captions: 1, exact: 0, rate: 0 },
  ]);
});

test('compareScenes matches eight objects against a caption naming each twice', () => {
  const { drawing } = shapesScene(5, 0, { minShapes: 8, maxShapes: 8 });
  const objects = drawing.scene.objects;
  const caption = [...objects, ...objects]
    .map((o) => `a ${o.size === 'medium' ? '' : `${o.size} `}${o.colour} ${o.shape}`)
    .join(' and ');
  assert.deepEqual(compareScenes(parseShapesCaption(caption)!, drawing.scene), { exact: false, tp: 24, fp: 24, fn: 0 });
});
