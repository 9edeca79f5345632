/**
 * Self-critical sequence training (model/train/scst.ts): the loss and its gradient against numbers
 * worked by hand, the mask after <end>, the reward, a toy run whose reward rises, and a run through
 * train() that logs its figures and resumes exactly.
 */
import assert from 'node:assert/strict';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type * as TF from '@tensorflow/tfjs';
import { makeExamples, padBatch } from '../../../model/data/batch.ts';
import { ImageCache, readManifest } from '../../../model/data/dataset.ts';
import { greedyDecode, sampleDecode } from '../../../model/decode/decode.ts';
import { disposeCheckpoint, loadCheckpoint } from '../../../model/io/checkpoint.ts';
import { CiderDScorer, ciderD } from '../../../model/metrics/cider.ts';
import { Captioner, MODEL_DEFAULTS } from '../../../model/nn/captioner.ts';
import { END, PAD, START, Vocabulary } from '../../../model/text/vocab.ts';
import { Adam } from '../../../model/train/optim.ts';
import { CaptionReward, sampledTokens, scstLoss } from '../../../model/train/scst.ts';
import { Trainer } from '../../../model/train/step.ts';
import { resolveTrainConfig, train } from '../../../model/train/trainer.ts';
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

/** softmax of one row, in plain numbers. */
function softmax(row: readonly number[]): number[] {
  const m = Math.max(...row);
  const e = row.map((x) => Math.exp(x - m));
  const z = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / z);
}

test('the SCST loss and its gradient equal the ones worked by hand, and nothing after <end> counts', () => {
  // Two captions, three steps, a vocabulary of four: caption 0 drew [2, 3] then <end>; caption 1
  // drew [3] then <end>, and its third step lies after <end>.
  const logits = [
    [
      [0.5, -1, 2, 0.1],
      [1.5, 0.2, -0.3, 0.7],
      [0, 1, -1, 2],
    ],
    [
      [0.3, 0.3, -2, 1],
      [2, -1, 0.5, 0],
      [9, -9, 4, 1], // after <end>: must not matter
    ],
  ];
  const targets = [
    [2, 3, 1],
    [3, 1, 0],
  ];
  const mask = [
    [1, 1, 1],
    [1, 1, 0],
  ];
  const advantage = [0.8, -1.5];
  const loss = (l: typeof logits) =>
    tf.tidy(() =>
      scstLoss(tf.tensor3d(l), tf.tensor2d(targets, undefined, 'int32'), tf.tensor2d(mask), tf.tensor1d(advantage)),
    );

  // By hand: L = −(1/B) Σ_b A_b Σ_t m_bt log p_bt(target); ∂L/∂logit_btv = −(A_b/B) m_bt (1[v = target] − p_btv).
  const B = 2;
  let expected = 0;
  const expectedGrad = logits.map((caption, b) =>
    caption.map((row, t) => {
      const p = softmax(row);
      const m = mask[b]![t]!;
      expected -= (advantage[b]! / B) * m * Math.log(p[targets[b]![t]!]!);
      return p.map((pv, v) => -(advantage[b]! / B) * m * ((v === targets[b]![t] ? 1 : 0) - pv));
    }),
  );
  const value = loss(logits);
  assert.ok(Math.abs(value.dataSync()[0]! - expected) < 1e-5, `loss ${value.dataSync()[0]} vs ${expected}`);
  value.dispose();

  const x = tf.tensor3d(logits);
  const grad = tf.grad((l: TF.Tensor) =>
    scstLoss(l as TF.Tensor3D, tf.tensor2d(targets, undefined, 'int32'), tf.tensor2d(mask), tf.tensor1d(advantage)),
  )(x);
  const got = grad.arraySync() as number[][][];
  got.forEach((caption, b) =>
    caption.forEach((row, t) =>
      row.forEach((g, v) =>
        assert.ok(
          Math.abs(g - expectedGrad[b]![t]![v]!) < 1e-6,
          `∂L/∂logit[${b}][${t}][${v}] ${g} vs ${expectedGrad[b]![t]![v]}`,
        ),
      ),
    ),
  );
  // After <end>: exactly zero gradient, and any logits there give the same loss.
  assert.deepEqual(got[1]![2], [0, 0, 0, 0]);
  const changed = structuredClone(logits);
  changed[1]![2] = [-5, 5, 0, 3];
  const again = loss(changed);
  assert.equal(again.dataSync()[0], loss(logits).dataSync()[0]);
  tf.dispose([x, grad, again]);
});

test('sampled captions become <start> words <end> rows whose mask covers the words and a chosen <end>, not a forced one', () => {
  // maxLength 3: [7, 8] chose its <end>; [7, 8, 9] reached the limit, where decoding forces <end>;
  // [] ended at once. A drawn <pad> (id 0) counts like any word.
  const { tokens, width, mask, count } = sampledTokens([{ ids: [7, 8] }, { ids: [7, 8, 9] }, { ids: [0] }], 3);
  assert.equal(width, 5);
  assert.deepEqual([...tokens], [START, 7, 8, END, PAD, START, 7, 8, 9, END, START, 0, END, PAD, PAD]);
  assert.deepEqual([...mask], [1, 1, 1, 0, 1, 1, 1, 0, 1, 1, 0, 0]);
  assert.equal(count, 3 + 3 + 2);
});

test("the reward is CIDEr-D with the training references' document frequencies: a batch-free score, equal to coco-caption's over the same set", async () => {
  const manifest = await readManifest(data);
  const images = manifest.images.filter((i) => i.split === 'train');
  const reward = new CaptionReward(images);
  const right = reward.score('img0', ['a', 'red', 'circle']);
  const wrongColour = reward.score('img0', ['a', 'blue', 'circle']);
  assert.ok(right > wrongColour && wrongColour > 0, `${right} > ${wrongColour} > 0`);
  assert.equal(reward.score('img0', ['a']), 0, '"a" is in every reference set: its idf is 0');
  // Scoring the training images' own captions with the whole set's frequencies is coco-caption's CIDEr-D.
  const refs = images.map((i) => [i.captions[0]!.split(' ')]);
  const candidates = [['a', 'red', 'square'], ['a', 'blue'], ['red', 'circle'], [], ['a', 'red', 'square'], ['a']];
  const coco = ciderD(candidates, refs).perImage;
  const scorer = new CiderDScorer(refs);
  candidates.forEach((c, i) => assert.equal(scorer.score(c, refs[i]!), coco[i]));
  candidates.forEach((c, i) => assert.equal(reward.score(images[i]!.id, c), coco[i]));
  assert.throws(() => reward.score('nowhere', ['a']), /"nowhere" is not a training image/);
});

test('toy problem: a few dozen SCST steps after a brief teacher-forced start raise the mean reward of sampled captions, and leak no tensor', async () => {
  const manifest = await readManifest(data);
  const images = manifest.images.filter((i) => i.split === 'train');
  const vocab = Vocabulary.build(
    images.flatMap((i) => i.captions),
    1,
  );
  const cache = await ImageCache.load(data, images, 16);
  const config = { ...MODEL_DEFAULTS, ...TINY_MODEL, featureInput: 'every-step' as const };
  const model = await Captioner.create(config, vocab, 7);
  // 40 teacher-forced steps: the captions are half learnt (the greedy reward about 3.3 of 7.5).
  const once = padBatch(makeExamples(images, vocab, 6));
  const forced = new Trainer(model, await tinyConfig(data, { ...config, learningRate: 0.01 }));
  for (let s = 0; s < 40; s++) forced.step(cache.batch(once.imageIds), once, s, 40);

  // The reward's expectation over the model's captions, estimated with the same 64 draws per image
  // before and after (common random numbers: the difference is the training's, not the draws').
  const reward = new CaptionReward(images);
  const rows = Array.from({ length: 64 }, () => images).flat();
  const evalImages = tf.tensor4d(cache.batch(rows.map((i) => i.id)), [rows.length, 16, 16, 3]);
  const expectedReward = () => {
    const drawn = sampleDecode(
      model,
      evalImages,
      rows.map((_, i) => 1000 + i),
    );
    return drawn.reduce((sum, c, i) => sum + reward.score(rows[i]!.id, c.words), 0) / rows.length;
  };
  const greedyReward = () => {
    const said = greedyDecode(model, evalImages.slice(0, images.length));
    return said.reduce((sum, c, i) => sum + reward.score(images[i]!.id, c.words), 0) / images.length;
  };
  const start = { expected: expectedReward(), greedy: greedyReward() };

  // Each image eight times a batch: eight sampled captions per image and step.
  const batch = padBatch(Array.from({ length: 8 }, () => makeExamples(images, vocab, 6)).flat());
  const pixels = cache.batch(batch.imageIds);
  const scst = new Trainer(
    model,
    await tinyConfig(data, { ...config, objective: 'scst', learningRate: 0.002 }),
    new Adam(),
    undefined,
    reward,
  );
  scst.step(pixels, batch, 0, 30); // Adam's moments exist from here on
  const tensors = tf.memory().numTensors;
  const logged: number[] = [];
  for (let s = 1; s < 30; s++) {
    const stats = scst.step(pixels, batch, s, 30);
    assert.ok(stats.scst && Number.isFinite(stats.loss) && Number.isNaN(stats.perplexity));
    logged.push(stats.scst.sampleReward);
  }
  assert.equal(tf.memory().numTensors, tensors, 'an SCST step leaks no tensor');
  const end = { expected: expectedReward(), greedy: greedyReward() };
  assert.ok(
    end.expected > start.expected + 0.2,
    `expected reward ${start.expected.toFixed(3)} → ${end.expected.toFixed(3)}`,
  );
  assert.ok(end.greedy >= start.greedy, `greedy reward ${start.greedy.toFixed(3)} → ${end.greedy.toFixed(3)}`);
  evalImages.dispose();
  model.dispose();
});

test('--objective scst through train(): fine-tunes from a model, logs its loss and rewards, picks the best by validation CIDEr-D, and resumes exactly', async () => {
  const start = await tinyConfig(data, { maxSteps: 30, learningRate: 0.01, featureInput: 'every-step' });
  cleanup.push(start.out);
  await train(start);
  const common = {
    data,
    initFrom: start.out,
    objective: 'scst',
    batchSize: 4,
    epochs: 20,
    logEvery: 1,
    learningRate: 0.001,
    familiarityImages: 0,
  };
  const config = (values: Record<string, unknown>) =>
    resolveTrainConfig([{ source: 'flags', values: { ...common, ...values } }]);
  const whole = await config({ out: start.out + '-whole', maxSteps: 6 });
  const half = await config({ out: start.out + '-half', maxSteps: 3, checkpointEvery: 3 });
  cleanup.push(whole.out, half.out);
  const lines: string[] = [];
  await train(whole, { log: (l) => lines.push(l) });
  assert.match(
    lines.join('\n'),
    /scst: CIDEr-D rewards with the document frequencies of the 6 training images' references/,
  );
  await train(half);
  await train({ ...half, resume: true, maxSteps: 6 });

  const records = async (dir: string) =>
    (await readFile(join(dir, 'metrics.jsonl'), 'utf8'))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  const a = await records(whole.out);
  const b = await records(half.out);
  const steps = a.filter((r) => r.type === 'step');
  assert.equal(steps.length, 6);
  for (const r of steps) {
    assert.equal(r.objective, 'scst');
    for (const key of ['scstLoss', 'sampleReward', 'greedyReward', 'gradNorm'])
      assert.equal(typeof r[key], 'number', `${key} of step ${String(r.step)}`);
    assert.equal(r.loss, undefined, 'no cross-entropy is logged as the loss of an SCST step');
  }
  const epoch = a.find((r) => r.type === 'epoch')!;
  assert.equal(typeof epoch.valCider, 'number');
  const stepsB = b.filter((r) => r.type === 'step');
  assert.deepEqual(
    stepsB.map((r) => [r.step, r.sampleReward, r.greedyReward]),
    steps.map((r) => [r.step, r.sampleReward, r.greedyReward]),
    'the resumed run draws the same captions and rewards',
  );
  stepsB.forEach((r, i) =>
    assert.ok(
      Math.abs((r.scstLoss as number) - (steps[i]!.scstLoss as number)) <= 1e-5 * Math.abs(r.scstLoss as number) + 1e-6,
    ),
  );
  const wa = await loadCheckpoint(whole.out, 'latest');
  const wb = await loadCheckpoint(half.out, 'latest');
  for (const [name, t] of Object.entries(wa.weights)) {
    const x = t.dataSync();
    const y = wb.weights[name]!.dataSync();
    let worst = 0;
    for (let i = 0; i < x.length; i++) worst = Math.max(worst, Math.abs(x[i]! - y[i]!));
    assert.ok(worst < 1e-5, `weight ${name} differs by ${worst}`);
  }
  // The best checkpoint is chosen by validation CIDEr-D, higher is better.
  const vals = b.filter((r) => r.type === 'epoch').map((r) => r.valCider as number);
  assert.equal(wb.training?.state.bestMetric, Math.max(...vals));
  disposeCheckpoint(wa);
  disposeCheckpoint(wb);

  // A JSON recipe names it like a flag does; a wrong value is refused naming the file and the field.
  const recipe = await resolveTrainConfig([
    { source: 'scst.json', values: { objective: 'scst', learningRate: 5e-5 } },
    { source: 'flags', values: { data, initFrom: start.out, out: start.out + '-recipe' } },
  ]);
  assert.equal(recipe.objective, 'scst');
  await assert.rejects(
    resolveTrainConfig([
      { source: 'scst.json', values: { objective: 'reinforce' } },
      { source: 'flags', values: { data, out: start.out + '-bad' } },
    ]),
    /scst\.json.*objective/,
  );
  await assert.rejects(
    config({ out: start.out + '-x', labelSmoothing: 0.1, wordDropout: 0.2 }),
    /objective "scst" trains on the model's own sampled captions: "labelSmoothing", "wordDropout" act only on reference captions/,
  );
});
