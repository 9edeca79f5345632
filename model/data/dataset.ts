/**
 * The project's one data-set layout:
 *
 *   DATA_DIR/manifest.json   {"format": "captioner-dataset", "version": 1, "name", "source",
 *                             "images": [{"id", "file", "split", "captions": [...],
 *                                         "shard"?, "slot"?, "scene"?, "sourceId"?}],
 *                             "shards"?: {"imageSize", "imagesPerShard", "files": [...]},
 *                             "stats"?: {...}}
 *   DATA_DIR/<file>          the images, any format sharp decodes (a path relative to DATA_DIR;
 *                            importers point it at the user's original files)
 *   DATA_DIR/shards/NNNN.bin optional: the images pre-decoded by `loadImagePixels` to
 *                            imageSize × imageSize × 3 uint8, `imagesPerShard` per file, image
 *                            `slot` of a shard at byte offset slot × imageSize² × 3
 *
 * manifest.json is written last (atomically), so a directory without it is not a data set.
 */
import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { loadImagePixels, pixelsToUnit } from './image.ts';

export class DatasetError extends Error {
  override name = 'DatasetError';
}

export interface DatasetImage {
  id: string;
  /**
   * The id as a number, for images whose source numbers them (COCO's image ids, Karpathy's
   * cocoid): `id` is its decimal text. COCO files written for the image carry this one.
   */
  sourceId?: number;
  /** Path relative to the data-set directory. */
  file: string;
  split: string;
  captions: string[];
  /** Index into `shards.files` of the shard holding this image's pixels, if any. */
  shard?: number;
  /** The image's position within its shard. */
  slot?: number;
  /** Structured ground truth, for generated data sets (data-scripts/shapes/scene.ts). */
  scene?: unknown;
}

/** Where pre-decoded pixels are: every shard holds up to `imagesPerShard` images of imageSize². */
export interface ShardIndex {
  imageSize: number;
  imagesPerShard: number;
  /** Paths relative to the data-set directory. */
  files: string[];
}

export interface Manifest {
  format: 'captioner-dataset';
  version: 1;
  name: string;
  source: string;
  images: DatasetImage[];
  shards?: ShardIndex;
  /** Vocabulary and caption statistics of the training split (data-scripts/stats.ts). */
  stats?: unknown;
}

function checkShardIndex(value: unknown, path: string): ShardIndex {
  const s = value as Partial<ShardIndex> | null;
  const positive = (v: unknown) => typeof v === 'number' && Number.isInteger(v) && v > 0;
  if (
    !s ||
    !positive(s.imageSize) ||
    !positive(s.imagesPerShard) ||
    !Array.isArray(s.files) ||
    !s.files.every((f) => typeof f === 'string' && f)
  ) {
    throw new DatasetError(`${path}: "shards" must be {"imageSize": int, "imagesPerShard": int, "files": [string]}`);
  }
  return { imageSize: s.imageSize!, imagesPerShard: s.imagesPerShard!, files: s.files };
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
      code === 'ENOENT'
        ? `${path}: no manifest: ${dataDir} is not a complete data set`
        : `${path}: ${(err as Error).message}`,
    );
  }
  const m = json as Partial<Manifest>;
  if (m?.format !== 'captioner-dataset' || m.version !== 1)
    throw new DatasetError(`${path}: not a captioner data set (format/version)`);
  if (!Array.isArray(m.images)) throw new DatasetError(`${path}: "images" must be an array`);
  const shards = m.shards === undefined ? undefined : checkShardIndex(m.shards, path);
  const seen = new Set<string>();
  m.images.forEach((img, i) => {
    const where = `${path}: images[${i}]`;
    if (typeof img?.id !== 'string' || !img.id) throw new DatasetError(`${where}: "id" must be a non-empty string`);
    if (seen.has(img.id)) throw new DatasetError(`${where}: duplicate id ${JSON.stringify(img.id)}`);
    seen.add(img.id);
    if (typeof img.file !== 'string' || !img.file)
      throw new DatasetError(`${where} (id ${img.id}): "file" must be a non-empty string`);
    if (img.sourceId !== undefined && !(Number.isSafeInteger(img.sourceId) && String(img.sourceId) === img.id))
      throw new DatasetError(`${where} (id ${img.id}): "sourceId" must be an integer whose decimal text is the id`);
    if (typeof img.split !== 'string' || !img.split)
      throw new DatasetError(`${where} (id ${img.id}): "split" must be a non-empty string`);
    if (
      !Array.isArray(img.captions) ||
      img.captions.length === 0 ||
      !img.captions.every((c) => typeof c === 'string' && c.trim())
    ) {
      throw new DatasetError(`${where} (id ${img.id}): "captions" must be a non-empty array of non-empty strings`);
    }
    if (img.shard !== undefined || img.slot !== undefined) {
      const ok = (v: unknown, max: number) => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v < max;
      if (!shards || !ok(img.shard, shards.files.length) || !ok(img.slot, shards.imagesPerShard)) {
        throw new DatasetError(
          `${where} (id ${img.id}): "shard"/"slot" must index the manifest's "shards" (${shards ? `${shards.files.length} files of ${shards.imagesPerShard}` : 'absent'})`,
        );
      }
    }
  });
  return {
    ...m,
    format: 'captioner-dataset',
    version: 1,
    name: m.name ?? dataDir,
    source: m.source ?? 'unknown',
    images: m.images,
    ...(shards ? { shards } : {}),
  };
}

/** The manifest's shard index, or null when the data set has no shards. */
export async function readShardIndex(dataDir: string): Promise<ShardIndex | null> {
  return (await readManifest(dataDir)).shards ?? null;
}

/** The images of one split, in manifest order. */
export function splitImages(manifest: Manifest, split: string): DatasetImage[] {
  return manifest.images.filter((img) => img.split === split);
}

/** Where a cache's pixels came from. */
export type PixelSource = 'shards' | 'shards-resized' | 'files' | 'mixed';

/** Resizes raw RGB pixels from `from`² to `to`² with sharp's default (Lanczos-3) kernel. */
async function resizePixels(src: Uint8Array, from: number, to: number): Promise<Uint8Array> {
  const data = await sharp(src, { raw: { width: from, height: from, channels: 3 } })
    .resize(to, to, { fit: 'fill' })
    .raw()
    .toBuffer();
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/** Runs `job` over `items` with `width` in flight (sharp works on libuv's thread pool). */
export async function inParallel<T>(
  items: readonly T[],
  width: number,
  job: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await job(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, worker));
}

/**
 * `images` by where their pixels are: the shards holding any of them (in shard order, each
 * shard's images in slot order), and the images without a shard slot (in the order given).
 */
export function groupByShard(
  images: readonly DatasetImage[],
  shardIndex: ShardIndex | null,
): { shards: [shard: number, images: DatasetImage[]][]; files: DatasetImage[] } {
  const byShard = new Map<number, DatasetImage[]>();
  const files: DatasetImage[] = [];
  for (const img of images) {
    if (shardIndex && img.shard !== undefined && img.slot !== undefined) {
      const list = byShard.get(img.shard);
      if (list) list.push(img);
      else byShard.set(img.shard, [img]);
    } else {
      files.push(img);
    }
  }
  const shards = [...byShard]
    .sort((a, b) => a[0] - b[0])
    .map(([shard, list]) => [shard, list.sort((a, b) => a.slot! - b.slot!)] as [number, DatasetImage[]]);
  return { shards, files };
}

/**
 * The pixels of `images` (each with a slot in `shard`) at `size`, one after another: the shard
 * is read in one go and checked, its pixels copied when it holds `size`, else resized with sharp
 * (`width` in flight). `progress(n)` reports n of them done. Errors name the shard file.
 */
export async function readShardImages(
  dataDir: string,
  shardIndex: ShardIndex,
  shard: number,
  images: readonly DatasetImage[],
  size: number,
  width: number,
  progress?: (done: number) => void,
): Promise<Uint8Array> {
  const file = join(dataDir, shardIndex.files[shard]!);
  const bytes = await readShardBytes(file);
  const side = shardIndex.imageSize;
  const stored = side * side * 3;
  if (bytes.length % stored !== 0) {
    throw new DatasetError(
      `${file}: ${bytes.length} bytes is not a whole number of ${side}×${side}×3 images (${stored} bytes each): the shard is truncated or corrupt; rebuild the data set`,
    );
  }
  const slotPixels = (img: DatasetImage) => {
    const offset = img.slot! * stored;
    if (offset + stored > bytes.length) {
      throw new DatasetError(
        `${file}: image ${img.id} (slot ${img.slot}) lies past the end of the shard (${bytes.length} bytes): the shard is truncated; rebuild the data set`,
      );
    }
    return bytes.subarray(offset, offset + stored);
  };
  const per = size * size * 3;
  const out = new Uint8Array(images.length * per);
  if (side === size) {
    images.forEach((img, j) => out.set(slotPixels(img), j * per)); // a copy, no decoding
    progress?.(images.length);
  } else {
    let done = 0;
    await inParallel([...images.keys()], width, async (j) => {
      out.set(await resizePixels(slotPixels(images[j]!), side, size), j * per);
      progress?.(++done);
    });
  }
  return out;
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
    /** Where the pixels came from (see `sourceDescription`). */
    readonly source: PixelSource,
    /** One line for the training log: shards or files, and any resizing. */
    readonly sourceDescription: string,
  ) {}

  /**
   * Loads the pixels of `images` at `size`. Images with a shard slot are read from the data
   * set's shards with no decoding; when the shards hold another size, the shard pixels (not the
   * original files) are resized with sharp — close to, but not bit-identical with, decoding the
   * file at `size`. Images without shards are decoded from their files by `loadImagePixels`.
   */
  static async load(
    dataDir: string,
    images: readonly DatasetImage[],
    size: number,
    onProgress?: (done: number, total: number) => void,
  ): Promise<ImageCache> {
    const per = size * size * 3;
    const pixels = new Uint8Array(images.length * per);
    const position = new Map(images.map((img, i) => [img.id, i]));
    let done = 0;
    const shardIndex = images.some((img) => img.shard !== undefined) ? await readShardIndex(dataDir) : null;
    const { shards, files: fromFiles } = groupByShard(images, shardIndex);
    const sharded = images.length - fromFiles.length;
    for (const [shard, members] of shards) {
      const before = done;
      const read = await readShardImages(dataDir, shardIndex!, shard, members, size, 4, (n) =>
        onProgress?.((done = before + n), images.length),
      );
      members.forEach((img, j) => pixels.set(read.subarray(j * per, (j + 1) * per), position.get(img.id)! * per));
    }
    // A few decodes in flight keep sharp's thread pool busy without holding every file in memory.
    await inParallel(fromFiles, 4, async (img) => {
      pixels.set(await loadImagePixels(join(dataDir, img.file), size), position.get(img.id)! * per);
      onProgress?.(++done, images.length);
    });

    const s = shardIndex?.imageSize;
    const source: PixelSource =
      sharded === 0 ? 'files' : fromFiles.length > 0 ? 'mixed' : s === size ? 'shards' : 'shards-resized';
    const description = {
      files: `${images.length} images decoded from their files at ${size}×${size}`,
      shards: `${images.length} images read from shards at ${size}×${size} (no decoding)`,
      'shards-resized': `${images.length} images read from shards of ${s}×${s} and resized to ${size}×${size} with sharp (from the shard pixels, not the original files)`,
      mixed: `${sharded} images from shards (${s}×${s}${s === size ? '' : ` resized to ${size}×${size}`}), ${fromFiles.length} decoded from their files`,
    }[source];
    return new ImageCache(
      size,
      images.map((img) => img.id),
      pixels,
      position,
      source,
      description,
    );
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

  /** The stored uint8 pixels of one image, size × size × 3. */
  imagePixels(id: string): Uint8Array {
    const i = this.index.get(id);
    if (i === undefined) throw new Error(`image ${id} is not in the cache`);
    const per = this.size * this.size * 3;
    return this.pixels.subarray(i * per, (i + 1) * per);
  }
}

/**
 * A whole shard file in as few reads as the OS allows (one `pread` per 1 GiB), so that a read
 * completes in a handful of event-loop turns even while a trainer holds the thread (`readFile`
 * reads 512 KiB a turn). A missing or unreadable shard is a data-set error naming it.
 */
async function readShardBytes(file: string): Promise<Uint8Array> {
  try {
    const handle = await open(file, 'r');
    try {
      const { size } = await handle.stat();
      const out = new Uint8Array(size);
      for (let at = 0; at < size;) {
        const { bytesRead } = await handle.read(out, at, Math.min(size - at, 1 << 30), at);
        if (bytesRead === 0) throw new Error(`the file ended at byte ${at} of ${size} while being read`);
        at += bytesRead;
      }
      return out;
    } finally {
      await handle.close();
    }
  } catch (err) {
    throw new DatasetError(`${file}: cannot read shard (${(err as Error).message})`);
  }
}
