/**
 * The one header reader, pixel limit and decode memory estimate (model/data/image-header.ts) of
 * the server and batch captioning.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import sharp from 'sharp';
import {
  checkPixelLimit,
  decodeMemoryBytes,
  type ImageHeader,
  ImageTooLargeError,
  readImageHeader,
} from '../../../model/data/image-header.ts';
import { ImageError } from '../../../model/data/image.ts';

const solid = (width: number, height: number) =>
  sharp({ create: { width, height, channels: 3, background: '#808080' } });

test('the size is as the image is shown: EXIF orientations 5–8 swap width and height', async () => {
  const turned = await solid(40, 80).jpeg().withMetadata({ orientation: 6 }).toBuffer();
  assert.deepEqual(await readImageHeader(turned), {
    format: 'jpeg',
    width: 80,
    height: 40,
    channels: 3,
    bytesPerSample: 1,
    depth: 'uchar',
    interlaced: false,
  });
  const upright = await solid(40, 80).jpeg().withMetadata({ orientation: 3 }).toBuffer();
  assert.deepEqual([(await readImageHeader(upright)).width, (await readImageHeader(upright)).height], [40, 80]);
});

test('an unreadable header is an ImageError naming the image, with sharp’s error as its cause', async () => {
  const err = await readImageHeader(Buffer.from('not an image')).catch((e: unknown) => e);
  assert.ok(err instanceof ImageError);
  assert.match(err.message, /^image: cannot decode image \(/);
  assert.ok(err.cause instanceof Error);
});

test('the pixel limit names the size and the limit, and the image when a name is given', () => {
  const header = (width: number, height: number): ImageHeader => ({
    format: 'png',
    width,
    height,
    channels: 3,
    bytesPerSample: 1,
    depth: 'uchar',
    interlaced: false,
  });
  checkPixelLimit(header(100, 100), 10_000); // exactly at the limit passes
  assert.throws(
    () => checkPixelLimit(header(101, 100), 10_000),
    (e: unknown) =>
      e instanceof ImageTooLargeError && e.message === 'the image is 101×100 = 10100 pixels; the limit is 10000',
  );
  assert.throws(() => checkPixelLimit(header(101, 100), 10_000, 'a.png'), /^ImageTooLargeError: a\.png: the image is/);
});

test('decode memory: strips count half the frame; interlaced, GIF, AVIF and TIFF whole; progressive JPEG twice', () => {
  const frame = 1000 * 500 * 3; // 8-bit RGB
  const estimate = (format: string, interlaced = false, channels = 3, bytesPerSample = 1) =>
    decodeMemoryBytes({ format, width: 1000, height: 500, channels, bytesPerSample, depth: 'uchar', interlaced });
  assert.equal(estimate('png'), frame / 2);
  assert.equal(estimate('webp'), frame / 2);
  assert.equal(estimate('jpeg'), frame / 2);
  assert.equal(estimate('png', true), frame);
  assert.equal(estimate('heif'), frame);
  assert.equal(estimate('tiff'), frame);
  assert.equal(estimate('jpeg', true), 2 * frame);
  assert.equal(estimate('gif', false, 3), (frame / 3) * 4, 'GIF decodes as RGBA');
  assert.equal(estimate('png', true, 4, 2), 1000 * 500 * 4 * 2, '16-bit RGBA');
});
