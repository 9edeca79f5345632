/**
 * Image preprocessing, one function for training and captioning alike, so that the model sees
 * at inference exactly what it saw in training: EXIF orientation applied, grey, palette,
 * 16-bit and alpha images made 8-bit RGB (alpha flattened onto white), then resized to cover a
 * size × size square and centre-cropped.
 */
import * as tf from '@tensorflow/tfjs';
import sharp, { type SharpOptions } from 'sharp';

export class ImageError extends Error {
  override name = 'ImageError';
}

/**
 * How every decode of an image reads it (captioning, training, the server's header check and
 * preview): fail on errors, not on libjpeg's warnings (e.g. a stray marker inside scan data),
 * which a viewer shows without complaint. The pixel limit is set per use.
 */
export const IMAGE_INPUT_OPTIONS = { failOn: 'error' } as const satisfies SharpOptions;

/** Decodes an image (a path or its bytes) to size × size × 3 uint8 RGB pixels, row-major. */
export async function loadImagePixels(input: string | Buffer, size: number): Promise<Uint8Array> {
  try {
    const { data, info } = await sharp(input, { ...IMAGE_INPUT_OPTIONS, limitInputPixels: 1 << 28 })
      .rotate() // applies the EXIF orientation
      .flatten({ background: '#ffffff' })
      .toColourspace('srgb')
      .resize(size, size, { fit: 'cover', position: 'centre' })
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true });
    if (info.channels !== 3 || data.length !== size * size * 3) {
      throw new Error(`decoded to ${info.width}×${info.height}×${info.channels}, expected ${size}×${size}×3`);
    }
    return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  } catch (err) {
    const name = typeof input === 'string' ? input : 'image';
    throw new ImageError(`${name}: cannot decode image (${(err as Error).message})`);
  }
}

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
