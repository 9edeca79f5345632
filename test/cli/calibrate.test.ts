/**
 * Familiarity end to end on a tiny model: `captioner calibrate` writes the calibration into the
 * checkpoint, `captioner caption` then reports each image's familiarity (JSON Lines field, CSV
 * columns, the summary's count), a model never calibrated reports none, and `captioner train`
 * calibrates at the end of a run.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../helpers/cli.ts';
import { makeTinyDataset } from '../helpers/tiny-data.ts';
import { trainTinyModel } from '../helpers/tiny-model.ts';
import { loadCheckpoint, disposeCheckpoint } from '../../model/io/checkpoint.ts';
import { loadModel } from '../../model/io/load.ts';
import { imagesToTensor, loadImagePixels } from '../../model/data/image.ts';
import {
  readFamiliarity,
  FAMILIARITY_FILE,
  FAMILIARITY_WEIGHTS,
  writeFamiliarity,
} from '../../model/familiarity/store.ts';
import { CheckpointError } from '../../model/io/checkpoint.ts';

let dataDir: string;
let modelDir: string;
let work: string;

before(async () => {
  dataDir = (await makeTinyDataset()).dir;
  // familiarityImages 0: a model trained without a calibration, as models were before it existed.
  modelDir = await trainTinyModel(dataDir, 30, { familiarityImages: 0, learningRate: 0.01 });
  work = await mkdtemp(join(tmpdir(), 'captioner-calibrate-'));
});

after(async () => {
  for (const dir of [dataDir, modelDir, work]) await rm(dir, { recursive: true, force: true });
});

async function checkpointDir(): Promise<string> {
  const ckpt = await loadCheckpoint(modelDir, 'best');
  disposeCheckpoint(ckpt);
  return ckpt.dir;
}

test('a model never calibrated: records carry no familiarity and the summary counts none', async () => {
  assert.equal(await readFamiliarity(await checkpointDir()), null);
  const r = await runCli(['caption', join(dataDir, 'images'), '--model', modelDir]);
  assert.equal(r.code, 0, r.stderr);
  const records = r.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.equal(records.length, 6);
  for (const rec of records) assert.equal('familiarity' in rec, false);
  assert.doesNotMatch(r.stderr, /unfamiliar/);
});

test('calibrate: bad flags and data are refused with the flag or file named', async () => {
  const bad = await runCli(['calibrate', '--model', modelDir, '--data', dataDir, '--familiar', '1.5']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--familiar must be a share in \(0, 1\], got 1\.5/);
  const noVal = await runCli(['calibrate', '--model', modelDir, '--data', dataDir, '--val-split', 'nope']);
  assert.equal(noVal.code, 3);
  assert.ok(noVal.stderr.includes(`${join(dataDir, 'manifest.json')}: split "nope" has no images`), noVal.stderr);
  const noData = await runCli(['calibrate', '--model', modelDir, '--data', join(work, 'missing')]);
  assert.equal(noData.code, 3);
  assert.match(noData.stderr, /manifest\.json: no manifest/);
  const help = await runCli(['calibrate', '--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /--model[\s\S]*--data[\s\S]*--max-images[\s\S]*--familiar/);
  assert.equal(await readFamiliarity(await checkpointDir()), null, 'nothing written by a refused run');
});

test('calibrate writes the calibration; its threshold keeps the val images familiar; captions then carry it', async () => {
  const r = await runCli(['calibrate', '--model', modelDir, '--data', dataDir, '--json']);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { files: string[]; threshold: number; bytes: number; dims: number };
  const dir = await checkpointDir();
  assert.deepEqual(out.files, [join(dir, FAMILIARITY_FILE), join(dir, FAMILIARITY_WEIGHTS)]);
  assert.equal((await stat(join(dir, FAMILIARITY_WEIGHTS))).size, out.bytes);
  // The tiny model's first conv block has 8 channels: a mean and a deviation of each, then the
  // three chroma statistics (the default recipe, first-block-moments-chroma).
  assert.equal(out.dims, 2 * 8 + 3);
  assert.match(r.stderr, /features of the fit images/);
  assert.match(r.stderr, /100\.0 % of 2 "val" images familiar/);

  const calibration = (await readFamiliarity(dir))!;
  assert.equal(calibration.calibration.fitImages, 6);
  assert.equal(calibration.calibration.valImages, 2);
  assert.equal(calibration.calibration.valFamiliar, 1);

  // Scored again through the loaded model: the val images are at most the threshold, and with
  // two of them (⌈0.975 · 2⌉ = 2 must be familiar) the threshold is the larger val score.
  const { model, familiarity } = await loadModel(modelDir);
  try {
    const val = ['images/0.png', 'images/1.png'];
    const pixels = await Promise.all(val.map((f) => loadImagePixels(join(dataDir, f), model.config.imageSize)));
    const images = imagesToTensor(pixels, model.config.imageSize);
    const judged = familiarity!.assess(model.encoder, images);
    images.dispose();
    assert.ok(judged.every((j) => j.familiar && j.threshold === calibration.threshold));
    assert.ok(Math.abs(Math.max(...judged.map((j) => j.score)) - calibration.threshold) < 1e-4);
  } finally {
    model.dispose();
  }

  // A photograph-like image, nothing like the tiny data set's flat shapes: noise in every colour.
  const noise = join(work, 'noise.png');
  const sharp = (await import('sharp')).default;
  const raw = Buffer.from(Array.from({ length: 48 * 48 * 3 }, (_, i) => (i * 2654435761) % 251));
  await sharp(raw, { raw: { width: 48, height: 48, channels: 3 } })
    .png()
    .toFile(noise);
  const jsonl = await runCli(['caption', join(dataDir, 'images'), noise, '--model', modelDir]);
  assert.equal(jsonl.code, 0, jsonl.stderr);
  const records = jsonl.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { path: string; familiarity: never });
  assert.equal(records.length, 7);
  for (const rec of records) {
    const f = rec.familiarity as { score: number; threshold: number; familiar: boolean };
    assert.equal(typeof f.score, 'number');
    assert.equal(f.threshold, calibration.threshold);
    assert.equal(f.familiar, f.score <= f.threshold);
  }
  const noiseRecord = records.find((r) => r.path === noise)!.familiarity as { familiar: boolean };
  assert.equal(noiseRecord.familiar, false);
  const unfamiliar = records.filter((r) => !(r.familiarity as { familiar: boolean }).familiar).length;
  assert.ok(jsonl.stderr.includes(`done: 7 captioned (${unfamiliar} unfamiliar`), jsonl.stderr);

  // CSV records: the familiarity columns, and a rerun resumes the file with them.
  const csvFile = join(work, 'out.csv');
  const csv = await runCli(['caption', noise, '--model', modelDir, '--out', csvFile]);
  assert.equal(csv.code, 0, csv.stderr);
  const [header, row] = (await readFile(csvFile, 'utf8')).trim().split('\r\n');
  assert.equal(header, 'path,caption,log_prob,familiar,familiarity_score,familiarity_threshold,error,real_path');
  assert.match(row!, new RegExp(`,false,[0-9.e+]+,${calibration.threshold},,`));
  const rerun = await runCli([
    'caption',
    noise,
    join(dataDir, 'images', '0.png'),
    '--model',
    modelDir,
    '--out',
    csvFile,
  ]);
  assert.equal(rerun.code, 0, rerun.stderr);
  assert.match(rerun.stderr, /1 images already captioned/);
  assert.equal((await readFile(csvFile, 'utf8')).trim().split('\r\n').length, 3);
});

test('a damaged calibration is an error naming its file; the store round-trips in float32', async () => {
  const dir = await mkdtemp(join(work, 'ckpt-'));
  const params = {
    features: 'block-moments' as const,
    dims: 3,
    means: Float64Array.from([1, 2, 3, -1, -2, -3]),
    whitening: Float64Array.from([1, 0, 0, 0.5, 2, 0, 0.25, -1, 3]),
    shrinkage: 0.125,
    threshold: 7.5,
    calibration: {
      data: 'tiny',
      fitSplit: 'train',
      fitImages: 6,
      valSplit: 'val',
      valImages: 2,
      targetFamiliar: 0.975,
      valFamiliar: 1,
    },
  };
  await writeFamiliarity(dir, params);
  assert.deepEqual(await readFamiliarity(dir), params);
  // 2 means of 3 and a triangle of 6, in float32.
  assert.equal((await stat(join(dir, FAMILIARITY_WEIGHTS))).size, (6 + 6) * 4);
  await writeFile(join(dir, FAMILIARITY_WEIGHTS), Buffer.alloc(10));
  await assert.rejects(readFamiliarity(dir), (err: Error) => {
    assert.ok(err instanceof CheckpointError);
    assert.ok(err.message.startsWith(join(dir, FAMILIARITY_WEIGHTS)));
    assert.match(err.message, /10 bytes, familiarity\.json describes 48/);
    return true;
  });
  const json = JSON.parse(await readFile(join(dir, FAMILIARITY_FILE), 'utf8')) as Record<string, unknown>;
  await writeFile(join(dir, FAMILIARITY_FILE), JSON.stringify({ ...json, threshold: 'high' }));
  await assert.rejects(readFamiliarity(dir), /familiarity\.json: "threshold" must be a number, got "high"/);
});

test('train calibrates the best checkpoint at the end of a run', async () => {
  const trained = await trainTinyModel(dataDir, 10, { learningRate: 0.01 });
  try {
    const ckpt = await loadCheckpoint(trained, 'best');
    disposeCheckpoint(ckpt);
    const calibration = await readFamiliarity(ckpt.dir);
    assert.ok(calibration, 'familiarity.json in the best checkpoint');
    assert.equal(calibration.calibration.fitImages, 6);
    assert.equal(calibration.calibration.valFamiliar, 1);
  } finally {
    await rm(trained, { recursive: true, force: true });
  }
});
