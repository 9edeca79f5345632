/** Streamed training pixels: every example once per epoch, seeded order, bounded memory, read-ahead, resume. */
import assert from 'node:assert/strict';
import { readFile, rm, truncate } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { buildDataset, type BuildRecord } from '../../../data-scripts/build.ts';
import { epochBatches, makeExamples, type Batch, type Example } from '../../../model/data/batch.ts';
import { disposeCheckpoint, loadCheckpoint } from '../../../model/io/checkpoint.ts';
import { DatasetError, readManifest, splitImages, type DatasetImage } from '../../../model/data/dataset.ts';
import { loadImagePixels } from '../../../model/data/image.ts';
import {
  StreamedPixels,
  streamEpochPlan,
  streamWindowSizes,
  type StreamEvent,
  type StreamOptions,
} from '../../../model/data/stream.ts';
import { train } from '../../../model/train/trainer.ts';
import { Vocabulary } from '../../../model/text/vocab.ts';
import { setupBackend } from '../../helpers/tf.ts';
import { makeTinyDataset } from '../../helpers/tiny-data.ts';
import { tinyConfig } from '../../helpers/tiny-model.ts';

const tf = await setupBackend();
const cleanup: string[] = [];
const tmp = () => join(process.env.TMPDIR ?? '/tmp', `captioner-stream-${process.pid}-${cleanup.length}`);

/** Image i's pixels are all the byte `code(i)`, so a batch's pixels tell which image they came from. */
const code = (i: number) => (i % 251) + 1;
const SIDE = 4;
const WORDS = ['red', 'blue', 'green', 'small', 'big', 'circle', 'square', 'near', 'far', 'left'];

/** 30 training and 6 validation images (interleaved), 1–3 captions each of 2–6 words, 4 images a shard (9 shards). */
let synthetic: { dir: string; train: DatasetImage[]; examples: Example[] };
/** The tiny shapes (tiny-data.ts) twice over in 2-image shards, 16 px: for training runs. */
let shapes: string;

before(async () => {
  const records: BuildRecord[] = Array.from({ length: 36 }, (_, i) => ({
    id: `s${i}`,
    file: `none/${i}.png`,
    split: i % 6 === 5 ? 'val' : 'train',
    captions: Array.from({ length: 1 + (i % 3) }, (_, c) =>
      Array.from({ length: 2 + ((i + c) % 5) }, (_, w) => WORDS[(i + c + w) % WORDS.length]).join(' '),
    ),
  }));
  const dir = tmp();
  cleanup.push(dir);
  await buildDataset({
    out: dir,
    name: 'synthetic',
    source: 'test',
    imageSize: SIDE,
    imagesPerShard: 4,
    minWordCount: 1,
    records,
    pixels: async (_r, i) => new Uint8Array(SIDE * SIDE * 3).fill(code(i)),
  });
  const train = splitImages(await readManifest(dir), 'train');
  const vocab = Vocabulary.build(
    train.flatMap((i) => i.captions),
    1,
  );
  synthetic = { dir, train, examples: makeExamples(train, vocab, 8) };

  const tiny = await makeTinyDataset();
  cleanup.push(tiny.dir);
  const doubled = [0, 1].flatMap((copy) =>
    tiny.manifest.images.filter((i) => i.split === 'train').map((img) => ({ ...img, id: `${img.id}-${copy}` })),
  );
  const val = tiny.manifest.images.filter((i) => i.split === 'val');
  shapes = tmp();
  cleanup.push(shapes);
  await buildDataset({
    out: shapes,
    name: 'shapes',
    source: 'test',
    imageSize: 16,
    imagesPerShard: 2,
    minWordCount: 1,
    records: [...doubled, ...val].map(({ id, file, split, captions }) => ({ id, file, split, captions })),
    pixels: (r) => loadImagePixels(join(tiny.dir, r.file), 16),
  });
});
after(async () => {
  for (const dir of cleanup) await rm(dir, { recursive: true, force: true });
});

const options = (over: Partial<StreamOptions> = {}): StreamOptions => ({
  batchSize: 5,
  seed: 3,
  epochs: 3,
  window: 2,
  readAhead: 1,
  ...over,
});
const open = (over: Partial<StreamOptions> = {}, images = synthetic.train, examples = synthetic.examples) =>
  StreamedPixels.open(synthetic.dir, images, examples, SIDE, options(over));
const rowKey = (b: Batch, r: number) =>
  `${b.imageIds[r]}:${[...b.tokens.slice(r * b.width, (r + 1) * b.width)].filter((t) => t !== 0).join(',')}`;
const exampleKey = (e: Example) => `${e.imageId}:${e.ids.join(',')}`;

/** Every batch of one epoch from `from`, checking each row's pixels are its image's. */
async function collect(stream: StreamedPixels, epoch: number, from = 0): Promise<Batch[]> {
  const per = SIDE * SIDE * 3;
  const codes = new Map(synthetic.train.map((img) => [img.id, code(Number(img.id.slice(1)))]));
  const out: Batch[] = [];
  for await (const { batch, pixels, index } of stream.epoch(epoch, from)) {
    assert.equal(index, from + out.length);
    batch.imageIds.forEach((id, r) => {
      const row = pixels.subarray(r * per, (r + 1) * per);
      assert.ok(
        row.every((v) => Math.round(v * 255) === codes.get(id)),
        `batch ${index} row ${r}: pixels of ${id}`,
      );
    });
    out.push(batch);
  }
  return out;
}

test('every example exactly once per epoch, in full batches but the last, with and without bucketing', async () => {
  for (const bucketing of [false, true]) {
    for (const window of [1, 2, 4]) {
      const stream = await open({ window, bucketing, poolBatches: 2 });
      for (const epoch of [0, 1]) {
        const batches = await collect(stream, epoch);
        assert.equal(
          batches.length,
          Math.ceil(synthetic.examples.length / 5),
          `window ${window}: as many batches as in memory`,
        );
        const short = batches.filter((b) => b.batchSize < 5);
        assert.equal(
          short.length,
          synthetic.examples.length % 5 ? 1 : 0,
          "one short batch at most (the last window's)",
        );
        const rows = batches.flatMap((b) => Array.from({ length: b.batchSize }, (_, r) => rowKey(b, r)));
        assert.deepEqual(
          rows.sort(),
          synthetic.examples.map(exampleKey).sort(),
          `window ${window}, bucketing ${bucketing}, epoch ${epoch}`,
        );
      }
      await stream.close();
    }
  }
});

test('the order is a pure function of (seed, epoch): same seed same order, another epoch or seed another order', async () => {
  const ids = (bs: Batch[]) => bs.map((b) => b.imageIds.join(','));
  const a = await open();
  const b = await open();
  const e0 = await collect(a, 0);
  const e1 = await collect(a, 1);
  assert.deepEqual(ids(await collect(b, 0)), ids(e0));
  assert.deepEqual(ids(await collect(b, 1)), ids(e1));
  assert.notDeepEqual(ids(e1), ids(e0));
  const c = await open({ seed: 4 });
  assert.notDeepEqual(ids(await collect(c, 0)), ids(e0));
  const orders = [0, 1, 2, 3].map((e) => a.plan(e).chunkOrder.join(','));
  assert.equal(new Set(orders).size, 4, `the chunk order is reshuffled every epoch: ${orders.join(' | ')}`);
  for (const s of [a, b, c]) await s.close();
});

test('a window over every chunk gives exactly the in-memory order (epochBatches)', () => {
  const chunkOf = new Map(synthetic.train.map((img) => [img.id, img.shard!]));
  const shards = [...new Set(synthetic.train.map((i) => i.shard!))];
  const chunkExamples = shards.map((s) =>
    synthetic.examples.flatMap((e, i) => (chunkOf.get(e.imageId) === s ? [i] : [])),
  );
  for (const bucketing of [false, true]) {
    const plan = streamEpochPlan(synthetic.examples, chunkExamples, 5, 3, 2, shards.length, {
      bucketing,
      poolBatches: 2,
    });
    assert.equal(plan.windows.length, 1);
    assert.deepEqual(
      plan.windows[0]!.batches,
      epochBatches(synthetic.examples, 5, 3, 2, { bucketing, poolBatches: 2 }),
    );
  }
});

test('at most window + read-ahead chunks are resident, and the next chunk is read before the current one is handed out', async () => {
  for (const [window, readAhead] of [
    [1, 1],
    [2, 1],
    [2, 2],
    [3, 0],
  ] as const) {
    const events: StreamEvent[] = [];
    let resident = 0;
    let most = 0;
    const stream = await open({
      window,
      readAhead,
      epochs: 2,
      onEvent: (e) => {
        events.push(e);
        if (e.type === 'read-start') most = Math.max(most, ++resident);
        if (e.type === 'release') resident--;
      },
    });
    await collect(stream, 0);
    await collect(stream, 1);
    assert.equal(stream.stats.maxResident, Math.min(window + readAhead, 2 * stream.chunks.length));
    assert.ok(most <= window + readAhead, `window ${window} + read-ahead ${readAhead}: ${most} resident`);
    assert.equal(stream.stats.chunksRead, 2 * stream.chunks.length, 'each chunk read once an epoch');
    if (readAhead >= window) {
      // Read-ahead: the reads of window w+1 (across the epoch boundary too) start before window w's first batch is
      // handed out.
      for (const epoch of [0, 1]) {
        const plan = stream.plan(epoch);
        plan.windows.forEach((win, w) => {
          const firstBatch = events.findIndex(
            (e) => e.type === 'batch' && e.epoch === epoch && e.index === win.firstBatch,
          );
          const nextStart =
            w + 1 < plan.windows.length
              ? { epoch, position: (w + 1) * window }
              : epoch === 0
                ? { epoch: 1, position: 0 }
                : null;
          if (!nextStart) return;
          const read = events.findIndex(
            (e) => e.type === 'read-start' && e.epoch === nextStart.epoch && e.position === nextStart.position,
          );
          assert.ok(
            read >= 0 && read < firstBatch,
            `window ${window}/${readAhead}: epoch ${epoch} window ${w}: next read at event ${read}, first batch at ${firstBatch}`,
          );
        });
      }
    }
    await stream.close();
  }
});

test('resuming at any batch of an epoch (mid-window, with examples handed on) gives the rest of the same order', async () => {
  const whole = await open({ window: 2, readAhead: 1 });
  const all = await collect(whole, 1);
  const plan = whole.plan(1);
  assert.ok(
    plan.windows.some((w) => w.carryOut.length > 0),
    'the fixture hands examples on between windows',
  );
  for (const from of [1, plan.windows[1]!.firstBatch, plan.windows[1]!.firstBatch + 1, all.length - 1]) {
    const resumed = await open({ window: 2, readAhead: 1 });
    assert.deepEqual(await collect(resumed, 1, from), all.slice(from), `resumed at batch ${from}`);
    assert.ok(resumed.stats.maxResident <= 3);
    await resumed.close();
  }
  await whole.close();
});

test('images without shards stream in chunks of decoded files', async () => {
  const { dir, manifest } = await makeTinyDataset();
  cleanup.push(dir);
  const images = splitImages(manifest, 'train');
  const examples = makeExamples(
    images,
    Vocabulary.build(
      images.flatMap((i) => i.captions),
      1,
    ),
    6,
  );
  const stream = await StreamedPixels.open(dir, images, examples, 12, {
    batchSize: 4,
    seed: 1,
    epochs: 1,
    window: 1,
    readAhead: 1,
    fileChunkImages: 2,
  });
  assert.equal(stream.chunks.length, 3);
  assert.match(stream.description, /3 chunks of image files decoded at 12×12/);
  const seen: string[] = [];
  for await (const { batch, pixels } of stream.epoch(0)) {
    assert.equal(pixels.length, batch.batchSize * 12 * 12 * 3);
    seen.push(...batch.imageIds);
    const i = batch.imageIds.indexOf('img0');
    if (i >= 0) assert.ok(pixels[i * 432 + (6 * 12 + 6) * 3]! > 0.7, 'img0 is red at the centre');
  }
  assert.deepEqual(seen.sort(), images.map((i) => i.id).sort());
  await stream.close();
});

test('a truncated shard is an error naming the file, and nothing is left hanging', async () => {
  const dir = tmp();
  cleanup.push(dir);
  const { dir: src } = synthetic;
  await rm(dir, { recursive: true, force: true });
  await import('node:fs/promises').then((fs) => fs.cp(src, dir, { recursive: true }));
  const manifest = await readManifest(dir);
  const shardFile = join(dir, manifest.shards!.files[2]!);
  await truncate(shardFile, (await readFile(shardFile)).length - 5);
  const stream = await StreamedPixels.open(
    dir,
    splitImages(manifest, 'train'),
    synthetic.examples,
    SIDE,
    options({ window: 9, readAhead: 0 }),
  );
  await assert.rejects(
    (async () => {
      for await (const _ of stream.epoch(0)) void _;
    })(),
    (e: unknown) =>
      e instanceof DatasetError && e.message.includes(shardFile) && /truncated or corrupt/.test(e.message),
  );
  await stream.close();
  await truncate(shardFile, 0);
  await rm(join(dir, manifest.shards!.files[3]!));
  const again = await StreamedPixels.open(
    dir,
    splitImages(manifest, 'train'),
    synthetic.examples,
    SIDE,
    options({ window: 1, readAhead: 8 }),
  );
  await assert.rejects(
    (async () => {
      for await (const _ of again.epoch(0)) void _;
    })(),
    (e: unknown) =>
      e instanceof DatasetError && (e.message.includes(shardFile) || e.message.includes(manifest.shards!.files[3]!)),
  );
  await again.close();
});

test('automatic sizes: window and read-ahead share the budget, at least one chunk, at most all', () => {
  assert.deepEqual(streamWindowSizes(0, -1, 10, 100, 200), { window: 10, readAhead: 10 });
  assert.deepEqual(streamWindowSizes(0, -1, 10, 4, 200), { window: 4, readAhead: 3 });
  assert.deepEqual(streamWindowSizes(0, -1, 10, 100, 5), { window: 1, readAhead: 1 });
  assert.deepEqual(streamWindowSizes(3, 0, 10, 100, 5), { window: 3, readAhead: 0 });
});

/** The trained weights of a model directory, by name. */
async function weights(dir: string): Promise<Map<string, Float32Array>> {
  const ckpt = await loadCheckpoint(dir, 'latest');
  const out = new Map(Object.entries(ckpt.weights).map(([name, t]) => [name, t.dataSync() as Float32Array]));
  disposeCheckpoint(ckpt);
  return out;
}

function assertSameWeights(a: Map<string, Float32Array>, b: Map<string, Float32Array>, tol: number): void {
  for (const [name, x] of a) {
    const y = b.get(name)!;
    let worst = 0;
    for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(x[i]! - y[i]!));
    assert.ok(worst <= tol, `weight ${name} differs by ${worst}`);
  }
}

test('training: a window over the whole set equals in-memory training; a one-shard window learns; resume is exact; no tensors leak', async () => {
  const common = {
    batchSize: 4,
    epochs: 6,
    logEvery: 1,
    validateEvery: 3,
    learningRate: 0.01,
    featureInput: 'every-step',
  };
  const memory = await tinyConfig(shapes, { ...common, stream: 'off' });
  const wide = await tinyConfig(shapes, { ...common, stream: 'on', streamWindow: 100 });
  cleanup.push(memory.out, wide.out);
  const lines: string[] = [];
  const live = tf.memory().numTensors;
  await train(memory, { log: (l) => lines.push(l) });
  assert.ok(lines.some((l) => /images: .* in memory/.test(l)));
  lines.length = 0;
  await train(wide, { log: (l) => lines.push(l) });
  assert.equal(tf.memory().numTensors, live, 'training with streaming leaks no tensors');
  assert.ok(
    lines.some((l) => /images: streaming 12 images from 6 shards .*windows of 6 of 6 chunks.*--stream on/.test(l)),
    lines.join('\n'),
  );
  assertSameWeights(await weights(memory.out), await weights(wide.out), 0);

  // One shard (two images) a window, one read ahead; auto streaming because of a tiny budget.
  const narrow = { ...common, epochs: 40, pixelBudgetMb: 0.001, streamWindow: 1, streamReadAhead: 1 };
  const whole = await tinyConfig(shapes, narrow);
  cleanup.push(whole.out);
  lines.length = 0;
  let stream: StreamedPixels | null = null;
  const result = await train(whole, {
    log: (l) => lines.push(l),
    pixelSource: (s) => (stream = s instanceof StreamedPixels ? s : null),
  });
  assert.ok(
    lines.some((l) => /images: streaming .* exceed --pixel-budget-mb 0\.001/.test(l)),
    lines.join('\n'),
  );
  assert.ok(stream !== null && (stream as StreamedPixels).stats.maxResident <= 2);
  const losses = (await readFile(join(whole.out, 'metrics.jsonl'), 'utf8'))
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { type: string; loss?: number; dataWaitMs?: number });
  const steps = losses.filter((r) => r.type === 'step');
  assert.ok(steps.every((r) => typeof r.dataWaitMs === 'number'));
  assert.ok(result.lastLoss! < steps[0]!.loss! / 3, `loss falls: ${steps[0]!.loss} → ${result.lastLoss}`);

  // Stop in the middle of a window (after 7 steps: epoch 3, batch 1 of 3), resume: the same weights.
  const half = await tinyConfig(shapes, { ...narrow, maxSteps: 7 });
  cleanup.push(half.out);
  await train(half);
  await train({ ...half, resume: true, maxSteps: 0 });
  assertSameWeights(await weights(whole.out), await weights(half.out), 1e-5);
});
