/** `captioner score` end to end: the process, its stdout, stderr and exit codes. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { scoreCaptions } from '../../eval/score.ts';
import { setupBackend } from '../helpers/tf.ts';
import { trainTinyModel } from '../helpers/tiny-model.ts';

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

test('COCO ids keep their type: import a COCO set, train, eval, and score against its own annotation file', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'captioner-coco-ids-'));
  try {
    // A COCO-format fixture: integer image ids, images in train2014/ and val2014/, one annotation file each.
    const scenes = [
      { id: 23, colour: 'red', rgb: { r: 220, g: 30, b: 30 } },
      { id: 42, colour: 'blue', rgb: { r: 30, g: 60, b: 220 } },
      { id: 7, colour: 'green', rgb: { r: 30, g: 180, b: 60 } },
      { id: 108, colour: 'yellow', rgb: { r: 220, g: 210, b: 30 } },
    ];
    const files: Record<string, string> = {};
    for (const split of ['train2014', 'val2014']) {
      await mkdir(join(dir, split));
      for (const s of scenes) {
        const name = `COCO_${split}_${String(s.id).padStart(12, '0')}.png`;
        await sharp({ create: { width: 20, height: 20, channels: 3, background: s.rgb } })
          .png()
          .toFile(join(dir, split, name));
        files[`${split}/${s.id}`] = name;
      }
    }
    const annotationFile = (split: string, offset: number) => ({
      info: { description: `fixture ${split}` },
      images: scenes.map((s) => ({ id: s.id + offset, file_name: files[`${split}/${s.id}`], width: 20, height: 20 })),
      annotations: scenes.flatMap((s, i) => [
        { id: 2 * i + 1, image_id: s.id + offset, caption: `A ${s.colour} square.` },
        { id: 2 * i + 2, image_id: s.id + offset, caption: `a square that is ${s.colour}` },
      ]),
    });
    const trainRefs = join(dir, 'captions_train2014.json');
    const valRefs = join(dir, 'captions_val2014.json');
    await writeFile(trainRefs, JSON.stringify(annotationFile('train2014', 1000)));
    await writeFile(valRefs, JSON.stringify(annotationFile('val2014', 0)));

    const data = join(dir, 'data');
    const imported = await captioner([
      'data',
      'coco',
      '--annotations',
      trainRefs,
      valRefs,
      '--images',
      dir,
      '--out',
      data,
      '--size',
      '16',
      '--min-word-count',
      '1',
    ]);
    assert.equal(imported.code, 0, imported.stderr);
    await setupBackend();
    const model = await trainTinyModel(data, 3, { out: join(dir, 'model'), valSamples: 0 });

    const evalDir = join(dir, 'eval');
    const evaluated = await captioner(['eval', '--model', model, '--data', data, '--split', 'val', '--out', evalDir]);
    assert.equal(evaluated.code, 0, evaluated.stderr);
    const results = JSON.parse(await readFile(join(evalDir, 'results-val.json'), 'utf8')) as { image_id: unknown }[];
    assert.deepEqual(
      results.map((r) => r.image_id).sort(),
      scenes.map((s) => s.id).sort(),
      'integer ids, as in captions_val2014.json',
    );
    const references = JSON.parse(await readFile(join(evalDir, 'references-val.json'), 'utf8')) as {
      images: { id: unknown }[];
      annotations: { image_id: unknown }[];
    };
    assert.ok(
      [...references.images.map((i) => i.id), ...references.annotations.map((a) => a.image_id)].every(Number.isInteger),
    );

    // The results score against COCO's own annotation file as they are: all of it, and a subset.
    const scored = await captioner([
      'score',
      '--refs',
      valRefs,
      '--results',
      join(evalDir, 'results-val.json'),
      '--json',
    ]);
    assert.equal(scored.code, 0, scored.stderr);
    const ours = await captioner([
      'score',
      '--refs',
      join(evalDir, 'references-val.json'),
      '--results',
      join(evalDir, 'results-val.json'),
      '--json',
    ]);
    const scores = JSON.parse(scored.stdout) as Record<string, unknown>;
    assert.deepEqual(scores, JSON.parse(ours.stdout), 'the same figures against the original references and ours');
    assert.deepEqual(Object.keys(scores.perImage as object).sort(), scenes.map((s) => String(s.id)).sort());

    const limited = join(dir, 'eval-2');
    const few = await captioner([
      'eval',
      '--model',
      model,
      '--data',
      data,
      '--split',
      'val',
      '--limit',
      '2',
      '--out',
      limited,
    ]);
    assert.equal(few.code, 0, few.stderr);
    const subset = await captioner([
      'score',
      '--refs',
      valRefs,
      '--results',
      join(limited, 'results-val.json'),
      '--subset',
    ]);
    assert.equal(subset.code, 0, subset.stderr);
    assert.match(subset.stdout, /^CIDEr-D\s+\d+\.\d{4}$/m);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
