/**
 * N-gram counting shared by BLEU and CIDEr-D. A caption is a list of tokens (the output of
 * `ptbTokenize`, which never contains whitespace), so an n-gram is keyed by its tokens joined with
 * a single space, and the counts of each order are kept apart.
 */

/** Counts of the n-grams of one order: "a dog" → 2. */
export type NgramCounts = Map<string, number>;

/**
 * The n-gram counts of `tokens` for orders 1..maxN: element k-1 holds the k-grams. A caption
 * shorter than k has no k-grams (an empty map), as in coco-caption's `precook`
 * (pycocoevalcap/bleu/bleu_scorer.py and cider/cider_scorer.py).
 */
export function ngramCounts(tokens: readonly string[], maxN: number): NgramCounts[] {
  const out: NgramCounts[] = [];
  for (let k = 1; k <= maxN; k++) {
    const counts: NgramCounts = new Map();
    for (let i = 0; i + k <= tokens.length; i++) {
      const key = tokens.slice(i, i + k).join(' ');
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
    out.push(counts);
  }
  return out;
}
