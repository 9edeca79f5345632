/**
 * What an image file's header says, read without decoding its pixels, so that an image too large
 * to decode safely (a decompression bomb, or just a 100-megapixel scan) is refused before it
 * costs anything, and the memory a decode will take can be budgeted. The server (server/upload.ts)
 * and batch captioning (batch/) share the default limit.
 */
import sharp, { type Metadata } from 'sharp';
import { ImageError } from './image.ts';

/** The largest image decoded by default, in pixels (width × height of the first frame). */
export const DEFAULT_MAX_PIXELS = 40_000_000;

export interface ImageHeader {
  /** sharp's name of the format: jpeg, png, webp, gif, tiff, heif, … */
  format: string;
  /** Of the first frame (an animated image decodes its first frame only). */
  width: number;
  height: number;
  channels: number;
  /** Bytes of one sample at the image's bit depth (1 for 8-bit, 2 for 16-bit, …). */
  bytesPerSample: number;
}

/** The image is larger than the pixel limit. */
export class ImageTooLargeError extends ImageError {
  override name = 'ImageTooLargeError';
}

const SAMPLE_BYTES: Record<string, number> = {
  uchar: 1,
  char: 1,
  ushort: 2,
  short: 2,
  uint: 4,
  int: 4,
  float: 4,
  complex: 8,
  double: 8,
  dpcomplex: 16,
};

/** Reads an image's header (a path or its bytes); a file that is not an image sharp reads is an ImageError. */
export async function readImageHeader(input: string | Buffer): Promise<ImageHeader> {
  const name = typeof input === 'string' ? input : 'image';
  let meta: Metadata;
  try {
    // limitInputPixels: false: the limit is the caller's, checked from these figures.
    meta = await sharp(input, { limitInputPixels: false }).metadata();
  } catch (err) {
    throw new ImageError(`${name}: cannot decode image (${(err as Error).message})`);
  }
  const width = meta.width ?? 0;
  const height = meta.pageHeight ?? meta.height ?? 0;
  if (!(width > 0 && height > 0)) throw new ImageError(`${name}: cannot decode image (no size in its header)`);
  return {
    format: String(meta.format),
    width,
    height,
    channels: meta.channels ?? 4,
    bytesPerSample: SAMPLE_BYTES[meta.depth ?? ''] ?? 8,
  };
}

/** Throws ImageTooLargeError, naming the size and the limit, when the image has more than `maxPixels` pixels. */
export function checkPixelLimit(header: ImageHeader, maxPixels: number, name = 'image'): void {
  const pixels = header.width * header.height;
  if (pixels > maxPixels) {
    throw new ImageTooLargeError(
      `${name}: the image is ${header.width}×${header.height} = ${pixels} pixels; the limit is ${maxPixels}`,
    );
  }
}

/**
 * The bytes of the full-size raster a decode of this image holds at its peak: every pixel at its
 * channels and bit depth. (JPEG's shrink-on-load often needs less; interlaced PNG needs all of it.)
 */
export function decodeBytes(header: ImageHeader): number {
  return header.width * header.height * header.channels * header.bytesPerSample;
}
