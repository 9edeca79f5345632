/** The model page's reading of a model directory: one tick algorithm with the report, errors that surface. */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { formatTick, niceTicks } from '../../eval/charts.ts';
import { readTrainingStages } from '../../model/io/metrics-log.ts';
import { MODEL_DEFAULTS, type ModelConfig } from '../../model/nn/captioner.ts';
import {
  describeArchitecture,
  describeModel,
  layoutChart,
  readModelCard,
  showFigure,
  stageCharts,
} from '../../server/model-info.ts';
import { publicDescription } from '../../server/public-paths.ts';

test("the model page's chart ticks are the evaluation report's (one implementation)", () => {
  const points = [0, 0.7, 1.4, 2.1].map((x) => ({ x, y: x * x }));
  const chart = layoutChart('loss', [{ label: 'train', points }], 'step')!;
  // Steps of 0.5 over [0, 2.1], as eval/charts.ts chooses them (Heckbert's loose labelling gave 0, 1, 2).
  assert.deepEqual(
    chart.xTicks.map((t) => t.label),
    niceTicks(0, 2.1).map(formatTick),
  );
  assert.deepEqual(
    chart.xTicks.map((t) => t.label),
    ['0', '0.5', '1', '1.5', '2'],
  );
});

test('the model card: none without a README.md, an error when README.md cannot be read', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'captioner-card-'));
  try {
    assert.equal(await readModelCard(dir), null);
    await writeFile(join(dir, 'README.md'), '# Shapes\n\nIt knows **shapes**.\n');
    assert.deepEqual(await readModelCard(dir), { title: 'Shapes', summary: 'It knows shapes.' });
    await rm(join(dir, 'README.md'));
    await mkdir(join(dir, 'README.md'));
    await assert.rejects(readModelCard(dir), { code: 'EISDIR' });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('evaluation figures by readable names: rates as percentages, the scores as the literature prints them', () => {
  assert.deepEqual(showFigure('semantic.exactRate', 0.965027700831025), { name: 'exact match', value: '96.5%' });
  // A rate just short of 1 is not rounded up to a perfect score.
  assert.deepEqual(showFigure('semantic.exactRate', 0.9984), { name: 'exact match', value: '99.8%' });
  assert.deepEqual(showFigure('semantic.f1', 0.9930726645604475), { name: 'attribute F1', value: '0.993' });
  assert.deepEqual(showFigure('CIDEr-D', 4.695013930045862), { name: 'CIDEr-D', value: '4.70' });
  assert.deepEqual(showFigure('images', 2888), { name: 'images', value: '2,888' });
  // A figure the table does not know: its key in words, never the raw key.
  assert.deepEqual(showFigure('semantic.meanLength', 7.25), { name: 'semantic mean length', value: '7.25' });
});

test('the architecture in words: encoder, grid or pooled, the cell, attention or not', () => {
  const attention: ModelConfig = {
    ...MODEL_DEFAULTS,
    imageSize: 64,
    encoderChannels: [16, 32, 64, 64],
    featureSize: 128,
    encoderPooling: 'grid',
    featureInput: 'attention',
    cell: 'lstm',
    hiddenSize: 256,
  };
  const words = describeArchitecture(attention, 48, 16, null);
  assert.match(words, /^A CNN of 4 convolution blocks \(16-32-64-64 channels\) reads a 64×64 image into a 4×4 grid/);
  assert.match(words, /An LSTM decoder of 256 units, attending over the grid/);
  assert.match(words, /a vocabulary of 48/);
  const pooled = describeArchitecture(
    { ...attention, encoderPooling: 'average', featureInput: 'every-step', cell: 'gru', backbone: '/srv/b/mobilenet' },
    30,
    null,
    'mobilenet',
  );
  assert.match(pooled, /^The CNN backbone mobilenet \(frozen\) reads a 64×64 image into one 128-wide feature vector/);
  assert.match(pooled, /A GRU decoder of 256 units, without attention/);
  assert.doesNotMatch(pooled, /grid|attending|\/srv/);
  assert.doesNotMatch(pooled, /non-autoregressive/);
  const lab = (arch: Partial<ModelConfig>) => describeArchitecture({ ...attention, ...arch }, 30, 16, null);
  assert.match(lab({ cell: 'rnn' }), /A plain RNN \(Elman, tanh\) decoder of 256 units/);
  assert.match(lab({ cell: 'irnn' }), /An IRNN \(ReLU, recurrent weights started as the identity\) decoder/);
  assert.match(lab({ decoderInput: 'none' }), /without being fed the word before: each step reads only its position/);
  assert.match(
    lab({ encoderInput: 'chroma', colourStream: 16 }),
    /^A CNN of 4 convolution blocks \(16-32-64-64 channels\) on each pixel’s chroma \(outlines without their hue\), beside a 16-wide colour stream that reads each pixel alone, reads a 64×64 image into a 4×4 grid/,
  );
  assert.match(
    lab({ encoderInput: 'chroma', colourStream: 16, colourStreamPool: 2 }),
    /beside a 16-wide colour stream that reads each 2×2 square of pixels, averaged, alone, reads a 64×64 image/,
  );
  assert.doesNotMatch(words, /chroma|colour stream/);
  assert.match(
    lab({ attentionQuery: 'new-state' }),
    /attending over the grid \(soft attention asked after each step has read the word before, Luong et al\. 2015/,
  );
  assert.doesNotMatch(words, /Luong/);
});

test('the training stages: earlier logs in numeric order, metrics.jsonl last, drawn one after another', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'captioner-stages-'));
  try {
    const log = (records: object[]) => records.map((r) => JSON.stringify(r) + '\n').join('');
    const steps = (n: number, loss: number) =>
      Array.from({ length: n }, (_, i) => ({ type: 'step', step: (i + 1) * 10, epoch: 1, loss, epsilon: 1 }));
    await writeFile(
      join(dir, 'metrics-stage2.jsonl'),
      log([...steps(3, 2), { type: 'epoch', step: 30, valLoss: 1.5 }]),
    );
    await writeFile(join(dir, 'metrics-stage1.jsonl'), log([...steps(5, 3), { type: 'epoch', step: 50, valLoss: 2 }]));
    await writeFile(join(dir, 'metrics.jsonl'), log(steps(2, 1)));
    const stages = await readTrainingStages(dir);
    assert.deepEqual(
      stages.map((s) => [s.name, s.file, s.records.length]),
      [
        ['stage 1', 'metrics-stage1.jsonl', 6],
        ['stage 2', 'metrics-stage2.jsonl', 4],
        ['stage 3', 'metrics.jsonl', 2],
      ],
    );
    const [loss] = stageCharts(stages);
    assert.ok(loss);
    // A marker where each stage starts: at 0, after stage 1's 50 steps, after stage 2's 30 more.
    assert.deepEqual(
      loss.markers.map((m) => m.label),
      ['stage 1', 'stage 2', 'stage 3'],
    );
    const xOf = (step: number) => loss.plot.left + (step / 100) * (loss.plot.right - loss.plot.left);
    assert.deepEqual(
      loss.markers.map((m) => m.x),
      [0, 50, 80].map((s) => Number(xOf(s).toFixed(1))),
    );
    // The training curve: one segment per stage; validation: a dot per validation.
    const training = loss.series.find((s) => s.label === 'training')!;
    assert.equal(training.path.match(/M/g)?.length, 3);
    assert.equal(loss.series.find((s) => s.label === 'validation')!.dots.length, 2);

    // Stages not named stage1…stageN: the model's own log is the "last stage"; alone, "training".
    await rm(join(dir, 'metrics-stage1.jsonl'));
    assert.deepEqual(
      (await readTrainingStages(dir)).map((s) => s.name),
      ['stage 2', 'last stage'],
    );
    await rm(join(dir, 'metrics-stage2.jsonl'));
    assert.deepEqual(
      (await readTrainingStages(dir)).map((s) => s.name),
      ['training'],
    );
    assert.equal(stageCharts(await readTrainingStages(dir))[0]!.markers.length, 0, 'one stage: nothing to mark');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('the bundled model described: its four phases by name, attention, its exact match as a percentage', async () => {
  const modelDir = fileURLToPath(new URL('../../models/default/', import.meta.url));
  const d = publicDescription(await describeModel(modelDir), modelDir);
  assert.match(d.architecture, /LSTM decoder of 256 units, attending over the grid/);
  assert.match(d.architecture, /4×4 grid of 128-wide features/);
  assert.deepEqual(
    d.training!.stages.map((s) => s.name),
    ['scheduled-sampling', 'label-smoothing', 'substitution', 'substitution-again'],
  );
  assert.equal(
    d.training!.totalSteps,
    d.training!.stages.reduce((sum, s) => sum + s.steps, 0),
  );
  assert.equal(d.charts[0]!.markers.length, 4);
  const exact = d.evaluations[0]!.rows.find((r) => r.name === 'exact match');
  assert.deepEqual(exact?.values, ['99.3%', '98.4%']);
  assert.ok(!JSON.stringify(d).includes(modelDir.replace(/\/$/, '')), 'no absolute path');
});
