import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  beamSearchDone,
  finishWithEnd,
  hypothesisScore,
  lengthPenalty,
  normalisedScore,
  rankHypotheses,
  selectBeams,
  type Hypothesis,
} from '../../../model/decode/beam.ts';

const END = 2;
const hyp = (tokens: number[], logProb: number): Hypothesis => ({
  tokens,
  tokenLogProbs: tokens.map(() => logProb / Math.max(tokens.length, 1)),
  logProb,
});

test('lengthPenalty is the GNMT ((5 + |Y|) / 6)^α', () => {
  assert.equal(lengthPenalty(1, 0.7), 1);
  assert.equal(lengthPenalty(7, 0), 1);
  assert.ok(Math.abs(lengthPenalty(7, 1) - 2) < 1e-12);
  assert.ok(Math.abs(lengthPenalty(13, 0.5) - Math.sqrt(3)) < 1e-12);
  assert.ok(Math.abs(normalisedScore(-4, 7, 1) - -2) < 1e-12);
});

test('selectBeams keeps the best `width` continuations and finishes <end> only within the top width', () => {
  const beams = [hyp([4], -1), hyp([5], -2)];
  const cands = [
    { beam: 0, token: 6, logProb: -0.5 }, // total -1.5
    { beam: 0, token: END, logProb: -0.2 }, // total -1.2: best, finished
    { beam: 1, token: 7, logProb: -0.1 }, // total -2.1
    { beam: 1, token: END, logProb: -0.3 }, // total -2.3: rank 3 ≥ width 2: dropped
    { beam: 0, token: 7, logProb: -2 }, // total -3
  ];
  const { live, finished } = selectBeams(beams, cands, 2, END);
  assert.deepEqual(
    finished.map((f) => [f.tokens, f.logProb]),
    [[[4], -1.2]],
  );
  assert.deepEqual(
    live.map((l) => [l.parent, l.hypothesis.tokens, +l.hypothesis.logProb.toFixed(6)]),
    [
      [0, [4, 6], -1.5],
      [1, [5, 7], -2.1],
    ],
  );
  assert.deepEqual(live[0]!.hypothesis.tokenLogProbs.slice(-1), [-0.5]);
  // The parent is not modified.
  assert.deepEqual(beams[0]!.tokens, [4]);
});

test('selectBeams with width 1 follows the single best candidate, as greedy decoding does', () => {
  const beams = [hyp([], 0)];
  const a = selectBeams(
    beams,
    [
      { beam: 0, token: 4, logProb: -0.5 },
      { beam: 0, token: END, logProb: -0.9 },
    ],
    1,
    END,
  );
  assert.equal(a.finished.length, 0);
  assert.deepEqual(a.live[0]!.hypothesis.tokens, [4]);
  const b = selectBeams(
    beams,
    [
      { beam: 0, token: 4, logProb: -0.9 },
      { beam: 0, token: END, logProb: -0.5 },
    ],
    1,
    END,
  );
  assert.deepEqual(
    b.finished.map((f) => f.logProb),
    [-0.5],
  );
  assert.equal(b.live.length, 1); // the live beam exists but the search is done: one finished
  assert.equal(beamSearchDone(b.finished.length, b.live.length, 1), true);
});

test('selectBeams breaks ties by beam then token, whatever the input order', () => {
  const beams = [hyp([], 0), hyp([], 0)];
  const cands = [
    { beam: 1, token: 5, logProb: -1 },
    { beam: 0, token: 6, logProb: -1 },
    { beam: 0, token: 5, logProb: -1 },
  ];
  const { live } = selectBeams(beams, cands, 2, END);
  assert.deepEqual(
    live.map((l) => [l.parent, l.hypothesis.tokens[0]]),
    [
      [0, 5],
      [0, 6],
    ],
  );
  assert.deepEqual(
    selectBeams(beams, [...cands].reverse(), 2, END).live.map((l) => [l.parent, l.hypothesis.tokens[0]]),
    [
      [0, 5],
      [0, 6],
    ],
  );
});

test('rankHypotheses orders by length-normalised score; α changes the winner', () => {
  const short = hyp([4], -2); // |Y| = 2
  const long = hyp([4, 5, 6, 7, 8], -2.6); // |Y| = 6
  assert.deepEqual(rankHypotheses([long, short], 0), [short, long]);
  // lp(2) = (7/6)^1 ≈ 1.167 → -1.714; lp(6) = 11/6 ≈ 1.833 → -1.418
  assert.deepEqual(rankHypotheses([short, long], 1), [long, short]);
  const ranked = rankHypotheses([hyp([4], -3), short, long, hyp([5, 6], -0.5)], 0.6);
  for (let i = 1; i < ranked.length; i++)
    assert.ok(hypothesisScore(ranked[i - 1]!, 0.6) >= hypothesisScore(ranked[i]!, 0.6));
  assert.equal(finishWithEnd(short, -0.25).logProb, -2.25);
  assert.equal(beamSearchDone(2, 3, 3), false);
  assert.equal(beamSearchDone(3, 3, 3), true);
  assert.equal(beamSearchDone(0, 0, 3), true);
});

test('with scores, beams rank by score and carry log p beside it; finishing and ranking use the score', () => {
  const beams = [hyp([5], -1), { ...hyp([6], -2), score: -0.5 }];
  const candidates = [
    { beam: 0, token: 7, logProb: -0.1, score: -3 }, // likely, but the score says no
    { beam: 1, token: 8, logProb: -1, score: -0.2 },
    { beam: 1, token: END, logProb: -0.3, score: -0.1 },
  ];
  const { live, finished } = selectBeams(beams, candidates, 2, END);
  assert.deepEqual(finished, [{ tokens: [6], tokenLogProbs: [-2], logProb: -2.3, score: -0.6 }]);
  assert.deepEqual(
    live.map((l) => [l.parent, l.hypothesis.tokens, l.hypothesis.logProb, l.hypothesis.score]),
    [
      [1, [6, 8], -3, -0.7],
      [0, [5, 7], -1.1, -4],
    ],
  );
  // Without scores nothing changes: no score field appears.
  assert.equal(
    selectBeams([hyp([5], -1)], [{ beam: 0, token: 7, logProb: -0.1 }], 1, END).live[0]!.hypothesis.score,
    undefined,
  );
  const closed = finishWithEnd(live[0]!.hypothesis, -0.4, -0.05);
  assert.ok(Math.abs(closed.logProb + 3.4) < 1e-12 && Math.abs(closed.score! + 0.75) < 1e-12);
  // rankHypotheses orders by score: the less likely caption with the better score comes first.
  const ranked = rankHypotheses(
    [
      { ...hyp([1], -1), score: -5 },
      { ...hyp([2], -4), score: -2 },
    ],
    0,
  );
  assert.deepEqual(
    ranked.map((h) => h.tokens),
    [[2], [1]],
  );
  assert.equal(hypothesisScore(ranked[0]!, 0), -2);
});
