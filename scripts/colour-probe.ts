/**
 * Where does a shapes model go wrong on colour + shape pairs it never saw: in the encoder (it
 * cannot see the shape) or in the decoder (it has learned "after yellow, never circle")?
 *
 *   node --import tsx scripts/colour-probe.ts MODEL_DIR DATA_DIR [N]
 *
 * On the first N single-shape scenes of the data set's compositional split, the decoder is fed a
 * reference caption up to and including the colour word, and its next word is compared with the
 * true shape, twice: once with the true colour, once with a colour the training data does pair
 * with that shape. If the shape is right far more often with the swapped colour, the picture's
 * evidence is there and the decoder's learned colour → shape prior overrides it.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { COLOURS, isHeldOut, type SceneObject } from '../data-scripts/shapes/scene.ts';
import { selectBackend } from '../model/runtime/backend.ts';
import type { ImageFeatures } from '../model/nn/captioner.ts';
import { imagesToTensor, loadImagePixels } from '../model/data/image.ts';
import { loadModel } from '../model/io/load.ts';
import { START } from '../model/text/vocab.ts';

const [modelDir, dataDir, count = '300'] = process.argv.slice(2);
if (!modelDir || !dataDir) {
  process.stderr.write('usage: scripts/colour-probe.ts MODEL_DIR DATA_DIR [N]\n');
  process.exit(2);
}
await selectBackend(undefined, () => {});
// The weights alone: the probe measures the prior in the network, without anti-LM.
const { model } = await loadModel(modelDir);
const manifest = JSON.parse(readFileSync(join(dataDir, 'manifest.json'), 'utf8'));
const scenes = manifest.images
  .filter(
    (i: { split: string; scene?: { objects: SceneObject[] } }) =>
      i.split === 'test-compositional' && i.scene?.objects.length === 1,
  )
  .slice(0, Number(count));
if (scenes.length === 0)
  throw new Error(`${join(dataDir, 'manifest.json')}: no single-shape scenes in split "test-compositional"`);

/** The decoder's next word after `prefix`, reading the image's `features`. */
function nextWord(features: ImageFeatures, prefix: readonly string[]): string {
  return tf.tidy(() => {
    let state = model.initialState(features);
    let previous = START;
    for (const word of prefix) {
      state = model.step(tf.tensor1d([previous], 'int32'), state, features).state;
      previous = model.vocab.id(word);
    }
    const { logits } = model.step(tf.tensor1d([previous], 'int32'), state, features);
    return model.vocab.words[tf.argMax(logits, 1).dataSync()[0]!]!;
  });
}

let trueRight = 0;
let swappedRight = 0;
for (const image of scenes) {
  const object: SceneObject = image.scene.objects[0];
  const pixels = await loadImagePixels(join(dataDir, image.file), model.config.imageSize);
  const words: string[] = image.captions
    .map((c: string) => c.split(' '))
    .find((w: string[]) => w.includes(object.colour));
  const before = words.slice(0, words.indexOf(object.colour));
  const seen = COLOURS.find((c) => c !== object.colour && !isHeldOut({ ...object, colour: c }))!;
  // once for both prefixes
  const features = tf.tidy(() => model.encode(imagesToTensor([pixels], model.config.imageSize)));
  if (nextWord(features, [...before, object.colour]) === object.shape) trueRight++;
  if (nextWord(features, [...before, seen]) === object.shape) swappedRight++;
  features.dispose();
}
const n = scenes.length;
process.stdout.write(
  `${JSON.stringify({ scenes: n, shapeRightWithTrueColour: trueRight / n, shapeRightWithSeenColour: swappedRight / n })}\n`,
);
