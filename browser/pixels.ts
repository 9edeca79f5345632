/**
 * Image preprocessing in the browser: the server's (model/data/image.ts, with sharp) redone with
 * what a browser has. `createImageBitmap` decodes the file, applying its EXIF orientation and
 * converting its colours to sRGB; a 2-D canvas filled with white first flattens alpha onto white;
 * `drawImage` of the centred square the image covers scales it to size × size (fit 'cover',
 * position 'centre'), smoothed at the canvas's 'high' quality. sharp resizes with a Lanczos-3
 * kernel, the canvas with its own filter, so pixels differ slightly where an image is scaled
 * down; test/browser/device.test.ts measures the difference on test images and bounds it.
 */

/** The part of an image that `fit: cover, position: centre` keeps: a centred square of the shorter side. */
export function coverSquare(width: number, height: number): { sx: number; sy: number; side: number } {
  const side = Math.min(width, height);
  return { sx: (width - side) / 2, sy: (height - side) / 2, side };
}

/** An image file (its bytes as a Blob) → size × size × 3 uint8 RGB pixels, row-major, as loadImagePixels gives. */
export async function imagePixels(image: Blob, size: number): Promise<Uint8Array> {
  let bitmap: ImageBitmap;
  try {
    bitmap = await createImageBitmap(image, { imageOrientation: 'from-image', colorSpaceConversion: 'default' });
  } catch (err) {
    throw new Error(`cannot decode image (${(err as Error).message})`, { cause: err });
  }
  try {
    const canvas = new OffscreenCanvas(size, size);
    const ctx = canvas.getContext('2d', { willReadFrequently: true, colorSpace: 'srgb' });
    if (!ctx) throw new Error('this browser gives no 2-D canvas');
    ctx.fillStyle = '#ffffff';
    ctx.fillRect(0, 0, size, size);
    ctx.imageSmoothingEnabled = true;
    ctx.imageSmoothingQuality = 'high';
    const { sx, sy, side } = coverSquare(bitmap.width, bitmap.height);
    ctx.drawImage(bitmap, sx, sy, side, side, 0, 0, size, size);
    const rgba = ctx.getImageData(0, 0, size, size, { colorSpace: 'srgb' }).data;
    const rgb = new Uint8Array(size * size * 3);
    for (let p = 0, q = 0; p < rgba.length; p += 4, q += 3) {
      rgb[q] = rgba[p]!;
      rgb[q + 1] = rgba[p + 1]!;
      rgb[q + 2] = rgba[p + 2]!;
    }
    return rgb;
  } finally {
    bitmap.close();
  }
}
