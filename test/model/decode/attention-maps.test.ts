/**
 * Decoding returns where the model looked for each word: for a model with attention, every
 * caption (greedy, sampled, beam search's returned hypothesis; batched and streamed) carries the
 * weights of the step that chose each word, the very ones a step-by-step replay of that caption
 * attends with; rows sum to 1 and are row-major over the encoder's grid. A model without
 * attention carries none.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type * as TF from '@tensorflow/tfjs';
import { beamSearch, captionImages, type CaptionResult, type DecodeOptions } from '../../../model/decode/decode.ts';
import { streamCaption } from '../../../model/decode/stream.ts';
import { Captioner, MODEL_DEFAULTS, type ModelConfig } from '../../../model/nn/captioner.ts';
import { SPECIAL_TOKENS, START, Vocabulary } from '../../../model/text/vocab.ts';
import { Rng } from '../../../model/util/rng.ts';
import { TINY_MODEL } from '../../helpers/tiny-model.ts';
import { setupBackend } from '../../helpers/tf.ts';

const tf = await setupBackend();

/** 16-pixel images through two blocks: a 4 × 4 grid. */
const ATTENTION_MODEL: ModelConfig = {
  ...MODEL_DEFAULTS,
  ...TINY_MODEL,
  encoderPooling: 'grid',
  featureInput: 'attention',
  maxLength: 5,
};
const WORDS = ['red', 'green', 'blue', 'circle', 'square', 'a'];

async function setup(config: ModelConfig = ATTENTION_MODEL): Promise<{ model: Captioner; images: TF.Tensor4D }> {
  const model = await Captioner.create(config, new Vocabulary([...SPECIAL_TOKENS, ...WORDS]), 11);
  const rng = new Rng(5);
  const images = tf.tensor4d(
    Float32Array.from({ length: 4 * 16 * 16 * 3 }, () => rng.next()),
    [4, 16, 16, 3],
  );
  return { model, images };
}

/**
 * The attention rows of `tokens` replayed one step at a time on image `b` alone (batch of 1):
 * <start>, then each word fed back; one row per word, from the step that chose it.
 */
function replay(model: Captioner, images: TF.Tensor4D, b: number, tokens: readonly number[]): number[][] {
  return tf.tidy(() => {
    const features = model.encode(images.slice([b, 0, 0, 0], [1, -1, -1, -1]));
    let state = model.initialState(features);
    const rows: number[][] = [];
    let prev = START;
    for (const token of tokens) {
      const out = model.step(tf.tensor1d([prev], 'int32'), state, features);
      rows.push((out.attention!.arraySync() as number[][])[0]!);
      state = out.state;
      prev = token;
    }
    return rows;
  });
}

function idsOf(model: Captioner, words: readonly string[]): number[] {
  return words.map((w) => model.vocab.words.indexOf(w));
}

function assertRowsClose(actual: number[][], expected: number[][], what: string): void {
  assert.equal(actual.length, expected.length, `${what}: ${actual.length} rows, expected ${expected.length}`);
  actual.forEach((row, i) =>
    row.forEach((w, p) =>
      assert.ok(Math.abs(w - expected[i]![p]!) < 1e-5, `${what}: word ${i}, position ${p}: ${w} vs ${expected[i]![p]}`),
    ),
  );
}

/** Each caption's maps: a [4, 4] grid, one row per word, each row 16 non-negative weights summing to 1. */
function assertWellFormed(r: CaptionResult, what: string): void {
  assert.ok(r.attention, `${what}: no attention maps`);
  assert.deepEqual(r.attention.grid, [4, 4], what);
  assert.equal(r.attention.weights.length, r.words.length, `${what}: one row per word`);
  for (const [i, row] of r.attention.weights.entries()) {
    assert.equal(row.length, 16, `${what}: word ${i}`);
    assert.ok(
      row.every((w) => w >= 0),
      `${what}: word ${i} has a negative weight`,
    );
    const sum = row.reduce((s, w) => s + w, 0);
    assert.ok(Math.abs(sum - 1) < 1e-5, `${what}: word ${i}'s weights sum to ${sum}`);
  }
}

for (const options of [
  { strategy: 'greedy' },
  { strategy: 'sample', temperature: 1.5, seed: 3 },
  { strategy: 'beam', beamWidth: 3, nBest: 3 },
] satisfies DecodeOptions[]) {
  test(`${options.strategy}: each word's weights are the ones its step attended with, rows sum to 1`, async () => {
    const { model, images } = await setup();
    const before = tf.memory().numTensors;
    const results = captionImages(model, images, options);
    assert.equal(tf.memory().numTensors, before, 'decoding leaves no tensor behind');
    assert.ok(
      results.some((r) => r.words.length >= 2),
      `captions of several words to check: ${results.map((r) => r.caption).join(' | ')}`,
    );
    for (const [b, r] of results.entries()) {
      assertWellFormed(r, `image ${b}`);
      assertRowsClose(r.attention!.weights, replay(model, images, b, idsOf(model, r.words)), `image ${b}`);
    }
    // The words look at different places: a caption's rows are not all one row.
    const long = results.find((r) => r.words.length >= 2)!;
    assert.ok(
      long.attention!.weights.some((row) => row.some((w, p) => Math.abs(w - long.attention!.weights[0]![p]!) > 1e-4)),
      'every word of a caption has the same weights',
    );
    images.dispose();
    model.dispose();
  });
}

test("beam search: the returned hypothesis's weights, not another beam's; every ranked hypothesis has its own", async () => {
  const { model, images } = await setup();
  const ranked = beamSearch(model, images, { beamWidth: 4 });
  for (const [b, hyps] of ranked.entries()) {
    assert.ok(hyps.length >= 2, `image ${b}: several hypotheses`);
    for (const [k, h] of hyps.entries())
      assertRowsClose(h.attention!, replay(model, images, b, h.tokens), `image ${b}, hypothesis ${k}`);
  }
  // Two hypotheses whose words differ first at `at`. A step attends with the state before it
  // reads its input word (Xu et al. 2015: the query is h_{t-1}), so row t depends on the words
  // before t − 1: rows 0…at + 1 are the same, row at + 2 reads different words and differs.
  const parted = ranked.flatMap((hyps) =>
    hyps.flatMap((h, i) =>
      hyps.slice(i + 1).flatMap((g) => {
        const at = h.tokens.findIndex((t, j) => g.tokens[j] !== t);
        return at >= 0 && at + 2 < Math.min(h.tokens.length, g.tokens.length) ? [{ h, g, at }] : [];
      }),
    ),
  );
  assert.ok(parted.length > 0, 'no pair of hypotheses to compare');
  for (const { h, g, at } of parted) {
    assert.deepEqual(h.attention!.slice(0, at + 2), g.attention!.slice(0, at + 2), 'the shared steps attend alike');
    assert.ok(
      h.attention![at + 2]!.some((w, p) => w !== g.attention![at + 2]![p]),
      'after different words they look elsewhere',
    );
  }
  images.dispose();
  model.dispose();
});

test('streaming: each word event carries its row, the beam hypothesis its rows; done carries the batch result', async () => {
  const { model, images } = await setup();
  const first = images.slice([0, 0, 0, 0], [1, -1, -1, -1]);
  for (const options of [{ strategy: 'greedy' }, { strategy: 'beam', beamWidth: 3 }] satisfies DecodeOptions[]) {
    const before = tf.memory().numTensors;
    const rows: number[][] = [];
    let lastHypothesis: number[][] | undefined;
    let done: CaptionResult | undefined;
    for await (const event of streamCaption(model, first, options)) {
      if (event.type === 'word') {
        assert.equal(event.index, rows.length);
        rows.push(event.attention!);
      } else if (event.type === 'hypothesis') {
        assert.equal(event.attention!.length, event.words.length, 'one row per word of the hypothesis');
        lastHypothesis = event.attention;
      } else done = event.result;
    }
    assert.equal(tf.memory().numTensors, before, `${options.strategy}: streaming leaves no tensor behind`);
    assert.deepEqual(done, captionImages(model, first, options)[0], `${options.strategy}: the batch result`);
    assertWellFormed(done!, options.strategy);
    if (options.strategy === 'greedy') assert.deepEqual(rows, done!.attention!.weights);
    else assert.ok(lastHypothesis && lastHypothesis.length > 0, 'beam search streamed its hypotheses with rows');
  }
  first.dispose();
  images.dispose();
  model.dispose();
});

test('a model without attention: no maps in results or events', async () => {
  const { model, images } = await setup({ ...ATTENTION_MODEL, encoderPooling: 'average', featureInput: 'init' });
  assert.equal(model.attentionGrid, null);
  for (const options of [{ strategy: 'greedy' }, { strategy: 'beam', beamWidth: 2 }] satisfies DecodeOptions[]) {
    for (const r of captionImages(model, images, options)) assert.ok(!('attention' in r), options.strategy);
    for await (const event of streamCaption(model, images.slice([0, 0, 0, 0], [1, -1, -1, -1]), options))
      assert.ok(event.type === 'done' ? !('attention' in event.result) : !('attention' in event), event.type);
  }
  images.dispose();
  model.dispose();
});
