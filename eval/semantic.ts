/**
 * Semantic accuracy of captions on a data set whose images carry a ground-truth scene (the
 * generated shapes set): each caption is parsed back into objects, attributes and relations and
 * compared with the truth. The parser and the comparison belong to the data set
 * (data-scripts/shapes/semantics.ts); this module only aggregates, so it works with any
 * `SceneJudge`.
 *
 * Aggregates: exact-match rate = the fraction of captions whose scene matches exactly (an
 * unparseable caption never does); attribute precision, recall and F1 from tp, fp, fn summed over
 * the images (micro-averaged; F1 = 2tp / (2tp + fp + fn), van Rijsbergen's F with β = 1).
 */

/** What a data set provides to judge a caption against an image's ground truth. */
export interface SceneJudge<Scene> {
  /** The scene a caption describes, or null when it does not parse. */
  parse(caption: string): Scene | null;
  /** Counts of agreeing (tp), wrongly stated (fp) and missed (fn) facts; exact when both are 0. */
  compare(predicted: Scene, truth: Scene): { exact: boolean; tp: number; fp: number; fn: number };
  /** The empty scene an unparseable caption is scored as (every true fact missed). */
  empty(): Scene;
}

export interface SemanticAccuracy {
  images: number;
  /** Captions the parser could not read. */
  unparsed: number;
  exactMatchRate: number;
  attributePrecision: number;
  attributeRecall: number;
  attributeF1: number;
}

/** Exact-match rate and micro-averaged attribute F1 of `captions` against their scenes. */
export function semanticAccuracy<Scene>(items: readonly { caption: string; truth: Scene }[], judge: SceneJudge<Scene>): SemanticAccuracy {
  if (items.length === 0) throw new RangeError('semanticAccuracy: no images');
  let exact = 0;
  let unparsed = 0;
  let tp = 0;
  let fp = 0;
  let fn = 0;
  for (const { caption, truth } of items) {
    const parsed = judge.parse(caption);
    if (parsed === null) unparsed += 1;
    const c = judge.compare(parsed ?? judge.empty(), truth);
    if (c.exact && parsed !== null) exact += 1;
    tp += c.tp;
    fp += c.fp;
    fn += c.fn;
  }
  return {
    images: items.length,
    unparsed,
    exactMatchRate: exact / items.length,
    attributePrecision: tp + fp ? tp / (tp + fp) : 0,
    attributeRecall: tp + fn ? tp / (tp + fn) : 0,
    attributeF1: tp ? (2 * tp) / (2 * tp + fp + fn) : 0,
  };
}
