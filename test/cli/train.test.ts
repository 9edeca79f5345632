/** `captioner train` end to end, as a user runs it. */
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { STD_CONFIG_FILE, readStdConfig } from '../../bench/std-config.ts';
import { kebab } from '../../cli/options.ts';
import { loadCheckpoint, disposeCheckpoint, readCheckpointConfig } from '../../model/io/checkpoint.ts';
import { TRAIN_GROUPS, TRAIN_SPEC } from '../../model/train/config.ts';
import { runCli, startCli } from '../helpers/cli.ts';
import { makeTinyDataset } from '../helpers/tiny-data.ts';

let data: string;
let work: string;
const TINY = [
  '--image-size',
  '16',
  '--encoder-channels',
  '8,16',
  '--feature-size',
  '32',
  '--embedding-size',
  '16',
  '--hidden-size',
  '32',
  '--min-word-count',
  '1',
  '--max-length',
  '6',
  '--batch-size',
  '3',
];

before(async () => {
  data = (await makeTinyDataset()).dir;
  work = await mkdtemp(join(tmpdir(), 'captioner-cli-'));
});
after(async () => {
  await rm(data, { recursive: true, force: true });
  await rm(work, { recursive: true, force: true });
});

test('--help lists the verbs, and every training setting once, in groups with what matters first', async () => {
  const top = await runCli(['--help']);
  assert.equal(top.code, 0);
  assert.match(top.stdout, /captioner train/);
  const help = await runCli(['train', '--help']);
  assert.equal(help.code, 0);
  // Each "Title:" line starts a group; the flags listed under it are its members.
  const groups = new Map<string, string[]>();
  let current: string[] | null = null;
  for (const line of help.stdout.split('\n')) {
    if (/^\S.*:$/.test(line)) groups.set(line.slice(0, -1), (current = []));
    const flag = /^\s+(?:-\w, )?--([\w-]+)/.exec(line);
    if (flag && current) current.push(flag[1]!);
  }
  assert.deepEqual(
    [...groups.keys()].slice(0, 9),
    [...TRAIN_GROUPS.map((g) => g.title as string), 'Options'],
    'the groups in order, then the general options',
  );
  assert.deepEqual(groups.get('Run')?.slice(0, 3), ['config', 'data', 'out'], 'the first screen starts with these');
  const listed = [...groups.values()].flat();
  for (const [key, field] of Object.entries(TRAIN_SPEC)) {
    const flag = kebab(key);
    assert.equal(listed.filter((f) => f === flag).length, 1, `--${flag} listed once`);
    const title = TRAIN_GROUPS.find((g) => g.key === field.group)!.title;
    assert.ok(groups.get(title)!.includes(flag), `--${flag} under "${title}"`);
  }
  for (const [flag, title] of [
    ['hidden-size', 'Model (fixed by the checkpoint on --resume and --init-from)'],
    ['clip-norm', 'Optimisation'],
    ['sampling-schedule', 'Scheduled sampling (Bengio et al. 2015)'],
    ['label-smoothing', 'Regularisation'],
    ['bucketing', 'Data'],
    ['checkpoint-every', 'Checkpoints and logging'],
    ['sampling-within-slots', 'Experimental'],
  ] as const)
    assert.ok(groups.get(title)!.includes(flag), `--${flag} under "${title}"`);
});

test('--config configs/std.json trains the standard configuration, flags overriding the recipe', async () => {
  const out = join(work, 'std');
  const flags = { data, out, maxSteps: 1, valSamples: 0 };
  const run = await runCli([
    'train',
    '--config',
    STD_CONFIG_FILE,
    '--data',
    data,
    '--out',
    out,
    '--max-steps',
    '1',
    '--val-samples',
    '0',
    '--json',
  ]);
  assert.equal(run.code, 0, run.stderr);
  assert.equal((JSON.parse(run.stdout) as { steps: number }).steps, 1);
  const { config } = await readCheckpointConfig(out, 'latest');
  const recipe = (await readStdConfig()).train;
  assert.deepEqual(config.train, { ...recipe, ...flags }, 'the checkpoint saves the recipe with the flags on top');
  assert.equal(config.model.hiddenSize, 512);
});

test('the lab recipe with --cell irnn --decoder-input none --log-gradient-flow: saved, logged, and drawn by eval', async () => {
  const out = join(work, 'lab');
  const run = await runCli([
    'train',
    '--config',
    join(import.meta.dirname, '../../configs/lab/small.json'),
    ...TINY,
    '--cell',
    'irnn',
    '--decoder-input',
    'none',
    '--log-gradient-flow',
    '2',
    '--max-steps',
    '3',
    '--data',
    data,
    '--out',
    out,
    '--json',
  ]);
  assert.equal(run.code, 0, run.stderr);
  const { config } = await readCheckpointConfig(out, 'latest');
  assert.deepEqual([config.model.cell, config.model.decoderInput, config.train?.logGradientFlow], ['irnn', 'none', 2]);
  const flow = (await readFile(join(out, 'metrics.jsonl'), 'utf8'))
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as { type: string; step: number })
    .filter((r) => r.type === 'gradient-flow');
  assert.deepEqual(
    flow.map((r) => r.step),
    [0, 2, 3],
  );
  const evaluated = await runCli([
    'eval',
    '--model',
    out,
    '--data',
    data,
    '--split',
    'val',
    '--beam',
    '1',
    '--out',
    join(out, 'eval'),
  ]);
  assert.equal(evaluated.code, 0, evaluated.stderr);
  const report = await readFile(join(out, 'eval', 'report.html'), 'utf8');
  assert.ok(
    report.includes('Gradient of the last word&#39;s loss at earlier states'),
    'the report draws gradient flow',
  );
});

test('bad usage exits 2, unreadable data exits 3, a missing backend exits 4, each with a message naming the problem', async () => {
  const noCommand = await runCli([]);
  assert.equal(noCommand.code, 2);
  const unknown = await runCli(['train', '--data', data, '--out', join(work, 'x'), '--hiden-size', '3']);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /Unknown arguments?: hiden-size/);
  const badType = await runCli(['train', '--data', data, '--out', join(work, 'x'), '--hidden-size', 'many']);
  assert.equal(badType.code, 2);
  assert.match(badType.stderr, /"hiddenSize" must be a finite number, got NaN/);
  const cfg = join(work, 'bad.json');
  await writeFile(cfg, JSON.stringify({ hiddenSize: 8, dropout: 0.5 }));
  const badFile = await runCli(['train', '--data', data, '--out', join(work, 'x'), '--config', cfg]);
  assert.equal(badFile.code, 2);
  assert.match(badFile.stderr, /bad\.json: unknown setting "dropout"/);
  const noData = await runCli(['train', '--data', join(work, 'nowhere'), '--out', join(work, 'x')]);
  assert.equal(noData.code, 3);
  assert.match(noData.stderr, /nowhere\/manifest\.json: no manifest/);
  const backend = await runCli(['train', '--data', data, '--out', join(work, 'x'), '--backend', 'node']);
  assert.equal(backend.code, 4);
  assert.match(backend.stderr, /backend "node" is not available: @tensorflow\/tfjs-node/);
});

test('train → refuse to overwrite → resume with more epochs → refuse an architecture change', async () => {
  const out = join(work, 'model');
  const first = await runCli(['train', '--data', data, '--out', out, ...TINY, '--epochs', '2', '--json']);
  assert.equal(first.code, 0, first.stderr);
  const result = JSON.parse(first.stdout) as { steps: number; epochs: number };
  assert.deepEqual([result.steps, result.epochs], [4, 2]);
  assert.match(first.stderr, /backend: \w+/);
  assert.match(first.stderr, /epoch 2: train loss [\d.]+, val loss [\d.]+/);

  const metrics = (await readFile(join(out, 'metrics.jsonl'), 'utf8'))
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  const epochs = metrics.filter((m) => m.type === 'epoch');
  assert.equal(epochs.length, 2);
  for (const key of ['valLoss', 'valPerplexity', 'samples', 'trainLoss'])
    assert.ok(key in epochs[0]!, `epoch record has ${key}`);
  const steps = metrics.filter((m) => m.type === 'step');
  for (const key of ['loss', 'perplexity', 'epsilon', 'gradNorm', 'learningRate', 'tokensPerSecond'])
    assert.equal(typeof steps[0]![key], 'number', key);

  const again = await runCli(['train', '--data', data, '--out', out, ...TINY, '--epochs', '2']);
  assert.equal(again.code, 2);
  assert.match(again.stderr, /already holds a model; pass --resume/);

  const resumed = await runCli(['train', '--data', data, '--out', out, '--resume', '--epochs', '3', '--json']);
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.equal((JSON.parse(resumed.stdout) as { steps: number }).steps, 6);
  assert.match(resumed.stderr, /resuming .*ckpt-000004 at step 4/);

  const changed = await runCli(['train', '--data', data, '--out', out, '--resume', '--hidden-size', '64']);
  assert.equal(changed.code, 2);
  assert.match(changed.stderr, /"hiddenSize" is 32 in the checkpoint; the architecture cannot change on resume/);
});

test('--stream on streams the training pixels, says so, and reports the time spent waiting for them', async () => {
  const out = join(work, 'streamed');
  const run = await runCli([
    'train',
    '--data',
    data,
    '--out',
    out,
    ...TINY,
    '--epochs',
    '2',
    '--stream',
    'on',
    '--stream-window',
    '1',
    '--json',
  ]);
  assert.equal(run.code, 0, run.stderr);
  assert.match(
    run.stderr,
    /images: streaming 6 images from 1 chunks of image files decoded at 16×16: .*windows of 1 of 1 chunks.* \(--stream on\); val: 2 images decoded from their files at 16×16, in memory/,
  );
  assert.match(
    run.stderr,
    /data: waited [\d.]+ s for batch pixels \(of it waiting on reads: [\d.]+ s for the first window, [\d.]+ s later; 2 chunks read, at most 1 resident\)/,
  );
  const result = JSON.parse(run.stdout) as { steps: number; dataWaitSeconds: number };
  assert.equal(result.steps, 4);
  assert.ok(result.dataWaitSeconds >= 0);
});

test('Ctrl-C saves a checkpoint after the current step and exits 130; --resume continues from it', async () => {
  const out = join(work, 'interrupted');
  const run = startCli(['train', '--data', data, '--out', out, ...TINY, '--epochs', '500', '--validate-every', '100']);
  await new Promise<void>((resolve) => {
    const t = setInterval(() => {
      if (/training/.test(run.stderrSoFar())) {
        clearInterval(t);
        resolve();
      }
    }, 50);
  });
  run.child.kill('SIGINT');
  const r = await run.done;
  assert.equal(r.code, 130, r.stderr);
  assert.match(r.stderr, /interrupted: saving a checkpoint/);
  const ckpt = await loadCheckpoint(out, 'latest');
  const step = ckpt.training!.state.step;
  assert.ok(step > 0 && step < 1000);
  disposeCheckpoint(ckpt);
  const resumed = await runCli([
    'train',
    '--data',
    data,
    '--out',
    out,
    '--resume',
    '--max-steps',
    String(step + 2),
    '--json',
  ]);
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.equal((JSON.parse(resumed.stdout) as { steps: number }).steps, step + 2);
});
