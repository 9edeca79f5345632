/**
 * `captioner caption` end to end: a real tiny model (trained here), a folder of good, grey,
 * palette, corrupt and mislabelled images, then an interrupted run resumed.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { appendFile, copyFile, cp, mkdir, mkdtemp, readFile, realpath, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { deflateSync } from 'node:zlib';
import * as tf from '@tensorflow/tfjs';
import sharp from 'sharp';
import { parseCsv, type CaptionRecord } from '../../batch/records.ts';
import { imageSeed } from '../../batch/run.ts';
import { captionImages } from '../../model/decode/decode.ts';
import { imagesToTensor, loadImagePixels } from '../../model/data/image.ts';
import { DEFAULT_MAX_PIXELS } from '../../model/data/image-header.ts';
import { ifExists } from '../../model/io/fsutil.ts';
import { loadModel } from '../../model/io/load.ts';
import { BIN, startCli, type CliResult } from '../helpers/cli.ts';
import { makeTinyDataset } from '../helpers/tiny-data.ts';
import { trainTinyModel } from '../helpers/tiny-model.ts';

tf.env().set('PROD', true);

let work = '';
let modelDir = '';
let images = '';
let data = '';
/** Every image file in `images`, as the CLI will list them (sorted, recursive). */
let goodFiles: string[] = [];
let badFiles: string[] = [];
/** The first test's run over the whole folder: the reference for the resumed run. */
let firstRun: CliResult | null = null;

/** Runs the CLI; once `stop.when()` holds (polled), the process gets `stop.signal`. */
async function cli(
  args: string[],
  stop?: { when: () => Promise<boolean>; signal: NodeJS.Signals },
): Promise<CliResult> {
  const { child, done } = startCli(args);
  let timer: NodeJS.Timeout | null = null;
  if (stop) {
    // A rejected check is not caught here: it surfaces as the test's unhandled rejection.
    const poll = (): void => {
      void stop.when().then((now) => {
        if (now) child.kill(stop.signal);
        else timer = setTimeout(poll, 10);
      });
    };
    timer = setTimeout(poll, 10);
  }
  const result = await done;
  if (timer) clearTimeout(timer);
  return result;
}

async function lineCount(path: string): Promise<number> {
  const text = (await ifExists(readFile(path, 'utf8'))) ?? '';
  return text.split('\n').length - 1;
}

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'captioner-caption-'));
  ({ dir: data } = await makeTinyDataset({ dir: join(work, 'data') }));
  // A few steps are enough: the test needs a real model directory, not good captions.
  // Uncalibrated (familiarityImages 0): the records as a model without familiarity writes them;
  // test/cli/calibrate.test.ts covers the records of a calibrated model.
  modelDir = await trainTinyModel(data, 3, { out: join(work, 'model'), valSamples: 0, familiarityImages: 0 });

  images = join(work, 'images');
  await mkdir(join(images, 'more', 'deeper'), { recursive: true });
  const src = (i: number) => join(data, 'images', `${i}.png`);
  for (let i = 0; i < 6; i++) await copyFile(src(i), join(images, `good-${i}.png`));
  // Enough images that an interruption lands mid-run.
  for (let i = 0; i < 24; i++)
    await copyFile(src(i % 6), join(images, 'more', i % 2 ? 'deeper' : '', `copy-${String(i).padStart(2, '0')}.png`));
  await sharp(src(2)).jpeg().toFile(join(images, 'photo.jpg'));
  await sharp(src(3)).toColourspace('b-w').png().toFile(join(images, 'grey.png'));
  await sharp(src(1)).png({ palette: true, colours: 8 }).toFile(join(images, 'palette.png'));
  const whole = await readFile(src(4));
  await writeFile(join(images, 'corrupt.png'), whole.subarray(0, 60));
  await writeFile(join(images, 'text.jpg'), 'not an image at all\n');
  await writeFile(join(images, 'README.txt'), 'ignored: not an image extension\n');
  badFiles = [join(images, 'corrupt.png'), join(images, 'text.jpg')].sort();
  goodFiles = [
    ...Array.from({ length: 6 }, (_, i) => join(images, `good-${i}.png`)),
    join(images, 'grey.png'),
    ...Array.from({ length: 24 }, (_, i) =>
      join(images, 'more', i % 2 ? 'deeper' : '', `copy-${String(i).padStart(2, '0')}.png`),
    ),
    join(images, 'palette.png'),
    join(images, 'photo.jpg'),
  ];
});

after(async () => {
  await rm(work, { recursive: true, force: true });
});

const parseJsonl = (text: string) =>
  text
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as CaptionRecord);

test('captions a folder recursively: one record per image, errors recorded, summary, exit 1', async () => {
  const run = await cli(['caption', images, '--model', modelDir, '--batch-size', '4']);
  firstRun = run;
  assert.equal(run.code, 1, run.stderr);
  const records = parseJsonl(run.stdout);
  assert.deepEqual(records.map((r) => r.path).sort(), [...goodFiles, ...badFiles].sort());
  for (const r of records) {
    if (badFiles.includes(r.path)) {
      assert.match(r.error!, /cannot decode image/);
      assert.equal(r.caption, undefined);
    } else {
      assert.equal(r.error, undefined);
      assert.equal(typeof r.caption, 'string');
      assert.ok(Number.isFinite(r.logProb) && r.logProb! < 0);
    }
  }
  assert.match(run.stderr, /done: 33 captioned, 2 failed in [\d.]+ s \([\d.]+ images\/s\)/);

  // The CLI's captions are the library's for the same files (one preprocessing path, one decoder).
  const { model } = await loadModel(modelDir);
  const pixels = await Promise.all(goodFiles.map((f) => loadImagePixels(f, model.config.imageSize)));
  const batch = imagesToTensor(pixels, model.config.imageSize);
  const expected = captionImages(model, batch, { strategy: 'greedy' });
  batch.dispose();
  model.dispose();
  const byPath = new Map(records.map((r) => [r.path, r]));
  goodFiles.forEach((f, i) => {
    assert.equal(byPath.get(f)!.caption, expected[i]!.caption, f);
    assert.ok(Math.abs(byPath.get(f)!.logProb! - expected[i]!.logProb) < 1e-4);
  });
});

test('beam search with n-best as CSV on stdout; globs; sampling seeded per file; usage errors exit 2', async () => {
  const run = await cli([
    'caption',
    join(images, 'good-*.png'),
    join(images, 'missing.png'),
    '--model',
    modelDir,
    '--beam',
    '3',
    '--nbest',
    '2',
    '--format',
    'csv',
  ]);
  assert.equal(run.code, 1, run.stderr); // the missing file failed
  const { rows, partial } = parseCsv(run.stdout);
  assert.equal(partial, false);
  assert.deepEqual(rows[0], ['path', 'caption', 'log_prob', 'caption_2', 'log_prob_2', 'error']);
  assert.equal(rows.length, 1 + 6 + 1);
  const missing = rows.find((r) => r[0] === join(images, 'missing.png'))!;
  assert.match(missing[5]!, /no such file/);
  for (const r of rows.slice(1).filter((r) => r !== missing)) {
    assert.ok(Number(r[2]) >= Number(r[4]), `best first: ${r}`);
    assert.equal(r[5], '');
  }
  // Sampling: each image's draws are seeded by --seed and its path, so the batch it lands in does not matter.
  const goodSix = goodFiles.filter((f) => /good-\d\.png$/.test(f));
  const sampled = await cli([
    'caption',
    ...goodSix,
    '--model',
    modelDir,
    '--sample',
    '--temperature',
    '3',
    '--seed',
    '5',
    '--batch-size',
    '4',
  ]);
  assert.equal(sampled.code, 0, sampled.stderr);
  const { model } = await loadModel(modelDir);
  for (const r of parseJsonl(sampled.stdout)) {
    const image = imagesToTensor([await loadImagePixels(r.path, model.config.imageSize)], model.config.imageSize);
    const [alone] = captionImages(model, image, {
      strategy: 'sample',
      temperature: 3,
      imageSeeds: [imageSeed(5, r.path)],
    });
    image.dispose();
    assert.equal(r.caption, alone!.caption, r.path);
  }
  model.dispose();
  const usage = await cli(['caption', images, '--model', modelDir, '--beam', '2', '--sample']);
  assert.equal(usage.code, 2);
  assert.match(usage.stderr, /--beam and --sample/);
});

test('an interrupted run resumes: no record lost, corrupt or duplicated', async () => {
  const out = join(work, 'captions.jsonl');
  assert.ok(firstRun, 'the first test captions the folder');
  const reference = parseJsonl(firstRun.stdout);
  // Ctrl-C after the first records: the batch in flight is finished and written, then exit 130.
  const first = await cli(['caption', images, '--model', modelDir, '--out', out, '--batch-size', '1'], {
    when: async () => (await lineCount(out)) >= 2,
    signal: 'SIGINT',
  });
  assert.equal(first.code, 130, first.stderr);
  assert.match(first.stderr, /interrupted: \d+ captioned/);
  const afterInterrupt = parseJsonl(await readFile(out, 'utf8'));
  assert.ok(afterInterrupt.length >= 2 && afterInterrupt.length < reference.length, `${afterInterrupt.length} records`);
  // A kill with no chance to clean up, then a record cut short as a kill mid-write leaves it.
  const second = await cli(['caption', images, '--model', modelDir, '--out', out, '--batch-size', '1'], {
    when: async () => (await lineCount(out)) >= afterInterrupt.length + 3,
    signal: 'SIGKILL',
  });
  assert.equal(second.signal, 'SIGKILL');
  await appendFile(out, '{"path":"' + goodFiles.at(-1) + '","capt');
  const resumed = await cli(['caption', images, '--model', modelDir, '--out', out, '--batch-size', '5']);
  assert.equal(resumed.code, 1, resumed.stderr); // the two bad files are retried, and fail again
  assert.match(resumed.stderr, /resuming .*: \d+ images already captioned.*; dropped a partial last record/);
  const final = parseJsonl(await readFile(out, 'utf8'));
  assert.deepEqual(final.map((r) => r.path).sort(), reference.map((r) => r.path).sort(), 'each image exactly once');
  const ref = new Map(reference.map((r) => [r.path, r]));
  for (const r of final) {
    // Batches of another size may round differently in the last bits (BLAS kernels), no more.
    const { logProb, ...rest } = r;
    const { logProb: refLogProb, ...refRest } = ref.get(r.path)!;
    assert.deepEqual(rest, refRest);
    assert.equal(logProb === undefined, refLogProb === undefined, r.path);
    if (logProb !== undefined && refLogProb !== undefined) {
      assert.ok(
        Math.abs(logProb - refLogProb) <= 1e-5 * Math.abs(refLogProb),
        `${r.path}: logProb ${logProb} vs ${refLogProb}`,
      );
    }
  }
  // A finished file: a rerun has nothing to do but the two failures.
  const again = await cli(['caption', images, '--model', modelDir, '--out', out]);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /0 captioned, 2 failed, 33 skipped/);
  assert.equal((await readFile(out, 'utf8')).trim().split('\n').length, reference.length);
});

test('anti-LM: refused without a prior; `captioner prior` writes one whose weight caption and eval then use', async () => {
  const model2 = join(work, 'model-prior');
  await cp(modelDir, model2, { recursive: true });
  const goodSix = goodFiles.filter((f) => /good-\d\.png$/.test(f));
  const file = join(
    model2,
    (JSON.parse(await readFile(join(model2, 'checkpoint.json'), 'utf8')) as { best: string }).best,
    'language-prior.json',
  );
  // train wrote the word pairs; without them (a model trained before it did) anti-LM is refused.
  assert.equal(JSON.parse(await readFile(file, 'utf8')).antiLm.weight, 0);
  await rm(file);
  const refused = await cli(['caption', ...goodSix, '--model', model2, '--anti-lm', '0.3']);
  assert.equal(refused.code, 2);
  assert.match(refused.stderr, /language-prior\.json: make it with `captioner prior`/);
  const badWeight = await cli(['prior', '--model', model2, '--data', data, '--anti-lm', '-1']);
  assert.equal(badWeight.code, 2);
  assert.match(badWeight.stderr, /--anti-lm must be a number ≥ 0/);
  const badData = await cli(['prior', '--model', model2, '--data', join(work, 'nowhere')]);
  assert.equal(badData.code, 3, badData.stderr);

  const made = await cli([
    'prior',
    '--model',
    model2,
    '--data',
    data,
    '--anti-lm',
    '5',
    '--anti-lm-plausibility',
    '0.001',
  ]);
  assert.equal(made.code, 0, made.stderr);
  const json = JSON.parse(await readFile(file, 'utf8'));
  assert.deepEqual(json.antiLm, { weight: 5, plausibility: 0.001 });
  assert.equal(json.counts['<start>'].a, 6); // the tiny set's six training captions all start "a"
  // This three-step model says "" (<end> first) to everything; a prior in which every caption is
  // empty, at a weight far above any useful one, must make it say something else.
  json.counts['<start>'] = { '<end>': 1000 };
  await writeFile(file, JSON.stringify(json));
  const { model, prior } = await loadModel(model2);
  assert.deepEqual(prior?.antiLm, { weight: 5, plausibility: 0.001 });
  const byDefault = parseJsonl((await cli(['caption', ...goodSix, '--model', model2, '--beam', '2'])).stdout);
  const off = parseJsonl(
    (await cli(['caption', ...goodSix, '--model', model2, '--beam', '2', '--anti-lm', '0'])).stdout,
  );
  let changed = 0;
  for (const [i, r] of byDefault.entries()) {
    const image = imagesToTensor([await loadImagePixels(r.path, model.config.imageSize)], model.config.imageSize);
    const [anti] = captionImages(model, image, {
      strategy: 'beam',
      beamWidth: 2,
      antiLm: 5,
      antiLmPlausibility: 0.001,
      prior,
    });
    const [plain] = captionImages(model, image, { strategy: 'beam', beamWidth: 2, antiLm: 0, prior });
    image.dispose();
    assert.equal(r.caption, anti!.caption, r.path);
    assert.ok(Math.abs(r.logProb! - anti!.logProb) < 1e-4, 'the record carries log p under the model');
    assert.equal(off[i]!.caption, plain!.caption, r.path);
    if (anti!.caption !== plain!.caption) changed += 1;
  }
  model.dispose();
  assert.ok(changed > 0, 'anti-LM at weight 5 changed no caption');
  const evaluated = await cli([
    'eval',
    '--model',
    model2,
    '--data',
    data,
    '--split',
    'val',
    '--beam',
    '2',
    '--json',
    '--out',
    join(work, 'eval-prior'),
  ]);
  assert.equal(evaluated.code, 0, evaluated.stderr);
  assert.equal(JSON.parse(evaluated.stdout).decoding, 'beam search, width 2, anti-LM λ 5 (β 0.001)');
});

/** Runs the CLI from the directory `cwd`, as a user standing there would. */
function cliIn(cwd: string, args: string[]): Promise<CliResult> {
  const child = spawn(process.execPath, [BIN, ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((done) => child.on('close', (code, signal) => done({ code, signal, stdout, stderr })));
}

test('symbolic-link loops in a folder: the run ends and captions each image once', async () => {
  const dir = join(work, 'loops');
  await mkdir(join(dir, 'sub'), { recursive: true });
  await mkdir(join(dir, 'other'));
  const names = ['a.png', 'sub/b.png', 'other/c.png'];
  for (const [i, name] of names.entries()) await copyFile(goodFiles[i]!, join(dir, name));
  await symlink('..', join(dir, 'sub', 'up'));
  await symlink('..', join(dir, 'other', 'up'));
  const run = await cli(['caption', dir, '--model', modelDir]);
  assert.equal(run.code, 0, run.stderr);
  assert.deepEqual(
    parseJsonl(run.stdout)
      .map((r) => r.path)
      .sort(),
    names.map((n) => join(dir, n)).sort(),
  );
  assert.match(run.stderr, /done: 3 captioned, 0 failed/);
});

test('resume matches records by real path: from another directory, and through a symlinked alias', async () => {
  await mkdir(join(work, 'resume-where', 'pics'), { recursive: true });
  const base = await realpath(join(work, 'resume-where'));
  const names = ['p0.png', 'p1.png', 'p2.png', 'p3.png'];
  for (const [i, name] of names.entries()) await copyFile(goodFiles[i]!, join(base, 'pics', name));
  // First run, from base: two of the four images, named relative to base.
  const first = await cliIn(base, [
    'caption',
    'pics/p0.png',
    'pics/p1.png',
    '--model',
    modelDir,
    '--out',
    'caps.jsonl',
  ]);
  assert.equal(first.code, 0, first.stderr);
  // Second run, from inside the folder: the whole folder as ".", the same file as "../caps.jsonl".
  const second = await cliIn(join(base, 'pics'), ['caption', '.', '--model', modelDir, '--out', '../caps.jsonl']);
  assert.equal(second.code, 0, second.stderr);
  assert.match(second.stderr, /resuming \.\.\/caps\.jsonl: 2 images already captioned/);
  assert.match(second.stderr, /done: 2 captioned, 0 failed, 2 skipped/);
  const records = parseJsonl(await readFile(join(base, 'caps.jsonl'), 'utf8'));
  // Each record keeps the path as its run was given it, and the real path that identifies the image.
  assert.deepEqual(
    records.map((r) => [r.path, r.realPath]),
    [
      ['pics/p0.png', join(base, 'pics', 'p0.png')],
      ['pics/p1.png', join(base, 'pics', 'p1.png')],
      ['p2.png', join(base, 'pics', 'p2.png')],
      ['p3.png', join(base, 'pics', 'p3.png')],
    ],
  );
  // Third run, through a symlinked alias of the folder, from yet another directory: nothing to do.
  await symlink(join(base, 'pics'), join(work, 'pics-alias'));
  const third = await cliIn(tmpdir(), [
    'caption',
    join(work, 'pics-alias'),
    '--model',
    modelDir,
    '--out',
    join(base, 'caps.jsonl'),
  ]);
  assert.equal(third.code, 0, third.stderr);
  assert.match(third.stderr, /done: 0 captioned, 0 failed, 4 skipped/);
  assert.equal(parseJsonl(await readFile(join(base, 'caps.jsonl'), 'utf8')).length, 4, 'no duplicate appended');
  // CSV keeps the real path in a last column, so a CSV record file resumes the same way.
  const csv = await cliIn(base, ['caption', 'pics', '--model', modelDir, '--out', 'caps.csv']);
  assert.equal(csv.code, 0, csv.stderr);
  const { rows } = parseCsv(await readFile(join(base, 'caps.csv'), 'utf8'));
  assert.equal(rows[0]!.at(-1), 'real_path');
  assert.deepEqual(rows[1]!.at(-1), join(base, 'pics', 'p0.png'));
  const csvAgain = await cliIn(join(base, 'pics'), ['caption', '.', '--model', modelDir, '--out', '../caps.csv']);
  assert.match(csvAgain.stderr, /done: 0 captioned, 0 failed, 4 skipped/);
});

/** CRC-32 of PNG chunks (ISO 3309, as zlib computes it). */
function crc32(bytes: Buffer): number {
  let c = ~0;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return ~c >>> 0;
}

/** A valid PNG of side × side black pixels, 1 bit each: a few kB on disk, side² pixels decoded. */
function bombPng(side: number): Buffer {
  const chunk = (type: string, data: Buffer) => {
    const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
    const out = Buffer.alloc(body.length + 8);
    out.writeUInt32BE(data.length, 0);
    body.copy(out, 4);
    out.writeUInt32BE(crc32(body), body.length + 4);
    return out;
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(side, 0);
  ihdr.writeUInt32BE(side, 4);
  ihdr.set([1, 0, 0, 0, 0], 8); // 1-bit greyscale, deflate, no filter, no interlace
  const raw = Buffer.alloc(side * (1 + Math.ceil(side / 8))); // each row: filter byte 0, then zero bits
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(raw, { level: 9 })),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

test('an image over --max-pixels (default: the server limit) is an error record, never decoded', async () => {
  const dir = join(work, 'large');
  await mkdir(dir);
  await copyFile(goodFiles[0]!, join(dir, 'small.png'));
  await writeFile(join(dir, 'bomb.png'), bombPng(10_000)); // 100 megapixels: under sharp's 2^28, over 40 M
  await sharp({ create: { width: 40, height: 30, channels: 3, background: '#808080' } })
    .png()
    .toFile(join(dir, 'medium.png'));
  const run = await cli(['caption', dir, '--model', modelDir, '--decode-memory', '1']);
  assert.equal(run.code, 1, run.stderr);
  const byName = new Map(parseJsonl(run.stdout).map((r) => [r.path.slice(dir.length + 1), r]));
  assert.equal(
    byName.get('bomb.png')!.error,
    `the image is 10000×10000 = 100000000 pixels; the limit is ${DEFAULT_MAX_PIXELS}`,
  );
  assert.equal(typeof byName.get('medium.png')!.caption, 'string');
  assert.equal(typeof byName.get('small.png')!.caption, 'string');
  assert.match(run.stderr, /done: 2 captioned, 1 failed/);
  // A lower limit: the 40×30 image is refused too.
  const lower = await cli(['caption', dir, '--model', modelDir, '--max-pixels', '1000']);
  assert.match(
    parseJsonl(lower.stdout).find((r) => r.path.endsWith('medium.png'))!.error!,
    /40×30 = 1200 pixels; the limit is 1000/,
  );
  const bad = await cli(['caption', dir, '--model', modelDir, '--max-pixels', '0']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--max-pixels must be a whole number ≥ 1/);
});

test('decoding flags come from the one spec: a flag of another strategy exits 2 naming it, in caption and eval', async () => {
  const good = join(images, 'good-0.png');
  const refused: [string[], RegExp][] = [
    [['--beam', '2', '--top-k', '5'], /--top-k applies to sampling, not to beam search: add --sample/],
    [['--temperature', '0.5'], /--temperature applies to sampling, not to greedy decoding: add --sample/],
    [['--sample', '--nbest', '2'], /--nbest applies to beam search, not to sampling: add --beam N/],
    [['--sample', '--length-penalty', '1'], /--length-penalty applies to beam search/],
    [['--beam', '0'], /--beam must be a whole number ≥ 1, got 0/],
    [['--sample', '--top-p', '1.5'], /--top-p must be in \(0, 1\], got 1.5/],
  ];
  for (const [flags, message] of refused) {
    const run = await cli(['caption', good, '--model', modelDir, ...flags]);
    assert.equal(run.code, 2, `${flags.join(' ')}: ${run.stderr}`);
    assert.match(run.stderr, message);
    assert.equal(run.stdout, '', 'nothing captioned');
  }
  const evalOut = join(work, 'eval-flags');
  const evalRefused: [string[], RegExp][] = [
    [['--beam', '1', '--length-penalty', '0.5'], /--length-penalty applies to beam search, not to greedy decoding/],
    [['--max-length', '0'], /--max-length must be a whole number ≥ 1, got 0/],
    [['--beam', '2.5'], /--beam must be a whole number ≥ 1, got 2.5/],
  ];
  for (const [flags, message] of evalRefused) {
    const run = await cli(['eval', '--model', modelDir, '--data', data, '--split', 'val', '--out', evalOut, ...flags]);
    assert.equal(run.code, 2, `${flags.join(' ')}: ${run.stderr}`);
    assert.match(run.stderr, message);
  }
  // eval takes the spec's beam-search settings, and says what it decoded with.
  const evaluated = await cli([
    'eval',
    '--model',
    modelDir,
    '--data',
    data,
    '--split',
    'val',
    '--beam',
    '2',
    '--length-penalty',
    '0.5',
    '--max-length',
    '3',
    '--json',
    '--out',
    evalOut,
  ]);
  assert.equal(evaluated.code, 0, evaluated.stderr);
  assert.equal(JSON.parse(evaluated.stdout).decoding, 'beam search, width 2, length penalty α 0.5, at most 3 words');
  // --help: each decoding flag in one group, with the strategy that uses it and its default.
  const help = await cli(['caption', '--help']);
  assert.match(help.stdout, /Decoding:/);
  for (const flag of ['--beam', '--sample', '--nbest', '--top-k', '--top-p', '--seed', '--max-length', '--anti-lm'])
    assert.match(help.stdout, new RegExp(`${flag}\\b`));
  assert.match(
    help.stdout.replace(/\s+/g, ' '),
    /--top-k sampling: draw from the k most probable words only; 0: all \[default: 0\]/,
  );
  const evalHelp = (await cli(['eval', '--help'])).stdout.replace(/\s+/g, ' ');
  assert.match(evalHelp, /--beam beam width .*\[default: the model's decoding\.json, else 3\]/);
  assert.doesNotMatch(evalHelp, /--top-k/, 'eval decodes deterministically');
});
