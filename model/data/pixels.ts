/**
 * Decoded pixels to the model's input: the one scaling training and captioning share. Apart from
 * ./image.ts (which decodes with sharp) so that the browser, which decodes with a canvas
 * (browser/pixels.ts), scales exactly the same way.
 */
import * as tf from '@tensorflow/tfjs';

/** v / 255 for every byte v, as float32: a table look-up is faster than a division per pixel. */
const UNIT = Float32Array.from({ length: 256 }, (_, v) => v / 255);

/**
 * uint8 pixels → x / 255 in [0, 1], written into `out` from `offset`: the one scaling training and captioning share.
 */
export function pixelsToUnit(pixels: Uint8Array, out: Float32Array, offset = 0): void {
  for (let k = 0; k < pixels.length; k++) out[offset + k] = UNIT[pixels[k]!]!;
}

/** Decoded images (each size × size × 3 uint8, from `loadImagePixels`) → [n, size, size, 3] float32 in [0, 1]. */
export function imagesToTensor(images: readonly Uint8Array[], size: number): tf.Tensor4D {
  const per = size * size * 3;
  const out = new Float32Array(images.length * per);
  images.forEach((pixels, i) => {
    if (pixels.length !== per)
      throw new Error(`imagesToTensor: image ${i} has ${pixels.length} values, expected ${size}×${size}×3 = ${per}`);
    pixelsToUnit(pixels, out, i * per);
  });
  return tf.tensor4d(out, [images.length, size, size, 3]);
}
