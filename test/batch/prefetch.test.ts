/** Loading ahead with memory bounded: the decode memory estimate, the pixel limit, order, errors. */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import sharp from 'sharp';
import { Prefetcher } from '../../batch/prefetch.ts';
import { DEFAULT_MAX_PIXELS, decodeMemoryBytes, readImageHeader } from '../../model/data/image-header.ts';
import { loadImagePixels } from '../../model/data/image.ts';
import { DEFAULT_IMAGE_LIMITS } from '../../server/upload.ts';

let dir = '';
const files: string[] = [];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'captioner-prefetch-'));
  for (let i = 0; i < 8; i++) {
    const file = join(dir, `${i}.png`);
    // 200×100 RGB, 8-bit: a 60 000-byte frame, read in strips: 30 000 bytes of decode memory each.
    await sharp({ create: { width: 200, height: 100, channels: 3, background: { r: 30 * i, g: 90, b: 200 } } })
      .png()
      .toFile(file);
    files.push(file);
  }
  await writeFile(join(dir, 'broken.png'), 'not a png');
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('the header gives the decode size without decoding; 16-bit and alpha count', async () => {
  const header = await readImageHeader(files[0]!);
  assert.deepEqual(header, {
    format: 'png',
    width: 200,
    height: 100,
    channels: 3,
    bytesPerSample: 1,
    depth: 'uchar',
    interlaced: false,
  });
  assert.equal(decodeMemoryBytes(header), 60_000 / 2);
  const deep = join(dir, 'deep.png');
  await sharp({ create: { width: 10, height: 10, channels: 4, background: '#ff000080' } })
    .png()
    .toColourspace('rgb16')
    .toFile(deep);
  assert.equal(decodeMemoryBytes(await readImageHeader(deep)), (10 * 10 * 4 * 2) / 2);
  await assert.rejects(readImageHeader(join(dir, 'broken.png')), /broken\.png: cannot decode image/);
});

test('the batch CLI and the server share one default pixel limit', () => {
  assert.equal(DEFAULT_IMAGE_LIMITS.maxPixels, DEFAULT_MAX_PIXELS);
});

test('prefetch: images in order, failures as errors, decodes within the byte budget', async () => {
  const paths = [...files.slice(0, 3), join(dir, 'broken.png'), ...files.slice(3)];
  const prefetch = new Prefetcher(paths, {
    size: 16,
    maxPixels: DEFAULT_MAX_PIXELS,
    budgetBytes: 65_000,
    lookahead: 4,
  });
  const first = await prefetch.take(5);
  const rest = await prefetch.take(5);
  await prefetch.settle();
  const all = [...first, ...rest];
  assert.deepEqual(
    all.map((l) => l.path),
    paths,
  );
  assert.match((all[3] as { error: string }).error, /^cannot decode image/);
  for (const [i, l] of all.entries()) {
    if (i === 3) continue;
    assert.ok('pixels' in l, l.path);
    assert.deepEqual(l.pixels, await loadImagePixels(l.path, 16), 'the one preprocessing path');
  }
  const { peakBytes, bytes } = prefetch.budget.stats();
  assert.ok(peakBytes <= 65_000, `peak ${peakBytes}: at most two 30 000-byte decodes at once`);
  assert.equal(bytes, 0);
});

test('prefetch: an image over the pixel limit is an error, named with its size, and takes no budget', async () => {
  const prefetch = new Prefetcher(files.slice(0, 2), { size: 16, maxPixels: 19_999, budgetBytes: 1e9, lookahead: 0 });
  const loaded = await prefetch.take(2);
  assert.deepEqual(
    loaded.map((l) => ('error' in l ? l.error : 'decoded')),
    [
      'the image is 200×100 = 20000 pixels; the limit is 19999',
      'the image is 200×100 = 20000 pixels; the limit is 19999',
    ],
  );
  assert.equal(prefetch.budget.stats().peakBytes, 0);
});
