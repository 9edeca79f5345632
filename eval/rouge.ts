/**
 * ROUGE-L as the coco-caption toolkit computes it (pycocoevalcap/rouge/rouge.py, Vedantam):
 * Lin 2004, "ROUGE: A package for automatic evaluation of summaries", §3.1, the LCS-based
 * F-measure with β = 1.2. With several references, the precision and the recall are each the
 * maximum over the references, taken independently (they may come from different references),
 * and only then combined:
 *
 *   P = max_j LCS(c, r_j) / |c|,  R = max_j LCS(c, r_j) / |r_j|,
 *   F = (1 + β²) P R / (R + β² P)   (0 when P or R is 0).
 *
 * The corpus score is the mean of the per-image scores. coco-caption splits the tokenized
 * caption on single spaces, so an empty caption is one empty token: lengths are never 0.
 */

export const ROUGE_BETA = 1.2;

/** Length of the longest common subsequence of two token lists (dynamic programming, O(|a|·|b|)). */
export function lcsLength(a: readonly string[], b: readonly string[]): number {
  const [long, short] = a.length >= b.length ? [a, b] : [b, a];
  let prev = new Array<number>(short.length + 1).fill(0);
  let row = new Array<number>(short.length + 1).fill(0);
  for (let i = 1; i <= long.length; i++) {
    for (let j = 1; j <= short.length; j++) {
      row[j] = long[i - 1] === short[j - 1] ? prev[j - 1]! + 1 : Math.max(prev[j]!, row[j - 1]!);
    }
    [prev, row] = [row, prev];
  }
  return prev[short.length]!;
}

/** coco-caption's `" ".join(tokens).split(" ")`: an empty caption is the one empty token. */
function asSplit(tokens: readonly string[]): readonly string[] {
  return tokens.length === 0 ? [''] : tokens;
}

/** ROUGE-L of one candidate (tokens) against its references (tokens each), 0–1. */
export function rougeL(
  candidate: readonly string[],
  references: readonly (readonly string[])[],
  beta = ROUGE_BETA,
): number {
  if (references.length === 0) throw new RangeError('rougeL: an image needs at least one reference');
  const c = asSplit(candidate);
  let precision = 0;
  let recall = 0;
  for (const reference of references) {
    const r = asSplit(reference);
    const lcs = lcsLength(r, c);
    precision = Math.max(precision, lcs / c.length);
    recall = Math.max(recall, lcs / r.length);
  }
  if (precision === 0 || recall === 0) return 0;
  const b2 = beta ** 2;
  return ((1 + b2) * precision * recall) / (recall + b2 * precision);
}

/** Corpus ROUGE-L: the mean of the per-image scores. */
export function corpusRougeL(perImage: readonly number[]): number {
  if (perImage.length === 0) throw new RangeError('corpusRougeL: no images');
  return perImage.reduce((a, b) => a + b, 0) / perImage.length;
}
