/**
 * What an image file's header says, read without decoding its pixels, so that an image too large
 * to decode safely (a decompression bomb, or just a 100-megapixel scan) is refused before it
 * costs anything, and the memory a decode will take can be budgeted. The one header reader,
 * pixel limit and decode memory estimate of the server (server/upload.ts) and batch captioning
 * (batch/prefetch.ts); each maps the errors below to its own (a 413, an error record).
 */
import sharp, { type Metadata } from 'sharp';
import { IMAGE_INPUT_OPTIONS, ImageError } from './image.ts';

/** The largest image decoded by default, in pixels (width × height of the first frame). */
export const DEFAULT_MAX_PIXELS = 40_000_000;

export interface ImageHeader {
  /** sharp's name of the format: jpeg, png, webp, gif, tiff, heif (AVIF is heif), … */
  format: string;
  /**
   * Of the first frame (an animated image decodes its first frame only), as the image is shown:
   * EXIF orientations 5–8 turn the picture a quarter, so it is shown height × width.
   */
  width: number;
  height: number;
  /** Channels stored, alpha included. */
  channels: number;
  /** Bytes of one sample at the image's bit depth (1 for 8-bit, 2 for 16-bit, …). */
  bytesPerSample: number;
  /** sharp's name of one sample's type: uchar (8-bit), ushort (16-bit), float, … */
  depth: string;
  /** An interlaced PNG or GIF, or a progressive JPEG. */
  interlaced: boolean;
}

/** The image is larger than the pixel limit. */
export class ImageTooLargeError extends ImageError {
  override name = 'ImageTooLargeError';
}

const BYTES_PER_SAMPLE: Partial<Record<Metadata['depth'], number>> = {
  uchar: 1,
  char: 1,
  ushort: 2,
  short: 2,
  uint: 4,
  int: 4,
  float: 4,
  double: 8,
  complex: 8,
  dpcomplex: 16,
};

/**
 * Reads an image's header (a path or its bytes) with the input options every decode uses. An
 * image sharp cannot read is an ImageError whose `cause` is sharp's error; one whose header gives
 * no size is an ImageError without a cause.
 */
export async function readImageHeader(input: string | Buffer): Promise<ImageHeader> {
  const name = typeof input === 'string' ? input : 'image';
  let meta: Metadata;
  try {
    // limitInputPixels: false: the limit is the caller's, checked from these figures.
    meta = await sharp(input, { ...IMAGE_INPUT_OPTIONS, limitInputPixels: false }).metadata();
  } catch (err) {
    throw new ImageError(`${name}: cannot decode image (${(err as Error).message})`, { cause: err });
  }
  const stored = { width: meta.width ?? 0, height: meta.pageHeight ?? meta.height ?? 0 };
  if (!(stored.width > 0 && stored.height > 0))
    throw new ImageError(`${name}: cannot decode image (no size in its header)`);
  const turned = (meta.orientation ?? 1) >= 5;
  return {
    format: String(meta.format),
    width: turned ? stored.height : stored.width,
    height: turned ? stored.width : stored.height,
    channels: meta.channels,
    bytesPerSample: BYTES_PER_SAMPLE[meta.depth] ?? 8,
    depth: String(meta.depth),
    interlaced: meta.isProgressive,
  };
}

/**
 * Throws ImageTooLargeError, naming the size and the limit (and `name` first, when given), when
 * the image has more than `maxPixels` pixels.
 */
export function checkPixelLimit(header: ImageHeader, maxPixels: number, name?: string): void {
  const pixels = header.width * header.height;
  if (pixels > maxPixels) {
    throw new ImageTooLargeError(
      `${name === undefined ? '' : `${name}: `}the image is ${header.width}×${header.height} = ${pixels} pixels; the limit is ${maxPixels}`,
    );
  }
}

/**
 * The memory decoding an image holds, estimated from its header: its frame is width × height ×
 * channels (alpha included) × bytes per sample (2 for 16-bit). An interlaced PNG must be decoded
 * whole before it can be resized, and so are GIF (as RGBA), AVIF and TIFF: they count their whole
 * frame. A progressive JPEG holds all its DCT coefficients, 2 bytes each: twice its frame. Other
 * images are read in strips and count half their frame. (Measured with libvips 8.18, peak
 * resident memory of a 5000 × 5000 decode: RGB PNG 16 MB, interlaced 79 MB; 16-bit RGBA PNG 40 MB,
 * interlaced 208 MB; baseline JPEG 4 MB, progressive 76 MB with 4:2:0 chroma, 147 MB with 4:4:4.)
 */
export function decodeMemoryBytes(header: ImageHeader): number {
  const channels = header.format === 'gif' ? 4 : header.channels;
  const frame = header.width * header.height * channels * header.bytesPerSample;
  if (header.format === 'jpeg' && header.interlaced) return 2 * frame;
  const whole = header.interlaced || header.format === 'gif' || header.format === 'heif' || header.format === 'tiff';
  return whole ? frame : Math.ceil(frame / 2);
}
