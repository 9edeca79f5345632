/**
 * The report's pieces (charts, gallery choice, semantic aggregation) and the whole evaluation of a tiny trained model.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { cp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { niceTicks, svgLineChart } from '../../eval/charts.ts';
import { readCaptionPairs } from '../../eval/coco-files.ts';
import { runEvaluation } from '../../eval/evaluate.ts';
import { bestAndWorst, formatRate, renderReport, trainingCharts } from '../../eval/report.ts';
import { METRICS_FILE } from '../../model/io/metrics-log.ts';
import { METRIC_NAMES, scoreCaptions } from '../../eval/score.ts';
import { makeTinyDataset } from '../helpers/tiny-data.ts';
import { trainTinyModel } from '../helpers/tiny-model.ts';
import { setupBackend } from '../helpers/tf.ts';

const tf = await setupBackend();

test('nice ticks: steps of 1, 2 or 5 × 10^k covering the range', () => {
  assert.deepEqual(niceTicks(0, 1), [0, 0.2, 0.4, 0.6, 0.8, 1]);
  assert.deepEqual(niceTicks(0, 37), [0, 10, 20, 30]);
  assert.deepEqual(niceTicks(3, 3), [3]);
});

test('an SVG line chart: one polyline per series with two or more points, text escaped, null without data', () => {
  const svg = svgLineChart({
    title: 'loss <b>&</b>',
    xLabel: 'step',
    series: [
      {
        name: 'train',
        points: [
          [1, 2],
          [2, 1.5],
          [3, NaN],
          [4, 1],
        ],
      },
      { name: 'val <i>', points: [[4, 1.2]] },
    ],
  })!;
  assert.match(svg, /^<svg [^>]*viewBox="0 0 560 260"/);
  assert.equal((svg.match(/<polyline /g) ?? []).length, 1);
  assert.equal((svg.match(/<circle /g) ?? []).length, 4); // 3 finite training points + 1 validation point
  assert.ok(svg.includes('loss &lt;b&gt;&amp;&lt;/b&gt;') && svg.includes('val &lt;i&gt;'));
  assert.ok(!svg.includes('<b>') && !svg.includes('NaN'));
  assert.equal(svgLineChart({ title: 't', xLabel: 'x', series: [{ name: 'a', points: [[1, NaN]] }] }), null);
});

test('training charts from a metrics.jsonl log: loss, each validation metric, ε, learning rate', () => {
  const records = [
    { type: 'step', step: 10, loss: 2, epsilon: 1, learningRate: 0.01 },
    { type: 'step', step: 20, loss: 1.5, epsilon: 0.9, learningRate: 0.01 },
    { type: 'epoch', step: 20, epoch: 1, trainLoss: 1.5, valLoss: 1.7, valPerplexity: 5.5, best: true },
  ];
  assert.deepEqual(
    trainingCharts(records).map((c) => c.title),
    [
      'Loss per token',
      'Validation: valPerplexity',
      'Scheduled sampling ε (probability of feeding the true word)',
      'Learning rate',
    ],
  );
  assert.deepEqual(trainingCharts([]), []);
});

test('a self-critical fine-tune (--objective scst) is charted by its rewards and its own loss, not as cross-entropy', () => {
  const records = [
    { type: 'step', step: 1, loss: 2, epsilon: 1, learningRate: 0.01 },
    {
      type: 'step',
      step: 2,
      objective: 'scst',
      scstLoss: -0.4,
      sampleReward: 1.2,
      greedyReward: 1.5,
      learningRate: 0.001,
    },
    {
      type: 'step',
      step: 3,
      objective: 'scst',
      scstLoss: 0.1,
      sampleReward: 1.6,
      greedyReward: 1.7,
      learningRate: 0.001,
    },
    { type: 'epoch', step: 3, epoch: 1, trainScstLoss: 0.01, valLoss: 1.9, valCider: 1.8, best: true },
  ];
  const charts = trainingCharts(records);
  assert.deepEqual(
    charts.map((c) => c.title),
    [
      'Loss per token',
      'Validation: valCider',
      'Scheduled sampling ε (probability of feeding the true word)',
      'Learning rate',
      'Self-critical training: reward (CIDEr-D against the training references)',
      'Self-critical training: loss −(r(sample) − r(greedy))·log p(sample)',
    ],
  );
  const reward = charts[4]!.svg;
  assert.ok(reward.includes('sampled captions') && reward.includes('greedy captions (the baseline)'));
  // The loss chart's training series holds the one cross-entropy step, not the SCST steps.
  assert.equal((charts[0]!.svg.match(/<circle /g) ?? []).length, 2); // step 1's loss + the validation point
});

test('gallery: the best and the worst by CIDEr-D, never the same image twice', () => {
  const scores = [5, 1, 3, 2, 4].map((c, i) => ({ id: `i${i}`, 'CIDEr-D': c }));
  const two = bestAndWorst(scores, 2);
  assert.deepEqual(
    two.best.map((s) => s['CIDEr-D']),
    [5, 4],
  );
  assert.deepEqual(
    two.worst.map((s) => s['CIDEr-D']),
    [1, 2],
  );
  const three = bestAndWorst(scores, 3);
  assert.deepEqual(
    three.best.map((s) => s['CIDEr-D']),
    [5, 4, 3],
  );
  assert.deepEqual(
    three.worst.map((s) => s['CIDEr-D']),
    [1, 2],
  );
});

let data: string;
let model: string;
before(async () => {
  data = (await makeTinyDataset()).dir;
  model = await trainTinyModel(data, 20, { validateEvery: 5 });
});
after(async () => {
  await rm(data, { recursive: true, force: true });
  await rm(model, { recursive: true, force: true });
});

test('eval of a tiny trained model: COCO files that rescore to the same numbers, metrics.json, a self-contained report', async () => {
  const outDir = join(model, 'eval-out');
  const tensorsBefore = tf.memory().numTensors;
  const result = await runEvaluation({
    modelDir: model,
    dataDir: data,
    split: 'val',
    beamWidth: 1,
    batchSize: 1,
    outDir,
    galleryCount: 1,
  });
  assert.equal(tf.memory().numTensors, tensorsBefore, 'evaluation leaves no tensor behind');
  assert.equal(result.splits.length, 1);
  const [val] = result.splits;
  assert.equal(val!.images, 2);

  // pycocoevalcap's inputs, read back and rescored: the same numbers.
  const pairs = await readCaptionPairs(join(outDir, val!.referencesFile), join(outDir, val!.resultsFile));
  assert.deepEqual(
    pairs.map((p) => p.id),
    ['img0-val', 'img1-val'],
  );
  assert.deepEqual(scoreCaptions(pairs).corpus, val!.scores);
  const metrics = JSON.parse(await readFile(result.metricsFile, 'utf8')) as {
    splits: Record<string, { scores: Record<string, number> }>;
  };
  assert.deepEqual(metrics.splits.val!.scores, val!.scores);

  const html = await readFile(result.reportFile, 'utf8');
  for (const name of METRIC_NAMES)
    assert.match(html, new RegExp(`<td>${name}</td><td>${val!.scores[name].toFixed(4)}</td>`));
  assert.match(html, /METEOR<\/td><td class="na"[^>]*>not computed/);
  assert.ok((html.match(/<svg /g) ?? []).length >= 3, 'loss, ε and learning-rate charts');
  assert.ok(html.includes('Loss per token') && html.includes('Scheduled sampling'));
  assert.ok(!/(src|href)="(https?:)?\/\//.test(html), 'nothing is fetched from elsewhere');
  const uris = [...html.matchAll(/<img src="data:image\/png;base64,([A-Za-z0-9+/=]+)"/g)].map((m) => m[1]!);
  assert.equal(uris.length, 2, 'one best and one worst image');
  assert.ok(!html.includes('class="map"'), 'a model without attention: no attention maps');
  for (const b64 of uris) assert.equal((await sharp(Buffer.from(b64, 'base64')).metadata()).format, 'png');
});

test('captioner eval (CLI): metrics on stdout as JSON; an unknown split is bad input', async () => {
  const run = promisify(execFile);
  const bin = new URL('../../bin/captioner.js', import.meta.url).pathname;
  const { stdout } = await run(process.execPath, [
    bin,
    'eval',
    '--model',
    model,
    '--data',
    data,
    '--split',
    'val',
    '--json',
  ]);
  const out = JSON.parse(stdout) as { splits: { split: string; scores: Record<string, number> }[]; report: string };
  assert.equal(out.splits[0]!.split, 'val');
  assert.deepEqual(Object.keys(out.splits[0]!.scores), [...METRIC_NAMES]);
  assert.ok(out.report.endsWith(join('eval-val', 'report.html')));
  await assert.rejects(
    run(process.execPath, [bin, 'eval', '--model', model, '--data', data, '--split', 'nope']),
    (err: { code: number; stderr: string }) => {
      assert.equal(err.code, 3);
      assert.match(err.stderr, /no images in split "nope"/);
      return true;
    },
  );
});

test('the report reads the training log through the shared reader: a killed last line is dropped, a broken one is bad input', async () => {
  const copy = `${model}-log`;
  await cp(model, copy, { recursive: true });
  try {
    const log = join(copy, METRICS_FILE);
    const lines = (await readFile(log, 'utf8')).trimEnd().split('\n');
    assert.ok(lines.length >= 3);
    await writeFile(log, lines.join('\n') + '\n{"type":"step","step":9');
    const result = await runEvaluation({
      modelDir: copy,
      dataDir: data,
      split: 'val',
      beamWidth: 1,
      batchSize: 2,
      outDir: join(copy, 'eval-killed'),
      galleryCount: 1,
    });
    assert.ok((await readFile(result.reportFile, 'utf8')).includes('Loss per token'), 'the curves are drawn');

    await writeFile(log, [lines[0], '{"type":"st', ...lines.slice(1)].join('\n') + '\n');
    const run = promisify(execFile);
    const bin = new URL('../../bin/captioner.js', import.meta.url).pathname;
    await assert.rejects(
      run(process.execPath, [bin, 'eval', '--model', copy, '--data', data, '--split', 'val', '--limit', '1']),
      (err: { code: number; stderr: string }) => {
        assert.equal(err.code, 3, err.stderr);
        assert.match(err.stderr, /metrics\.jsonl:2: not a JSON line/);
        return true;
      },
    );
  } finally {
    await rm(copy, { recursive: true, force: true });
  }
});

test('a rate prints with one decimal, in the report and on the command line alike', () => {
  assert.deepEqual([0.965, 0.8284, 1, 0].map(formatRate), ['96.5%', '82.8%', '100.0%', '0.0%']);
});

test('the report tabulates which object was named right by position, and exact match by objects in the scene', async () => {
  const semantic = (rates: number[]) => ({
    count: 10,
    exactRate: 0.5,
    unparsed: 0,
    precision: 1,
    recall: 1,
    f1: 1,
    positions: rates.map((rate, k) => ({ captions: 10 - k, right: Math.round(rate * (10 - k)), rate })),
    // One group per position, for the test's sake: k + 1 objects, 4 captions, k + 1 of them exact.
    byObjects: rates.map((_, k) => ({ objects: k + 1, captions: 4, exact: k + 1, rate: (k + 1) / 4 })),
  });
  const scores = Object.fromEntries(METRIC_NAMES.map((name) => [name, 0.5])) as unknown as Parameters<
    typeof renderReport
  >[0]['splits'][number]['scores'];
  const split = (name: string, rates: number[]) => ({
    name,
    images: 10,
    scores,
    semantic: semantic(rates),
    best: [],
    worst: [],
    resultsFile: 'r.json',
    referencesFile: 'a.json',
  });
  const html = await renderReport({
    title: 't',
    generatedAt: 'now',
    modelDir: 'm',
    dataDir: 'd',
    dataName: 'shapes',
    decoding: 'greedy',
    modelSummary: '',
    splits: [split('test', [1, 0.875, 0.25]), split('test-compositional', [0.5])],
    charts: [],
  });
  const table = /<table class="positions">([\s\S]*?)<\/table>/.exec(html)?.[1] ?? '';
  assert.match(table, /<th>object 1<\/th><th>object 2<\/th><th>object 3<\/th>/);
  assert.match(
    table,
    /<td>test<\/td><td title="10 captions">100\.0%<\/td><td title="9 captions">87\.5%<\/td><td title="8 captions">25\.0%<\/td>/,
  );
  assert.match(table, /<td>test-compositional<\/td><td title="10 captions">50\.0%<\/td><td title="0 captions">–<\/td>/);
  const counts = /<table class="object-counts">([\s\S]*?)<\/table>/.exec(html)?.[1] ?? '';
  assert.match(counts, /<th>1<\/th><th>2<\/th><th>3<\/th>/);
  assert.match(
    counts,
    /<td>test<\/td><td>1 \/ 4 \(25\.0%\)<\/td><td>2 \/ 4 \(50\.0%\)<\/td><td>3 \/ 4 \(75\.0%\)<\/td>/,
  );
  assert.match(counts, /<td>test-compositional<\/td><td>1 \/ 4 \(25\.0%\)<\/td><td>–<\/td><td>–<\/td>/);
});
