/**
 * The experiment runner (`captioner experiment`): a smoke run of a 2-arm experiment writes
 * results.json and a self-contained report; an experiment killed with SIGKILL mid-run resumes
 * without redoing finished runs; a bad experiment file is refused naming the field; the figures
 * are the logs' and the statistics are right.
 */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { generateShapes } from '../../data-scripts/shapes/generate.ts';
import { parseExperiment } from '../../experiment/spec.ts';
import { exposureFigures, parameterCounts, summarise, trainingFigures } from '../../experiment/figures.ts';
import { runExperiment } from '../../experiment/run.ts';
import { writeExperimentResults, type ExperimentResults } from '../../experiment/results.ts';
import type { MetricsRecord } from '../../model/io/metrics-log.ts';
import { exitCodeFor } from '../../cli/errors.ts';
import { runCli, startCli } from '../helpers/cli.ts';
import { setupBackend } from '../helpers/tf.ts';

const root = await mkdtemp(join(tmpdir(), 'captioner-experiment-'));
const data = join(root, 'data');
after(() => rm(root, { recursive: true, force: true }));

/** A model small enough that 20 steps take a fraction of a second. */
const TINY = {
  imageSize: 16,
  encoderChannels: [4, 8],
  featureSize: 8,
  embeddingSize: 8,
  hiddenSize: 16,
  maxLength: 12,
  minWordCount: 1,
  batchSize: 8,
  epochs: 50,
  logEvery: 5,
  logGradientFlow: 10,
  checkpointEvery: 5,
  valSamples: 0,
  samplingSchedule: 'constant',
  samplingK: 1,
};

async function experimentFile(name: string, json: unknown): Promise<string> {
  const file = join(root, `${name}.json`);
  await writeFile(file, JSON.stringify(json));
  return file;
}

before(async () => {
  await setupBackend();
  await generateShapes({ out: data, count: 24, size: 16, seed: 4, concurrency: 2 });
});

const withoutTimes = (r: ExperimentResults) => ({
  ...r,
  generatedAt: null,
  machine: null,
  runs: r.runs.map((run) => ({ ...run, figures: { ...run.figures, trainSeconds: null } })),
});

test('smoke run: --seeds 1 --max-steps 20 of a 2-arm experiment writes results.json and a self-contained report', async () => {
  const file = await experimentFile('smoke', {
    name: 'smoke',
    description: 'two cells',
    base: { ...TINY, maxSteps: 400 },
    arms: { lstm: { cell: 'lstm' }, gru: { cell: 'gru' } },
  });
  const out = join(root, 'smoke-out');
  const r = await runCli([
    'experiment',
    'run',
    file,
    '--data',
    data,
    '--out',
    out,
    '--seeds',
    '1',
    '--max-steps',
    '20',
    '--json',
  ]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal((JSON.parse(r.stdout) as { complete: boolean }).complete, true);
  assert.match(r.stderr, /\[1\/2\] lstm, seed 1: training/);
  assert.match(r.stderr, /\[2\/2\] gru, seed 1: evaluating on "test"/);
  const results = JSON.parse(await readFile(join(out, 'results.json'), 'utf8')) as ExperimentResults;
  assert.equal(results.complete, true);
  assert.deepEqual(
    results.runs.map((run) => [run.arm, run.seed, run.status, run.figures.steps]),
    [
      ['lstm', 1, 'done', 20],
      ['gru', 1, 'done', 20],
    ],
  );
  for (const run of results.runs) {
    assert.equal(typeof run.figures.exactMatch, 'number');
    assert.equal(typeof run.figures.finalValLoss, 'number');
    assert.ok(run.figures.positions!.length >= 1);
  }
  // The LSTM has four blocks of weights and the GRU three, each H·(I + H + 1) here.
  const cells = results.runs.map((run) => run.figures.cellParameters!);
  assert.equal(cells[0]! / cells[1]!, 4 / 3);
  assert.deepEqual(Object.keys(results.arms), ['lstm', 'gru']);
  assert.deepEqual(results.arms.lstm!.figures.steps, { mean: 20, sd: null, n: 1 });
  assert.match(results.command, /--seeds 1 --max-steps 20/);
  const html = await readFile(join(out, 'report.html'), 'utf8');
  for (const text of ['lstm', 'gru', 'Training loss per token', 'end of training', 'Objects named right, by position'])
    assert.ok(html.includes(text), text);
  assert.doesNotMatch(html, /<script|src="http|href="http/);
  assert.doesNotMatch(html, /Incomplete/);
  // `experiment report` rebuilds the same results from the runs on disk.
  const rebuilt = await writeExperimentResults(out);
  assert.deepEqual(withoutTimes(rebuilt.results), withoutTimes(results));
});

test('an experiment killed with SIGKILL mid-run resumes: finished runs are not redone, the cut one resumes from its checkpoint', async () => {
  const file = await experimentFile('kill', {
    name: 'kill',
    base: { ...TINY, maxSteps: 120 },
    arms: { first: { cell: 'rnn' }, second: { cell: 'gru' } },
    seeds: 1,
  });
  const out = join(root, 'kill-out');
  const firstDone = join(out, 'runs/first/seed-1/train.json');
  const secondLog = join(out, 'runs/second/seed-1/model/metrics.jsonl');
  const { child, done } = startCli(['experiment', 'run', file, '--data', data, '--out', out]);
  const loggedSteps = async (path: string) =>
    ((await readFile(path, 'utf8').catch(() => '')) as string)
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as MetricsRecord)
      .filter((rec) => rec.type === 'step')
      .map((rec) => rec.step!);
  // Kill once the first run has finished and the second has checkpointed (every 5 steps) mid-way.
  for (;;) {
    const finished = await stat(firstDone).then(
      () => true,
      () => false,
    );
    const steps = await loggedSteps(secondLog);
    if (finished && steps.some((s) => s >= 15)) break;
    assert.equal(child.exitCode, null, 'the experiment ended before it could be killed');
    await new Promise((ok) => setTimeout(ok, 50));
  }
  child.kill('SIGKILL');
  const killed = await done;
  assert.equal(killed.signal, 'SIGKILL');
  const firstBefore = await readFile(firstDone, 'utf8');
  await assert.rejects(stat(join(out, 'runs/second/seed-1/train.json')), 'the cut run is not marked done');

  const outcome = await runExperiment({ experiment: file, data, out });
  assert.equal(outcome.complete, true);
  assert.equal(await readFile(firstDone, 'utf8'), firstBefore, 'the finished run was not redone');
  const firstLog = await readFile(join(out, 'runs/first/seed-1/train.log'), 'utf8');
  assert.equal(firstLog.match(/ config: /g)?.length, 1, 'the finished run trained once');
  const second = JSON.parse(await readFile(join(out, 'runs/second/seed-1/train.json'), 'utf8')) as { resumed: boolean };
  assert.equal(second.resumed, true);
  const steps = await loggedSteps(secondLog);
  assert.deepEqual(
    steps,
    [...new Set(steps)].sort((a, b) => a - b),
    'no step logged twice',
  );
  assert.equal(steps.at(-1), 120);
  const results = JSON.parse(await readFile(join(out, 'results.json'), 'utf8')) as ExperimentResults;
  assert.deepEqual(
    results.runs.map((r) => [r.arm, r.status, r.figures.steps]),
    [
      ['first', 'done', 120],
      ['second', 'done', 120],
    ],
  );
});

test('an arm of phases (SCST after teacher forcing) trains both phases; eval.exposure puts the exposure gap into results and report', async () => {
  const file = await experimentFile('phases', {
    name: 'phases',
    base: { ...TINY, maxSteps: 400 },
    arms: {
      'then-scst': {
        phases: [
          { name: 'teacher-forced', maxSteps: 300 },
          { name: 'scst', objective: 'scst', learningRate: 5e-5, maxSteps: 300 },
        ],
      },
    },
    seeds: 1,
    eval: { exposure: true, limit: 4 },
  });
  const out = join(root, 'phases-out');
  const outcome = await runExperiment({ experiment: file, data, out, maxSteps: 4 });
  assert.deepEqual(outcome.failed, []);
  const recipe = JSON.parse(await readFile(join(out, 'runs/then-scst/seed-1/recipe.json'), 'utf8')) as {
    phases: { maxSteps: number }[];
  };
  assert.deepEqual(
    recipe.phases.map((p) => p.maxSteps),
    [4, 4],
    '--max-steps cuts every phase',
  );
  const state = JSON.parse(await readFile(join(out, 'runs/then-scst/seed-1/model/phases.json'), 'utf8')) as {
    phases: { name: string; done: boolean; steps: number }[];
  };
  assert.deepEqual(
    state.phases.map((p) => [p.name, p.done, p.steps]),
    [
      ['teacher-forced', true, 4],
      ['scst', true, 4],
    ],
  );
  const scstLog = await readFile(join(out, 'runs/then-scst/seed-1/model/metrics.jsonl'), 'utf8');
  assert.match(scstLog, /"objective":"scst"/, 'the second phase trained by SCST');
  const results = JSON.parse(await readFile(join(out, 'results.json'), 'utf8')) as ExperimentResults;
  const [phased] = results.runs;
  assert.equal(phased!.figures.steps, 8, 'the phases one after another');
  for (const run of results.runs) {
    const f = run.figures;
    for (const key of ['teacherForcedLoss', 'freeRunningLoss', 'teacherForcedAccuracy', 'freeRunningAccuracy'] as const)
      assert.equal(typeof f[key], 'number', `${run.arm}: ${key}`);
    assert.ok(f.exposureGap!.length >= 2, `${run.arm}: a gap per position`);
    assert.ok(Math.abs(f.exposureGap![0]!) < 1e-5, 'position 1 reads <start> either way: no gap');
  }
  assert.ok(results.arms['then-scst']!.exposureGap!.length >= 2);
  const html = await readFile(join(out, 'report.html'), 'utf8');
  for (const text of ['then-scst', 'Exposure gap', 'loss / token, free-running']) assert.ok(html.includes(text), text);
});

test('exposure figures: the gap per position is free-running minus teacher-forced, recovery weighted by trials', () => {
  const at = (position: number, loss: number, accuracy: number) => ({ position, tokens: 10, loss, accuracy });
  const f = exposureFigures({
    images: 10,
    teacherForced: [at(1, 1, 0.5), at(2, 0.5, 0.9), at(3, 0.25, 1)],
    freeRunning: [at(1, 1, 0.5), at(2, 1.5, 0.6), at(3, 2.25, 0.4)],
    overall: { teacherForced: { loss: 0.6, accuracy: 0.8 }, freeRunning: { loss: 1.6, accuracy: 0.5 } },
    recovery: {
      exactImages: 4,
      positions: [
        { position: 1, captions: 4, parsable: 1, exact: 0.5 },
        { position: 2, captions: 1, parsable: 1, exact: 1 },
      ],
    },
  });
  assert.deepEqual(f.exposureGap, [0, 1, 2]);
  assert.deepEqual(f.recoveryByPosition, [0.5, 1]);
  assert.equal(f.recovery, (4 * 0.5 + 1 * 1) / 5);
  assert.equal(f.freeRunningLoss, 1.6);
  assert.equal(f.teacherForcedAccuracy, 0.8);
  assert.deepEqual(exposureFigures(undefined), {}, 'no exposure measured: no figures');
});

test('a bad experiment file is refused before anything runs, naming the file and the field', async () => {
  const file = await experimentFile('bad', { name: 'bad', base: TINY, arms: { fast: { learningRat: 0.1 } } });
  const out = join(root, 'bad-out');
  const err = await runExperiment({ experiment: file, data, out }).catch((e: unknown) => e);
  assert.match(String(err), /bad\.json: arms\.fast: unknown setting "learningRat"/);
  assert.equal(exitCodeFor(err), 2, 'the CLI exits 2 (bad configuration)');
  await assert.rejects(stat(out), 'nothing was written');
  const notExperiment = await writeExperimentResults(data).catch((e: unknown) => e);
  assert.match(String(notExperiment), /not an experiment directory \(no experiment\.json\)/);
  assert.equal(exitCodeFor(notExperiment), 3, '`experiment report` of another directory is bad input');

  const refusals: [unknown, RegExp][] = [
    [{ name: 'x', base: TINY, arms: { a: {} }, armz: {} }, /"armz" is not an experiment field/],
    [{ name: 'x', base: TINY, arms: {} }, /"arms" must be an object of named arms/],
    [{ name: 'x', base: TINY, arms: { a: { cell: 'elman' } } }, /arms\.a: "cell" must be one of/],
    [{ name: 'x', base: TINY, arms: { a: { seed: 3 } } }, /"arms\.a\.seed" is set by the runner/],
    [{ name: 'x', base: { ...TINY, out: 'm' }, arms: { a: {} } }, /"base\.out" is set by the runner/],
    [{ name: 'x', base: TINY, arms: { 'a/b': {} } }, /"arms\.a\/b" is not a usable name/],
    [{ name: 'x', base: TINY, arms: { a: {} }, seeds: 0 }, /"seeds" must be a positive integer/],
    [{ name: 'x', base: TINY, arms: { a: {} }, eval: { beam: 3 } }, /"eval\.beam" is not an eval setting/],
    [{ name: 'x', base: TINY, arms: { a: {} }, eval: { exposure: 1 } }, /"eval\.exposure" must be true or false/],
    [
      { name: 'x', base: TINY, arms: { a: { phases: [{ name: 'two', hiddenSize: 8 }] } } },
      /arms\.a: phases\[0\] \("two"\): "hiddenSize" is an architecture setting/,
    ],
    [
      { name: 'x', base: TINY, arms: { a: { phases: [{ name: 'two', learningRat: 1 }] } } },
      /arms\.a: phases\[0\] \("two"\).*"learningRat"/,
    ],
    [{ name: 'x', base: 'missing.json', arms: { a: {} } }, /missing\.json: cannot read the base recipe/],
    [{ base: TINY, arms: { a: {} } }, /"name" must be a non-empty string/],
  ];
  for (const [json, message] of refusals)
    await assert.rejects(parseExperiment(json, join(root, 'e.json')), message, JSON.stringify(json));
});

test('a run started with another recipe is refused rather than mixed with new results', async () => {
  const base = { ...TINY, maxSteps: 400 };
  const file = await experimentFile('change', { name: 'change', base, arms: { a: { cell: 'rnn' } }, seeds: 1 });
  const out = join(root, 'change-out');
  await runExperiment({ experiment: file, data, out, maxSteps: 5 });
  await assert.rejects(
    runExperiment({ experiment: file, data, out, maxSteps: 6 }),
    /runs\/a\/seed-1\/recipe\.json: the run was started with another recipe/,
  );
});

test('figures: mean ± sample sd; exploding steps, loss spikes, blow-ups and parameters read off the logs', () => {
  assert.deepEqual(summarise([1, 2, 3, null]), { mean: 2, sd: 1, n: 3 });
  assert.deepEqual(summarise([5]), { mean: 5, sd: null, n: 1 });
  assert.equal(summarise([null, NaN]), null);
  const log: MetricsRecord[] = [
    { type: 'step', step: 1, loss: 4, gradNorm: 1, paddingFraction: 0.2, tokensPerSecond: 100 },
    { type: 'step', step: 2, loss: 1, gradNorm: 2, paddingFraction: 0.4, tokensPerSecond: 300 },
    { type: 'step', step: 3, loss: 2.5, gradNorm: 50, paddingFraction: 0.3, tokensPerSecond: 200 },
    { type: 'epoch', step: 3, valLoss: 1.5 },
    { type: 'step', step: 4, loss: 1.5, gradNorm: 1.5, paddingFraction: 0.3, tokensPerSecond: 200 },
  ];
  const f = trainingFigures(log);
  assert.equal(f.steps, 4);
  assert.equal(f.finalTrainLoss, 1.5);
  assert.equal(f.finalValLoss, 1.5);
  assert.equal(f.gradNormMedian, 1.75);
  assert.equal(f.gradNormMax, 50);
  assert.equal(f.explodingSteps, 1); // 50 > 10 × 1.75
  assert.equal(f.lossSpikes, 1); // 2.5 > 2 × 1
  assert.ok(Math.abs(f.paddingFraction! - 0.3) < 1e-12);
  assert.equal(f.tokensPerSecond, 200);
  assert.equal(f.blewUp, 0); // the last losses' median 2 is below the first, 4
  // A loss that starts at 3.9, jumps to 10-32 and stays there blew up, though it never became NaN.
  const blown = [3.9, 3.5, ...Array.from({ length: 12 }, (_, i) => 10 + 2 * i)].map((loss, i): MetricsRecord => ({
    type: 'step',
    step: i + 1,
    loss,
    gradNorm: 1,
  }));
  assert.equal(trainingFigures(blown).blewUp, 1);
  // One high loss among the last ten is noise, not a blow-up.
  const noisy = [3.9, 2, 1.5, 1.6, 40].map((loss, i): MetricsRecord => ({
    type: 'step',
    step: i + 1,
    loss,
    gradNorm: 1,
  }));
  assert.equal(trainingFigures(noisy).blewUp, 0);
  const weights = {
    weightsManifest: [
      {
        weights: [
          { name: 'encoder/conv0/kernel', shape: [3, 3, 3, 4] },
          { name: 'decoder/cell/kernel', shape: [8, 64] },
          { name: 'decoder/cell/bias', shape: [64] },
        ],
      },
    ],
  };
  assert.deepEqual(parameterCounts(weights), { parameters: 108 + 512 + 64, cellParameters: 576 });
});
