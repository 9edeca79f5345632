/**
 * scripts/blind-positions.ts on a made-up experiment over a small long-caption shapes set: an arm
 * that writes each image's own reference caption names every object right against its image and
 * far less often against the others; an arm that writes one caption for every image scores the
 * same against its image as against the others (it ignores the picture).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { readManifest, splitImages } from '../../model/data/dataset.ts';
import { runCli } from '../helpers/cli.ts';
import { tempDirUntilExit } from '../helpers/temp-dir.ts';

test('blind-positions: captions of their own image beat the same captions against other images; a fixed caption does not', async () => {
  const work = tempDirUntilExit('captioner-blind-');
  const data = join(work, 'data');
  const made = await runCli([
    'data',
    'shapes',
    '--out',
    data,
    '--count',
    '80',
    '--size',
    '16',
    '--seed',
    '1',
    '--generator-version',
    '2',
    '--min-shapes',
    '4',
    '--max-shapes',
    '6',
    '--test-fraction',
    '0.4',
  ]);
  assert.equal(made.code, 0, made.stderr);
  const images = splitImages(await readManifest(data), 'test');
  assert.ok(images.length >= 10);
  const write = async (arm: string, caption: (i: number) => string) => {
    const dir = join(work, 'exp', 'runs', arm, 'seed-1', 'eval');
    await mkdir(dir, { recursive: true });
    const results = images.map((img, i) => ({ image_id: img.id, caption: caption(i) }));
    await writeFile(join(dir, 'results-test.json'), JSON.stringify(results));
  };
  await write('own', (i) => images[i]!.captions[0]!);
  await write('fixed', () => images[0]!.captions[0]!);

  const out = join(work, 'blind.json');
  const { stdout } = await promisify(execFile)(process.execPath, [
    '--import',
    'tsx',
    'scripts/blind-positions.ts',
    '--experiment',
    join(work, 'exp'),
    '--data',
    data,
    '--json',
    out,
  ]);
  assert.match(stdout, /\| own \| against its image \| 100\.0 ± 0\.0 \|/);
  type Row = { arm: string; own: { mean: number }[]; blind: { mean: number }[] };
  const { summary } = JSON.parse(await readFile(out, 'utf8')) as { summary: Row[] };
  const own = summary.find((s) => s.arm === 'own')!;
  const fixed = summary.find((s) => s.arm === 'fixed')!;
  assert.equal(own.own.length, 6, 'six positions');
  for (const k of [0, 1, 2, 3]) {
    assert.equal(own.own[k]!.mean, 1, `position ${k + 1}`);
    assert.ok(own.blind[k]!.mean < 0.5, `position ${k + 1} by chance: ${own.blind[k]!.mean}`);
    // One caption for every image: its own image is just one more scene (image 0 excepted).
    assert.ok(Math.abs(fixed.own[k]!.mean - fixed.blind[k]!.mean) < 0.15, `fixed, position ${k + 1}`);
  }
});
