/**
 * scripts/binding-errors.ts on hand-made scenes and captions: a shape taken from the other object
 * of the scene is counted as another object's; a shape no object has is wrong but not another's;
 * a right caption is not missed; a caption that leaves an object out is missed but not paired.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { tempDirUntilExit } from '../helpers/temp-dir.ts';

const object = (colour: string, shape: string, x: number) => ({ shape, colour, size: 'medium', x, y: 0.5 });

test('binding-errors: a wrong word that is another object’s is counted as such, by number of objects', async () => {
  const work = tempDirUntilExit('captioner-binding-');
  const data = join(work, 'data');
  const evalDir = join(work, 'eval');
  await mkdir(data, { recursive: true });
  await mkdir(evalDir, { recursive: true });
  const scene = (...objects: ReturnType<typeof object>[]) => ({ objects, relations: [] });
  const images = [
    { id: 'a', scene: scene(object('red', 'circle', 0.2), object('orange', 'hexagon', 0.8)) },
    { id: 'b', scene: scene(object('blue', 'square', 0.2), object('green', 'triangle', 0.8)) },
    { id: 'c', scene: scene(object('purple', 'star', 0.5)) },
    { id: 'd', scene: scene(object('yellow', 'diamond', 0.2), object('red', 'square', 0.8)) },
    { id: 'e', scene: scene(object('red', 'circle', 0.2), object('blue', 'square', 0.8)) },
  ];
  await writeFile(join(data, 'manifest.json'), JSON.stringify({ images }));
  const results = [
    { image_id: 'a', caption: 'a red hexagon and an orange hexagon' }, // the circle's shape from its neighbour
    { image_id: 'b', caption: 'a blue star and a green triangle' }, // a shape nobody has
    { image_id: 'c', caption: 'a purple star' }, // right
    { image_id: 'd', caption: 'a yellow diamond' }, // one object left out
    { image_id: 'e', caption: 'a blue circle and a red square' }, // every word of the scene, bound wrong
  ];
  await writeFile(join(evalDir, 'results-selection.json'), JSON.stringify(results));
  const { stdout } = await promisify(execFile)(process.execPath, [
    '--import',
    'tsx',
    'scripts/binding-errors.ts',
    evalDir,
    data,
    'selection',
  ]);
  const { byObjects } = JSON.parse(stdout);
  assert.deepEqual(byObjects['1'], {
    scenes: 1,
    missed: 0,
    paired: 0,
    wrong: { shape: 0, colour: 0, size: 0 },
    anotherObjects: { shape: 0, colour: 0, size: 0 },
    wrongObjects: 0,
    sameWords: 0,
  });
  // e's two pairings agree on as many attributes; either way both its wrong words are the other's.
  assert.deepEqual(byObjects['2'], {
    scenes: 4,
    missed: 4,
    paired: 3,
    wrong: { shape: 4, colour: 0, size: 0 },
    anotherObjects: { shape: 3, colour: 0, size: 0 },
    wrongObjects: 3,
    sameWords: 1,
  });
});
