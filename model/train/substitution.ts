/**
 * Word substitution: during training, a decoder input word is now and then replaced by another
 * word that fills the same slots in the training captions ("red" by "blue", "circle" by
 * "square"), while the targets stay the true words.
 *
 * Why: the decoder is told the previous word, and it learns to predict the next one from that
 * word as well as from the image. When the training data never pairs two words (no yellow
 * object is ever a circle), "after *yellow*, never *circle*" is a cheap lesson, and the model
 * then cannot name a yellow circle it sees. If the fed word is sometimes another colour while
 * the target is still the shape in the picture, the fed colour stops predicting the shape and
 * the shape must be read off the image. Only words of the same slot are swapped in, so the
 * fed caption stays grammatical (unlike word dropout's <unk> or scheduled sampling's own words,
 * which can change the sentence's structure while the targets keep the original's).
 *
 * Which words fill the same slots is read off the training captions, as in distributional
 * word classes (Harris 1954; Brown et al. 1992): a word's frames are the (previous word, next
 * word) pairs it occurs between, and two words are substitutes when their frames overlap by
 * Jaccard similarity ≥ `minJaccard`. A frame counts only once seen `minFrameCount` times, so
 * that one odd caption does not join two classes.
 */
import { SPECIAL_TOKENS } from '../text/vocab.ts';

export interface SubstitutionOptions {
  /** Frames seen fewer times than this with a word do not count for it. */
  minFrameCount?: number;
  /** Jaccard similarity of two words' frame sets at or above which they are substitutes. */
  minJaccard?: number;
}

/**
 * For each word id below `vocabSize`, the ids that may replace it (ascending; empty when none).
 * `sequences` are encoded captions `<start> w1 … wn <end>`; the special tokens and <unk> are
 * neighbours in frames but never substitutes.
 */
export function substitutionClasses(
  sequences: Iterable<readonly number[]>,
  vocabSize: number,
  options: SubstitutionOptions = {},
): number[][] {
  const minFrameCount = options.minFrameCount ?? 2;
  const minJaccard = options.minJaccard ?? 0.5;
  const counts: Map<number, number>[] = Array.from({ length: vocabSize }, () => new Map());
  for (const ids of sequences) {
    for (let i = 1; i + 1 < ids.length; i++) {
      const word = ids[i]!;
      if (!substitutable(word) || word >= vocabSize) continue;
      const frame = ids[i - 1]! * vocabSize + ids[i + 1]!;
      counts[word]!.set(frame, (counts[word]!.get(frame) ?? 0) + 1);
    }
  }
  const frames = counts.map((c) => new Set([...c].filter(([, n]) => n >= minFrameCount).map(([f]) => f)));
  // Only words that share a frame can be similar: pair them through the frames they share.
  const byFrame = new Map<number, number[]>();
  frames.forEach((set, word) =>
    set.forEach((f) => {
      const words = byFrame.get(f);
      if (words) words.push(word);
      else byFrame.set(f, [word]);
    }),
  );
  const shared = new Map<number, number>(); // word pair → frames in common
  for (const words of byFrame.values()) {
    for (let a = 0; a < words.length; a++) {
      for (let b = a + 1; b < words.length; b++) {
        const key = words[a]! * vocabSize + words[b]!;
        shared.set(key, (shared.get(key) ?? 0) + 1);
      }
    }
  }
  const classes: number[][] = Array.from({ length: vocabSize }, () => []);
  for (const [key, common] of shared) {
    const a = Math.floor(key / vocabSize);
    const b = key % vocabSize;
    const union = frames[a]!.size + frames[b]!.size - common;
    if (common / union >= minJaccard) {
      classes[a]!.push(b);
      classes[b]!.push(a);
    }
  }
  return classes.map((c) => c.sort((x, y) => x - y));
}

/** <pad>, <start>, <end> and <unk> (ids 0–3) are never substituted nor substitutes. */
function substitutable(id: number): boolean {
  return id >= SPECIAL_TOKENS.length;
}

/**
 * `ids` with each word that has substitutes replaced, with probability `rate` (one number, or
 * one per word id), by one of them chosen uniformly. `coins` and `picks` are uniforms in
 * [0, 1), one of each per id.
 */
export function substituteWords(
  ids: ArrayLike<number>,
  classes: readonly (readonly number[])[],
  rate: number | ArrayLike<number>,
  coins: ArrayLike<number>,
  picks: ArrayLike<number>,
): Int32Array {
  const out = Int32Array.from(ids);
  for (let i = 0; i < out.length; i++) {
    const others = classes[out[i]!];
    if (!others?.length || coins[i]! >= (typeof rate === 'number' ? rate : rate[out[i]!]!)) continue;
    out[i] = others[Math.min(others.length - 1, Math.floor(picks[i]! * others.length))]!;
  }
  return out;
}

/**
 * One substitution probability per word id: `base` for every word, except that each
 * `word=rate` pair of `overrides` ("red=0.5,left=0") sets the rate of that word and of all its
 * substitutes, i.e. of a whole slot, since how much a slot's word should be trusted differs by
 * slot (a fed colour that predicts the shape is the lesson to break; a fed "left" that predicts
 * "of" is grammar). Pairs apply in order. Throws, naming the pair, for a word not in the
 * vocabulary, a word with no substitutes, or a rate outside [0, 1].
 */
export function substitutionRates(
  classes: readonly (readonly number[])[],
  base: number,
  overrides: string,
  words: readonly string[],
): number[] {
  const rates = classes.map(() => base);
  for (const pair of overrides
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean)) {
    const match = /^([^=\s]+)\s*=\s*(\S+)$/.exec(pair);
    if (!match) throw new Error(`"${pair}" is not word=rate`);
    const word = match[1]!;
    const rate = Number(match[2]);
    if (!(rate >= 0 && rate <= 1)) throw new Error(`"${pair}": the rate must be a number in [0, 1]`);
    const id = words.indexOf(word);
    if (id < 0) throw new Error(`"${pair}": "${word}" is not in the vocabulary`);
    if (!classes[id]?.length) throw new Error(`"${pair}": "${word}" has no substitutes in the training captions`);
    for (const w of [id, ...classes[id]!]) rates[w] = rate;
  }
  return rates;
}

/**
 * A line for the training log: how many words have substitutes, and the largest groups (a word
 * with its substitutes; words whose groups are the same set are shown once).
 */
export function describeClasses(
  classes: readonly (readonly number[])[],
  word: (id: number) => string,
  examples = 3,
): string {
  const groups = new Map<string, number[]>();
  classes.forEach((subs, id) => {
    if (!subs.length) return;
    const group = [id, ...subs].sort((a, b) => a - b);
    groups.set(group.join(','), group);
  });
  const withSubs = classes.filter((c) => c.length > 0).length;
  const shown = [...groups.values()].sort((a, b) => b.length - a.length || a[0]! - b[0]!).slice(0, examples);
  return `${withSubs} of ${classes.length} words have substitutes${shown.length ? `, e.g. ${shown.map((g) => g.map(word).join(' ')).join('; ')}` : ''}`;
}
