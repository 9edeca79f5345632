/**
 * Vocabulary and caption statistics of a data set, from its training split only (validation
 * and test words must not shape the vocabulary): word counts, the vocabulary a minimum count
 * keeps, the caption-length histogram and how many captions a maximum length would cut.
 */
import type { DatasetImage } from '../model/data/dataset.ts';
import { ptbTokenize } from '../model/text/tokenize.ts';

export interface DatasetStats {
  splits: Record<string, { images: number; captions: number }>;
  trainSplit: string;
  minWordCount: number;
  maxLength: number;
  /** Distinct words and word tokens in the training captions. */
  distinctWords: number;
  tokens: number;
  /** Words seen at least minWordCount times (the vocabulary without its special tokens). */
  vocabularySize: number;
  /** Fraction of training tokens that would be <unk> under minWordCount. */
  unknownRate: number;
  meanLength: number;
  /** Caption length in words → number of training captions. */
  lengthHistogram: Record<string, number>;
  /** Training captions longer than maxLength (cut in training). */
  longerThanMaxLength: number;
  /** Training word counts, most frequent first. */
  wordCounts: Record<string, number>;
}

/** Statistics of `images` (see the module comment). */
export function datasetStats(
  images: readonly DatasetImage[],
  opts: { trainSplit?: string; minWordCount: number; maxLength: number },
): DatasetStats {
  const trainSplit = opts.trainSplit ?? 'train';
  const splits: DatasetStats['splits'] = {};
  const counts = new Map<string, number>();
  const lengths = new Map<number, number>();
  let tokens = 0;
  let captions = 0;
  let longer = 0;
  for (const img of images) {
    const s = (splits[img.split] ??= { images: 0, captions: 0 });
    s.images += 1;
    s.captions += img.captions.length;
    if (img.split !== trainSplit) continue;
    for (const caption of img.captions) {
      const words = ptbTokenize(caption);
      captions += 1;
      tokens += words.length;
      if (words.length > opts.maxLength) longer += 1;
      lengths.set(words.length, (lengths.get(words.length) ?? 0) + 1);
      for (const w of words) counts.set(w, (counts.get(w) ?? 0) + 1);
    }
  }
  const sorted = [...counts].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const kept = sorted.filter(([, n]) => n >= opts.minWordCount);
  const keptTokens = kept.reduce((sum, [, n]) => sum + n, 0);
  return {
    splits,
    trainSplit,
    minWordCount: opts.minWordCount,
    maxLength: opts.maxLength,
    distinctWords: counts.size,
    tokens,
    vocabularySize: kept.length,
    unknownRate: tokens ? (tokens - keptTokens) / tokens : 0,
    meanLength: captions ? tokens / captions : 0,
    lengthHistogram: Object.fromEntries([...lengths].sort((a, b) => a[0] - b[0]).map(([k, v]) => [String(k), v])),
    longerThanMaxLength: longer,
    wordCounts: Object.fromEntries(sorted),
  };
}
