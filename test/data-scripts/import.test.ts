/** Importers (COCO + Karpathy, Flickr8k, Flickr30k, CSV, JSONL), bad input, resuming, the CLI. */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile, access } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { buildDataset, type Issue } from '../../data-scripts/build.ts';
import { importImages, readCoco, readFlickr8k, readKarpathy, readTable } from '../../data-scripts/import/index.ts';
import { parseCsv } from '../../data-scripts/import/table.ts';
import { DatasetError, ImageCache, readManifest } from '../../model/data/dataset.ts';
import { loadImagePixels } from '../../model/data/image.ts';

const root = await mkdtemp(join(tmpdir(), 'captioner-import-test-'));
after(() => rm(root, { recursive: true, force: true }));
const exists = (p: string) =>
  access(p).then(
    () => true,
    () => false,
  );

/** Images of the kinds real data sets hold: JPEG with EXIF rotation, grey, palette, alpha. */
async function writeImages(dir: string, names: string[]): Promise<void> {
  await mkdir(dir, { recursive: true });
  const kinds = [
    (p: string) =>
      sharp({ create: { width: 40, height: 24, channels: 3, background: '#c03020' } })
        .jpeg()
        .withMetadata({ orientation: 6 })
        .toFile(p),
    (p: string) =>
      sharp({ create: { width: 20, height: 30, channels: 3, background: '#808080' } })
        .greyscale()
        .png()
        .toFile(p),
    (p: string) =>
      sharp({ create: { width: 30, height: 30, channels: 3, background: '#2050d0' } })
        .png({ palette: true })
        .toFile(p),
    (p: string) =>
      sharp({ create: { width: 25, height: 25, channels: 4, background: { r: 0, g: 200, b: 0, alpha: 0.5 } } })
        .png()
        .toFile(p),
  ];
  for (const [i, name] of names.entries()) await kinds[i % kinds.length]!(join(dir, name));
}

test('COCO annotations + Karpathy splits: splits, captions from the annotations, restval in train', async () => {
  const dir = join(root, 'coco');
  await writeImages(join(dir, 'train2014'), ['COCO_train2014_1.jpg', 'COCO_train2014_2.jpg']);
  await writeImages(join(dir, 'val2014'), ['COCO_val2014_3.jpg', 'COCO_val2014_4.jpg']);
  const ann = (images: [number, string][], caps: [number, string][]) =>
    JSON.stringify({
      info: {},
      images: images.map(([id, f]) => ({ id, file_name: f, width: 1, height: 1 })),
      annotations: caps.map(([image_id, caption], id) => ({ id, image_id, caption })),
    });
  await writeFile(
    join(dir, 'captions_train2014.json'),
    ann(
      [
        [1, 'COCO_train2014_1.jpg'],
        [2, 'COCO_train2014_2.jpg'],
      ],
      [
        [1, 'A man rides a horse.'],
        [1, 'a horse and rider'],
        [2, '  A cat   on a mat '],
      ],
    ),
  );
  await writeFile(
    join(dir, 'captions_val2014.json'),
    ann(
      [
        [3, 'COCO_val2014_3.jpg'],
        [4, 'COCO_val2014_4.jpg'],
      ],
      [
        [3, 'a red bus'],
        [4, 'two dogs'],
        [4, ''],
      ],
    ),
  );
  const kimg = (cocoid: number, filepath: string, filename: string, split: string) => ({
    filepath,
    filename,
    cocoid,
    imgid: cocoid,
    split,
    sentences: [{ raw: 'ignored when annotations are given' }],
  });
  await writeFile(
    join(dir, 'dataset_coco.json'),
    JSON.stringify({
      dataset: 'coco',
      images: [
        kimg(1, 'train2014', 'COCO_train2014_1.jpg', 'train'),
        kimg(2, 'train2014', 'COCO_train2014_2.jpg', 'test'),
        kimg(3, 'val2014', 'COCO_val2014_3.jpg', 'restval'),
        kimg(4, 'val2014', 'COCO_val2014_4.jpg', 'val'),
      ],
    }),
  );

  const issues: Issue[] = [];
  const annotations = [join(dir, 'captions_train2014.json'), join(dir, 'captions_val2014.json')];
  const images = await readKarpathy({ karpathy: join(dir, 'dataset_coco.json'), images: dir, annotations }, issues);
  assert.deepEqual(
    images.map((i) => [i.id, i.split]),
    [
      ['1', 'train'],
      ['2', 'test'],
      ['3', 'train'],
      ['4', 'val'],
    ],
  );
  assert.deepEqual(images[0]!.captions, ['A man rides a horse.', 'a horse and rider']);
  assert.deepEqual(images[1]!.captions, ['A cat on a mat']);
  assert.equal(issues.length, 1);
  assert.match(issues[0]!.problem, /empty caption/);
  assert.match(issues[0]!.record, /annotations\[2\] \(image 4\)/);

  const plain = await readCoco({ annotations, images: dir }, []);
  assert.deepEqual(
    plain.map((i) => i.sourceId),
    [1, 2, 3, 4],
  );
  assert.deepEqual(
    plain.map((i) => [i.id, i.split]),
    [
      ['1', 'train'],
      ['2', 'train'],
      ['3', 'val'],
      ['4', 'val'],
    ],
  );

  const out = join(root, 'coco-out');
  const result = await importImages(images, issues, { out, name: 'coco', source: 'test', size: 16, minWordCount: 1 });
  assert.equal(result.images, 4);
  const m = await readManifest(out);
  assert.equal(m.shards?.imageSize, 16);
  // COCO's integer ids are kept as numbers beside the string ids the data set is keyed by.
  assert.deepEqual(
    m.images.map((img) => [img.id, img.sourceId]),
    [
      ['1', 1],
      ['2', 2],
      ['3', 3],
      ['4', 4],
    ],
  );
  // The manifest's file points at the original image; shard pixels are that file preprocessed.
  const cache = await ImageCache.load(out, m.images, 16);
  for (const img of m.images)
    assert.deepEqual(cache.imagePixels(img.id), await loadImagePixels(join(out, img.file), 16), img.id);
  const stats = m.stats as { wordCounts: Record<string, number>; splits: Record<string, unknown> };
  assert.equal(stats.wordCounts.horse, 2);
  assert.equal(stats.wordCounts.bus, 1, 'restval is training data');
  assert.equal(stats.wordCounts.dogs, undefined, 'statistics come from the training split only');
  const report = JSON.parse(await readFile(join(out, 'report.json'), 'utf8')) as { skippedInputs: Issue[] };
  assert.equal(report.skippedInputs.length, 1);
});

test('Flickr8k token file and split lists; a non-UTF-8 line is reported, not fatal', async () => {
  const dir = join(root, 'flickr8k');
  await writeImages(join(dir, 'Images'), ['1_a.jpg', '2_b.jpg', '3_c.jpg']);
  const lines = [
    '1_a.jpg#0\tA child in a pink dress .',
    '1_a.jpg#1\tA girl climbs stairs .',
    '2_b.jpg#0\tA black dog .',
    '3_c.jpg#0\tA man .',
    '9_unlisted.jpg#0\tNobody .',
  ];
  const bytes = Buffer.concat([
    Buffer.from(lines.join('\n') + '\n'),
    Buffer.from([0x33, 0x5f, 0x63, 0x2e, 0x6a, 0x70, 0x67, 0x23, 0x31, 0x09, 0xff, 0xfe, 0x0a]),
  ]);
  await writeFile(join(dir, 'Flickr8k.token.txt'), bytes);
  await writeFile(join(dir, 'Flickr_8k.trainImages.txt'), '1_a.jpg\n2_b.jpg\n');
  await writeFile(join(dir, 'Flickr_8k.devImages.txt'), '3_c.jpg\n');
  await writeFile(join(dir, 'Flickr_8k.testImages.txt'), '');
  const issues: Issue[] = [];
  const { images, unlisted } = await readFlickr8k(
    { captions: join(dir, 'Flickr8k.token.txt'), images: join(dir, 'Images') },
    issues,
  );
  assert.deepEqual(
    images.map((i) => [i.id, i.split, i.captions.length]),
    [
      ['1_a.jpg', 'train', 2],
      ['2_b.jpg', 'train', 1],
      ['3_c.jpg', 'val', 1],
    ],
  );
  assert.equal(unlisted, 1);
  assert.deepEqual(issues, [
    { file: join(dir, 'Flickr8k.token.txt'), record: 'line 6', problem: 'not valid UTF-8; line skipped' },
  ]);
  await assert.rejects(
    readFlickr8k({ captions: join(dir, 'Flickr8k.token.txt'), images: dir, testList: join(dir, 'nope.txt') }, []),
    /nope\.txt: file: the test split list is missing/,
  );
});

test('Flickr30k Karpathy JSON: raw sentences, missing and corrupt images skipped and listed', async () => {
  const dir = join(root, 'flickr30k');
  await writeImages(join(dir, 'flickr30k-images'), ['10.jpg', '11.jpg']);
  await writeFile(join(dir, 'flickr30k-images', '12.jpg'), 'this is not a JPEG');
  const img = (imgid: number, split: string, raws: string[]) => ({
    filename: `${imgid}.jpg`,
    imgid,
    split,
    sentences: raws.map((raw) => ({ raw, tokens: [] })),
  });
  await writeFile(
    join(dir, 'dataset_flickr30k.json'),
    JSON.stringify({
      dataset: 'flickr30k',
      images: [
        img(10, 'train', ['Two men talk.', 'Men chat']),
        img(11, 'val', ['A dog runs.']),
        img(12, 'train', ['Broken.']),
        img(13, 'test', ['Missing file.']),
      ],
    }),
  );
  const issues: Issue[] = [];
  const images = await readKarpathy(
    { karpathy: join(dir, 'dataset_flickr30k.json'), images: join(dir, 'flickr30k-images') },
    issues,
  );
  assert.equal(images.length, 4);
  const out = join(root, 'f30k-out');
  const result = await importImages(images, issues, { out, name: 'flickr30k', source: 'test', size: 8 });
  assert.equal(result.images, 2);
  assert.deepEqual(result.skipped.map((s) => s.record).sort(), ['12', '13']);
  assert.match(result.skipped.find((s) => s.record === '12')!.problem, /12\.jpg: cannot decode image/);
  const m = await readManifest(out);
  assert.deepEqual(
    m.images.map((i) => [i.id, i.sourceId]),
    [
      ['10', 10],
      ['11', 11],
    ],
  );
  const report = JSON.parse(await readFile(join(out, 'report.json'), 'utf8')) as { skippedImages: Issue[] };
  assert.equal(report.skippedImages.length, 2);
});

test('CSV (quoted fields, several rows per image) and JSONL; splits hashed when absent', async () => {
  const dir = join(root, 'table');
  await writeImages(join(dir, 'pics'), ['x.png', 'y.png', 'z.png']);
  await writeFile(
    join(dir, 'c.csv'),
    'image,caption,split\npics/x.png,"a cat, sitting",train\npics/x.png,"a ""quoted"" cat",\npics/y.png,a dog,val\npics/z.png,"two\nlines",\n',
  );
  const issues: Issue[] = [];
  const csv = await readTable('csv', { input: join(dir, 'c.csv') }, issues);
  assert.deepEqual(
    csv.map((i) => [i.id, i.captions]),
    [
      ['pics/x.png', ['a cat, sitting', 'a "quoted" cat']],
      ['pics/y.png', ['a dog']],
      ['pics/z.png', ['two lines']],
    ],
  );
  assert.equal(csv[0]!.split, 'train');
  assert.equal(csv[1]!.split, 'val');
  assert.ok(
    csv.every((i) => i.sourceId === undefined),
    'ids a table gives as text stay text',
  );
  const again = await readTable('csv', { input: join(dir, 'c.csv') }, []);
  assert.equal(again[2]!.split, csv[2]!.split, 'hashed split is deterministic');
  assert.deepEqual(
    parseCsv('a,b\r\n"x,1",y\r\n', 'f').map((r) => r.fields),
    [
      ['a', 'b'],
      ['x,1', 'y'],
    ],
  );

  await writeFile(
    join(dir, 'j.jsonl'),
    '{"image":"pics/x.png","captions":["one","two"],"split":"train"}\n\n{"image":"pics/y.png","caption":"three","id":"why"}\n',
  );
  const jsonl = await readTable('jsonl', { input: join(dir, 'j.jsonl') }, []);
  assert.deepEqual(
    jsonl.map((i) => [i.id, i.captions]),
    [
      ['pics/x.png', ['one', 'two']],
      ['why', ['three']],
    ],
  );
});

test('bad input: clear errors naming the file and the record', async () => {
  const dir = join(root, 'bad');
  await mkdir(dir, { recursive: true });
  const write = async (name: string, text: string | Buffer) => {
    await writeFile(join(dir, name), text);
    return join(dir, name);
  };
  const malformed = await write('captions_train2014.json', '{"images": [');
  await assert.rejects(
    readCoco({ annotations: [malformed], images: dir }, []),
    (e: unknown) => e instanceof DatasetError && /captions_train2014\.json: malformed JSON/.test(e.message),
  );
  const missing = await write(
    'captions_val2014.json',
    JSON.stringify({ images: [{ id: 1, file_name: 'a.jpg' }, { id: 2 }], annotations: [] }),
  );
  await assert.rejects(
    readCoco({ annotations: [missing], images: dir }, []),
    /captions_val2014\.json: images\[1\]: needs "id" \(number\) and "file_name"/,
  );
  const dup = await write(
    'captions_train2017.json',
    JSON.stringify({
      images: [
        { id: 1, file_name: 'a.jpg' },
        { id: 1, file_name: 'b.jpg' },
      ],
      annotations: [],
    }),
  );
  await assert.rejects(
    readCoco({ annotations: [dup], images: dir }, []),
    /captions_train2017\.json: images\[1\]: duplicate image id 1/,
  );
  const latin1 = await write(
    'k.json',
    Buffer.concat([Buffer.from('{"images": [\n{"filename": "caf'), Buffer.from([0xe9]), Buffer.from('.jpg"}]}')]),
  );
  await assert.rejects(readKarpathy({ karpathy: latin1, images: dir }, []), /k\.json: line 2: not valid UTF-8/);
  const badSplit = await write(
    'k2.json',
    JSON.stringify({ images: [{ filename: 'a.jpg', split: 'holdout', sentences: [] }] }),
  );
  await assert.rejects(
    readKarpathy({ karpathy: badSplit, images: dir }, []),
    /k2\.json: images\[0\]: unknown split "holdout"/,
  );
  const csv = await write('t.csv', 'image,caption\na.png,"unclosed\n');
  await assert.rejects(readTable('csv', { input: csv }, []), /t\.csv: line 2: a quoted field is not closed/);
  const noHeader = await write('t2.csv', 'file,text\na.png,hello\n');
  await assert.rejects(
    readTable('csv', { input: noHeader }, []),
    /t2\.csv: line 1: the header must name "image" and "caption"/,
  );
  const jsonl = await write('t.jsonl', '{"image": "a.png", "caption": "ok"}\n{"image": "b.png"}\n');
  await assert.rejects(readTable('jsonl', { input: jsonl }, []), /t\.jsonl: line 2: needs "caption"/);
  const dupIds = await write('t3.csv', 'image,caption,id\na.png,x,one\nb.png,y,one\n');
  await assert.rejects(readTable('csv', { input: dupIds }, []), /t3\.csv: line 3: duplicate id "one"/);
});

test('an interrupted build resumes from its finished shards and ends identical to an uninterrupted one', async () => {
  const records = Array.from({ length: 10 }, (_, i) => ({
    id: `r${i}`,
    split: i < 7 ? 'train' : 'val',
    captions: [`caption number ${i}`],
    file: `r${i}.png`,
  }));
  const pixelsOf = (i: number) => new Uint8Array(4 * 4 * 3).fill(i * 20 + 1);
  const rendered: number[] = [];
  const base = { name: 't', source: 'test', imageSize: 4, records, imagesPerShard: 3, concurrency: 1 };
  const pixels = async (_r: unknown, i: number) => {
    rendered.push(i);
    return pixelsOf(i);
  };
  const out = join(root, 'resume');
  let calls = 0;
  await assert.rejects(
    buildDataset({
      ...base,
      out,
      pixels,
      onProgress: () => {
        if (++calls === 7) throw new Error('killed');
      },
    }),
    /killed/,
  );
  assert.equal(await exists(out), false, 'no data set appears before the end');
  assert.equal(await exists(join(out + '.partial', 'shards', '0001.done')), true);
  await assert.rejects(readManifest(out + '.partial'), DatasetError);
  await assert.rejects(
    buildDataset({ ...base, out, pixels, fingerprint: 'other options' }),
    /interrupted build of different inputs/,
  );

  rendered.length = 0;
  const result = await buildDataset({ ...base, out, pixels });
  assert.equal(result.resumedShards, 2);
  assert.deepEqual(
    rendered.sort((a, b) => a - b),
    [6, 7, 8, 9],
    'only the unfinished shards are redone',
  );
  const fresh = join(root, 'fresh');
  await buildDataset({ ...base, out: fresh, pixels });
  for (const f of ['manifest.json', 'shards/0000.bin', 'shards/0001.bin', 'shards/0002.bin', 'shards/0003.bin']) {
    assert.ok((await readFile(join(out, f))).equals(await readFile(join(fresh, f))), f);
  }
  assert.equal(await exists(join(out, 'plan.json')), false);
  const m = await readManifest(out);
  const cache = await ImageCache.load(out, m.images, 4);
  for (const [i, img] of m.images.entries()) assert.deepEqual(cache.imagePixels(img.id), pixelsOf(i));
  await assert.rejects(buildDataset({ ...base, out, pixels }), /a data set already exists there/);
});

const run = promisify(execFile);
async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, ['bin/captioner.js', ...args], {
      cwd: join(import.meta.dirname, '../..'),
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

test('CLI: exit 1 with a report when an image is skipped, 3 for an unreadable input, 0 for shapes', async () => {
  const dir = join(root, 'cli');
  await writeImages(join(dir, 'img'), ['a.png', 'b.png']);
  await writeFile(join(dir, 'img', 'c.png'), 'corrupt');
  await writeFile(
    join(dir, 'caps.csv'),
    'image,caption,split\nimg/a.png,a thing,train\nimg/b.png,another thing,val\nimg/c.png,a broken thing,train\n',
  );
  await writeFile(join(dir, 'broken.json'), '{"images": [}');
  const [skipped, unreadable, shapes] = await Promise.all([
    cli(['data', 'csv', '--input', join(dir, 'caps.csv'), '--out', join(dir, 'out'), '--size', '8', '--json']),
    cli(['data', 'flickr30k', '--karpathy', join(dir, 'broken.json'), '--images', dir, '--out', join(dir, 'out2')]),
    cli(['data', 'shapes', '--count', '12', '--size', '16', '--out', join(dir, 'shapes')]),
  ]);
  assert.equal(skipped.code, 1, skipped.stderr);
  assert.equal((JSON.parse(skipped.stdout) as { images: number }).images, 2);
  assert.match(skipped.stderr, /1 images and 0 input records skipped: see .*report\.json/);
  const report = JSON.parse(await readFile(join(dir, 'out', 'report.json'), 'utf8')) as { skippedImages: Issue[] };
  assert.equal(report.skippedImages[0]!.record, 'img/c.png');
  assert.equal(unreadable.code, 3, unreadable.stderr);
  assert.match(unreadable.stderr, /broken\.json: malformed JSON/);
  assert.equal(shapes.code, 0, shapes.stderr);
  assert.equal((await readManifest(join(dir, 'shapes'))).images.length, 12);
});

test("a manifest's sourceId is the id as an integer, or the manifest is refused naming the image", async () => {
  const dir = join(root, 'source-ids');
  await mkdir(dir, { recursive: true });
  const manifest = (sourceId: unknown) => ({
    format: 'captioner-dataset',
    version: 1,
    name: 'x',
    source: 'test',
    images: [{ id: '23', sourceId, file: 'a.png', split: 'val', captions: ['a cat'] }],
  });
  await writeFile(join(dir, 'manifest.json'), JSON.stringify(manifest(23)));
  assert.equal((await readManifest(dir)).images[0]!.sourceId, 23);
  for (const bad of [24, '23', 23.5]) {
    await writeFile(join(dir, 'manifest.json'), JSON.stringify(manifest(bad)));
    await assert.rejects(
      readManifest(dir),
      /images\[0\] \(id 23\): "sourceId" must be an integer whose decimal text is the id/,
    );
  }
});
