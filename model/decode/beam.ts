/**
 * Beam-search bookkeeping as small pure functions over plain numbers: the tensor work (one
 * decoder step for every live beam, a per-row top-k) happens in decode.ts; what to keep, what
 * is finished and how hypotheses rank is decided here, where a test can check it by hand.
 */

/** A caption being built (or finished) by beam search. */
export interface Hypothesis {
  /** Word ids, without <start> and <end>. */
  tokens: number[];
  /** log p of each word in `tokens`, under the model. */
  tokenLogProbs: number[];
  /** Sum of the log-probabilities so far; for a finished hypothesis, <end>'s included. */
  logProb: number;
  /**
   * Sum of the scores the search ranks by, where they are not the log-probabilities (anti-LM
   * decoding, model/decode/decode.ts); absent, `logProb` is the score.
   */
  score?: number;
  /**
   * For a model with attention: per word of `tokens`, the weights over the grid of the step that
   * chose it (model/decode/search-state.ts `AttentionMaps`).
   */
  attention?: number[][];
}

/** One way to extend a live beam: beam index, next token and that token's log-probability. */
export interface BeamCandidate {
  beam: number;
  token: number;
  logProb: number;
  /** What the search ranks the token by, when it is not `logProb`. */
  score?: number;
  /** The attention weights of the step that scored the token (the beam's row), for a model with attention. */
  attention?: number[];
}

/** A live hypothesis chosen for the next step, with the beam it grew from (for gathering state rows). */
export interface SelectedBeam {
  parent: number;
  hypothesis: Hypothesis;
}

/**
 * The GNMT length penalty lp(Y) = ((5 + |Y|) / 6)^α (Wu et al. 2016, "Google's Neural Machine
 * Translation System", eq. 14). α = 0 gives 1 (no normalisation); α = 1 is close to dividing by
 * the length. |Y| counts the generated tokens, <end> included.
 */
export function lengthPenalty(length: number, alpha: number): number {
  return Math.pow((5 + length) / 6, alpha);
}

/** The score beams are ranked by: log p(Y) / lp(Y) (Wu et al. 2016, eq. 14, without coverage). */
export function normalisedScore(logProb: number, length: number, alpha: number): number {
  return logProb / lengthPenalty(length, alpha);
}

/** A finished hypothesis' score: its words plus the <end> token. */
export function hypothesisScore(h: Hypothesis, alpha: number): number {
  return normalisedScore(h.score ?? h.logProb, h.tokens.length + 1, alpha);
}

/**
 * A hypothesis grown by one token: log p always, the separate score only when either side has
 * one, and the attention rows when the parent has them.
 */
function extend(
  parent: Hypothesis,
  c: { logProb: number; score?: number },
  tokens: number[],
  tokenLogProbs: number[],
  attention: number[][] | undefined,
): Hypothesis {
  const h: Hypothesis = { tokens, tokenLogProbs, logProb: parent.logProb + c.logProb };
  if (attention) h.attention = attention;
  if (parent.score !== undefined || c.score !== undefined)
    h.score = (parent.score ?? parent.logProb) + (c.score ?? c.logProb);
  return h;
}

/**
 * One beam-search step for one image. Candidates are ranked by total log-probability
 * (beam's + token's), or total score where scores are given; ties keep the earlier beam, then the smaller token id, so
 * the result does
 * not depend on the order candidates arrive in. Walking down the ranking, a candidate that
 * ends the caption is finished only when it ranks within the top `width` (so that width 1 is
 * exactly greedy decoding, as in fairseq's sequence generator); any other candidate becomes a
 * live beam until `width` are live. Callers pass at least 2·width candidates per beam where the
 * vocabulary allows, so `width` live beams are always found: at most one <end> per beam.
 */
export function selectBeams(
  beams: readonly Hypothesis[],
  candidates: readonly BeamCandidate[],
  width: number,
  endToken: number,
): { live: SelectedBeam[]; finished: Hypothesis[] } {
  if (!(width >= 1)) throw new Error(`selectBeams: width must be at least 1, got ${width}`);
  const ranked = candidates
    .map((c) => {
      const parent = beams[c.beam];
      if (!parent) throw new Error(`selectBeams: candidate names beam ${c.beam}, but there are ${beams.length}`);
      return { c, parent, total: (parent.score ?? parent.logProb) + (c.score ?? c.logProb) };
    })
    .filter((r) => r.total > -Infinity)
    .sort((a, b) => b.total - a.total || a.c.beam - b.c.beam || a.c.token - b.c.token);
  const live: SelectedBeam[] = [];
  const finished: Hypothesis[] = [];
  for (const [rank, { c, parent }] of ranked.entries()) {
    if (live.length >= width) break;
    if (c.token === endToken) {
      // <end> is no word: the finished caption keeps its words' attention rows only.
      if (rank < width) finished.push(extend(parent, c, parent.tokens, parent.tokenLogProbs, parent.attention));
      continue;
    }
    live.push({
      parent: c.beam,
      hypothesis: extend(
        parent,
        c,
        [...parent.tokens, c.token],
        [...parent.tokenLogProbs, c.logProb],
        parent.attention && c.attention ? [...parent.attention, c.attention] : undefined,
      ),
    });
  }
  return { live, finished };
}

/** Closes a live hypothesis with <end>, whose log-probability is `endLogProb` (at the length limit). */
export function finishWithEnd(h: Hypothesis, endLogProb: number, endScore?: number): Hypothesis {
  return extend(h, { logProb: endLogProb, score: endScore }, h.tokens, h.tokenLogProbs, h.attention);
}

/**
 * Finished hypotheses best first by length-normalised score (ties: higher log p, then fewer
 * words, then token order), so that the first is the caption beam search returns.
 */
export function rankHypotheses(finished: readonly Hypothesis[], alpha: number): Hypothesis[] {
  const scored = finished.map((h) => ({ h, score: hypothesisScore(h, alpha) }));
  scored.sort(
    (a, b) =>
      b.score - a.score ||
      b.h.logProb - a.h.logProb ||
      a.h.tokens.length - b.h.tokens.length ||
      compareTokens(a.h.tokens, b.h.tokens),
  );
  return scored.map((s) => s.h);
}

function compareTokens(a: readonly number[], b: readonly number[]): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}

/** An image's search is over once `width` hypotheses have finished (fairseq's rule) or none is live. */
export function beamSearchDone(finishedCount: number, liveCount: number, width: number): boolean {
  return finishedCount >= width || liveCount === 0;
}
