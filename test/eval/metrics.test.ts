/**
 * The metrics against hand-computed cases (each expected value worked out in the comment beside
 * it from the coco-caption definitions) and against numbers pycocoevalcap itself computed on
 * random pre-tokenized corpora (fixtures/pycocoevalcap-crosscheck.json; only its numbers are
 * shipped, not its code).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { bleuStats, closestRefLength, corpusBleu, sentenceBleu } from '../../eval/bleu.ts';
import { ciderD, documentFrequency } from '../../model/metrics/cider.ts';
import { lcsLength, rougeL, corpusRougeL } from '../../eval/rouge.ts';
import { scoreCaptions } from '../../eval/score.ts';
import { ngramCounts } from '../../model/metrics/ngrams.ts';

const t = (s: string): string[] => (s ? s.split(' ') : []);
const close = (actual: number, expected: number, tol = 1e-12, what = '') =>
  assert.ok(Math.abs(actual - expected) <= tol, `${what} ${actual} != ${expected} (tolerance ${tol})`);

// Smoothed precision as coco-caption writes it.
const p = (correct: number, guess: number) => (correct + 1e-15) / (guess + 1e-9);

test('n-gram counts per order', () => {
  const [uni, bi, tri] = ngramCounts(t('a b a b'), 3);
  assert.deepEqual(
    [...uni!],
    [
      ['a', 2],
      ['b', 2],
    ],
  );
  assert.deepEqual(
    [...bi!],
    [
      ['a b', 2],
      ['b a', 1],
    ],
  );
  assert.deepEqual(
    [...tri!],
    [
      ['a b a', 1],
      ['b a b', 1],
    ],
  );
  assert.equal(ngramCounts(t('a'), 2)[1]!.size, 0);
});

test('BLEU: closest reference length, ties go to the shorter', () => {
  assert.equal(closestRefLength(3, [4, 2]), 2);
  assert.equal(closestRefLength(3, [2, 4]), 2);
  assert.equal(closestRefLength(3, [5, 4, 9]), 4);
  assert.equal(closestRefLength(10, [3, 7]), 7);
  // Through BLEU: c = 3 against lengths 2 and 4. With r = 2 there is no brevity penalty (BLEU-1 ≈ 1);
  // r = 4 would give exp(1 − 4/3) ≈ 0.717.
  const s = bleuStats(t('a b c'), [t('a b c d'), t('a b')]);
  assert.equal(s.refLength, 2);
  close(corpusBleu([s])[0]!, p(3, 3));
});

test('BLEU: clipping by the largest count in any single reference', () => {
  // "the" ×4 against refs with at most 2 "the" (in the second): 2 of 4 unigrams count.
  // Bigrams "the the" ×3; the second reference has it once: 1 of 3. c = 4, r = 3 (closest): no penalty.
  const s = bleuStats(t('the the the the'), [t('the cat'), t('the the cat')]);
  assert.deepEqual(s.correct.slice(0, 2), [2, 1]);
  assert.deepEqual(s.guess, [4, 3, 2, 1]);
  const [b1, b2] = corpusBleu([s]);
  close(b1!, p(2, 4));
  close(b2!, Math.sqrt(p(2, 4) * p(1, 3)));
});

test('BLEU: a candidate shorter than every reference gets the brevity penalty', () => {
  // c = 2, r = 3 (closest of 3 and 4): BP = exp(1 − 1/ratio), ratio = (2 + 1e-15)/(3 + 1e-9) ≈ exp(−0.5).
  const s = bleuStats(t('a dog'), [t('a dog runs'), t('a dog runs fast')]);
  const ratio = (2 + 1e-15) / (3 + 1e-9);
  close(corpusBleu([s])[0]!, p(2, 2) * Math.exp(1 - 1 / ratio));
  close(corpusBleu([s])[0]!, Math.exp(-0.5), 1e-8);
});

test('BLEU: a candidate longer than every reference gets no penalty, only lower precision', () => {
  // c = 6, refs 3 and 2 → r = 3; unigrams a, dog, runs match: 3 of 6.
  const s = bleuStats(t('a dog runs very fast today'), [t('a dog runs'), t('a dog')]);
  assert.equal(s.refLength, 3);
  close(corpusBleu([s])[0]!, p(3, 6));
});

test('BLEU: the corpus score comes from summed counts, not a mean of image scores', () => {
  // Image A matches 4/4, image B 0/2: corpus BLEU-1 = 4/6, the mean of sentence scores ≈ 0.5.
  // c = r = 6, yet the smoothed ratio (6 + 1e-15)/(6 + 1e-9) is just below 1: a brevity penalty of
  // exp(1 − 1/ratio) ≈ 1 − 1.7e-10 applies, as in coco-caption.
  const a = bleuStats(t('a b c d'), [t('a b c d')]);
  const b = bleuStats(t('x y'), [t('p q')]);
  const ratio = (6 + 1e-15) / (6 + 1e-9);
  close(corpusBleu([a, b])[0]!, p(4, 6) * Math.exp(1 - 1 / ratio));
  const mean = (sentenceBleu(a)[0]! + sentenceBleu(b)[0]!) / 2;
  assert.ok(Math.abs(mean - 0.5) < 1e-6);
});

test('BLEU property: a candidate equal to its single reference scores 1 at every order', () => {
  let seed = 7;
  const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const words = ['a', 'dog', 'cat', 'on', 'the', 'red', 'mat'];
  for (let trial = 0; trial < 20; trial++) {
    const sentence = Array.from(
      { length: 4 + Math.floor(rand() * 8) },
      () => words[Math.floor(rand() * words.length)]!,
    );
    for (const score of corpusBleu([bleuStats(sentence, [sentence])])) close(score, 1, 1e-9, sentence.join(' '));
  }
});

test('ROUGE-L: LCS length', () => {
  assert.equal(lcsLength(t('a b c b d a b'), t('b d c a b a')), 4);
  assert.equal(lcsLength(t('a b'), t('c d')), 0);
  assert.equal(lcsLength([], t('a')), 0);
});

test('ROUGE-L: β = 1.2 F-measure of the best precision and the best recall', () => {
  // ref1 "a b x": LCS 2 → P 2/4, R 2/3; ref2 "c d e f g h": LCS 2 → P 2/4, R 2/6.
  // P = 1/2, R = 2/3: F = (1 + 1.44)(1/2)(2/3) / (2/3 + 1.44 · 1/2).
  const f = (2.44 * 0.5 * (2 / 3)) / (2 / 3 + 1.44 * 0.5);
  close(rougeL(t('a b c d'), [t('a b x'), t('c d e f g h')]), f);
  // Independent maxima: "a b c d e f" gives P = 1 (R = 1/2), "a" gives R = 1 (P = 1/3): F = 1,
  // though no single reference scores 1.
  close(rougeL(t('a b c'), [t('a b c d e f'), t('a')]), 1);
  assert.equal(rougeL(t('x y'), [t('a b')]), 0);
  close(corpusRougeL([1, 0, 0.5]), 0.5);
});

test('CIDEr-D: tf-idf, idf 0 for n-grams in every image, mean over orders, ×10', () => {
  // Two images. df: dog 2, runs 1, sits 1, "dog runs" 1, "dog sits" 1. log N = ln 2.
  // Image 1, candidate = reference "dog runs": unigram vectors {dog: 0, runs: ln2}, cosine 1;
  // bigram {"dog runs": ln2}, cosine 1; no 3- or 4-grams (norm 0 → 0). Mean over 4 orders = 0.5 → 5.
  // Image 2, "cat" against "dog sits": no overlap → 0. Corpus: 2.5.
  const refs = [[t('dog runs')], [t('dog sits')]];
  const df = documentFrequency(refs);
  assert.equal(df.get('dog'), 2);
  assert.equal(df.get('dog runs'), 1);
  const r = ciderD([t('dog runs'), t('cat')], refs);
  close(r.perImage[0]!, 5);
  close(r.perImage[1]!, 0);
  close(r.score, 2.5);
  // "dog" is in both images' references: idf 0, so matching it is worth nothing.
  close(ciderD([t('dog runs'), t('dog')], refs).perImage[1]!, 0);
  // One image alone: log N = 0, every weight is 0.
  assert.equal(ciderD([t('dog runs')], [[t('dog runs')]]).score, 0);
});

test('CIDEr-D: clipping min(h, r)·r over the unclipped norms, and the Gaussian length penalty', () => {
  // n = 1. Image 1: "runs runs" vs "runs": h = 2 ln2, r = ln2: overlap ln2·ln2 over (2 ln2)(ln2) = 1/2
  // (plain cosine would be 1). Bigram counts 1 vs 0 → δ = 1, penalty exp(−1/72). Score 10 · 0.5 · exp(−1/72).
  // Image 2: "dog" vs "dog": 10.
  const r = ciderD([t('runs runs'), t('dog')], [[t('runs')], [t('dog')]], { n: 1 });
  close(r.perImage[0]!, 10 * 0.5 * Math.exp(-1 / 72));
  close(r.perImage[1]!, 10);
  // δ = 6 words: penalty exp(−36/72).
  const long = ciderD([t('a b c d e f g h'), t('z')], [[t('a b')], [t('z')]], { n: 1 });
  // a, b weigh ln2 each in both vectors: overlap 2 ln2², norms √8 ln2 (8 distinct words) and √2 ln2.
  close(long.perImage[0]!, 10 * (2 / (Math.sqrt(8) * Math.sqrt(2))) * Math.exp(-36 / 72));
});

test('CIDEr-D: the mean over references', () => {
  // One reference identical, one disjoint: (1 + 0) / 2 references × 10 = 5 (n = 1).
  const r = ciderD([t('dog'), t('cat')], [[t('dog'), t('bird')], [t('cat')]], { n: 1 });
  close(r.perImage[0]!, 5);
});

interface CrossCase {
  images: { id: string; candidate: string; references: string[] }[];
  expected: {
    BLEU: number[];
    'ROUGE-L': number;
    'CIDEr-D': number;
    perImage: Record<string, { 'ROUGE-L': number; 'CIDEr-D': number }>;
  };
}

test('agrees with pycocoevalcap within 1e-9 on random corpora', () => {
  const fixture = JSON.parse(
    readFileSync(new URL('./fixtures/pycocoevalcap-crosscheck.json', import.meta.url), 'utf8'),
  ) as { cases: CrossCase[] };
  assert.ok(fixture.cases.length >= 10);
  for (const [n, c] of fixture.cases.entries()) {
    const cands = c.images.map((i) => t(i.candidate));
    const refs = c.images.map((i) => i.references.map(t));
    corpusBleu(cands.map((cand, i) => bleuStats(cand, refs[i]!))).forEach((b, k) =>
      close(b, c.expected.BLEU[k]!, 1e-9, `case ${n} BLEU-${k + 1}`),
    );
    const rouge = cands.map((cand, i) => rougeL(cand, refs[i]!));
    close(corpusRougeL(rouge), c.expected['ROUGE-L'], 1e-9, `case ${n} ROUGE-L`);
    const cider = ciderD(cands, refs);
    close(cider.score, c.expected['CIDEr-D'], 1e-9, `case ${n} CIDEr-D`);
    c.images.forEach((img, i) => {
      close(rouge[i]!, c.expected.perImage[img.id]!['ROUGE-L'], 1e-9, `case ${n} ${img.id} ROUGE-L`);
      close(cider.perImage[i]!, c.expected.perImage[img.id]!['CIDEr-D'], 1e-9, `case ${n} ${img.id} CIDEr-D`);
    });
    // The same through scoreCaptions (tokenizing lower-case words is the identity).
    if (c.images.every((i) => i.candidate)) {
      const report = scoreCaptions(
        c.images.map((i) => ({ id: i.id, candidate: i.candidate, references: i.references })),
      );
      close(report.corpus['BLEU-4'], c.expected.BLEU[3]!, 1e-9, `case ${n} scoreCaptions BLEU-4`);
      close(report.corpus['CIDEr-D'], c.expected['CIDEr-D'], 1e-9, `case ${n} scoreCaptions CIDEr-D`);
    }
  }
});
