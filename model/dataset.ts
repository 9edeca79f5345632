/**
 * The project's one data-set layout:
 *
 *   DATA_DIR/manifest.json   {"format": "captioner-dataset", "version": 1, "name", "source",
 *                             "images": [{"id", "file", "split", "captions": [...]}]}
 *   DATA_DIR/<file>          the images, any format sharp decodes
 *
 * manifest.json is written last (atomically), so a directory without it is not a data set.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadImagePixels, pixelsToUnit } from './image.ts';

export class DatasetError extends Error {
  override name = 'DatasetError';
}

export interface DatasetImage {
  id: string;
  /** Path relative to the data-set directory. */
  file: string;
  split: string;
  captions: string[];
}

export interface Manifest {
  format: 'captioner-dataset';
  version: 1;
  name: string;
  source: string;
  images: DatasetImage[];
}

/** Reads and checks DATA_DIR/manifest.json; every error names the file and the record. */
export async function readManifest(dataDir: string): Promise<Manifest> {
  const path = join(dataDir, 'manifest.json');
  let json: unknown;
  try {
    json = JSON.parse(await readFile(path, 'utf8'));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new DatasetError(
      code === 'ENOENT' ? `${path}: no manifest: ${dataDir} is not a complete data set` : `${path}: ${(err as Error).message}`,
    );
  }
  const m = json as Partial<Manifest>;
  if (m?.format !== 'captioner-dataset' || m.version !== 1) throw new DatasetError(`${path}: not a captioner data set (format/version)`);
  if (!Array.isArray(m.images)) throw new DatasetError(`${path}: "images" must be an array`);
  const seen = new Set<string>();
  m.images.forEach((img, i) => {
    const where = `${path}: images[${i}]`;
    if (typeof img?.id !== 'string' || !img.id) throw new DatasetError(`${where}: "id" must be a non-empty string`);
    if (seen.has(img.id)) throw new DatasetError(`${where}: duplicate id ${JSON.stringify(img.id)}`);
    seen.add(img.id);
    if (typeof img.file !== 'string' || !img.file) throw new DatasetError(`${where} (id ${img.id}): "file" must be a non-empty string`);
    if (typeof img.split !== 'string' || !img.split) throw new DatasetError(`${where} (id ${img.id}): "split" must be a non-empty string`);
    if (!Array.isArray(img.captions) || img.captions.length === 0 || !img.captions.every((c) => typeof c === 'string' && c.trim())) {
      throw new DatasetError(`${where} (id ${img.id}): "captions" must be a non-empty array of non-empty strings`);
    }
  });
  return { format: 'captioner-dataset', version: 1, name: m.name ?? dataDir, source: m.source ?? 'unknown', images: m.images };
}

/** The images of one split, in manifest order. */
export function splitImages(manifest: Manifest, split: string): DatasetImage[] {
  return manifest.images.filter((img) => img.split === split);
}

/**
 * Decoded pixels of a set of images, size × size × 3 uint8 each, held in one buffer: a batch is
 * gathered from it without decoding any file again.
 */
export class ImageCache {
  private constructor(
    readonly size: number,
    readonly ids: string[],
    private readonly pixels: Uint8Array,
    private readonly index: Map<string, number>,
  ) {}

  static async load(dataDir: string, images: readonly DatasetImage[], size: number, onProgress?: (done: number, total: number) => void): Promise<ImageCache> {
    const per = size * size * 3;
    const pixels = new Uint8Array(images.length * per);
    let done = 0;
    const queue = images.map((img, i) => ({ img, i }));
    // A few decodes in flight keep sharp's thread pool busy without holding every file in memory.
    const worker = async () => {
      for (let job = queue.shift(); job; job = queue.shift()) {
        pixels.set(await loadImagePixels(join(dataDir, job.img.file), size), job.i * per);
        onProgress?.(++done, images.length);
      }
    };
    await Promise.all(Array.from({ length: 4 }, worker));
    const ids = images.map((img) => img.id);
    return new ImageCache(size, ids, pixels, new Map(ids.map((id, i) => [id, i])));
  }

  /** Float pixels in [0, 1] of the given images, [n, size, size, 3] flattened. */
  batch(ids: readonly string[]): Float32Array {
    const per = this.size * this.size * 3;
    const out = new Float32Array(ids.length * per);
    ids.forEach((id, b) => {
      const i = this.index.get(id);
      if (i === undefined) throw new Error(`image ${id} is not in the cache`);
      pixelsToUnit(this.pixels.subarray(i * per, (i + 1) * per), out, b * per);
    });
    return out;
  }
}
