/**
 * Checking an uploaded image before anything decodes it: the type comes from the bytes (never
 * the file name or the Content-Type), only raster formats pass, and the pixel count and the
 * memory a decode would take are read from the header (model/data/image-header.ts, as batch
 * captioning reads them) and limited before decompression, so a
 * small file that inflates to gigabytes (a decompression bomb) is refused cheaply. Decoding then
 * goes through model/data/image.ts, the one preprocessing path the model was trained with, within
 * the server's decode memory budget (server/decode-budget.ts).
 */
import sharp from 'sharp';
import {
  checkPixelLimit,
  DEFAULT_MAX_PIXELS,
  decodeMemoryBytes,
  type ImageHeader,
  ImageTooLargeError,
  readImageHeader,
} from '../model/data/image-header.ts';
import { IMAGE_INPUT_OPTIONS, ImageError, loadImagePixels } from '../model/data/image.ts';
import type { DecodeBudget } from './decode-budget.ts';
import { BadRequestError, TooLargeError, UnsupportedTypeError } from './errors.ts';

export const RASTER_FORMATS = ['jpeg', 'png', 'webp', 'gif', 'avif', 'tiff'] as const;
export type RasterFormat = (typeof RASTER_FORMATS)[number];

export interface ImageLimits {
  /** Largest upload in bytes (checked while receiving, see server/app.ts). */
  maxBytes: number;
  /** Largest image in decoded pixels, width × height. */
  maxPixels: number;
  /**
   * Memory that decodes in progress may hold together, in bytes (see `decodeMemoryBytes`); an
   * image that alone needs more is refused.
   */
  maxDecodeBytes: number;
}

export const DEFAULT_IMAGE_LIMITS: ImageLimits = {
  maxBytes: 10 * 1024 * 1024,
  maxPixels: DEFAULT_MAX_PIXELS,
  maxDecodeBytes: 256 * 1024 * 1024,
};

function ascii(bytes: Uint8Array, start: number, end: number): string {
  return String.fromCharCode(...bytes.subarray(start, end));
}

/**
 * The raster format announced by the file's magic bytes, or null. Signatures: JPEG FF D8 FF;
 * PNG 89 "PNG" 0D 0A 1A 0A; GIF "GIF87a"/"GIF89a"; WebP "RIFF" size "WEBP"; TIFF "II*\0" or
 * "MM\0*"; AVIF an ISO-BMFF "ftyp" box whose brands include "avif" or "avis".
 */
export function sniffFormat(bytes: Uint8Array): RasterFormat | null {
  const b = bytes;
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return 'jpeg';
  if (b.length >= 8 && [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a].every((v, i) => b[i] === v)) return 'png';
  if (b.length >= 6 && (ascii(b, 0, 6) === 'GIF87a' || ascii(b, 0, 6) === 'GIF89a')) return 'gif';
  if (b.length >= 12 && ascii(b, 0, 4) === 'RIFF' && ascii(b, 8, 12) === 'WEBP') return 'webp';
  if (b.length >= 4 && (ascii(b, 0, 4) === 'II*\0' || ascii(b, 0, 4) === 'MM\0*')) return 'tiff';
  if (b.length >= 16 && ascii(b, 4, 8) === 'ftyp') {
    const boxSize = Math.min(b.length, (b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!);
    for (let i = 8; i + 4 <= boxSize; i += 4) {
      const brand = ascii(b, i, i + 4);
      if (brand === 'avif' || brand === 'avis') return 'avif';
    }
  }
  return null;
}

/** A name for common non-raster or unsupported content, for a clearer refusal. */
function describeOther(bytes: Uint8Array): string {
  const head = Buffer.from(bytes.subarray(0, 512)).toString('latin1').trimStart().toLowerCase();
  if (head.startsWith('<svg') || (head.startsWith('<?xml') && head.includes('<svg')) || head.includes('<svg'))
    return 'an SVG (vector) image';
  if (head.startsWith('%pdf')) return 'a PDF document';
  if (head.startsWith('<')) return 'markup (HTML/XML)';
  if (ascii(bytes, 4, 8) === 'ftyp') return 'an ISO media file that is not AVIF (HEIC or video?)';
  if (ascii(bytes, 0, 2) === 'BM') return 'a BMP image';
  return 'not an image we recognise';
}

export interface CheckedImage {
  format: RasterFormat;
  /** The size as the image is shown, after its EXIF orientation. */
  width: number;
  height: number;
  /** What decoding it would hold in memory, from its header (`decodeMemoryBytes`). */
  decodeBytes: number;
}

const mb = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(bytes < 10 * 1024 * 1024 ? 1 : 0)} MB`;

/**
 * Checks an upload without decoding its pixels: not empty, a raster format by its bytes, a
 * readable header, width × height within `maxPixels`, and the memory decoding it would take within
 * `maxDecodeBytes`.
 */
export async function checkImage(bytes: Buffer, limits: ImageLimits): Promise<CheckedImage> {
  if (bytes.length === 0) throw new BadRequestError('the uploaded file is empty (0 bytes)');
  if (bytes.length > limits.maxBytes)
    throw new TooLargeError(`the upload is ${bytes.length} bytes; the limit is ${limits.maxBytes}`);
  const format = sniffFormat(bytes);
  if (!format) {
    throw new UnsupportedTypeError(
      `unsupported file type: ${describeOther(bytes)}; upload a JPEG, PNG, WebP, GIF, AVIF or TIFF image`,
    );
  }
  let header: ImageHeader;
  try {
    header = await readImageHeader(bytes);
  } catch (err) {
    if (!(err instanceof ImageError)) throw err;
    // sharp could not read the header (its error is the cause), or the header gives no size.
    throw new BadRequestError(
      err.cause instanceof Error
        ? `the ${format.toUpperCase()} file is corrupt: ${err.cause.message}`
        : `the ${format.toUpperCase()} file has no size in its header`,
    );
  }
  const expected = format === 'avif' ? 'heif' : format;
  if (header.format !== expected) {
    throw new BadRequestError(`the file starts like ${format.toUpperCase()} but reads as ${header.format}`);
  }
  const { width, height } = header;
  try {
    checkPixelLimit(header, limits.maxPixels);
  } catch (err) {
    if (err instanceof ImageTooLargeError) throw new TooLargeError(err.message);
    throw err;
  }
  const decodeBytes = decodeMemoryBytes(header);
  if (decodeBytes > limits.maxDecodeBytes) {
    throw new TooLargeError(
      `decoding the image (${width}×${height}, ${header.channels} channels of ${header.depth}${header.interlaced ? ', interlaced' : ''}) would take about ${mb(decodeBytes)}; the limit is ${mb(limits.maxDecodeBytes)}`,
    );
  }
  return { format, width, height, decodeBytes };
}

export interface DecodedUpload extends CheckedImage {
  /** size × size × 3 RGB bytes, as model/data/image.ts makes them. */
  pixels: Uint8Array;
  /** A small JPEG of the image as a data: URL, when asked for. */
  preview?: string;
}

export interface DecodeUploadOptions {
  /** Decode within this memory budget (waiting for room). */
  budget?: DecodeBudget;
  /** The client left: do not start decoding (CancelledError). */
  signal?: AbortSignal;
  /** Also make the preview thumbnail (the no-JavaScript page shows it). */
  preview?: boolean;
}

/**
 * Checks an upload, then decodes it to size × size × 3 RGB bytes with model/data/image.ts (and
 * its preview, if asked for), within the memory budget. A file whose header is fine but whose data
 * is cut short or damaged fails here with a 400, before any caption work.
 */
export async function decodeUpload(
  bytes: Buffer,
  size: number,
  limits: ImageLimits,
  options: DecodeUploadOptions = {},
): Promise<DecodedUpload> {
  const checked = await checkImage(bytes, limits);
  const decode = async (): Promise<DecodedUpload> => {
    const pixels = await loadImagePixels(bytes, size);
    return options.preview ? { ...checked, pixels, preview: await thumbnailDataUrl(bytes) } : { ...checked, pixels };
  };
  try {
    return options.budget ? await options.budget.run(checked.decodeBytes, options.signal, decode) : await decode();
  } catch (err) {
    if (err instanceof ImageError) {
      const reason = err.message.replace(/^image: cannot decode image \(/, '').replace(/\)$/, '');
      throw new BadRequestError(`the ${checked.format.toUpperCase()} file is truncated or corrupt: ${reason}`);
    }
    throw err;
  }
}

/**
 * A small JPEG preview of an already checked upload, as a data: URL (for the no-JavaScript
 * page), read with the same input options as captioning.
 */
export async function thumbnailDataUrl(bytes: Buffer, side = 320): Promise<string> {
  try {
    const jpeg = await sharp(bytes, { ...IMAGE_INPUT_OPTIONS, limitInputPixels: false })
      .rotate()
      .flatten({ background: '#ffffff' })
      .resize(side, side, { fit: 'inside', withoutEnlargement: true })
      .jpeg({ quality: 80 })
      .toBuffer();
    return `data:image/jpeg;base64,${jpeg.toString('base64')}`;
  } catch (err) {
    throw new ImageError(`image: cannot decode image (${(err as Error).message})`);
  }
}
