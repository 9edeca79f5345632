/** The training loop: it learns, it does not leak tensors, and it resumes exactly. */
import assert from 'node:assert/strict';
import { readFile, rm, stat, writeFile } from 'node:fs/promises';
import { after, before, test } from 'node:test';
import type * as TF from '@tensorflow/tfjs';
import { join } from 'node:path';
import { makeExamples, padBatch } from '../../../model/data/batch.ts';
import { Captioner, MODEL_DEFAULTS } from '../../../model/nn/captioner.ts';
import { loadCheckpoint, disposeCheckpoint } from '../../../model/io/checkpoint.ts';
import { ImageCache, readManifest } from '../../../model/data/dataset.ts';
import { beamSearch, greedyDecode } from '../../../model/decode/decode.ts';
import { loadModel } from '../../../model/io/load.ts';
import { ptbTokenize } from '../../../model/text/tokenize.ts';
import { countTokens } from '../../../model/train/loss.ts';
import { Trainer } from '../../../model/train/step.ts';
import { resolveTrainConfig, train } from '../../../model/train/trainer.ts';
import { START, Vocabulary } from '../../../model/text/vocab.ts';
import { makeTinyDataset } from '../../helpers/tiny-data.ts';
import { TINY_MODEL, tinyConfig } from '../../helpers/tiny-model.ts';
import { setupBackend } from '../../helpers/tf.ts';

const tf = await setupBackend();
let data: string;
const cleanup: string[] = [];

before(async () => {
  data = (await makeTinyDataset()).dir;
  cleanup.push(data);
});
after(async () => {
  for (const dir of cleanup) await rm(dir, { recursive: true, force: true });
});

test('overfit: a tiny model learns to reproduce the captions of six tiny images exactly (greedy)', async () => {
  // The image feature also enters every step's input: the tiny model then learns in a few hundred
  // steps even at a high learning rate, where init-only injection saturates tanh(W·feature).
  const config = await tinyConfig(data, { epochs: 250, featureInput: 'every-step', learningRate: 0.01 });
  cleanup.push(config.out);
  const result = await train(config);
  assert.equal(result.steps, 250);
  assert.ok(result.lastLoss !== null && result.lastLoss < 0.05, `final loss per token ${result.lastLoss}`);

  const { model, prior: loadedPrior } = await loadModel(config.out, 'latest');
  const manifest = await readManifest(data);
  const images = manifest.images.filter((i) => i.split === 'train');
  const cache = await ImageCache.load(data, images, model.config.imageSize);
  const batch = tf.tensor4d(cache.batch(images.map((i) => i.id)), [images.length, 16, 16, 3]);
  const captions = greedyDecode(model, batch);
  images.forEach((img, i) =>
    assert.equal(captions[i]!.words.join(' '), ptbTokenize(img.captions[0]!).join(' '), `image ${img.id}`),
  );
  // The checkpoint carries the training captions' word pairs, anti-LM off until asked for.
  const prior = loadedPrior!;
  assert.deepEqual(prior.antiLm, { weight: 0, plausibility: 0.15 });
  assert.equal(prior.count(START, model.vocab.id('a')), images.length);
  assert.equal(
    prior.count(model.vocab.id('red'), model.vocab.id('circle')),
    images.filter((i) => i.captions[0] === 'a red circle').length,
  );
  assert.equal(prior.count(model.vocab.id('yellow'), model.vocab.id('square')), 0);
  batch.dispose();
  model.dispose();
});

/** The tiny data set's six training captions as one padded batch, with their pixels, image cache and vocabulary. */
async function trainBatch() {
  const manifest = await readManifest(data);
  const images = manifest.images.filter((i) => i.split === 'train');
  const vocab = Vocabulary.build(
    images.flatMap((i) => i.captions),
    1,
  );
  const cache = await ImageCache.load(data, images, 16);
  const batch = padBatch(makeExamples(images, vocab, 6));
  return { vocab, cache, batch, pixels: cache.batch(batch.imageIds) };
}

test('a training step reports its figures, applies the clipped gradient, moves every weight and leaks no tensor (LSTM, GRU, RNN, IRNN, attention and decoderInput none, with scheduled sampling and word dropout)', async () => {
  const { vocab, cache, batch, pixels } = await trainBatch();
  const targets = countTokens(batch.tokens.filter((_, i) => i % batch.width !== 0));
  const variants = [
    { name: 'lstm', arch: { cell: 'lstm' } },
    { name: 'gru', arch: { cell: 'gru' } },
    { name: 'attention', arch: { cell: 'lstm', encoderPooling: 'grid', featureInput: 'attention' } },
    { name: 'rnn', arch: { cell: 'rnn' } },
    { name: 'irnn with attention', arch: { cell: 'irnn', encoderPooling: 'grid', featureInput: 'attention' } },
    { name: "decoderInput 'none'", arch: { cell: 'gru', decoderInput: 'none' } },
  ] as const;
  for (const { name, arch } of variants) {
    const config = await tinyConfig(data, {
      ...arch,
      samplingSchedule: 'constant',
      samplingK: 0.5,
      samplingFeed: 'sample',
      wordDropout: 0.3,
      clipNorm: 0.1,
    });
    cleanup.push(config.out);
    const model = await Captioner.create({ ...MODEL_DEFAULTS, ...TINY_MODEL, ...arch }, vocab, 1);
    const trainer = new Trainer(model, config);
    const first = trainer.step(pixels, batch, 0, 10); // creates the optimiser's moments
    // The step reports the raw norm, above the clip, and applies the clipped gradient: after
    // one step Adam's first moment is (1 − β1)·g, so its global norm is 0.1 × clipNorm.
    assert.ok(first.gradNorm > config.clipNorm, `${name}: raw gradient norm ${first.gradNorm}`);
    const moments = Object.entries(trainer.optimizer.stateTensors()).filter(([key]) => key.startsWith('m/'));
    assert.equal(moments.length, model.trainableVariables().length, `${name}: a moment per weight`);
    const momentNorm = tf.tidy(() => Math.sqrt(tf.addN(moments.map(([, m]) => tf.sum(tf.square(m)))).dataSync()[0]!));
    assert.ok(Math.abs(momentNorm - 0.1 * config.clipNorm) < 1e-6, `${name}: first moment's norm ${momentNorm}`);

    const before = Object.fromEntries(Object.entries(model.namedWeights()).map(([n, v]) => [n, v.dataSync().slice()]));
    const live = tf.memory().numTensors;
    for (let s = 1; s < 4; s++) {
      const stats = trainer.step(pixels, batch, s, 10);
      assert.ok(Number.isFinite(stats.loss) && stats.loss > 0, `${name}: loss ${stats.loss}`);
      assert.equal(stats.tokens, targets, `${name}: every target word after <start> counts, no padding`);
      assert.ok(Math.abs(stats.lossPerToken - (stats.loss * batch.batchSize) / targets) < 1e-12);
      assert.ok(Math.abs(stats.perplexity - Math.exp(stats.lossPerToken)) < 1e-9 * stats.perplexity);
      assert.equal(stats.samplingProbability, 0.5, 'the constant schedule feeds the true word half the time');
      assert.equal(stats.learningRate, config.learningRate, 'the constant schedule');
      assert.ok(stats.gradNorm > config.clipNorm, `${name}: the norm reported is the raw one (${stats.gradNorm})`);
    }
    assert.equal(tf.memory().numTensors, live, `${name}: tensors leaked`);
    for (const [weight, v] of Object.entries(model.namedWeights())) {
      assert.notDeepEqual(v.dataSync(), before[weight], `${name}: weight ${weight} did not move`);
    }
    const input = tf.zeros([2, 16, 16, 3]) as TF.Tensor4D;
    const evalLive = tf.memory().numTensors;
    const val = trainer.evaluate(cache, [batch]);
    assert.ok(Number.isFinite(val.lossPerToken) && Math.abs(val.perplexity - Math.exp(val.lossPerToken)) < 1e-9);
    assert.equal(greedyDecode(model, input).length, 2);
    assert.equal(beamSearch(model, input, { beamWidth: 3 }).length, 2);
    assert.equal(tf.memory().numTensors, evalLive, `${name}: evaluation and decoding leak nothing`);
    input.dispose();
    trainer.optimizer.dispose();
    model.dispose();
  }
});

test('the training step applies --word-dropout and --word-substitution: the same model on the same batch gets a different loss', async () => {
  const { vocab, batch, pixels } = await trainBatch();
  const colours = ['red', 'blue', 'green', 'yellow'].map((w) => vocab.encode(w, 1)[1]!);
  const classes = Array.from({ length: vocab.size }, (_, id) =>
    colours.includes(id) ? colours.filter((c) => c !== id) : [],
  );
  const losses: number[] = [];
  const everyColour = { classes, rate: classes.map(() => 1) };
  for (const [settings, substitution] of [[{}], [{}], [{ wordDropout: 1 }], [{}, everyColour]] as const) {
    const config = await tinyConfig(data, { samplingSchedule: 'constant', samplingK: 1, ...settings });
    cleanup.push(config.out);
    const model = await Captioner.create({ ...MODEL_DEFAULTS, ...TINY_MODEL }, vocab, 1);
    const trainer = new Trainer(model, config, undefined, substitution);
    losses.push(trainer.step(pixels, batch, 0, 10).loss);
    trainer.optimizer.dispose();
    model.dispose();
  }
  assert.equal(losses[0], losses[1], 'the step is deterministic');
  assert.notEqual(losses[2], losses[0], 'dropping every input word changes the loss');
  assert.notEqual(losses[3], losses[0], 'feeding another colour in place of every colour changes the loss');
});

test('the training step applies --greyscale: its colour targets add no loss (fewer tokens), the pixels it was given are left as they were, and the step is deterministic', async () => {
  const { vocab, batch, pixels } = await trainBatch();
  const before = pixels.slice();
  const targets = batch.tokens.filter((_, i) => i % batch.width !== 0);
  const colours = targets.filter((t) => ['red', 'blue', 'green', 'yellow'].includes(vocab.words[t]!)).length;
  assert.ok(colours > 0, 'the tiny captions name colours');
  const stats = [];
  for (const greyscale of [0, 1, 1]) {
    const config = await tinyConfig(data, { samplingSchedule: 'constant', samplingK: 1, greyscale });
    cleanup.push(config.out);
    const model = await Captioner.create({ ...MODEL_DEFAULTS, ...TINY_MODEL }, vocab, 1);
    const trainer = new Trainer(model, config);
    stats.push(trainer.step(pixels, batch, 0, 10));
    trainer.optimizer.dispose();
    model.dispose();
  }
  assert.equal(stats[0]!.tokens, countTokens(targets));
  assert.equal(stats[1]!.tokens, countTokens(targets) - colours, 'every colour target of a grey image is masked');
  assert.notEqual(stats[1]!.loss, stats[0]!.loss);
  assert.equal(stats[2]!.loss, stats[1]!.loss, 'the same step draws the same grey rows');
  assert.deepEqual(pixels, before, "the batch's pixels (the image cache's) are not changed in place");
});

async function stepLosses(modelDir: string): Promise<Map<number, number>> {
  const lines = (await readFile(join(modelDir, 'metrics.jsonl'), 'utf8')).trim().split('\n');
  const out = new Map<number, number>();
  for (const line of lines) {
    const r = JSON.parse(line) as { type: string; step: number; loss: number };
    if (r.type === 'step') out.set(r.step, r.loss);
  }
  return out;
}

test('resume: N steps in one run equal N/2 steps, stop, resume N/2 (mid-epoch, with scheduled sampling)', async () => {
  // 6 captions in batches of 4: two batches an epoch, so step 5 stops in the middle of epoch 3.
  const common = {
    batchSize: 4,
    epochs: 20,
    logEvery: 1,
    samplingSchedule: 'inverse-sigmoid',
    samplingK: 2,
    samplingFeed: 'sample',
    lrSchedule: 'constant',
  };
  const whole = await tinyConfig(data, { ...common, maxSteps: 10 });
  const half = await tinyConfig(data, { ...common, maxSteps: 5, checkpointEvery: 5 });
  cleanup.push(whole.out, half.out);
  await train(whole);
  const first = await train(half);
  assert.equal(first.steps, 5);
  // Ended by maxSteps inside epoch 3: the run still validates its last weights.
  const ended = (await readFile(join(half.out, 'metrics.jsonl'), 'utf8'))
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  const last = ended[ended.length - 1]!;
  assert.deepEqual([last.type, last.step, last.epoch, last.partial], ['epoch', 5, 3, true]);
  assert.equal(typeof last.valLoss, 'number');
  // … and saves step 5 once, though it is also a periodic checkpoint step.
  const pointer = JSON.parse(await readFile(join(half.out, 'checkpoint.json'), 'utf8')) as { latest: string };
  assert.equal(pointer.latest, 'ckpt-000005');
  const resumed = await train({ ...half, resume: true, maxSteps: 10 });
  assert.equal(resumed.steps, 10);

  const a = await stepLosses(whole.out);
  const b = await stepLosses(half.out);
  assert.deepEqual([...b.keys()], [...a.keys()], 'the resumed run logs every step once');
  for (const [step, loss] of a)
    assert.ok(Math.abs(loss - b.get(step)!) <= 1e-5 * Math.abs(loss), `step ${step}: ${loss} vs ${b.get(step)}`);

  const wa = await loadCheckpoint(whole.out, 'latest');
  const wb = await loadCheckpoint(half.out, 'latest');
  for (const [name, t] of Object.entries(wa.weights)) {
    const x = t.dataSync();
    const y = wb.weights[name]!.dataSync();
    let worst = 0;
    for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(x[i]! - y[i]!));
    assert.ok(worst < 1e-5, `weight ${name} differs by ${worst}`);
  }
  assert.deepEqual(wb.training?.state.step, 10);
  disposeCheckpoint(wa);
  disposeCheckpoint(wb);
});

test('the time spent waiting for pixels is reported in all, per metrics line and in the log, and adds up', async () => {
  const config = await tinyConfig(data, { batchSize: 4, maxSteps: 5, logEvery: 1 });
  cleanup.push(config.out);
  const lines: string[] = [];
  const result = await train(config, { log: (l) => lines.push(l) });
  const records = (await readFile(join(config.out, 'metrics.jsonl'), 'utf8'))
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { type: string; dataWaitMs?: number; tokensPerSecond?: number });
  const steps = records.filter((r) => r.type === 'step');
  assert.equal(steps.length, 5, 'a line per step');
  for (const r of steps) assert.ok(r.dataWaitMs! > 0 && r.tokensPerSecond! > 0, JSON.stringify(r));
  // Each line holds the wait since the line before, so the lines add up to the run's total.
  const total = steps.reduce((s, r) => s + r.dataWaitMs!, 0);
  assert.ok(Math.abs(total / 1000 - result.dataWaitSeconds) < 1e-9, `${total} ms vs ${result.dataWaitSeconds} s`);
  assert.ok(lines.includes(`data: waited ${result.dataWaitSeconds.toFixed(2)} s for batch pixels`), lines.join(' | '));
});

test('training refuses to overwrite a model without --resume, and names a missing split', async () => {
  const config = await tinyConfig(data, { maxSteps: 1 });
  cleanup.push(config.out);
  await train(config);
  await assert.rejects(train(config), /already holds a model; pass --resume/);
  await assert.rejects(train({ ...config, out: config.out + '-x', trainSplit: 'nope' }), /no images in split "nope"/);
});

test("--init-from: a run starts from another model's weights and vocabulary, and keeps its architecture", async () => {
  const start = await tinyConfig(data, { maxSteps: 3 });
  cleanup.push(start.out);
  await train(start);
  const { model: source } = await loadModel(start.out);

  // The architecture comes from the starting model: the tiny settings are not passed again.
  const tuned = await resolveTrainConfig([
    {
      source: 'flags',
      values: {
        data,
        initFrom: start.out,
        out: start.out + '-tuned',
        learningRate: 0,
        maxSteps: 1,
        labelSmoothing: 0.1,
      },
    },
  ]);
  cleanup.push(tuned.out);
  assert.equal(tuned.hiddenSize, TINY_MODEL.hiddenSize);
  assert.deepEqual(tuned.encoderChannels, TINY_MODEL.encoderChannels);
  // A learning rate of 0 leaves the starting weights exactly as they were.
  const result = await train(tuned);
  assert.equal(result.steps, 1, 'a fresh step count');
  const { model: after } = await loadModel(tuned.out, 'latest');
  assert.deepEqual(after.vocab.words, source.vocab.words);
  const before = source.namedWeights();
  for (const [name, v] of Object.entries(after.namedWeights())) {
    assert.deepEqual(v.dataSync(), before[name]!.dataSync(), `weight ${name}`);
  }
  source.dispose();
  after.dispose();

  await assert.rejects(
    resolveTrainConfig([
      { source: 'flags', values: { data, initFrom: start.out, out: start.out + '-x', hiddenSize: 64 } },
    ]),
    /--init-from: "hiddenSize" is 32 in .*; the architecture cannot change \(asked for 64\)/,
  );
  await assert.rejects(
    resolveTrainConfig([
      { source: 'flags', values: { data, initFrom: start.out + '-missing', out: start.out + '-y' } },
    ]),
    /-missing: not a model directory/,
  );
});

test('train() reads the substitution classes off the training captions, says what they are, and uses them for per-slot rates and sampling within slots', async () => {
  const { dir, manifest } = await makeTinyDataset();
  cleanup.push(dir);
  // Each caption twice, so that its frames are seen often enough to count.
  await writeFile(
    join(dir, 'manifest.json'),
    JSON.stringify({
      ...manifest,
      images: manifest.images.map((i) => ({ ...i, captions: [i.captions[0], i.captions[0]] })),
    }),
  );
  const config = await tinyConfig(dir, { wordSubstitution: 0.5, maxSteps: 2 });
  cleanup.push(config.out);
  const lines: string[] = [];
  await train(config, { log: (l) => lines.push(l) });
  // red and yellow both sit in "a _ circle"; blue and green in "a _ triangle".
  const line = lines.find((l) => l.startsWith('word substitution 0.5: '));
  assert.ok(line, `a log line names the classes: ${lines.join(' | ')}`);
  assert.match(line, /: 4 of \d+ words have substitutes, e\.g\. /);
  const groups = line
    .split('e.g. ')[1]!
    .split('; ')
    .map((g) => g.split(' ').sort().join(' '))
    .sort();
  assert.deepEqual(groups, ['blue green', 'red yellow']);

  // Trains `base` and `base` + `changed` two steps each: the changed run's log and both runs' losses.
  const pair = async (base: Record<string, unknown>, changed: Record<string, unknown>) => {
    const [a, b] = [
      await tinyConfig(dir, { maxSteps: 2, logEvery: 1, ...base }),
      await tinyConfig(dir, { maxSteps: 2, logEvery: 1, ...base, ...changed }),
    ];
    cleanup.push(a.out, b.out);
    const log: string[] = [];
    await train(a);
    await train(b, { log: (l) => log.push(l) });
    return { config: b, log: log.join(' | '), before: await stepLosses(a.out), after: await stepLosses(b.out) };
  };
  // Rates per slot alone turn substitution on, change what is trained, and are named in the log.
  const rates = await pair({}, { wordSubstitutionRates: 'red=1' });
  assert.match(rates.log, /(^| \| )word substitution 0 \(red=1\): 4 of /);
  assert.notDeepEqual(rates.after, rates.before, 'feeding yellow for red changes the losses');
  // Scheduled sampling within slots reads the same classes, says so, and feeds other words.
  const sampling = await pair({ samplingSchedule: 'constant', samplingK: 0.5 }, { samplingWithinSlots: true });
  assert.match(sampling.log, /(^| \| )scheduled sampling within slots: 4 of /);
  assert.notDeepEqual(sampling.after, sampling.before, 'refusing own words outside the slot changes the losses');
  assert.throws(
    () => new Trainer(null as unknown as Captioner, sampling.config),
    /scheduled sampling within slots needs the substitution classes/,
  );

  const bad = await tinyConfig(dir, { maxSteps: 2, wordSubstitutionRates: 'purple=0.5' });
  cleanup.push(bad.out);
  await assert.rejects(train(bad), /"wordSubstitutionRates": "purple=0\.5": "purple" is not in the vocabulary/);
  await assert.rejects(stat(join(bad.out, 'metrics.jsonl')), { code: 'ENOENT' }, 'a refused run writes nothing');
});
