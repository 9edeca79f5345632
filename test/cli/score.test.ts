/** `captioner score` end to end: the process, its stdout, stderr and exit codes. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { scoreCaptions } from '../../eval/score.ts';

const run = promisify(execFile);
const BIN = new URL('../../bin/captioner.js', import.meta.url).pathname;

async function captioner(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [BIN, ...args]);
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

test('captioner score: table, --json with exactly the six metrics and perImage, and bad input → exit 3', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'captioner-score-'));
  try {
    const refs = {
      images: [{ id: 1 }, { id: 2 }, { id: 3 }],
      annotations: [
        { image_id: 1, caption: 'A red circle above a blue square.' },
        { image_id: 1, caption: 'a red circle over a blue square' },
        { image_id: 2, caption: 'A green triangle.' },
        { image_id: 3, caption: 'Two yellow circles, side by side.' },
      ],
    };
    const results = [
      { image_id: 3, caption: 'two circles' },
      { image_id: 1, caption: 'A red circle above a square.' },
      { image_id: 2, caption: 'a green triangle' },
    ];
    await writeFile(join(dir, 'refs.json'), JSON.stringify(refs));
    await writeFile(join(dir, 'res.json'), JSON.stringify(results));

    const table = await captioner(['score', '--refs', join(dir, 'refs.json'), '--results', join(dir, 'res.json')]);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /^CIDEr-D\s+\d+\.\d{4}$/m);
    assert.match(table.stdout, /^METEOR\s+n\/a\s+not computed/m);

    const json = await captioner([
      'score',
      '--refs',
      join(dir, 'refs.json'),
      '--results',
      join(dir, 'res.json'),
      '--json',
    ]);
    assert.equal(json.code, 0, json.stderr);
    const out = JSON.parse(json.stdout) as Record<string, unknown>;
    assert.deepEqual(Object.keys(out).sort(), [
      'BLEU-1',
      'BLEU-2',
      'BLEU-3',
      'BLEU-4',
      'CIDEr-D',
      'ROUGE-L',
      'perImage',
    ]);
    const expected = scoreCaptions([
      {
        id: 1,
        candidate: results[1]!.caption,
        references: [refs.annotations[0]!.caption, refs.annotations[1]!.caption],
      },
      { id: 2, candidate: results[2]!.caption, references: [refs.annotations[2]!.caption] },
      { id: 3, candidate: results[0]!.caption, references: [refs.annotations[3]!.caption] },
    ]);
    for (const [name, value] of Object.entries(expected.corpus)) assert.equal(out[name], value, name);
    assert.ok((out['BLEU-1'] as number) > 0 && (out['BLEU-1'] as number) <= 1);
    const perImage = out.perImage as Record<string, { 'CIDEr-D': number; 'ROUGE-L': number }>;
    assert.deepEqual(Object.keys(perImage).sort(), ['1', '2', '3']);
    assert.equal(perImage['2']!['ROUGE-L'], 1);
    assert.match(json.stderr, /METEOR not computed/);

    await writeFile(join(dir, 'dup.json'), JSON.stringify([...results, { image_id: 2, caption: 'again' }]));
    const dup = await captioner([
      'score',
      '--refs',
      join(dir, 'refs.json'),
      '--results',
      join(dir, 'dup.json'),
      '--json',
    ]);
    assert.equal(dup.code, 3);
    assert.equal(dup.stdout, '');
    assert.match(dup.stderr, /dup\.json: \[3\]: a second result for image 2/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
