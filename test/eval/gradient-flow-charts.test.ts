/**
 * The gradient-flow charts: the first and last records of a training log, drawn on a log scale
 * by the evaluation report (an SVG string) and laid out by the model page (ticks and paths, and
 * describeModel of a model directory).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { logDecades, svgLineChart } from '../../eval/charts.ts';
import { gradientFlowCharts } from '../../eval/gradient-flow-charts.ts';
import { trainingCharts } from '../../eval/report.ts';
import { saveCheckpoint } from '../../model/io/checkpoint.ts';
import { Captioner, MODEL_DEFAULTS } from '../../model/nn/captioner.ts';
import { Vocabulary } from '../../model/text/vocab.ts';
import { describeModel, layoutChart } from '../../server/model-info.ts';
import { TINY_MODEL } from '../helpers/tiny-model.ts';
import { setupBackend } from '../helpers/tf.ts';

const flow = (step: number, scale: number, lstm = false) => ({
  type: 'gradient-flow',
  step,
  hNorm: [0.5, 1, 1, 0.8].map((v) => v * scale),
  lastWordH: [1, 0.1, 0.01].map((v) => v * scale),
  lastWordCaptions: [4, 4, 3],
  ...(lstm ? { cNorm: [0.2, 0.3, 0.4, 0], lastWordC: [0, 0.5, 0.4] } : {}),
});

test('log decades: whole powers of ten around the positive values, at least one decade', () => {
  assert.deepEqual(logDecades([0.004, 0.5, 3]), { lo: -3, hi: 1, ticks: [-3, -2, -1, 0, 1] });
  assert.deepEqual(logDecades([0, 1]), { lo: 0, hi: 1, ticks: [0, 1] });
  assert.deepEqual(logDecades([1e-12, 1e3]), { lo: -12, hi: 3, ticks: [-12, -9, -6, -3, 0, 3] });
  assert.equal(logDecades([0, -1, NaN]), null);
});

test('gradient-flow charts: the first and the last record (not the ones between), h and the LSTM cell state', () => {
  const records = [{ type: 'step', step: 1, loss: 2 }, flow(0, 1, true), flow(5, 2, true), flow(10, 3, true)];
  const charts = gradientFlowCharts(records);
  assert.equal(charts.length, 2);
  const [last, whole] = charts;
  assert.deepEqual(
    last!.series.map((s) => s.name),
    ['h, step 0', 'h, step 10', 'c (cell state), step 0', 'c (cell state), step 10'],
  );
  assert.deepEqual(last!.series[1]!.points, [
    [0, 3],
    [1, 0.30000000000000004],
    [2, 0.03],
  ]);
  assert.deepEqual(
    whole!.series[0]!.points.map((p) => p[0]),
    [0, 1, 2, 3],
  );
  assert.deepEqual(
    gradientFlowCharts([flow(7, 1)]).map((c) => c.series.map((s) => s.name)),
    [['h, step 7'], ['h, step 7']],
  );
  assert.deepEqual(gradientFlowCharts([{ type: 'step', step: 1 }]), []);
});

test('the report draws them on a log scale: ticks at powers of ten, a decade an equal height', () => {
  const svg = svgLineChart({
    title: 'g',
    xLabel: 'k',
    yScale: 'log',
    series: [
      {
        name: 'h',
        points: [
          [0, 1],
          [1, 0.1],
          [2, 0.01],
          [3, 0],
        ],
      },
    ],
  })!;
  const labels = [...svg.matchAll(/text-anchor="end">([^<]+)</g)].map((m) => m[1]);
  assert.deepEqual(labels, ['0.01', '0.1', '1']);
  // The three points fall on a straight line (equal steps down), and y = 0 is left out.
  const ys = [...svg.matchAll(/<circle cx="[\d.]+" cy="([\d.]+)"/g)].map((m) => Number(m[1]));
  assert.equal(ys.length, 3);
  assert.ok(Math.abs(ys[1]! - ys[0]! - (ys[2]! - ys[1]!)) < 0.2, `${ys}`);
  const titles = trainingCharts([{ type: 'step', step: 1, loss: 2 }, flow(0, 1), flow(3, 1)]).map((c) => c.title);
  assert.ok(titles.includes("Gradient of the last word's loss at earlier states (‖∂Lₙ/∂hₙ₋ₖ‖)"), `${titles}`);
  assert.ok(titles.includes('Gradient of the loss at each state (‖∂L/∂hₜ‖)'));
});

test('the model page lays them out on the same log scale', () => {
  const chart = layoutChart(
    'g',
    [{ label: 'h', points: [1, 0.1, 0.01, 0].map((y, x) => ({ x, y })) }],
    'k',
    640,
    260,
    [],
    'log',
  )!;
  assert.deepEqual(
    chart.yTicks.map((t) => t.label),
    ['0.01', '0.1', '1'],
  );
  assert.equal(chart.yTicks[0]!.y, chart.plot.bottom);
  assert.equal(chart.yTicks[2]!.y, chart.plot.top);
  assert.equal(chart.series[0]!.last, '0.01', "the last drawn value, in the data's units");
  assert.equal(chart.series[0]!.path.split('L').length, 3, 'three points: y = 0 has no place on a log scale');
  assert.equal(chart.series[0]!.dots.length, 3);
});

test('the model page of a model directory whose log has gradient-flow records shows both charts, log scale', async () => {
  const tf = await setupBackend();
  const dir = await mkdtemp(join(tmpdir(), 'captioner-flow-page-'));
  try {
    const model = await Captioner.create({ ...MODEL_DEFAULTS, ...TINY_MODEL }, Vocabulary.build(['a b'], 1), 1);
    const config = { model: model.config, versions: { captioner: 'x', tfjs: tf.version.tfjs } };
    await saveCheckpoint(
      dir,
      { config, vocab: model.vocab, weights: model.namedWeights(), backboneTopology: null },
      true,
    );
    model.dispose();
    const lines = [
      { type: 'step', step: 1, loss: 2 },
      flow(0, 1, true),
      { type: 'step', step: 2, loss: 1 },
      flow(2, 2, true),
    ];
    await writeFile(join(dir, 'metrics.jsonl'), lines.map((l) => JSON.stringify(l) + '\n').join(''));
    const page = await describeModel(dir);
    const charts = page.charts.filter((c) => c.title.startsWith('Gradient of'));
    assert.deepEqual(
      charts.map((c) => c.title),
      [
        "Gradient of the last word's loss at earlier states (‖∂Lₙ/∂hₙ₋ₖ‖), log scale",
        'Gradient of the loss at each state (‖∂L/∂hₜ‖), log scale',
      ],
    );
    assert.deepEqual(
      charts[0]!.series.map((s) => s.label),
      ['h, step 0', 'h, step 2', 'c (cell state), step 0', 'c (cell state), step 2'],
    );
    assert.deepEqual(
      charts[0]!.yTicks.map((t) => t.label),
      ['0.01', '0.1', '1', '10'],
    );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
