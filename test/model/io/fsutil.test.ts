/** ifExists: an absent path is null; a path that exists but cannot be read as asked is an error. */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { ifExists } from '../../../model/io/fsutil.ts';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'captioner-fsutil-'));
  await writeFile(join(dir, 'file.txt'), 'text');
  await mkdir(join(dir, 'folder'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('ifExists: the value when the path is there, null when it is not (ENOENT)', async () => {
  assert.equal(await ifExists(readFile(join(dir, 'file.txt'), 'utf8')), 'text');
  assert.equal(await ifExists(readFile(join(dir, 'none.txt'), 'utf8')), null);
  assert.equal(await ifExists(readdir(join(dir, 'none'))), null);
  assert.equal(await ifExists(stat(join(dir, 'none'))), null);
  assert.deepEqual(await ifExists(readdir(join(dir, 'folder'))), []);
});

test('ifExists: a directory where a file is expected, or a file where a directory is, is thrown, not absent', async () => {
  await assert.rejects(ifExists(readFile(join(dir, 'folder'), 'utf8')), { code: 'EISDIR' });
  await assert.rejects(ifExists(readdir(join(dir, 'file.txt'))), { code: 'ENOTDIR' });
  await assert.rejects(ifExists(Promise.reject(new Error('anything else'))), /anything else/);
});
