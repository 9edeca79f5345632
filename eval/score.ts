/**
 * Scoring captions as coco-caption's COCOEvalCap does: PTB-tokenize candidates and references
 * (model/text/tokenize.ts), then BLEU-1..4, ROUGE-L and CIDEr-D over the set. METEOR and SPICE need
 * Java programs (Meteor 1.5, SPICE 1.0) that this project does not ship; they are not computed.
 */
import { ptbTokenize } from '../model/text/tokenize.ts';
import { bleuStats, corpusBleu } from './bleu.ts';
import { ciderD } from '../model/metrics/cider.ts';
import type { CaptionPair, ImageId } from './coco-files.ts';
import { corpusRougeL, rougeL } from './rouge.ts';

export const METRIC_NAMES = ['BLEU-1', 'BLEU-2', 'BLEU-3', 'BLEU-4', 'ROUGE-L', 'CIDEr-D'] as const;
export type MetricName = (typeof METRIC_NAMES)[number];
export type CorpusScores = Record<MetricName, number>;

/** Metrics coco-caption reports that we cannot compute faithfully without its Java tools. */
export const NOT_COMPUTED = {
  METEOR: 'needs the Java Meteor 1.5 jar (pycocoevalcap/meteor), which captioner does not ship',
  SPICE:
    'needs the Java SPICE 1.0 jar and Stanford CoreNLP models (pycocoevalcap/spice), which captioner does not ship',
} as const;

export interface ImageScore {
  id: ImageId;
  candidate: string;
  references: string[];
  'CIDEr-D': number;
  'ROUGE-L': number;
}

export interface ScoreReport {
  corpus: CorpusScores;
  perImage: ImageScore[];
}

/** Scores the pairs together (CIDEr-D's idf depends on the whole set). At least one pair. */
export function scoreCaptions(pairs: readonly CaptionPair[]): ScoreReport {
  if (pairs.length === 0) throw new RangeError('scoreCaptions: nothing to score');
  const candidates = pairs.map((p) => ptbTokenize(p.candidate));
  const references = pairs.map((p) => p.references.map(ptbTokenize));
  const bleu = corpusBleu(
    candidates.map((c, i) => bleuStats(c, references[i]!, 4)),
    4,
  );
  const rouge = candidates.map((c, i) => rougeL(c, references[i]!));
  const cider = ciderD(candidates, references);
  const corpus: CorpusScores = {
    'BLEU-1': bleu[0]!,
    'BLEU-2': bleu[1]!,
    'BLEU-3': bleu[2]!,
    'BLEU-4': bleu[3]!,
    'ROUGE-L': corpusRougeL(rouge),
    'CIDEr-D': cider.score,
  };
  for (const name of METRIC_NAMES) {
    if (!Number.isFinite(corpus[name]))
      throw new Error(`${name} came out as ${corpus[name]}: this is a bug in eval/, please report it`);
  }
  const perImage = pairs.map((p, i) => ({
    id: p.id,
    candidate: p.candidate,
    references: p.references,
    'CIDEr-D': cider.perImage[i]!,
    'ROUGE-L': rouge[i]!,
  }));
  return { corpus, perImage };
}

/** The `score --json` object: exactly the six metrics, plus perImage keyed by image id. */
export function scoresToJson(report: ScoreReport): Record<string, unknown> {
  const perImage: Record<string, { 'CIDEr-D': number; 'ROUGE-L': number }> = {};
  for (const s of report.perImage) perImage[String(s.id)] = { 'CIDEr-D': s['CIDEr-D'], 'ROUGE-L': s['ROUGE-L'] };
  return { ...report.corpus, perImage };
}

/** A plain-text table of the corpus scores, with the metrics not computed and why. */
export function formatScoreTable(corpus: CorpusScores, images: number): string {
  const lines = [`metric    score     (${images} images; BLEU and ROUGE-L on 0-1, CIDEr-D on coco-caption's scale)`];
  for (const name of METRIC_NAMES) lines.push(`${name.padEnd(9)} ${corpus[name].toFixed(4)}`);
  for (const [name, why] of Object.entries(NOT_COMPUTED))
    lines.push(`${name.padEnd(9)} n/a       not computed: ${why}`);
  return lines.join('\n') + '\n';
}
