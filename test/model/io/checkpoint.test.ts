/** Checkpoints: a save → load round trip, and atomicity under a kill at any moment. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type * as TF from '@tensorflow/tfjs';
import { Captioner, MODEL_DEFAULTS } from '../../../model/nn/captioner.ts';
import { CheckpointError, disposeCheckpoint, loadCheckpoint, saveCheckpoint } from '../../../model/io/checkpoint.ts';
import { loadModel } from '../../../model/io/load.ts';
import { Adam } from '../../../model/train/optim.ts';
import { Vocabulary } from '../../../model/text/vocab.ts';
import { TINY_MODEL } from '../../helpers/tiny-model.ts';
import { setupBackend } from '../../helpers/tf.ts';

const tf = await setupBackend();

test('save → load round trip: config, vocabulary, weights, optimiser state, training state', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'captioner-ckpt-'));
  const vocab = Vocabulary.build(['a red circle', 'a blue square'], 1);
  const config = { ...MODEL_DEFAULTS, ...TINY_MODEL, cell: 'gru' as const };
  const model = await Captioner.create(config, vocab, 42);
  const adam = new Adam();
  const named = model.namedWeights();
  adam.apply(named, Object.fromEntries(Object.entries(named).map(([n, v]) => [n, tf.onesLike(v)])), 0.01);
  const state = { step: 7, epoch: 2, batchInEpoch: 1, seed: 9, bestMetric: 1.5, samplingProbability: 0.8 };
  await saveCheckpoint(
    dir,
    {
      config: { model: config, train: { epochs: 3 }, versions: { captioner: 'x', tfjs: tf.version.tfjs } },
      vocab,
      weights: named,
      backboneTopology: null,
      training: { state, optimizer: adam.stateTensors(), optimizerStep: adam.step },
    },
    true,
  );
  const back = await loadCheckpoint(dir, 'latest');
  assert.deepEqual(back.config.model, config);
  assert.deepEqual(back.vocab.words, vocab.words);
  assert.deepEqual(back.training?.state, state);
  assert.equal(back.training?.optimizerStep, 1);
  for (const [name, v] of Object.entries(named)) assert.deepEqual(back.weights[name]!.dataSync(), v.dataSync(), name);
  for (const [name, t] of Object.entries(adam.stateTensors()))
    assert.deepEqual(back.training!.optimizer[name]!.dataSync(), t.dataSync(), name);
  disposeCheckpoint(back);

  // A restored model computes exactly what the saved one did.
  const { model: restored } = await loadModel(dir);
  const images = tf.randomUniform([2, 16, 16, 3], 0, 1, 'float32', 1) as TF.Tensor4D;
  assert.deepEqual(restored.encode(images).dataSync(), model.encode(images).dataSync());
  tf.dispose(images);
  restored.dispose();
  model.dispose();
  adam.dispose();
  await rm(dir, { recursive: true });
});

test('loading names what is wrong: no model, a truncated weights file, a corrupt pointer', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'captioner-ckpt-'));
  await assert.rejects(
    loadCheckpoint(dir, 'best'),
    (e: unknown) => e instanceof CheckpointError && e.message.includes('not a model directory'),
  );
  const vocab = Vocabulary.build(['a b'], 1);
  const model = await Captioner.create({ ...MODEL_DEFAULTS, ...TINY_MODEL }, vocab, 1);
  const name = await saveCheckpoint(
    dir,
    {
      config: { model: model.config, versions: { captioner: 'x', tfjs: 'y' } },
      vocab,
      weights: model.namedWeights(),
      backboneTopology: null,
    },
    false,
  );
  await writeFile(join(dir, name, 'weights.bin'), Buffer.alloc(10));
  await assert.rejects(loadCheckpoint(dir, 'best'), /weights\.bin: 10 bytes, the manifest describes \d+/);
  await writeFile(join(dir, 'checkpoint.json'), '{"latest": ');
  await assert.rejects(loadCheckpoint(dir, 'best'), /checkpoint\.json: invalid JSON/);
  model.dispose();
  await rm(dir, { recursive: true });
});

test('atomicity: a save killed at any moment leaves the last good checkpoint loadable', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'captioner-kill-'));
  let lastSeen = 0;
  for (let round = 0; round < 6; round++) {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', join(import.meta.dirname, '../../helpers/save-loop.ts'), dir],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let printed = '';
    child.stdout.on('data', (d: Buffer) => (printed += d.toString()));
    // Wait for at least one completed save, then kill at a moment that varies from round to round.
    await new Promise<void>((resolve) => {
      const check = setInterval(() => {
        if (printed.includes('\n')) {
          clearInterval(check);
          setTimeout(resolve, 37 * round + 5);
        }
      }, 5);
    });
    child.kill('SIGKILL');
    await new Promise((r) => child.on('exit', r));
    const saved = printed.trim().split('\n').map(Number);
    const ckpt = await loadCheckpoint(dir, 'latest');
    const step = ckpt.training!.state.step;
    // The checkpoint is one whole save: every weight holds its step, and it is at least the last announced one.
    assert.ok(step >= saved.at(-1)!, `loaded step ${step}, but step ${saved.at(-1)} had been saved`);
    const big = ckpt.weights.big!.dataSync();
    assert.ok(
      big[0] === step && big[big.length - 1] === step,
      `weights of step ${big[0]}…${big[big.length - 1]} with state of step ${step}`,
    );
    assert.equal(ckpt.weights.small!.dataSync()[9], step);
    disposeCheckpoint(ckpt);
    const pointer = JSON.parse(await readFile(join(dir, 'checkpoint.json'), 'utf8')) as { best: string | null };
    if (pointer.best) {
      const best = await loadCheckpoint(dir, 'best');
      assert.equal(best.training!.state.step % 3, 0, 'best points at a checkpoint saved as best');
      disposeCheckpoint(best);
    }
    lastSeen = step;
  }
  assert.ok(lastSeen > 0);
  // Old checkpoints are cleaned up: at most latest and best (plus a half-written one from the kill).
  const ckpts = (await readdir(dir)).filter((e) => e.startsWith('ckpt-'));
  assert.ok(ckpts.length <= 3, `left ${ckpts.join(', ')}`);
  await rm(dir, { recursive: true });
});
