/**
 * Greyscale augmentation: a share of each batch's training images is turned grey, and the
 * colour words of their captions add no loss (their targets are masked as pads are).
 *
 * Why: when a colour never appears with a shape in training (the shapes set's held-out pairs,
 * "blue hexagon"), the encoder can get by on a shortcut: among blue things of that outline only
 * circles exist, so "blue and round" is read as a circle, and a blue hexagon is called one. A grey
 * image carries no colour to lean on; only its outline tells a hexagon from a circle, and that
 * evidence is learnt from every colour alike. No image of an unseen pair is ever shown: grey
 * images have no colour, and their colour words are not trained on.
 *
 * Grey is the luminance of ITU-R BT.601 (0.299 R + 0.587 G + 0.114 B), what torchvision's
 * Grayscale uses. The colour words are a fixed list of English colour names (COLOUR_WORDS),
 * achromatic ones included: in a grey image a grey shirt and a blue one of the same luminance
 * look the same.
 */
import { PAD, UNK, type Vocabulary } from '../text/vocab.ts';
import type { Rng } from '../util/rng.ts';

export const COLOUR_WORDS: readonly string[] = [
  'red',
  'orange',
  'yellow',
  'green',
  'blue',
  'purple',
  'violet',
  'pink',
  'brown',
  'black',
  'white',
  'grey',
  'gray',
  'silver',
  'gold',
  'golden',
  'beige',
  'tan',
  'maroon',
  'navy',
  'teal',
  'turquoise',
  'cyan',
  'magenta',
];

/** The ids of the vocabulary's colour words (COLOUR_WORDS it holds). */
export function colourWordIds(vocab: Vocabulary): Set<number> {
  return new Set(COLOUR_WORDS.map((w) => vocab.id(w)).filter((id) => id !== UNK));
}

/**
 * Turns each image of a batch grey with probability `rate` (one draw of `rng` per image, in order)
 * and masks its colour words as targets.
 *
 * @param images  the batch's pixels, batchSize × size × size × 3, changed in place for the rows drawn
 * @param targets the batch's targets, batchSize × steps (the tokens shifted by one), changed in place:
 *                a colour word of a grey row becomes PAD, which the loss masks
 * @returns the rows turned grey
 */
export function greyscaleRows(
  images: Float32Array,
  targets: Int32Array,
  batchSize: number,
  rate: number,
  colourIds: ReadonlySet<number>,
  rng: Rng,
): number[] {
  const per = images.length / batchSize;
  const steps = targets.length / batchSize;
  const rows: number[] = [];
  for (let b = 0; b < batchSize; b++) if (rng.next() < rate) rows.push(b);
  for (const b of rows) {
    for (let p = b * per; p < (b + 1) * per; p += 3) {
      const y = 0.299 * images[p]! + 0.587 * images[p + 1]! + 0.114 * images[p + 2]!;
      images[p] = images[p + 1] = images[p + 2] = y;
    }
    for (let t = b * steps; t < (b + 1) * steps; t++) if (colourIds.has(targets[t]!)) targets[t] = PAD;
  }
  return rows;
}
