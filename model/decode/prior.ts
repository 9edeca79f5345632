/**
 * The language prior of a training set: how often each word follows each other word in its
 * captions (a bigram model, add-k smoothed), for anti-LM decoding (model/decode/decode.ts).
 *
 * Why: a captioner learns the caption language along with the pictures. Where the training
 * captions never pair two words (the shapes data never says "blue hexagon"), it learns that the
 * pair cannot happen and says something else even when the picture shows it. MMI-antiLM decoding
 * (Li et al. 2016, "A Diversity-Promoting Objective Function for Neural Conversation Models")
 * scores a word by log p(w | image, prefix) − λ·log p_LM(w | prefix): what the picture adds
 * beyond the language. Here the LM is this bigram table, which is exact about which pairs the
 * training captions never hold, and small enough to ship beside a model.
 *
 * The file (language-prior.json in a checkpoint directory) stores counts by word, so that it
 * reads without the vocabulary, and the anti-LM weight the model is decoded with by default.
 */
import type { Vocabulary } from '../text/vocab.ts';
import { DECODE_SPEC, isValidSetting } from './options.ts';

export const PRIOR_FILE = 'language-prior.json';

/** Anti-LM decoding settings a model directory can carry (all optional in the file). */
export interface AntiLmDefaults {
  /** λ: how much of the prior's log-probability is taken off (0: plain decoding). */
  weight: number;
  /** β: only words with p ≥ β·max p under the model are candidates (Li et al. 2023's plausibility constraint). */
  plausibility: number;
}

/** What a prior without settings decodes with: the decoding spec's defaults (model/decode/options.ts). */
export const DEFAULT_ANTI_LM: AntiLmDefaults = {
  weight: DECODE_SPEC.antiLm.default,
  plausibility: DECODE_SPEC.antiLmPlausibility.default,
};

export interface PriorJson {
  format: 'captioner-language-prior';
  version: 1;
  /** Add-k smoothing: every pair counts k more than it was seen. */
  smoothing: number;
  /** What the model is decoded with when the caller does not say. */
  antiLm?: Partial<AntiLmDefaults>;
  /** counts[previous word][next word]; "<start>" and "<end>" mark the ends of a caption. */
  counts: Record<string, Record<string, number>>;
}

export class PriorError extends Error {
  override name = 'PriorError';
}

export class LanguagePrior {
  private constructor(
    readonly vocabSize: number,
    readonly smoothing: number,
    // Sparse, so that a 10k-word vocabulary costs what its captions hold, not V² numbers.
    private readonly counts: ReadonlyMap<number, ReadonlyMap<number, number>>,
    readonly antiLm: AntiLmDefaults,
  ) {
    for (const [prev, row] of counts)
      this.totals.set(
        prev,
        [...row.values()].reduce((a, b) => a + b, 0),
      );
  }

  private readonly totals = new Map<number, number>();

  /** Counts the word pairs of encoded captions (`<start> w1 … wn <end>`, as Vocabulary.encode gives). */
  static fromCaptions(
    captions: Iterable<readonly number[]>,
    vocabSize: number,
    smoothing = 1,
    antiLm: Partial<AntiLmDefaults> = {},
  ): LanguagePrior {
    if (!(smoothing > 0 && Number.isFinite(smoothing))) throw new PriorError(`smoothing must be > 0, got ${smoothing}`);
    const counts = new Map<number, Map<number, number>>();
    for (const ids of captions) {
      for (let t = 1; t < ids.length; t++) {
        let row = counts.get(ids[t - 1]!);
        if (!row) counts.set(ids[t - 1]!, (row = new Map()));
        row.set(ids[t]!, (row.get(ids[t]!) ?? 0) + 1);
      }
    }
    return new LanguagePrior(vocabSize, smoothing, counts, checkAntiLm({ ...DEFAULT_ANTI_LM, ...antiLm }, 'antiLm'));
  }

  static fromJSON(json: unknown, vocab: Vocabulary, source: string): LanguagePrior {
    const j = json as Partial<PriorJson> | null;
    if (!j || j.format !== 'captioner-language-prior' || !j.counts || typeof j.counts !== 'object') {
      throw new PriorError(`${source}: not a captioner language prior`);
    }
    if (!(typeof j.smoothing === 'number' && j.smoothing > 0))
      throw new PriorError(`${source}: "smoothing" must be a number > 0`);
    const ids = new Map(vocab.words.map((w, i) => [w, i]));
    const idOf = (word: string) => {
      const id = ids.get(word);
      if (id === undefined) throw new PriorError(`${source}: "${word}" is not in the model's vocabulary`);
      return id;
    };
    const counts = new Map<number, Map<number, number>>();
    for (const [prev, row] of Object.entries(j.counts)) {
      const out = new Map<number, number>();
      for (const [next, n] of Object.entries(row)) {
        if (!(typeof n === 'number' && n >= 0))
          throw new PriorError(`${source}: counts["${prev}"]["${next}"] must be a count ≥ 0`);
        out.set(idOf(next), n);
      }
      counts.set(idOf(prev), out);
    }
    const antiLm = checkAntiLm({ ...DEFAULT_ANTI_LM, ...(j.antiLm ?? {}) }, `${source}: antiLm`);
    return new LanguagePrior(vocab.size, j.smoothing, counts, antiLm);
  }

  toJSON(vocab: Vocabulary): PriorJson {
    const counts: PriorJson['counts'] = {};
    for (const [a, row] of [...this.counts].sort((x, y) => x[0] - y[0])) {
      counts[vocab.words[a]!] = Object.fromEntries(
        [...row].sort((x, y) => x[0] - y[0]).map(([b, n]) => [vocab.words[b]!, n]),
      );
    }
    return {
      format: 'captioner-language-prior',
      version: 1,
      smoothing: this.smoothing,
      antiLm: { ...this.antiLm },
      counts,
    };
  }

  /** The same counts, decoded by default with other anti-LM settings. */
  withAntiLm(antiLm: Partial<AntiLmDefaults>): LanguagePrior {
    return new LanguagePrior(
      this.vocabSize,
      this.smoothing,
      this.counts,
      checkAntiLm({ ...this.antiLm, ...antiLm }, 'antiLm'),
    );
  }

  /** How many times `next` followed `prev` in the captions counted. */
  count(prev: number, next: number): number {
    return this.counts.get(prev)?.get(next) ?? 0;
  }

  /** log p(next | prev), add-k smoothed: (count + k) / (total + k·V). */
  logProb(prev: number, next: number): number {
    return Math.log((this.count(prev, next) + this.smoothing) / (this.total(prev) + this.smoothing * this.vocabSize));
  }

  /** One row of log p(· | prev) per previous word: [prev.length * V], row-major. */
  rows(prev: ArrayLike<number>): Float32Array {
    const V = this.vocabSize;
    const out = new Float32Array(prev.length * V);
    for (let r = 0; r < prev.length; r++) {
      const denominator = this.total(prev[r]!) + this.smoothing * V;
      out.fill(Math.log(this.smoothing / denominator), r * V, (r + 1) * V);
      for (const [next, n] of this.counts.get(prev[r]!) ?? [])
        out[r * V + next] = Math.log((n + this.smoothing) / denominator);
    }
    return out;
  }

  private total(prev: number): number {
    return this.totals.get(prev) ?? 0;
  }
}

/** λ is a usable anti-LM weight: finite and ≥ 0 (DECODE_SPEC's bound; the file and the prior command check it too). */
export function isAntiLmWeight(weight: number): boolean {
  return isValidSetting('antiLm', weight);
}

/** β is a usable plausibility cut: in (0, 1] (DECODE_SPEC's bound). */
export function isAntiLmPlausibility(plausibility: number): boolean {
  return isValidSetting('antiLmPlausibility', plausibility);
}

function checkAntiLm(a: AntiLmDefaults, where: string): AntiLmDefaults {
  if (!isAntiLmWeight(a.weight)) throw new PriorError(`${where}.weight must be a number ≥ 0, got ${a.weight}`);
  if (!isAntiLmPlausibility(a.plausibility))
    throw new PriorError(`${where}.plausibility must be in (0, 1], got ${a.plausibility}`);
  return { weight: a.weight, plausibility: a.plausibility };
}
