/**
 * Image preprocessing, one function for training and captioning alike, so that the model sees
 * at inference exactly what it saw in training: EXIF orientation applied, grey, palette,
 * 16-bit and alpha images made 8-bit RGB (alpha flattened onto white), then resized to cover a
 * size × size square and centre-cropped.
 */
import sharp, { type SharpOptions } from 'sharp';

/** The scaling to [0, 1] (./pixels.ts: pure, so that the browser bundle shares it). */
export { imagesToTensor, pixelsToUnit } from './pixels.ts';

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
