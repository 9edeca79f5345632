/**
 * A run checkpointed by the code before the fused kernels (test/fixtures/pre-fusion-checkpoint,
 * made by its make.ts with commit 60a5ff7) resumes with today's code and gives what the old
 * code gave: the same loss at every step after the checkpoint and the same weights at the end,
 * with the native kernels on (the fused path) and with CAPTIONER_NATIVE=0 (the TF.js ops).
 */
import assert from 'node:assert/strict';
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { disposeCheckpoint, loadCheckpoint } from '../../../model/io/checkpoint.ts';
import { nativeCallCounts } from '../../../model/runtime/native.ts';
import { train } from '../../../model/train/trainer.ts';
import { runCli } from '../../helpers/cli.ts';
import { setupBackend } from '../../helpers/tf.ts';
import { TINY_TRAINING, tinyConfig } from '../../helpers/tiny-model.ts';

await setupBackend();
const FIXTURE = join(import.meta.dirname, '../../fixtures/pre-fusion-checkpoint');
const DATA = join(FIXTURE, 'data');
const SETTINGS = JSON.parse(await readFile(join(FIXTURE, 'settings.json'), 'utf8')) as Record<string, unknown>;
const cleanup: string[] = [];
after(async () => {
  for (const dir of cleanup) await rm(dir, { recursive: true, force: true });
});

/** Step → loss of a metrics.jsonl. */
async function stepLosses(file: string): Promise<Map<number, number>> {
  const out = new Map<number, number>();
  for (const line of (await readFile(file, 'utf8')).trim().split('\n')) {
    const r = JSON.parse(line) as { type: string; step: number; loss: number };
    if (r.type === 'step') out.set(r.step, r.loss);
  }
  return out;
}

/** A copy of the fixture's run, checkpointed at step 4, to resume. */
async function copyOfRun(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'captioner-resume-'));
  cleanup.push(dir);
  await cp(join(FIXTURE, 'model'), dir, { recursive: true });
  return dir;
}

/** Asserts the resumed run in `dir` logged the old code's losses for steps 5–8 and ended on its weights. */
async function assertMatchesOldCode(dir: string, label: string): Promise<void> {
  const expected = await stepLosses(join(FIXTURE, 'expected/metrics.jsonl'));
  const got = await stepLosses(join(dir, 'metrics.jsonl'));
  assert.deepEqual([...got.keys()], [1, 2, 3, 4, 5, 6, 7, 8], `${label}: every step logged once`);
  for (const step of [5, 6, 7, 8]) {
    const [a, b] = [expected.get(step)!, got.get(step)!];
    assert.ok(Math.abs(a - b) <= 1e-5 * Math.abs(a), `${label}: step ${step} loss ${b}, the old code's ${a}`);
  }
  const old = await loadCheckpoint(join(FIXTURE, 'expected'), 'latest');
  const now = await loadCheckpoint(dir, 'latest');
  assert.equal(now.training?.state.step, 8);
  for (const [name, t] of Object.entries(old.weights)) {
    const x = t.dataSync();
    const y = now.weights[name]!.dataSync();
    let worst = 0;
    for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(x[i]! - y[i]!));
    assert.ok(worst < 1e-5, `${label}: weight ${name} differs from the old code's by ${worst}`);
  }
  disposeCheckpoint(old);
  disposeCheckpoint(now);
}

test('a checkpoint written before the fused kernels resumes on them and matches the old code step for step', async () => {
  const dir = await copyOfRun();
  nativeCallCounts(true);
  await train(await tinyConfig(DATA, { ...SETTINGS, out: dir, maxSteps: 8, resume: true }));
  const calls = nativeCallCounts(true);
  for (const kernel of ['CaptionerLstmSequence', 'CaptionerConvReluMaxPool', 'CaptionerSoftmaxCrossEntropy'])
    assert.ok((calls[kernel] ?? 0) > 0, `${kernel} did not run: ${JSON.stringify(calls)}`);
  await assertMatchesOldCode(dir, 'native');
});

test('with CAPTIONER_NATIVE=0 the same checkpoint resumes on the TF.js ops and matches too', async () => {
  const dir = await copyOfRun();
  const config = join(dir, 'resume.json');
  await writeFile(
    config,
    JSON.stringify({ ...TINY_TRAINING, ...SETTINGS, data: DATA, out: dir, maxSteps: 8, resume: true }),
  );
  const run = await runCli(['train', '--config', config], { CAPTIONER_NATIVE: '0' });
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stderr, /native kernels: off: turned off by CAPTIONER_NATIVE=0/);
  await assertMatchesOldCode(dir, 'CAPTIONER_NATIVE=0');
});
