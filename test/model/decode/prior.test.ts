import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { LanguagePrior, PRIOR_FILE, PriorError } from '../../../model/decode/prior.ts';
import { priorOfSplit, readPrior } from '../../../model/decode/prior-files.ts';
import { END, START, Vocabulary } from '../../../model/text/vocab.ts';
import { makeTinyDataset } from '../../helpers/tiny-data.ts';

const vocab = new Vocabulary(['<pad>', '<start>', '<end>', '<unk>', 'a', 'red', 'blue', 'circle', 'square']);
const id = (w: string) => vocab.words.indexOf(w);
const enc = (caption: string) => vocab.encode(caption, 10);
// "blue circle" never occurs: the held-out pair.
const CAPTIONS = ['a red circle', 'a red square', 'a blue square', 'a red circle'].map(enc);

test('counts word pairs, <start> and <end> included, and smooths add-k over the vocabulary', () => {
  const prior = LanguagePrior.fromCaptions(CAPTIONS, vocab.size, 1);
  assert.equal(prior.count(START, id('a')), 4);
  assert.equal(prior.count(id('red'), id('circle')), 2);
  assert.equal(prior.count(id('blue'), id('circle')), 0);
  assert.equal(prior.count(id('square'), END), 2);
  const V = vocab.size;
  assert.ok(Math.abs(prior.logProb(id('red'), id('circle')) - Math.log(3 / (3 + V))) < 1e-12);
  assert.ok(Math.abs(prior.logProb(id('blue'), id('circle')) - Math.log(1 / (1 + V))) < 1e-12);
  // A word never seen first is uniform.
  assert.ok(Math.abs(prior.logProb(id('circle'), id('a')) - Math.log(1 / (2 + V))) < 1e-12);
  const rows = prior.rows([id('red'), id('blue')]);
  assert.equal(rows.length, 2 * V);
  for (let w = 0; w < V; w++) {
    assert.ok(Math.abs(rows[w]! - prior.logProb(id('red'), w)) < 1e-6);
    assert.ok(Math.abs(rows[V + w]! - prior.logProb(id('blue'), w)) < 1e-6);
  }
  // Each row is a distribution.
  const total = Array.from(rows.subarray(0, V), Math.exp).reduce((a, b) => a + b, 0);
  assert.ok(Math.abs(total - 1) < 1e-5);
  assert.deepEqual(prior.antiLm, { weight: 0, plausibility: 0.15 });
});

test('the file round-trips by word, and bad files and settings are refused by name', async () => {
  const prior = LanguagePrior.fromCaptions(CAPTIONS, vocab.size, 0.5, { weight: 0.2 });
  const json = prior.toJSON(vocab);
  assert.deepEqual(json.counts.red, { circle: 2, square: 1 });
  assert.deepEqual(json.antiLm, { weight: 0.2, plausibility: 0.15 });
  const back = LanguagePrior.fromJSON(JSON.parse(JSON.stringify(json)), vocab, 'x');
  assert.deepEqual(back.rows([START, id('red')]), prior.rows([START, id('red')]));
  assert.deepEqual(back.antiLm, prior.antiLm);
  assert.deepEqual(back.withAntiLm({ weight: 0.5 }).antiLm, { weight: 0.5, plausibility: 0.15 });

  const dir = await mkdtemp(join(tmpdir(), 'captioner-prior-'));
  try {
    assert.equal(await readPrior(dir, vocab), null);
    await writeFile(join(dir, PRIOR_FILE), JSON.stringify(json));
    assert.deepEqual((await readPrior(dir, vocab))!.rows([id('blue')]), prior.rows([id('blue')]));
    const bad: [unknown, RegExp][] = [
      [{ ...json, format: 'other' }, /not a captioner language prior/],
      [{ ...json, smoothing: 0 }, /smoothing/],
      [{ ...json, counts: { red: { hexagon: 1 } } }, /"hexagon" is not in the model's vocabulary/],
      [{ ...json, counts: { red: { circle: -1 } } }, /counts\["red"\]\["circle"\]/],
      [{ ...json, antiLm: { weight: -1 } }, /antiLm\.weight/],
      [{ ...json, antiLm: { plausibility: 0 } }, /antiLm\.plausibility/],
    ];
    for (const [content, message] of bad) {
      await writeFile(join(dir, PRIOR_FILE), JSON.stringify(content));
      await assert.rejects(
        readPrior(dir, vocab),
        (e: Error) => e instanceof PriorError && e.message.includes(join(dir, PRIOR_FILE)) && message.test(e.message),
      );
    }
    await writeFile(join(dir, PRIOR_FILE), '{"format": ');
    await assert.rejects(readPrior(dir, vocab), (e: Error) => e instanceof PriorError && /cannot read/.test(e.message));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  assert.throws(() => LanguagePrior.fromCaptions(CAPTIONS, vocab.size, 0), /smoothing/);
});

test("a data set's split is counted as training encodes it", async () => {
  const { dir, manifest } = await makeTinyDataset();
  try {
    const words = Vocabulary.build(
      manifest.images.flatMap((i) => i.captions),
      1,
    );
    const prior = await priorOfSplit(dir, 'train', words, 6);
    const pairs = manifest.images.filter((i) => i.split === 'train').flatMap((i) => i.captions).length;
    assert.equal(prior.count(START, words.id('a')), pairs);
    assert.equal(prior.count(words.id('yellow'), words.id('square')), 0);
    assert.ok(prior.count(words.id('red'), words.id('square')) > 0);
    await assert.rejects(priorOfSplit(dir, 'nope', words, 6), /split "nope" has no images/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
