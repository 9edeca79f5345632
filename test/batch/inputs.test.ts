/** Expanding batch captioning's arguments: files, folders, globs; links followed, loops not; each file once. */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, realpath, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { expandInputs } from '../../batch/inputs.ts';

let root = '';

before(async () => {
  root = await realpath(await mkdtemp(join(tmpdir(), 'captioner-inputs-')));
});

after(async () => {
  await rm(root, { recursive: true, force: true });
});

/** A fresh folder under the test's temp dir, with `files` (each holding 'x'). */
async function folder(name: string, files: string[]): Promise<string> {
  const dir = join(root, name);
  for (const f of files) {
    await mkdir(join(dir, f, '..'), { recursive: true });
    await writeFile(join(dir, f), 'x');
  }
  return dir;
}

/** Resolves within `ms`, or fails the test: a walk into a loop never ends. */
async function within<T>(ms: number, work: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, fail) => {
    timer = setTimeout(() => fail(new Error(`did not finish in ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([work, late]);
  } finally {
    clearTimeout(timer);
  }
}

test('files as named, folders recursively by image extension, globs, missing paths; each once', async () => {
  const dir = await folder('plain', ['b.jpg', 'a.PNG', 'notes.txt', 'sub/c.webp', 'sub/deeper/d.jpeg', 'odd.name']);
  await writeFile(join(dir, 'sub', '.hidden.jpg'), 'x');
  await mkdir(join(dir, 'empty'));
  const { files, unreadable, empty } = await expandInputs([
    dir,
    join(dir, 'odd.name'),
    join(dir, 'b.jpg'),
    join(dir, '*.jpg'),
    join(dir, 'nope.jpg'),
    join(dir, 'empty'),
  ]);
  assert.deepEqual(
    files.map((f) => f.path),
    [
      join(dir, 'a.PNG'),
      join(dir, 'b.jpg'),
      join(dir, 'sub/c.webp'),
      join(dir, 'sub/deeper/d.jpeg'),
      join(dir, 'odd.name'),
    ],
  );
  for (const f of files) assert.equal(f.realPath, f.path, 'no link on the way: the real path is the path');
  assert.deepEqual(unreadable, [{ path: join(dir, 'nope.jpg'), error: 'no such file, folder or glob match' }]);
  assert.deepEqual(empty, [join(dir, 'empty')]);
  const globbed = await expandInputs([join(dir, '**/*.{jpg,jpeg}')]);
  assert.deepEqual(
    globbed.files.map((f) => f.path),
    [join(dir, 'b.jpg'), join(dir, 'sub/deeper/d.jpeg')],
  );
});

test('symbolic-link loops: a walk ends, and lists each file once by its own path', async () => {
  const dir = await folder('loops', ['a.png', 'sub/b.png', 'other/c.png']);
  await symlink('..', join(dir, 'sub', 'up')); // a loop back to the top
  await symlink('..', join(dir, 'other', 'up')); // a second: with both, a naive walk never ends
  await symlink('../other', join(dir, 'sub', 'side')); // other <-> sub: a loop through a sibling
  await symlink('../sub', join(dir, 'other', 'back'));
  await symlink(dir, join(dir, 'self')); // an absolute link to the folder itself
  const expected = [join(dir, 'a.png'), join(dir, 'other/c.png'), join(dir, 'sub/b.png')];

  const folderRun = await within(10_000, expandInputs([dir]));
  assert.deepEqual(
    folderRun.files.map((f) => f.path),
    expected,
  );
  assert.deepEqual(folderRun.unreadable, []);
  const globRun = await within(10_000, expandInputs([join(dir, '**/*.png')]));
  assert.deepEqual(
    globRun.files.map((f) => f.path),
    expected,
  );
  // The folder named through a link into itself, and its files again: still each once.
  const again = await within(10_000, expandInputs([join(dir, 'sub', 'up'), join(dir, 'a.png'), dir]));
  assert.deepEqual(
    again.files.map((f) => f.realPath),
    expected,
  );
  assert.deepEqual(again.empty, []);
});

test('aliases that are not loops: a linked folder or file is listed once, by the path without links', async () => {
  const dir = await folder('aliases', ['photos/x.jpg', 'photos/y.jpg', 'z.jpg']);
  await symlink('photos', join(dir, 'a-link')); // sorts before "photos"
  await symlink('z.jpg', join(dir, 'another-z.jpg'));
  const outside = await folder('outside', ['w.png']);
  await symlink(outside, join(dir, 'elsewhere')); // a folder reached only through a link is walked
  const { files } = await expandInputs([dir]);
  assert.deepEqual(
    files.map((f) => f.path),
    [join(dir, 'elsewhere/w.png'), join(dir, 'photos/x.jpg'), join(dir, 'photos/y.jpg'), join(dir, 'z.jpg')],
  );
  assert.equal(files[0]!.realPath, join(outside, 'w.png'));
  // Only through the link: the path as given is kept, the real path resolves it.
  const linked = await expandInputs([join(dir, 'a-link')]);
  assert.deepEqual(
    linked.files.map((f) => [f.path, f.realPath]),
    [
      [join(dir, 'a-link/x.jpg'), join(dir, 'photos/x.jpg')],
      [join(dir, 'a-link/y.jpg'), join(dir, 'photos/y.jpg')],
    ],
  );
});
