/**
 * The report's attention maps (Xu et al. 2015, "Show, Attend and Tell", fig. 3): for each word
 * of a caption, the picture as the model saw it (model/data/image.ts: resized to cover the
 * square, centre-cropped), darkened where the model did not look: the same bilinear map as the
 * page's (server/public/attention.js, a browser module that Node imports too, so that the two
 * cannot drift apart). The page lays a colour map and an outline over the image instead, which
 * reads on dark images too; the report's small pictures sit beside their word on a light page.
 */
import sharp from 'sharp';
import type { AttentionMaps } from '../model/decode/decode.ts';
import { loadImagePixels } from '../model/data/image.ts';
import { MAX_SHADE, placeOf, sampleGrid } from '../server/public/attention.js';

export interface WordMap {
  word: string;
  /** A JPEG data: URI of the shaded picture. */
  image: string;
  /** Where the word's largest weight lies, in words ("the top left"). */
  place: string;
}

/**
 * size × size RGB pixels darkened by one word's weights: each pixel × (1 − MAX_SHADE · (1 − w /
 * max w)), w the map bilinearly upsampled; as the page's black overlay composites over the image.
 */
export function shadePixels(
  pixels: Uint8Array,
  size: number,
  weights: readonly number[],
  grid: readonly [number, number],
): Uint8Array {
  const [rows, cols] = grid;
  const max = Math.max(...weights) || 1;
  const out = new Uint8Array(pixels.length);
  for (let j = 0; j < size; j++) {
    for (let i = 0; i < size; i++) {
      const keep = 1 - MAX_SHADE * (1 - sampleGrid(weights, rows, cols, (i + 0.5) / size, (j + 0.5) / size) / max);
      for (let ch = 0; ch < 3; ch++) {
        const k = (j * size + i) * 3 + ch;
        out[k] = Math.round(pixels[k]! * keep);
      }
    }
  }
  return out;
}

/** One shaded picture per word of `words` (a row of `maps.weights` each), of the image file `path`. */
export async function wordMaps(
  path: string,
  words: readonly string[],
  maps: AttentionMaps,
  size = 80,
): Promise<WordMap[]> {
  const pixels = await loadImagePixels(path, size);
  return Promise.all(
    maps.weights.map(async (weights, i) => {
      const jpeg = await sharp(shadePixels(pixels, size, weights, maps.grid), {
        raw: { width: size, height: size, channels: 3 },
      })
        .jpeg({ quality: 85 })
        .toBuffer();
      const largest = weights.indexOf(Math.max(...weights));
      return {
        word: words[i] ?? '',
        image: `data:image/jpeg;base64,${jpeg.toString('base64')}`,
        place: placeOf(largest, maps.grid),
      };
    }),
  );
}
