/**
 * Evaluating a trained model on a split of a data set: caption every image, then score the
 * captions against the split's references exactly as coco-caption would (eval/score.ts). The
 * CLI (`captioner eval`) and anything else call this; it knows nothing of terminals.
 */
import { basename, join, resolve } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { Captioner } from '../model/nn/captioner.ts';
import type { LanguagePrior } from '../model/decode/prior.ts';
import { DatasetError, ImageCache, readManifest, splitImages, type DatasetImage } from '../model/data/dataset.ts';
import { captionImages, type AttentionMaps, type StepModel } from '../model/decode/decode.ts';
import {
  DEFAULT_BEAM_WIDTH,
  STRATEGY_NAMES,
  checkSetting,
  readDecodeSettings,
  resolveDecodeOptions,
  type DecodeOptions,
  type DecodeSettings,
} from '../model/decode/options.ts';
import { semanticScores, type Scene, type SemanticScores } from '../data-scripts/shapes/semantics.ts';
import { writeFileAtomic } from '../model/io/fsutil.ts';
import { loadModel } from '../model/io/load.ts';
import type { RecommendedDecoding } from '../model/decode/recommended.ts';
import type { Familiarity, FamiliarityModel } from '../model/familiarity/familiarity.ts';
import { METRICS_FILE, readMetricsLog } from '../model/io/metrics-log.ts';
import { wordMaps } from './attention-maps.ts';
import { measureExposure, type ExposureFigures } from './exposure.ts';
import { cocoImageId, toCocoAnnotations, toCocoResults } from './coco-files.ts';
import {
  bestAndWorst,
  imageDataUri,
  exposureCharts,
  renderReport,
  trainingCharts,
  type GalleryItem,
  type ReportSplit,
} from './report.ts';
import { NOT_COMPUTED, scoreCaptions, type CorpusScores, type ImageScore, type ScoreReport } from './score.ts';

/**
 * The decoding settings an evaluation takes (model/decode/options.ts DECODE_SPEC): deterministic
 * decoding only, beam search of `beamWidth` (1 is greedy decoding). A setting left out is the
 * model's recommendation (decoding.json, `withRecommendedDecoding`), else DEFAULT_BEAM_WIDTH
 * and the anti-LM defaults of its language-prior.json.
 */
export const EVAL_DECODE_SETTINGS = [
  'beamWidth',
  'lengthPenalty',
  'maxLength',
  'antiLm',
  'antiLmPlausibility',
] as const;

export type EvalDecodeSettings = Pick<DecodeSettings, (typeof EVAL_DECODE_SETTINGS)[number]>;

export interface CaptionSplitOptions extends EvalDecodeSettings {
  /** Images per decoding batch. */
  batchSize?: number;
  /** The model's language prior (model/io/load.ts returns it), for anti-LM; absent: plain decoding. */
  prior?: LanguagePrior | null;
  /** The model's familiarity calibration (model/io/load.ts): each image's familiarity is reported. */
  familiarity?: FamiliarityModel | null;
  /** Called while images are decoded from disk. */
  loading?(done: number, total: number): void;
  /** Called after each captioned batch. */
  progress?(done: number, total: number): void;
}

export interface CaptionedImage {
  id: string;
  file: string;
  caption: string;
  references: string[];
  /** For a model with attention: where it looked for each word (drawn in the report's gallery). */
  attention?: AttentionMaps;
  /** How familiar the image looks to the model; only from a calibrated model. */
  familiarity?: Familiarity;
}

/**
 * The decoding an evaluation runs: beam search of `beamWidth` (1: greedy decoding), the other
 * settings checked against DECODE_SPEC; one that greedy decoding does not use (a length
 * penalty at width 1) is refused. `nameOf` names a setting in errors as the caller does (the
 * CLI: its flags).
 */
export function evalDecodeOptions(
  settings: EvalDecodeSettings,
  nameOf: (key: string) => string = (key) => key,
): DecodeSettings {
  const beamWidth = checkSetting('beamWidth', settings.beamWidth ?? DEFAULT_BEAM_WIDTH, nameOf('beamWidth'));
  const strategy = beamWidth > 1 ? 'beam' : 'greedy';
  const given: Record<string, unknown> = {};
  for (const key of EVAL_DECODE_SETTINGS) if (key !== 'beamWidth') given[key] = settings[key];
  const decode = readDecodeSettings(given, {
    strategy,
    nameOf,
    howToChoose: (s) => (s === 'beam' ? `set ${nameOf('beamWidth')} above 1` : `use ${STRATEGY_NAMES[s]}`),
  });
  return strategy === 'beam' ? { ...decode, beamWidth } : decode;
}

/**
 * The settings an evaluation decodes with: those given, and for each left out, the model's
 * recommended decoding (decoding.json): its beam width (1 when it recommends greedy decoding),
 * its length penalty and anti-LM settings. Without a recommendation, `settings` as they are.
 */
export function withRecommendedDecoding(
  settings: EvalDecodeSettings,
  recommended: RecommendedDecoding | null,
): EvalDecodeSettings {
  if (!recommended) return settings;
  const out: EvalDecodeSettings = { ...settings };
  out.beamWidth ??= recommended.strategy === 'greedy' ? 1 : (recommended.beamWidth ?? DEFAULT_BEAM_WIDTH);
  for (const key of ['lengthPenalty', 'antiLm', 'antiLmPlausibility'] as const) {
    if (key === 'lengthPenalty' && out.beamWidth === 1) continue;
    if (out[key] === undefined && recommended[key] !== undefined) out[key] = recommended[key];
  }
  return out;
}

/** How captions are decoded: a description for reports and logs (checks the options, naming a wrong one). */
export function decodingDescription(model: StepModel, options: DecodeOptions): string {
  const o = resolveDecodeOptions(model, options);
  const parts = [o.strategy === 'beam' ? `beam search, width ${o.beamWidth}` : o.strategy];
  if (o.strategy === 'beam' && o.lengthPenalty > 0) parts.push(`length penalty α ${o.lengthPenalty}`);
  if (options.maxLength !== undefined) parts.push(`at most ${o.maxLength} words`);
  if (o.antiLm > 0) parts.push(`anti-LM λ ${o.antiLm} (β ${o.antiLmPlausibility})`);
  return parts.join(', ');
}

/** Captions `images` (of the data set in `dataDir`) in batches; results in input order. */
export async function captionImagesOfSplit(
  model: Captioner,
  dataDir: string,
  images: readonly DatasetImage[],
  options: CaptionSplitOptions = {},
): Promise<CaptionedImage[]> {
  const batchSize = options.batchSize ?? 32;
  const decode: DecodeOptions = { ...evalDecodeOptions(options), prior: options.prior ?? null };
  const size = model.config.imageSize;
  const cache = await ImageCache.load(dataDir, images, size, options.loading);
  const out: CaptionedImage[] = [];
  for (let start = 0; start < images.length; start += batchSize) {
    const batch = images.slice(start, start + batchSize);
    const tensor = tf.tensor4d(cache.batch(batch.map((img) => img.id)), [batch.length, size, size, 3]);
    try {
      const judged = options.familiarity?.assess(model.encoder, tensor);
      captionImages(model, tensor, decode).forEach(({ words, attention }, i) => {
        const caption = words.join(' ');
        const img = batch[i]!;
        const captioned: CaptionedImage = { id: img.id, file: img.file, caption, references: img.captions };
        if (attention) captioned.attention = attention;
        if (judged) captioned.familiarity = judged[i]!;
        out.push(captioned);
      });
    } finally {
      tensor.dispose();
    }
    options.progress?.(out.length, images.length);
  }
  return out;
}

/**
 * Scores captioned images. A caption that is empty (the model ended at once) is scored as
 * coco-caption scores an empty string: no n-gram, no match.
 */
export function scoreCaptionedImages(captioned: readonly CaptionedImage[]): ScoreReport {
  return scoreCaptions(captioned.map((c) => ({ id: c.id, candidate: c.caption, references: c.references })));
}

/** What `runEvaluation` needs: where, what, and the decoding (EvalDecodeSettings). */
export interface EvaluationOptions extends EvalDecodeSettings {
  modelDir: string;
  dataDir: string;
  /**
   * The split to evaluate; on the shapes data set "test" brings "test-compositional" along, and
   * "selection" "selection-compositional".
   */
  split: string;
  batchSize: number;
  /** Where the COCO files, metrics.json and report.html go. */
  outDir: string;
  /** Images in each of the report's best and worst galleries. */
  galleryCount: number;
  /** Only the first `limit` images of each split (a quick look at a checkpoint); 0 or absent: all. */
  limit?: number;
  /** Also measure exposure bias (eval/exposure.ts): per-position teacher-forced vs free-running figures, recovery. */
  exposure?: boolean;
}

export interface EvaluationHooks {
  log?(line: string): void;
  loading?(split: string, done: number, total: number): void;
  progress?(split: string, done: number, total: number): void;
  /** Called after each batch of the exposure-bias measurement. */
  exposure?(split: string, done: number, total: number): void;
}

export interface SplitEvaluation {
  split: string;
  images: number;
  scores: CorpusScores;
  /** Exact-match rate and attribute P/R/F1 (data-scripts/shapes/semantics.ts), on the shapes data set. */
  semantic: SemanticScores | null;
  /** How many of the images look familiar to the model (model/familiarity/); null for a model never calibrated. */
  familiarity: FamiliarityCount | null;
  /** With `exposure`: the exposure-bias figures (eval/exposure.ts); else absent. */
  exposure?: ExposureFigures;
  resultsFile: string;
  referencesFile: string;
}

export interface EvaluationResult {
  splits: SplitEvaluation[];
  decoding: string;
  reportFile: string;
  metricsFile: string;
}

/** The familiar share of a split's images. */
export interface FamiliarityCount {
  familiar: number;
  images: number;
  rate: number;
  threshold: number;
}

/** How many of `captioned` are familiar, or null when none carries a familiarity. */
export function countFamiliar(captioned: readonly CaptionedImage[]): FamiliarityCount | null {
  const judged = captioned.flatMap((c) => (c.familiarity ? [c.familiarity] : []));
  if (judged.length === 0) return null;
  const familiar = judged.filter((f) => f.familiar).length;
  return { familiar, images: judged.length, rate: familiar / judged.length, threshold: judged[0]!.threshold };
}

/** Each image's `{familiarity}` by id (nothing for one without), to spread into metrics.json's per-image records. */
function familiarityById(captioned: readonly CaptionedImage[]): (id: string | number) => { familiarity?: Familiarity } {
  const byId = new Map(captioned.flatMap((c) => (c.familiarity ? [[c.id, c.familiarity] as const] : [])));
  return (id) => {
    const familiarity = byId.get(String(id));
    return familiarity ? { familiarity } : {};
  };
}

/**
 * Evaluates a model on a data set split: captions it, writes the captions as a COCO results file
 * and the references as a COCO annotation file (so pycocoevalcap can rescore them), scores them,
 * adds semantic accuracy on the shapes data set (whose images carry their ground-truth scenes), and
 * writes metrics.json and the HTML report. Every file is written atomically.
 */
export async function runEvaluation(
  options: EvaluationOptions,
  hooks: EvaluationHooks = {},
): Promise<EvaluationResult> {
  const log = hooks.log ?? (() => {});
  const manifest = await readManifest(options.dataDir);
  // The generated shapes set carries each image's ground-truth scene: its captions can be judged
  // for meaning, and its test split has a compositional twin (held-out colour + shape pairs).
  const isShapes = manifest.name === 'shapes';
  const splits = [options.split];
  // Likewise "selection" (captioner data shapes --selection-count) brings "selection-compositional".
  const twin = `${options.split}-compositional`;
  if (isShapes && !options.split.endsWith('-compositional') && splitImages(manifest, twin).length > 0)
    splits.push(twin);
  for (const split of splits) {
    if (splitImages(manifest, split).length === 0) {
      throw new DatasetError(`${join(options.dataDir, 'manifest.json')}: no images in split "${split}"`);
    }
  }

  const { model, prior, familiarity, decoding: recommended } = await loadModel(options.modelDir);
  const settings = withRecommendedDecoding(
    Object.fromEntries(EVAL_DECODE_SETTINGS.map((key) => [key, options[key]])) as EvalDecodeSettings,
    recommended,
  );
  let decoding: string;
  try {
    decoding = decodingDescription(model, { ...evalDecodeOptions(settings), prior });
  } catch (err) {
    model.dispose();
    throw err;
  }
  const evaluated: { result: SplitEvaluation; perImage: ImageScore[]; captioned: CaptionedImage[] }[] = [];
  try {
    for (const split of splits) {
      const all = splitImages(manifest, split);
      const images = options.limit ? all.slice(0, options.limit) : all;
      log(
        `captioning ${images.length}${images.length < all.length ? ` of the ${all.length}` : ''} images of "${split}" (${decoding})`,
      );
      const captioned = await captionImagesOfSplit(model, options.dataDir, images, {
        ...settings,
        batchSize: options.batchSize,
        prior,
        familiarity,
        loading: (d, t) => hooks.loading?.(split, d, t),
        progress: (d, t) => hooks.progress?.(split, d, t),
      });
      const empty = captioned.filter((c) => !c.caption.trim()).length;
      if (empty)
        log(`${empty} of ${captioned.length} captions of "${split}" are empty (the model ended at once); they score 0`);
      const report = scoreCaptionedImages(captioned);
      let semantic: SemanticScores | null = null;
      if (isShapes) {
        const missing = images.filter((img) => img.scene === undefined).length;
        if (missing === 0)
          semantic = semanticScores(
            captioned.map((c, i) => ({ caption: c.caption, truth: images[i]!.scene as Scene })),
          );
        else log(`"${split}": ${missing} images lack a ground-truth scene: semantic accuracy not computed`);
      }
      let exposure: ExposureFigures | undefined;
      if (options.exposure) {
        log(`measuring exposure bias on "${split}"${isShapes ? ' (with recovery after a wrong word)' : ''}`);
        exposure = await measureExposure(model, options.dataDir, images, {
          batchSize: options.batchSize,
          progress: (d, t) => hooks.exposure?.(split, d, t),
        });
      }
      const safe = split.replace(/[^A-Za-z0-9._-]/g, '_');
      const resultsFile = `results-${safe}.json`;
      const referencesFile = `references-${safe}.json`;
      await writeFileAtomic(
        join(options.outDir, resultsFile),
        // Ids as the data set's source gave them (COCO's integers), images and captioned in the same order.
        JSON.stringify(toCocoResults(captioned.map((c, i) => ({ id: cocoImageId(images[i]!), caption: c.caption })))) +
          '\n',
      );
      await writeFileAtomic(
        join(options.outDir, referencesFile),
        JSON.stringify(
          toCocoAnnotations(
            images.map((img) => ({ id: cocoImageId(img), file: img.file, captions: img.captions })),
            `${manifest.name}: split ${split}`,
          ),
        ) + '\n',
      );
      evaluated.push({
        result: {
          split,
          images: images.length,
          scores: report.corpus,
          semantic,
          familiarity: countFamiliar(captioned),
          ...(exposure ? { exposure } : {}),
          resultsFile,
          referencesFile,
        },
        perImage: report.perImage,
        captioned,
      });
    }
  } finally {
    model.dispose();
  }

  const modelConfig = model.config;
  const metricsFile = join(options.outDir, 'metrics.json');
  await writeFileAtomic(
    metricsFile,
    JSON.stringify(
      {
        model: options.modelDir,
        data: options.dataDir,
        decoding,
        notComputed: NOT_COMPUTED,
        splits: Object.fromEntries(
          evaluated.map(({ result, perImage, captioned }) => {
            const familiarityOf = familiarityById(captioned);
            return [
              result.split,
              {
                ...result,
                perImage: Object.fromEntries(
                  perImage.map((p) => [
                    p.id,
                    {
                      caption: p.candidate,
                      'CIDEr-D': p['CIDEr-D'],
                      'ROUGE-L': p['ROUGE-L'],
                      ...familiarityOf(p.id),
                    },
                  ]),
                ),
              },
            ];
          }),
        ),
      },
      null,
      2,
    ) + '\n',
  );

  const reportSplits: ReportSplit[] = [];
  for (const { result, perImage, captioned } of evaluated) {
    const byId = new Map(captioned.map((c) => [c.id, c]));
    const { best, worst } = bestAndWorst(perImage, options.galleryCount);
    const toItem = async (s: ImageScore): Promise<GalleryItem> => {
      const captioned = byId.get(String(s.id))!;
      const file = join(options.dataDir, captioned.file);
      const item: GalleryItem = {
        id: String(s.id),
        // The pixels may come from shards while the original file is gone: the report then says so.
        image: await imageDataUri(file).catch((err: Error) => {
          log(`report: no picture for ${s.id} (${err.message})`);
          return null;
        }),
        caption: s.candidate,
        references: s.references,
        cider: s['CIDEr-D'],
        rouge: s['ROUGE-L'],
      };
      // Where the model looked for each word, when it attends and the picture can be read.
      if (captioned.attention && item.image)
        item.maps = await wordMaps(file, captioned.caption.split(' '), captioned.attention);
      return item;
    };
    reportSplits.push({
      name: result.split,
      images: result.images,
      scores: result.scores,
      semantic: result.semantic ?? undefined,
      familiarity: result.familiarity ?? undefined,
      exposure: result.exposure ? exposureCharts(result.exposure) : undefined,
      best: await Promise.all(best.map(toItem)),
      worst: await Promise.all(worst.map(toItem)),
      resultsFile: result.resultsFile,
      referencesFile: result.referencesFile,
    });
  }
  const html = await renderReport({
    title: `Evaluation of ${basename(resolve(options.modelDir))}`,
    generatedAt: new Date().toISOString(),
    modelDir: options.modelDir,
    dataDir: options.dataDir,
    dataName: manifest.name,
    decoding,
    modelSummary: `${modelConfig.imageSize}px images, vocabulary ${model.vocab.size}, captions up to ${modelConfig.maxLength} words`,
    splits: reportSplits,
    charts: trainingCharts(await readMetricsLog(join(options.modelDir, METRICS_FILE))),
  });
  const reportFile = join(options.outDir, 'report.html');
  await writeFileAtomic(reportFile, html);
  return { splits: evaluated.map((e) => e.result), decoding, reportFile, metricsFile };
}
