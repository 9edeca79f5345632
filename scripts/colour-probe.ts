/**
 * Where does a shapes model go wrong on colour + shape pairs it never saw: in the encoder (it
 * cannot see the shape) or in the decoder (it has learned "after yellow, never circle")?
 *
 *   node --import tsx scripts/colour-probe.ts MODEL_DIR DATA_DIR [N] [SPLIT]
 *
 * On the first N single-shape scenes of the data set's compositional split (SPLIT:
 * test-compositional, the default, or selection-compositional, the one to make choices on; N:
 * 300, or 0 for all), the decoder is fed a
 * reference caption up to and including the colour word, and its next word is compared with the
 * true shape, twice: once with the true colour, once with a colour the training data does pair
 * with that shape. If the shape is right far more often with the swapped colour, the picture's
 * evidence is there and the decoder's learned colour → shape prior overrides it. If it is wrong
 * either way, the image's features themselves say another shape. Printed per held-out pair too.
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

const [modelDir, dataDir, count = '300', split = 'test-compositional'] = process.argv.slice(2);
if (!modelDir || !dataDir) {
  process.stderr.write('usage: scripts/colour-probe.ts MODEL_DIR DATA_DIR [N] [SPLIT]\n');
  process.exit(2);
}
await selectBackend(undefined, () => {});
// The weights alone: the probe measures the prior in the network, without anti-LM.
const { model } = await loadModel(modelDir);
const manifest = JSON.parse(readFileSync(join(dataDir, 'manifest.json'), 'utf8'));
const scenes = manifest.images
  .filter(
    (i: { split: string; scene?: { objects: SceneObject[] } }) => i.split === split && i.scene?.objects.length === 1,
  )
  .slice(0, Number(count) || undefined);
if (scenes.length === 0)
  throw new Error(`${join(dataDir, 'manifest.json')}: no single-shape scenes in split "${split}"`);

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
/** Per held-out pair: its scenes, the shape right with the true colour fed and with a seen one, what is said else. */
const byPair: Record<
  string,
  { scenes: number; trueColour: number; seenColour: number; saidInstead: Record<string, number> }
> = {};
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
  const pair = (byPair[`${object.colour} ${object.shape}`] ??= {
    scenes: 0,
    trueColour: 0,
    seenColour: 0,
    saidInstead: {},
  });
  pair.scenes++;
  const said = nextWord(features, [...before, object.colour]);
  if (said === object.shape) {
    trueRight++;
    pair.trueColour++;
  } else pair.saidInstead[said] = (pair.saidInstead[said] ?? 0) + 1;
  if (nextWord(features, [...before, seen]) === object.shape) {
    swappedRight++;
    pair.seenColour++;
  }
  features.dispose();
}
const n = scenes.length;
const summary = { scenes: n, shapeRightWithTrueColour: trueRight / n, shapeRightWithSeenColour: swappedRight / n };
process.stdout.write(`${JSON.stringify({ ...summary, byPair })}\n`);
