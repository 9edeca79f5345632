/** The batch run as a library: records in order, a stop after the batch in flight, and a resume that does the rest. */
import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, readFile, realpath, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { after, before, test } from 'node:test';
import { expandInputs } from '../../batch/inputs.ts';
import { openRecordFile, streamOutput } from '../../batch/output.ts';
import { parseRecords, type CaptionRecord } from '../../batch/records.ts';
import { captionFiles, type BatchOptions } from '../../batch/run.ts';
import type { Captioner } from '../../model/nn/captioner.ts';
import { DEFAULT_MAX_PIXELS } from '../../model/data/image-header.ts';
import { loadModel } from '../../model/io/load.ts';
import { setupBackend } from '../helpers/tf.ts';
import { makeTinyDataset } from '../helpers/tiny-data.ts';
import { trainTinyModel } from '../helpers/tiny-model.ts';

let work = '';
let pics = '';
let model: Captioner;

before(async () => {
  await setupBackend();
  work = await realpath(await mkdtemp(join(tmpdir(), 'captioner-batch-run-')));
  const { dir: data } = await makeTinyDataset({ dir: join(work, 'data') });
  model = await loadModel(await trainTinyModel(data, 3, { out: join(work, 'model'), valSamples: 0 }));
  pics = join(work, 'pics');
  await mkdir(pics);
  for (let i = 0; i < 6; i++) await copyFile(join(data, 'images', `${i}.png`), join(pics, `${i}.png`));
});

after(async () => {
  model.dispose();
  await rm(work, { recursive: true, force: true });
});

function options(over: Partial<BatchOptions> & Pick<BatchOptions, 'files' | 'output'>): BatchOptions {
  return {
    model,
    decode: { strategy: 'greedy' },
    batchSize: 2,
    maxPixels: DEFAULT_MAX_PIXELS,
    decodeBudgetBytes: 2 ** 20,
    ...over,
  };
}

test('on a stream: a record per image in order, the unreadable arguments first, no real paths', async () => {
  const { files, unreadable } = await expandInputs([pics, join(work, 'nowhere.png')]);
  const stream = new PassThrough();
  let text = '';
  stream.on('data', (d: Buffer) => (text += d.toString()));
  const output = await streamOutput(stream, 'jsonl', 1);
  const summary = await captionFiles(options({ files, unreadable, output }));
  const records = text
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as CaptionRecord);
  assert.deepEqual(
    records.map((r) => r.path),
    [join(work, 'nowhere.png'), ...files.map((f) => f.path)],
  );
  assert.equal(records[0]!.error, 'no such file, folder or glob match');
  assert.ok(records.every((r) => r.realPath === undefined));
  assert.deepEqual(
    {
      captioned: summary.captioned,
      failed: summary.failed,
      skipped: summary.skipped,
      interrupted: summary.interrupted,
    },
    { captioned: 6, failed: 1, skipped: 0, interrupted: false },
  );
});

test('a stop after the first batch writes that batch whole; a resume through an alias does the rest, once each', async () => {
  const out = join(work, 'caps.jsonl');
  const { files } = await expandInputs([pics]);
  const stop = new AbortController();
  const first = await openRecordFile(out, 'jsonl', 1);
  const summary = await captionFiles(
    options({
      files,
      output: first,
      signal: stop.signal,
      progress: (done) => {
        if (done > 0) stop.abort(); // Ctrl-C while the first batch is captioned
      },
    }),
  );
  await first.sink.close();
  assert.equal(summary.interrupted, true);
  assert.equal(summary.captioned, 2);
  assert.equal(summary.left, 4);
  assert.equal(parseRecords(await readFile(out, 'utf8'), 'jsonl', 1, out).records.length, 2);

  await symlink(pics, join(work, 'alias'));
  const again = await expandInputs([join(work, 'alias')]);
  const second = await openRecordFile(out, 'jsonl', 1);
  assert.deepEqual(second.resumed, { captioned: 2, retried: 0, droppedPartial: false });
  const rest = await captionFiles(options({ files: again.files, output: second }));
  await second.sink.close();
  assert.deepEqual([rest.captioned, rest.skipped, rest.interrupted], [4, 2, false]);
  const records = parseRecords(await readFile(out, 'utf8'), 'jsonl', 1, out).records;
  assert.deepEqual(records.map((r) => r.realPath ?? r.path).sort(), files.map((f) => f.realPath).sort());
  // The second run's records name the images as it was given them, through the alias.
  assert.ok(records.slice(2).every((r) => r.path.startsWith(join(work, 'alias'))));
});
