import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import sharp from 'sharp';
import { ImageError, imagesToTensor, loadImagePixels } from '../../../model/data/image.ts';

const W = 40;
const H = 20;
const COLOUR = [220, 20, 77] as const;
let dir = '';

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'captioner-image-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

function solid(channels: 3 | 4, value: (x: number, y: number) => number[]): Buffer {
  const buf = Buffer.alloc(W * H * channels);
  for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) buf.set(value(x, y), (y * W + x) * channels);
  return buf;
}

const rgb = (buf: Buffer) => sharp(buf, { raw: { width: W, height: H, channels: 3 } });

function pixel(p: Uint8Array, size: number, row: number, col: number): number[] {
  return Array.from(p.subarray((row * size + col) * 3, (row * size + col) * 3 + 3));
}

function close(actual: number[], expected: readonly number[], tol: number): boolean {
  return actual.every((v, i) => Math.abs(v - expected[i]!) <= tol);
}

test('EXIF orientation is applied before resizing and cropping', async () => {
  // Left half red, right half blue, stored sideways: orientation 6 means "rotate 90° clockwise to view".
  const img = solid(3, (x) => (x < W / 2 ? [220, 20, 20] : [20, 20, 220]));
  const path = join(dir, 'rotated.jpg');
  await rgb(img).jpeg({ quality: 95 }).withMetadata({ orientation: 6 }).toFile(path);
  assert.equal((await sharp(path).metadata()).orientation, 6);
  const p = await loadImagePixels(path, 8);
  // Viewed upright the image is 20 wide × 40 tall, red on top: the centre crop is red above blue.
  assert.ok(close(pixel(p, 8, 0, 4), [220, 20, 20], 12), `top: ${pixel(p, 8, 0, 4)}`);
  assert.ok(close(pixel(p, 8, 7, 4), [20, 20, 220], 12), `bottom: ${pixel(p, 8, 7, 4)}`);
  const unrotated = await loadImagePixels(await rgb(img).jpeg({ quality: 95 }).toBuffer(), 8);
  assert.ok(close(pixel(unrotated, 8, 4, 0), [220, 20, 20], 12) && close(pixel(unrotated, 8, 4, 7), [20, 20, 220], 12));
});

test('grey, palette, 16-bit, grey 16-bit and alpha PNGs all become 8-bit RGB', async () => {
  const colour = solid(3, () => [...COLOUR]);
  const grey = await rgb(colour).toColourspace('b-w').png().toBuffer();
  assert.equal((await sharp(grey).metadata()).channels, 1);
  const g = pixel(await loadImagePixels(grey, 8), 8, 3, 3);
  assert.ok(g[0] === g[1] && g[1] === g[2] && g[0]! > 40 && g[0]! < 160, `grey ${g}`);

  const palette = await rgb(colour).png({ palette: true, colours: 4 }).toBuffer();
  assert.equal((await sharp(palette).metadata()).isPalette, true);
  assert.deepEqual(pixel(await loadImagePixels(palette, 8), 8, 3, 3), [...COLOUR]);

  const wide = new Uint16Array(W * H * 3);
  for (let i = 0; i < W * H; i++)
    wide.set(
      COLOUR.map((v) => v * 257),
      i * 3,
    ); // v·257: the 16-bit twin of v
  const png16 = await sharp(wide, { raw: { width: W, height: H, channels: 3 } })
    .toColourspace('rgb16')
    .png()
    .toBuffer();
  assert.equal((await sharp(png16).metadata()).depth, 'ushort');
  assert.deepEqual(pixel(await loadImagePixels(png16, 8), 8, 3, 3), [...COLOUR]);
  const grey16 = await sharp(wide, { raw: { width: W, height: H, channels: 3 } })
    .toColourspace('grey16')
    .png()
    .toBuffer();
  assert.equal((await sharp(grey16).metadata()).channels, 1);
  const g16 = pixel(await loadImagePixels(grey16, 8), 8, 3, 3);
  assert.ok(g16[0] === g16[1] && g16[1] === g16[2] && Math.abs(g16[0]! - g[0]!) <= 3, `grey16 ${g16} vs grey ${g}`);

  // Alpha is flattened onto white: transparent → white, half-transparent black → mid grey.
  const rgba = (a: number) =>
    sharp(
      solid(4, () => [0, 0, 0, a]),
      { raw: { width: W, height: H, channels: 4 } },
    );
  assert.deepEqual(pixel(await loadImagePixels(await rgba(0).png().toBuffer(), 8), 8, 3, 3), [255, 255, 255]);
  assert.ok(close(pixel(await loadImagePixels(await rgba(128).png().toBuffer(), 8), 8, 3, 3), [127, 127, 127], 1));
  const greyAlpha = await rgba(128).toColourspace('b-w').png().toBuffer();
  assert.equal((await sharp(greyAlpha).metadata()).channels, 2);
  assert.ok(close(pixel(await loadImagePixels(greyAlpha, 8), 8, 3, 3), [127, 127, 127], 1));
});

test('a file that is not an image is an ImageError naming the file', async () => {
  const text = join(dir, 'notes.jpg');
  await writeFile(text, 'this is not a picture\n');
  await assert.rejects(loadImagePixels(text, 8), (e: Error) => e instanceof ImageError && e.message.includes(text));
  const good = await rgb(solid(3, () => [...COLOUR]))
    .jpeg()
    .toBuffer();
  const cut = join(dir, 'cut.jpg');
  await writeFile(cut, good.subarray(0, Math.floor(good.length / 2)));
  await assert.rejects(loadImagePixels(cut, 8), (e: Error) => e instanceof ImageError && e.message.includes(cut));
  await assert.rejects(loadImagePixels(join(dir, 'missing.png'), 8), ImageError);
});

test('imagesToTensor scales to [0, 1] in [n, size, size, 3]', () => {
  const a = Uint8Array.from({ length: 2 * 2 * 3 }, (_, i) => i * 20);
  const b = new Uint8Array(12).fill(255);
  const t = imagesToTensor([a, b], 2);
  assert.deepEqual(t.shape, [2, 2, 2, 3]);
  const data = t.dataSync();
  assert.ok(Math.abs(data[5]! - 100 / 255) < 1e-6);
  assert.equal(data[12], 1);
  t.dispose();
  assert.throws(() => imagesToTensor([new Uint8Array(5)], 2), /expected 2×2×3/);
});
