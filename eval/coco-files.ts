/**
 * The two files coco-caption (pycocoevalcap's COCOEvalCap, via pycocotools' COCO and loadRes)
 * takes, read and written here so that our scores and theirs are computed from the same input:
 *
 *   annotations  {"images": [{"id"}], "annotations": [{"image_id", "caption", "id"?}], ...}
 *   results      [{"image_id", "caption"}]
 *
 * Image ids may be integers (COCO's own) or strings (this project's data sets); a result matches
 * an image when its id is the same JSON value (42 and "42" are different ids, as in Python). The
 * files written for a data set give each image the id its source gave it (`cocoImageId`), so
 * results made from an imported COCO set score against COCO's own annotation files.
 *
 * Unlike coco-caption, which asserts or silently produces NaN, every inconsistency is an error
 * naming the file and the record: a result for an image without references, an image without a
 * result (unless a subset is asked for), two results for one image, a reference caption that is
 * empty (or nothing but punctuation). An empty result caption is scored, as coco-caption scores
 * it, and reported by `emptyCandidates` for the caller to warn about.
 */
import { readFile } from 'node:fs/promises';
import { ptbTokenize } from '../model/text/tokenize.ts';

export class CocoFileError extends Error {
  override name = 'CocoFileError';
}

export type ImageId = number | string;

/** One image to score: its candidate caption and its reference captions, untokenized. */
export interface CaptionPair {
  id: ImageId;
  candidate: string;
  references: string[];
}

/** The COCO annotation file we write: what pycocotools needs, including the fields loadRes copies. */
export interface CocoAnnotationFile {
  info: { description: string };
  type: 'captions';
  licenses: never[];
  images: { id: ImageId; file_name?: string }[];
  annotations: { id: number; image_id: ImageId; caption: string }[];
}

export interface CocoResult {
  image_id: ImageId;
  caption: string;
}

const MAX_LISTED = 5;

function describeId(id: ImageId): string {
  return JSON.stringify(id);
}

function listIds(ids: ImageId[]): string {
  const shown = ids.slice(0, MAX_LISTED).map(describeId).join(', ');
  return ids.length > MAX_LISTED ? `${shown} and ${ids.length - MAX_LISTED} more` : shown;
}

function isImageId(v: unknown): v is ImageId {
  return (typeof v === 'number' && Number.isInteger(v)) || (typeof v === 'string' && v.length > 0);
}

/** Map key of an id: the JSON value, so that 42 and "42" stay apart. */
function key(id: ImageId): string {
  return JSON.stringify(id);
}

async function readJsonFile(path: string, what: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new CocoFileError(
      `${path}: cannot read the ${what} file (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
    );
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new CocoFileError(`${path}: the ${what} file is not valid JSON (${(err as Error).message})`);
  }
}

/** A reference caption must have words; a result caption may be empty (see `emptyCandidates`). */
function checkCaption(caption: unknown, where: string, allowEmpty: boolean): string {
  if (typeof caption !== 'string') throw new CocoFileError(`${where}: "caption" must be a string`);
  if (allowEmpty) return caption;
  if (!caption.trim()) throw new CocoFileError(`${where}: empty caption`);
  if (ptbTokenize(caption).length === 0) {
    throw new CocoFileError(
      `${where}: caption ${JSON.stringify(caption)} has no words after tokenization (only punctuation)`,
    );
  }
  return caption;
}

/**
 * The pairs whose candidate has no words after tokenization. A model may well write an empty
 * caption (it ended at once); coco-caption scores one as stating nothing (no n-gram matches,
 * ROUGE-L and CIDEr-D 0 for that image, and it shortens the corpus for BLEU's brevity penalty),
 * and so do we, but the caller should say so.
 */
export function emptyCandidates(pairs: readonly CaptionPair[]): ImageId[] {
  return pairs.filter((p) => ptbTokenize(p.candidate).length === 0).map((p) => p.id);
}

/** "3 captions: 1, 2, 7 and 12 more": ids for a message. */
export function describeIds(ids: ImageId[]): string {
  return listIds(ids);
}

/** Reference captions per image, in the order of the file's "images" list. */
export interface References {
  ids: ImageId[];
  captions: Map<string, string[]>;
}

/** Checks a parsed COCO caption annotation file; `path` names it in errors. */
export function parseCocoAnnotations(json: unknown, path: string): References {
  const doc = json as { images?: unknown; annotations?: unknown } | null;
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) {
    throw new CocoFileError(`${path}: a COCO annotation file is a JSON object with "images" and "annotations"`);
  }
  if (!Array.isArray(doc.images)) throw new CocoFileError(`${path}: "images" must be an array of {"id": ...}`);
  if (!Array.isArray(doc.annotations))
    throw new CocoFileError(`${path}: "annotations" must be an array of {"image_id", "caption"}`);
  const ids: ImageId[] = [];
  const captions = new Map<string, string[]>();
  const asText = new Set<string>();
  doc.images.forEach((img: unknown, i) => {
    const id = (img as { id?: unknown } | null)?.id;
    if (!isImageId(id)) throw new CocoFileError(`${path}: images[${i}]: "id" must be an integer or a non-empty string`);
    if (asText.has(String(id))) throw new CocoFileError(`${path}: images[${i}]: duplicate image id ${describeId(id)}`);
    asText.add(String(id));
    ids.push(id);
    captions.set(key(id), []);
  });
  if (ids.length === 0) throw new CocoFileError(`${path}: "images" is empty: nothing to evaluate`);
  doc.annotations.forEach((ann: unknown, i) => {
    const where = `${path}: annotations[${i}]`;
    const a = ann as { image_id?: unknown; caption?: unknown } | null;
    if (!isImageId(a?.image_id))
      throw new CocoFileError(`${where}: "image_id" must be an integer or a non-empty string`);
    const list = captions.get(key(a.image_id));
    if (!list) throw new CocoFileError(`${where}: image_id ${describeId(a.image_id)} is not in "images"`);
    list.push(checkCaption(a.caption, `${where} (image ${describeId(a.image_id)})`, false));
  });
  const bare = ids.filter((id) => captions.get(key(id))!.length === 0);
  if (bare.length)
    throw new CocoFileError(`${path}: ${bare.length} image(s) without any reference caption: ${listIds(bare)}`);
  return { ids, captions };
}

/** Checks a parsed COCO results file: one caption per image id. */
export function parseCocoResults(json: unknown, path: string): Map<string, { id: ImageId; caption: string }> {
  if (!Array.isArray(json))
    throw new CocoFileError(`${path}: a COCO results file is a JSON array of {"image_id", "caption"}`);
  if (json.length === 0) throw new CocoFileError(`${path}: no results`);
  const out = new Map<string, { id: ImageId; caption: string }>();
  json.forEach((res: unknown, i) => {
    const where = `${path}: [${i}]`;
    const r = res as { image_id?: unknown; caption?: unknown } | null;
    if (!isImageId(r?.image_id))
      throw new CocoFileError(`${where}: "image_id" must be an integer or a non-empty string`);
    if (out.has(key(r.image_id))) {
      throw new CocoFileError(
        `${where}: a second result for image ${describeId(r.image_id)} (coco-caption scores exactly one caption per image)`,
      );
    }
    out.set(key(r.image_id), {
      id: r.image_id,
      caption: checkCaption(r.caption, `${where} (image ${describeId(r.image_id)})`, true),
    });
  });
  return out;
}

export interface MatchOptions {
  /**
   * Score only the annotated images that have a result, as pycocoevalcap's example does with
   * `cocoEval.params['image_id'] = cocoRes.getImgIds()` (CIDEr-D's idf then comes from those
   * images alone). Without it, an image left without a result is an error.
   */
  subset?: boolean;
}

/**
 * Pairs annotated images with their results. A result for an image without references is an
 * error (pycocotools' loadRes asserts the same); so is an annotated image without a result,
 * unless `subset` is set.
 */
export function matchCaptions(
  refs: References,
  results: Map<string, { id: ImageId; caption: string }>,
  refsPath: string,
  resultsPath: string,
  options: MatchOptions = {},
): CaptionPair[] {
  const unknown = [...results.values()].filter((r) => !refs.captions.has(key(r.id))).map((r) => r.id);
  if (unknown.length) {
    throw new CocoFileError(
      `${resultsPath}: ${unknown.length} result(s) for images that have no references in ${refsPath}: ${listIds(unknown)}`,
    );
  }
  const missing = refs.ids.filter((id) => !results.has(key(id)));
  if (missing.length && !options.subset) {
    throw new CocoFileError(
      `${resultsPath}: no result for ${missing.length} of the ${refs.ids.length} images in ${refsPath}: ${listIds(missing)} ` +
        '(to score only the images that have a result, as pycocoevalcap does with params["image_id"] = cocoRes.getImgIds(), pass --subset)',
    );
  }
  return refs.ids
    .filter((id) => results.has(key(id)))
    .map((id) => ({ id, candidate: results.get(key(id))!.caption, references: refs.captions.get(key(id))! }));
}

/** Reads, checks and pairs an annotation file and a results file. */
export async function readCaptionPairs(
  refsPath: string,
  resultsPath: string,
  options: MatchOptions = {},
): Promise<CaptionPair[]> {
  const refs = parseCocoAnnotations(await readJsonFile(refsPath, 'annotation'), refsPath);
  const results = parseCocoResults(await readJsonFile(resultsPath, 'results'), resultsPath);
  return matchCaptions(refs, results, refsPath, resultsPath, options);
}

/**
 * The id a COCO file gives an image of a data set: as its source gave it (`sourceId`: COCO's and
 * Karpathy's integers), else the data set's string id.
 */
export function cocoImageId(image: { id: string; sourceId?: number }): ImageId {
  return image.sourceId ?? image.id;
}

/** A COCO caption annotation file of these images' references, loadable by pycocotools' COCO. */
export function toCocoAnnotations(
  images: readonly { id: ImageId; file?: string; captions: readonly string[] }[],
  description: string,
): CocoAnnotationFile {
  let annId = 0;
  return {
    info: { description },
    type: 'captions',
    licenses: [],
    images: images.map((img) => (img.file ? { id: img.id, file_name: img.file } : { id: img.id })),
    annotations: images.flatMap((img) => img.captions.map((caption) => ({ id: ++annId, image_id: img.id, caption }))),
  };
}

/** A COCO results file: one caption per image. */
export function toCocoResults(captions: readonly { id: ImageId; caption: string }[]): CocoResult[] {
  return captions.map((c) => ({ image_id: c.id, caption: c.caption }));
}
