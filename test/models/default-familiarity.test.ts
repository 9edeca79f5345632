/**
 * The bundled model's familiarity calibration (models/default/familiarity.json): real
 * photographs shipped by Debian packages are flagged as unlike its training images, while fresh
 * shapes scenes of a seed its data never used are familiar. The photographs come from
 * mate-backgrounds and python3-skimage, which .ci/run installs; a missing one fails the test.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, test } from 'node:test';
import { shapesScene } from '../../data-scripts/shapes/generate.ts';
import { encodePng, renderDrawing } from '../../data-scripts/shapes/render.ts';
import { imagesToTensor, loadImagePixels } from '../../model/data/image.ts';
import { loadModel, type LoadedModel } from '../../model/io/load.ts';
import { setupBackend } from '../helpers/tf.ts';

const SKIMAGE = '/usr/lib/python3/dist-packages/skimage/data';
const MATE = '/usr/share/backgrounds/mate/nature';
/**
 * Ordinary photographs: people, animals, objects, vehicles, plants, and the two grey or pale
 * surfaces the earlier recipe found familiar (docs/familiarity.md lists every score).
 */
const PHOTOGRAPHS = [
  `${SKIMAGE}/astronaut.png`,
  `${SKIMAGE}/chelsea.png`,
  `${SKIMAGE}/coffee.png`,
  `${SKIMAGE}/motorcycle_left.png`,
  `${SKIMAGE}/rocket.jpg`,
  `${SKIMAGE}/camera.png`,
  `${SKIMAGE}/moon.png`,
  `${MATE}/Garden.jpg`,
  `${MATE}/LadyBird.jpg`,
  `${MATE}/YellowFlower.jpg`,
  `${MATE}/Dune.jpg`,
  `${MATE}/Wood.jpg`,
];
/** A generator seed no data set of the project was made with. */
const SEED = 9001;

await setupBackend();
let loaded: LoadedModel;

before(async () => {
  loaded = await loadModel('models/default');
});
after(() => loaded?.model.dispose());

async function photographPixels(path: string, size: number): Promise<Uint8Array> {
  const bytes = await readFile(path).catch((err: NodeJS.ErrnoException) => {
    throw new Error(
      `${path}: ${err.code ?? err.message}; the photographs come from Debian's mate-backgrounds and python3-skimage (apt-get install, as .ci/run does)`,
    );
  });
  return loadImagePixels(bytes, size);
}

test('the bundled model is calibrated, and flags every ordinary photograph as unfamiliar', async () => {
  const { model, familiarity } = loaded;
  assert.ok(familiarity, 'models/default has familiarity.json');
  const size = model.config.imageSize;
  const images = imagesToTensor(await Promise.all(PHOTOGRAPHS.map((p) => photographPixels(p, size))), size);
  const judged = familiarity.assess(model.encoder, images);
  images.dispose();
  judged.forEach((j, i) => assert.equal(j.familiar, false, `${PHOTOGRAPHS[i]} scores ${j.score}, threshold ${j.threshold}`));
});

test('… while fresh shapes scenes of an unused seed are familiar, about as often as its validation images', async () => {
  const { model, familiarity } = loaded;
  const size = model.config.imageSize;
  const pixels: Uint8Array[] = [];
  for (let i = 0; i < 200; i++) {
    const scene = shapesScene(SEED, i, { compositionalFraction: 0.1, generatorVersion: 2 });
    const png = await encodePng(await renderDrawing(scene.drawing, size, scene.noiseSeed), size);
    pixels.push(await loadImagePixels(png, size));
  }
  const images = imagesToTensor(pixels, size);
  const judged = familiarity!.assess(model.encoder, images);
  images.dispose();
  const share = judged.filter((j) => j.familiar).length / judged.length;
  // 97.0 % of 2,000 such scenes measured familiar (docs/familiarity.md); 200 estimate it to
  // about ±2.5 points (two standard errors), hence the floor.
  assert.ok(share >= 0.93, `${(share * 100).toFixed(1)} % familiar`);
});
