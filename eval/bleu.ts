/**
 * BLEU as the coco-caption toolkit computes it (pycocoevalcap/bleu/bleu_scorer.py, David
 * Chiang's scorer as modified by Fang and Lin, called by bleu.py with option "closest"). The
 * definition is Papineni et al. 2002, "BLEU: a method for automatic evaluation of machine
 * translation", with these coco-caption specifics, each of which changes the number:
 *
 * - Corpus level: clipped n-gram matches and candidate n-gram counts are summed over all images
 *   first, and BLEU is computed once from the sums (not a mean of per-image scores).
 * - Clipping: a candidate n-gram counts at most as often as it occurs in the single reference
 *   where it occurs most often.
 * - Effective reference length per image: the reference length closest to the candidate's; on a
 *   tie the shorter one. The corpus r is the sum of these; c the sum of candidate lengths.
 * - Smoothing: p_n = (correct_n + 1e-15) / (guess_n + 1e-9), so a corpus with no n-gram of some
 *   order yields a tiny number rather than a division by zero.
 * - BLEU-N = (p_1 · … · p_N)^(1/N), times the brevity penalty exp(1 − 1/ratio) when
 *   ratio = (c + 1e-15) / (r + 1e-9) < 1. Scores are on the 0–1 scale.
 */
import { ngramCounts } from '../model/metrics/ngrams.ts';

/** What BLEU needs to know about one image: the sufficient statistics of its candidate. */
export interface BleuStats {
  /** Candidate length c (tokens). */
  testLength: number;
  /** The effective reference length r ("closest", ties to the shorter). */
  refLength: number;
  /** Candidate n-grams of each order: max(0, c − n + 1). */
  guess: number[];
  /** Clipped matches of each order. */
  correct: number[];
}

const SMALL = 1e-9;
const TINY = 1e-15;

/**
 * The reference length closest to `candidateLength`; on a tie the shorter reference
 * (coco-caption: `min((abs(l - testlen), l) for l in reflen)[1]`).
 */
export function closestRefLength(candidateLength: number, refLengths: readonly number[]): number {
  if (refLengths.length === 0) throw new RangeError('closestRefLength: no reference lengths');
  let best = refLengths[0]!;
  for (const l of refLengths) {
    const d = Math.abs(l - candidateLength);
    const bestD = Math.abs(best - candidateLength);
    if (d < bestD || (d === bestD && l < best)) best = l;
  }
  return best;
}

/** The BLEU statistics of one candidate (tokens) against its references (tokens each). */
export function bleuStats(
  candidate: readonly string[],
  references: readonly (readonly string[])[],
  maxN = 4,
): BleuStats {
  if (references.length === 0) throw new RangeError('bleuStats: an image needs at least one reference');
  // For each n-gram, the largest count in any single reference (Papineni et al. §2.1.1).
  const maxRefCounts = Array.from({ length: maxN }, () => new Map<string, number>());
  for (const ref of references) {
    ngramCounts(ref, maxN).forEach((counts, k) => {
      const max = maxRefCounts[k]!;
      for (const [gram, n] of counts) max.set(gram, Math.max(max.get(gram) ?? 0, n));
    });
  }
  const c = candidate.length;
  const correct = ngramCounts(candidate, maxN).map((counts, k) => {
    let sum = 0;
    for (const [gram, n] of counts) sum += Math.min(maxRefCounts[k]!.get(gram) ?? 0, n);
    return sum;
  });
  return {
    testLength: c,
    refLength: closestRefLength(
      c,
      references.map((r) => r.length),
    ),
    guess: Array.from({ length: maxN }, (_, k) => Math.max(0, c - k)),
    correct,
  };
}

/** BLEU-1..N from summed statistics: the cumulative geometric mean times the brevity penalty. */
function bleuFromTotals(correct: readonly number[], guess: readonly number[], c: number, r: number): number[] {
  const scores: number[] = [];
  let product = 1;
  for (let k = 0; k < correct.length; k++) {
    product *= (correct[k]! + TINY) / (guess[k]! + SMALL);
    scores.push(product ** (1 / (k + 1)));
  }
  const ratio = (c + TINY) / (r + SMALL);
  if (ratio < 1) {
    const penalty = Math.exp(1 - 1 / ratio);
    for (let k = 0; k < scores.length; k++) scores[k]! *= penalty;
  }
  return scores;
}

/**
 * Corpus BLEU-1..N (0–1 scale) over the images' statistics: matches, candidate n-grams and
 * lengths summed first, then one BLEU. Element k is BLEU-(k+1).
 */
export function corpusBleu(stats: readonly BleuStats[], maxN = 4): number[] {
  if (stats.length === 0) throw new RangeError('corpusBleu: no images');
  const correct = new Array<number>(maxN).fill(0);
  const guess = new Array<number>(maxN).fill(0);
  let c = 0;
  let r = 0;
  for (const s of stats) {
    c += s.testLength;
    r += s.refLength;
    for (let k = 0; k < maxN; k++) {
      correct[k]! += s.correct[k]!;
      guess[k]! += s.guess[k]!;
    }
  }
  return bleuFromTotals(correct, guess, c, r);
}

/**
 * One image's BLEU-1..N with the same formula applied to its own statistics (coco-caption's
 * per-image `bleu_list`). For inspection only: the corpus score is not their mean.
 */
export function sentenceBleu(stats: BleuStats): number[] {
  return bleuFromTotals(stats.correct, stats.guess, stats.testLength, stats.refLength);
}
