import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { DatasetError, ImageCache, readManifest, splitImages } from '../../../model/data/dataset.ts';
import { makeTinyDataset } from '../../helpers/tiny-data.ts';

test('a generated data set reads back with its splits, and its images decode to size × size × 3', async () => {
  const { dir } = await makeTinyDataset();
  const m = await readManifest(dir);
  assert.equal(splitImages(m, 'train').length, 6);
  assert.equal(splitImages(m, 'val').length, 2);
  const cache = await ImageCache.load(dir, splitImages(m, 'train'), 12);
  const pixels = cache.batch(['img0', 'img1']);
  assert.equal(pixels.length, 2 * 12 * 12 * 3);
  assert.ok(pixels.every((p) => p >= 0 && p <= 1));
  const centre = (b: number) => Array.from(pixels.slice(b * 432 + (6 * 12 + 6) * 3, b * 432 + (6 * 12 + 6) * 3 + 3));
  assert.ok(centre(0)[0]! > 0.7 && centre(0)[2]! < 0.3, `img0 is a red circle: centre ${centre(0)}`);
  assert.ok(centre(1)[2]! > 0.7 && centre(1)[0]! < 0.3, `img1 is a blue square: centre ${centre(1)}`);
  assert.throws(() => cache.batch(['nope']), /image nope is not in the cache/);
  await rm(dir, { recursive: true });
});

test('manifest errors name the file and the record', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'captioner-bad-'));
  const path = join(dir, 'manifest.json');
  const write = (images: unknown[]) =>
    writeFile(path, JSON.stringify({ format: 'captioner-dataset', version: 1, images }));
  await assert.rejects(
    readManifest(dir),
    (e: unknown) =>
      e instanceof DatasetError && /manifest\.json: no manifest: .* is not a complete data set/.test(e.message),
  );
  await writeFile(path, '{"format": "captioner-dataset", ');
  await assert.rejects(readManifest(dir), /manifest\.json: .*JSON/);
  const ok = { id: 'a', file: 'a.png', split: 'train', captions: ['a cat'] };
  await write([ok, { ...ok }]);
  await assert.rejects(readManifest(dir), /images\[1\]: duplicate id "a"/);
  await write([ok, { ...ok, id: 'b', captions: [] }]);
  await assert.rejects(readManifest(dir), /images\[1\] \(id b\): "captions" must be a non-empty array/);
  await write([{ ...ok, captions: ['  '] }]);
  await assert.rejects(readManifest(dir), /images\[0\] \(id a\): "captions"/);
  await write([{ ...ok, file: 3 }]);
  await assert.rejects(readManifest(dir), /images\[0\] \(id a\): "file" must be a non-empty string/);
  await write([ok]);
  const cache = ImageCache.load(dir, (await readManifest(dir)).images, 8);
  await assert.rejects(cache, /a\.png: cannot decode image/);
  await rm(dir, { recursive: true });
});
