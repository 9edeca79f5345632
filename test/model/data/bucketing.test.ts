/** Length bucketing in epochBatches, and the manifest's shard fields. */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { epochBatches, paddingFraction, padBatch, type Example } from '../../../model/data/batch.ts';
import { readManifest } from '../../../model/data/dataset.ts';
import { Rng, deriveSeed } from '../../../model/util/rng.ts';

const rng = new Rng(4);
const examples: Example[] = Array.from({ length: 500 }, (_, i) => ({
  imageId: `i${i % 100}`,
  ids: Array.from({ length: 3 + rng.int(18) }, () => 4 + rng.int(20)),
}));
const key = (e: Example) => `${e.imageId}:${e.ids.join(',')}`;

test('without bucketing, batches are the seeded shuffle cut in order (unchanged behaviour)', () => {
  const order = new Rng(deriveSeed(7, 1, 2)).shuffle(examples);
  const batches = epochBatches(examples, 32, 7, 2);
  assert.deepEqual(
    batches,
    Array.from({ length: Math.ceil(500 / 32) }, (_, b) => padBatch(order.slice(b * 32, b * 32 + 32))),
  );
});

test('bucketing: every example once, deterministic from (seed, epoch), less padding', () => {
  const a = epochBatches(examples, 32, 7, 2, { bucketing: true, poolBatches: 8 });
  const rows = a.flatMap((b) =>
    Array.from(
      { length: b.batchSize },
      (_, r) =>
        `${b.imageIds[r]}:${[...b.tokens.slice(r * b.width, (r + 1) * b.width)].filter((t) => t !== 0).join(',')}`,
    ),
  );
  assert.deepEqual(rows.sort(), examples.map(key).sort());
  assert.deepEqual(
    epochBatches(examples, 32, 7, 2, { bucketing: true, poolBatches: 8 }),
    a,
    'a resumed run sees the same batches',
  );
  assert.notDeepEqual(
    epochBatches(examples, 32, 7, 3, { bucketing: true, poolBatches: 8 }),
    a,
    'another epoch, another order',
  );
  const plain = paddingFraction(epochBatches(examples, 32, 7, 2));
  const bucketed = paddingFraction(a);
  assert.ok(bucketed < plain / 2, `padding ${bucketed.toFixed(3)} with bucketing vs ${plain.toFixed(3)} without`);
});

test('readManifest checks shard fields against the shard index', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'captioner-manifest-'));
  try {
    const image = { id: 'a', file: 'a.png', split: 'train', captions: ['x'], shard: 0, slot: 3 };
    const write = (m: object) =>
      writeFile(
        join(dir, 'manifest.json'),
        JSON.stringify({ format: 'captioner-dataset', version: 1, name: 't', source: 't', ...m }),
      );
    await write({ images: [image], shards: { imageSize: 8, imagesPerShard: 4, files: ['shards/0000.bin'] } });
    assert.deepEqual((await readManifest(dir)).shards, { imageSize: 8, imagesPerShard: 4, files: ['shards/0000.bin'] });
    await write({
      images: [{ ...image, slot: 4 }],
      shards: { imageSize: 8, imagesPerShard: 4, files: ['shards/0000.bin'] },
    });
    await assert.rejects(readManifest(dir), /images\[0\] \(id a\): "shard"\/"slot" must index/);
    await write({ images: [image] });
    await assert.rejects(readManifest(dir), /"shard"\/"slot" must index the manifest's "shards" \(absent\)/);
    await write({ images: [image], shards: { imageSize: 0, imagesPerShard: 4, files: [] } });
    await assert.rejects(readManifest(dir), /"shards" must be/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
