/**
 * COCO captions and the Karpathy splits.
 *
 * COCO annotation files (captions_train2014.json, captions_val2017.json, …; Lin et al. 2014,
 * cocodataset.org/#format-data): {"images": [{"id", "file_name"}], "annotations":
 * [{"image_id", "caption"}]}. The split is the file's (train / val).
 *
 * Karpathy's split files (dataset_coco.json, dataset_flickr8k.json, dataset_flickr30k.json;
 * Karpathy & Fei-Fei 2015): {"images": [{"filepath"?, "filename", "split", "sentences":
 * [{"raw"}], "cocoid"? , "imgid"}]} with splits train / restval / val / test; restval is
 * folded into train, as is usual.
 */
import { basename, join } from 'node:path';
import type { Issue } from '../build.ts';
import { cleanCaptions, firstExisting, numericId, readJson, recordError, type ImportedImage } from './read.ts';

interface CocoImage {
  /** The id as the file gives it (a number in COCO's own files). */
  sourceId: number | string;
  fileName: string;
  split: string;
  folder: string;
  captions: string[];
  source: string;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Reads COCO annotation files into id → image, checking every record. */
export async function readCocoAnnotations(files: readonly string[], issues: Issue[]): Promise<Map<string, CocoImage>> {
  const images = new Map<string, CocoImage>();
  for (const file of files) {
    const json = await readJson(file);
    if (!isObject(json) || !Array.isArray(json.images) || !Array.isArray(json.annotations)) {
      throw recordError(file, 'top level', 'expected {"images": [...], "annotations": [...]} (a COCO captions file)');
    }
    const name = basename(file);
    const split = /train/.test(name) ? 'train' : /val/.test(name) ? 'val' : /test/.test(name) ? 'test' : null;
    if (!split)
      throw recordError(
        file,
        'file name',
        'cannot tell the split (expected "train", "val" or "test" in the name, e.g. captions_train2014.json); use --karpathy for explicit splits',
      );
    const folder = /(train|val|test)\d{4}/.exec(name)?.[0] ?? '';
    const here = new Set<string>();
    json.images.forEach((img: unknown, i: number) => {
      if (
        !isObject(img) ||
        (typeof img.id !== 'number' && typeof img.id !== 'string') ||
        typeof img.file_name !== 'string' ||
        !img.file_name
      ) {
        throw recordError(file, `images[${i}]`, 'needs "id" (number) and "file_name" (string)');
      }
      const id = String(img.id);
      const prior = images.get(id);
      if (here.has(id) || prior)
        throw recordError(file, `images[${i}]`, `duplicate image id ${id}${prior ? ` (also in ${prior.source})` : ''}`);
      here.add(id);
      images.set(id, { sourceId: img.id, fileName: img.file_name, split, folder, captions: [], source: file });
    });
    json.annotations.forEach((ann: unknown, i: number) => {
      if (
        !isObject(ann) ||
        (typeof ann.image_id !== 'number' && typeof ann.image_id !== 'string') ||
        typeof ann.caption !== 'string'
      ) {
        throw recordError(file, `annotations[${i}]`, 'needs "image_id" and "caption" (string)');
      }
      const img = images.get(String(ann.image_id));
      if (!img || !here.has(String(ann.image_id)))
        throw recordError(file, `annotations[${i}]`, `image_id ${ann.image_id} is not among the file's images`);
      img.captions.push(...cleanCaptions([ann.caption], file, `annotations[${i}] (image ${ann.image_id})`, issues));
    });
  }
  return images;
}

/** COCO from annotation files alone: each file's images in its split. */
export async function readCoco(
  opts: { annotations: readonly string[]; images: string },
  issues: Issue[],
): Promise<ImportedImage[]> {
  const byId = await readCocoAnnotations(opts.annotations, issues);
  const out: ImportedImage[] = [];
  for (const [id, img] of byId) {
    if (img.captions.length === 0) {
      issues.push({ file: img.source, record: `image ${id}`, problem: 'no captions; image skipped' });
      continue;
    }
    const path = await firstExisting([join(opts.images, img.fileName), join(opts.images, img.folder, img.fileName)]);
    out.push({ id, ...numericId(img.sourceId), split: img.split, captions: img.captions, path });
  }
  return out;
}

const KARPATHY_SPLITS: Record<string, string> = { train: 'train', restval: 'train', val: 'val', test: 'test' };

/**
 * A Karpathy split file (COCO, Flickr8k or Flickr30k). Captions are its "raw" sentences, or,
 * for COCO with annotation files given, the annotation files' captions of the same image.
 */
export async function readKarpathy(
  opts: { karpathy: string; images: string; annotations?: readonly string[] },
  issues: Issue[],
): Promise<ImportedImage[]> {
  const file = opts.karpathy;
  const json = await readJson(file);
  if (!isObject(json) || !Array.isArray(json.images))
    throw recordError(
      file,
      'top level',
      'expected {"images": [...]} (a Karpathy split file such as dataset_coco.json)',
    );
  const coco = opts.annotations?.length ? await readCocoAnnotations(opts.annotations, issues) : null;
  const out: ImportedImage[] = [];
  const seen = new Map<string, number>();
  for (const [i, img] of (json.images as unknown[]).entries()) {
    const where = `images[${i}]`;
    if (!isObject(img) || typeof img.filename !== 'string' || !img.filename || typeof img.split !== 'string') {
      throw recordError(file, where, 'needs "filename" and "split" (strings)');
    }
    const split = KARPATHY_SPLITS[img.split];
    if (!split)
      throw recordError(
        file,
        where,
        `unknown split ${JSON.stringify(img.split)} (expected train, restval, val or test)`,
      );
    const idValue = img.cocoid ?? img.imgid ?? img.filename;
    if (typeof idValue !== 'number' && typeof idValue !== 'string')
      throw recordError(file, where, '"cocoid"/"imgid" must be a number or string');
    const id = String(idValue);
    const prior = seen.get(id);
    if (prior !== undefined) throw recordError(file, where, `duplicate image id ${id} (also images[${prior}])`);
    seen.set(id, i);
    let captions: string[];
    if (coco) {
      const ann = coco.get(id);
      if (!ann) throw recordError(file, where, `image ${id} is in none of the annotation files`);
      captions = ann.captions;
    } else {
      if (!Array.isArray(img.sentences)) throw recordError(file, where, 'needs "sentences": [{"raw": "..."}]');
      const raws = img.sentences.map((s: unknown, k: number) => {
        if (!isObject(s) || typeof s.raw !== 'string')
          throw recordError(file, `${where}.sentences[${k}]`, 'needs "raw" (string)');
        return s.raw;
      });
      captions = cleanCaptions(raws, file, `${where} (${img.filename})`, issues);
    }
    if (captions.length === 0) {
      issues.push({ file, record: `${where} (${img.filename})`, problem: 'no captions; image skipped' });
      continue;
    }
    const folder = typeof img.filepath === 'string' ? img.filepath : '';
    const path = await firstExisting([join(opts.images, folder, img.filename), join(opts.images, img.filename)]);
    out.push({ id, ...numericId(idValue), split, captions, path });
  }
  return out;
}
