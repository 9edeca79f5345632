/**
 * CIDEr-D as the coco-caption toolkit computes it. Definition: Vedantam, Zitnick and Parikh 2015,
 * "CIDEr: Consensus-based Image Description Evaluation" (§3 CIDEr, §4.2 CIDEr-D). Matched
 * line for line against pycocoevalcap/cider/cider_scorer.py (salaniz/pycocoevalcap, the pip
 * package; the "CIDEr" it reports is the D variant: clipping and the length penalty), which
 * differs from tylin/coco-caption's copy only in guarding the division by a zero norm (there it
 * gives NaN; here, as in pycocoevalcap, the order's similarity is 0).
 *
 * For n = 1..4 and each image i with candidate c and references r_1..r_m:
 * - document frequency df(g) = the number of evaluated images whose reference set contains g;
 *   idf(g) = log(N) − log(max(1, df(g))) with N the number of evaluated images, so an n-gram in
 *   every image's references weighs 0, and one in none weighs log N;
 * - g_n(s) = the vector tf(g, s) · idf(g) over the n-grams g of s (tf a raw count);
 * - sim_n(c, r) = Σ_g min(g_n(c)_g, g_n(r)_g) · g_n(r)_g / (‖g_n(c)‖ ‖g_n(r)‖) — the clipped
 *   overlap over the unclipped norms (0 if either norm is 0) — times the Gaussian length penalty
 *   exp(−δ² / (2σ²)), σ = 6;
 * - CIDEr-D(c) = 10 · mean_n (1/m) Σ_j sim_n(c, r_j); the corpus score is the mean over images.
 *
 * One coco-caption quirk kept for exactness: δ is the difference of the two captions' numbers of
 * bigrams (its `length` counts n-gram index 1), which equals the difference of their lengths
 * except when one caption is empty (0 bigrams, like a one-word caption).
 */
import { ngramCounts, type NgramCounts } from './ngrams.ts';

export interface CiderOptions {
  /** Largest n-gram order (coco-caption: 4). */
  n?: number;
  /** Standard deviation of the length penalty (coco-caption: 6). */
  sigma?: number;
}

export interface CiderResult {
  /** The corpus CIDEr-D: the mean of `perImage`. */
  score: number;
  /** Each image's CIDEr-D, in input order. */
  perImage: number[];
}

interface TfIdf {
  /** Per order: n-gram → tf·idf. */
  vec: Map<string, number>[];
  /** Per order: the Euclidean norm of vec. */
  norm: number[];
  /** Number of bigram occurrences (coco-caption's `length`). */
  length: number;
}

/**
 * Document frequency of every n-gram: in how many images' reference sets it occurs (at least
 * once in at least one reference). `references[i]` holds image i's references as tokens.
 */
export function documentFrequency(references: readonly (readonly (readonly string[])[])[], n = 4): Map<string, number> {
  const df = new Map<string, number>();
  for (const refs of references) {
    const seen = new Set<string>();
    for (const ref of refs) for (const counts of ngramCounts(ref, n)) for (const gram of counts.keys()) seen.add(gram);
    for (const gram of seen) df.set(gram, (df.get(gram) ?? 0) + 1);
  }
  return df;
}

function tfIdf(tokens: readonly string[], n: number, df: ReadonlyMap<string, number>, logN: number): TfIdf {
  const counts: NgramCounts[] = ngramCounts(tokens, n);
  const vec = counts.map((byGram) => {
    const v = new Map<string, number>();
    for (const [gram, tf] of byGram) v.set(gram, tf * (logN - Math.log(Math.max(1, df.get(gram) ?? 0))));
    return v;
  });
  const norm = vec.map((v) => {
    let sq = 0;
    for (const x of v.values()) sq += x ** 2;
    return Math.sqrt(sq);
  });
  // coco-caption counts the bigrams (whatever n is): a caption of w ≥ 1 words has w − 1.
  return { vec, norm, length: Math.max(0, tokens.length - 1) };
}

function similarity(hyp: TfIdf, ref: TfIdf, sigma: number): number[] {
  const delta = hyp.length - ref.length;
  const penalty = Math.exp(-(delta ** 2) / (2 * sigma ** 2));
  return hyp.vec.map((hv, k) => {
    const rv = ref.vec[k]!;
    let val = 0;
    for (const [gram, h] of hv) {
      const r = rv.get(gram) ?? 0;
      val += Math.min(h, r) * r;
    }
    const hn = hyp.norm[k]!;
    const rn = ref.norm[k]!;
    if (hn !== 0 && rn !== 0) val /= hn * rn;
    return val * penalty;
  });
}

/**
 * CIDEr-D against fixed document frequencies: the idf of every n-gram comes from the reference
 * sets given once (`corpus`), not from the images scored. `ciderD` builds one over the images it
 * evaluates, as coco-caption does; self-critical training (model/train/scst.ts) builds one over
 * the training references, as Rennie et al. 2017 do, so that a caption's reward does not depend on
 * the batch it is scored in.
 */
export class CiderDScorer {
  private readonly n: number;
  private readonly sigma: number;
  private readonly df: Map<string, number>;
  private readonly logN: number;

  /** `corpus[i]` holds image i's references as tokens; it fixes df and N = corpus.length. */
  constructor(corpus: readonly (readonly (readonly string[])[])[], options: CiderOptions = {}) {
    this.n = options.n ?? 4;
    this.sigma = options.sigma ?? 6;
    if (corpus.length === 0) throw new RangeError('CiderDScorer: no reference sets to count document frequencies in');
    this.df = documentFrequency(corpus, this.n);
    this.logN = Math.log(corpus.length);
  }

  /** The CIDEr-D of one candidate (tokens) against its references (tokens each, at least one). */
  score(candidate: readonly string[], references: readonly (readonly string[])[]): number {
    if (references.length === 0) throw new RangeError('CiderDScorer: a candidate with no references');
    const hyp = tfIdf(candidate, this.n, this.df, this.logN);
    const sum = new Array<number>(this.n).fill(0);
    for (const ref of references) {
      similarity(hyp, tfIdf(ref, this.n, this.df, this.logN), this.sigma).forEach((v, k) => (sum[k]! += v));
    }
    const meanOverOrders = sum.reduce((a, b) => a + b, 0) / this.n;
    return (meanOverOrders / references.length) * 10;
  }
}

/**
 * CIDEr-D of every image and of the corpus. `candidates[i]` is image i's candidate (tokens),
 * `references[i]` its references (tokens each, at least one). The idf comes from exactly these
 * images' references, so a score depends on the set evaluated together, as in coco-caption.
 */
export function ciderD(
  candidates: readonly (readonly string[])[],
  references: readonly (readonly (readonly string[])[])[],
  options: CiderOptions = {},
): CiderResult {
  if (candidates.length !== references.length) {
    throw new RangeError(`ciderD: ${candidates.length} candidates but ${references.length} reference sets`);
  }
  if (candidates.length === 0) throw new RangeError('ciderD: no images');
  references.forEach((refs, i) => {
    if (refs.length === 0) throw new RangeError(`ciderD: image ${i} has no references`);
  });
  const scorer = new CiderDScorer(references, options);
  const perImage = candidates.map((cand, i) => scorer.score(cand, references[i]!));
  return { score: perImage.reduce((a, b) => a + b, 0) / perImage.length, perImage };
}
