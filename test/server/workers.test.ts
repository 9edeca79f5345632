/** The worker pool does not swallow a failed restart: it says why on the server's log. */
import assert from 'node:assert/strict';
import { cp, rm } from 'node:fs/promises';
import type { Worker } from 'node:worker_threads';
import { after, before, test } from 'node:test';
import { WorkerPool } from '../../server/workers.ts';
import { trainServerModel, waitFor, type TrainedModel } from './helpers.ts';

let model: TrainedModel;
before(async () => {
  model = await trainServerModel(4);
});
after(async () => {
  await model?.cleanup();
});

test('pool: a worker that dies and cannot be restarted is reported on the log, not dropped in silence', async () => {
  const modelDir = `${model.modelDir}-moved`;
  await cp(model.modelDir, modelDir, { recursive: true });
  const lines: string[] = [];
  const pool = await WorkerPool.start({
    modelDir,
    workers: 1,
    maxQueue: 1,
    timeoutMs: 30_000,
    log: (l) => lines.push(l),
  });
  try {
    await rm(modelDir, { recursive: true, force: true }); // the replacement cannot load the model
    const { slots } = pool as unknown as { slots: { worker: Worker }[] };
    await slots[0]!.worker.terminate();
    await waitFor(() => lines.length > 0, 30_000, 'the restart to fail');
    assert.equal(pool.stats().restarts, 1);
    assert.match(lines[0]!, /^error: a caption worker could not be restarted: .*-moved/);
  } finally {
    await pool.close();
    await rm(modelDir, { recursive: true, force: true });
  }
});
