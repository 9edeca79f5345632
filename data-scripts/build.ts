/**
 * Writing a data set in the project's layout (model/data/dataset.ts), the one path every generator
 * and importer takes: pixels are produced in parallel and streamed into fixed-size uint8 shards
 * one shard at a time (never the whole data set in memory), each shard marked done on disk so
 * that an interrupted build resumes where it stopped, and the directory appears under its
 * final name, with manifest.json, only when everything is written.
 *
 *   OUT.partial/plan.json          what is being built (a fingerprint of the inputs)
 *   OUT.partial/shards/NNNN.bin    shard pixels, written atomically
 *   OUT.partial/shards/NNNN.done   the shard's completion marker: its skipped images (JSON)
 *   OUT/                           renamed from OUT.partial at the end, with manifest.json,
 *                                  vocab.json and report.json
 */
import { createHash } from 'node:crypto';
import { access, mkdir, readFile, rename, rm } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { DatasetError, type DatasetImage, type Manifest, type ShardIndex } from '../model/data/dataset.ts';
import { writeFileAtomic } from '../model/io/fsutil.ts';
import { Vocabulary } from '../model/text/vocab.ts';
import { datasetStats, type DatasetStats } from './stats.ts';

/** One image to write: its manifest record without the shard fields. */
export interface BuildRecord {
  id: string;
  /** The id as a number, where the source gave one (model/data/dataset.ts). */
  sourceId?: number;
  split: string;
  captions: string[];
  /** The manifest's `file`, relative to the final data-set directory. */
  file: string;
  scene?: unknown;
}

/** A problem with one input record or image that was skipped rather than stopping the build. */
export interface Issue {
  /** The input file (or image file) concerned. */
  file: string;
  /** Which record: an id, a line number, an index. */
  record: string;
  problem: string;
}

export interface BuildOptions {
  out: string;
  name: string;
  source: string;
  /** Side of the square shard images. */
  imageSize: number;
  records: readonly BuildRecord[];
  /**
   * The pixels of record `index`, imageSize × imageSize × 3 uint8; may also write files into
   * `dir` (the directory being built). Throwing skips the image, which is listed in the report.
   */
  pixels(record: BuildRecord, index: number, dir: string): Promise<Uint8Array>;
  /** Fields added to the manifest after `source`, e.g. a generator's version; none may be a field of Manifest. */
  manifestFields?: Readonly<Record<string, unknown>>;
  /** Anything else that, if changed, makes a half-built directory not resumable (e.g. the seed). */
  fingerprint?: unknown;
  /** Problems the importer already found in its inputs (records it skipped), for the report. */
  inputIssues?: readonly Issue[];
  imagesPerShard?: number;
  /** Pixel jobs in flight (default: 2 per core). */
  concurrency?: number;
  minWordCount?: number;
  maxLength?: number;
  onProgress?(done: number, total: number): void;
  log?(line: string): void;
}

export interface BuildResult {
  dir: string;
  images: number;
  skipped: Issue[];
  inputIssues: Issue[];
  /** Shards found complete from an earlier, interrupted run. */
  resumedShards: number;
  shards: number;
  stats: DatasetStats;
}

/** Shards of about 16 MB: a power of two images, at most 4096. */
export function defaultImagesPerShard(imageSize: number): number {
  const fit = Math.floor((16 << 20) / (imageSize * imageSize * 3));
  return Math.max(1, Math.min(4096, 2 ** Math.floor(Math.log2(Math.max(1, fit)))));
}

const exists = (path: string) =>
  access(path).then(
    () => true,
    () => false,
  );
const shardName = (k: number) => `shards/${String(k).padStart(4, '0')}`;

/** Builds (or resumes building) a data set as the module comment describes. */
export async function buildDataset(opts: BuildOptions): Promise<BuildResult> {
  const { imageSize, records } = opts;
  const out = resolve(opts.out); // "data/x/" must give the sibling "data/x.partial", not "data/x/.partial"

  const per = opts.imagesPerShard ?? defaultImagesPerShard(imageSize);
  const bytesPer = imageSize * imageSize * 3;
  const log = opts.log ?? (() => {});
  if (await exists(join(out, 'manifest.json')))
    throw new DatasetError(`${out}: a data set already exists there; remove it or choose another --out`);
  if (await exists(out))
    throw new DatasetError(`${out}: already exists (and is not a data set); remove it or choose another --out`);
  const manifestKeys = ['format', 'version', 'name', 'source', 'shards', 'stats', 'images'];
  const clash = Object.keys(opts.manifestFields ?? {}).find((k) => manifestKeys.includes(k));
  if (clash) throw new RangeError(`buildDataset: manifestFields may not set the manifest's own field "${clash}"`);
  const seen = new Map<string, number>();
  records.forEach((r, i) => {
    const first = seen.get(r.id);
    if (first !== undefined)
      throw new DatasetError(`duplicate image id ${JSON.stringify(r.id)} (records ${first} and ${i})`);
    seen.set(r.id, i);
  });

  const partial = `${out}.partial`;
  const fingerprint = createHash('sha256')
    .update(
      JSON.stringify({
        name: opts.name,
        source: opts.source,
        imageSize,
        per,
        records,
        extra: opts.fingerprint ?? null,
      }),
    )
    .digest('hex');
  const planPath = join(partial, 'plan.json');
  if (await exists(partial)) {
    let plan: { fingerprint?: string } = {};
    try {
      plan = JSON.parse(await readFile(planPath, 'utf8')) as typeof plan;
    } catch {
      // no readable plan: the earlier run died before it began; start over below
    }
    if (plan.fingerprint && plan.fingerprint !== fingerprint) {
      throw new DatasetError(
        `${partial}: an interrupted build of different inputs or options is there; rerun that command to finish it, or remove ${partial}`,
      );
    }
    if (!plan.fingerprint) await rm(partial, { recursive: true, force: true });
  }
  await mkdir(join(partial, 'shards'), { recursive: true });
  await mkdir(dirname(out), { recursive: true });
  if (!(await exists(planPath)))
    await writeFileAtomic(
      planPath,
      JSON.stringify({ fingerprint, records: records.length, imagesPerShard: per }) + '\n',
    );

  const shardCount = Math.ceil(records.length / per);
  const skipped: Issue[] = [];
  let done = 0;
  let resumedShards = 0;
  const concurrency = opts.concurrency ?? Math.max(2, availableParallelism() * 2);
  for (let k = 0; k < shardCount; k++) {
    const first = k * per;
    const members = records.slice(first, first + per);
    const marker = join(partial, `${shardName(k)}.done`);
    if (await exists(marker)) {
      skipped.push(...(JSON.parse(await readFile(marker, 'utf8')) as Issue[]));
      resumedShards += 1;
      done += members.length;
      opts.onProgress?.(done, records.length);
      continue;
    }
    const buffer = new Uint8Array(members.length * bytesPer);
    const shardSkipped: (Issue | null)[] = members.map(() => null);
    let next = 0;
    const worker = async () => {
      while (next < members.length) {
        const slot = next++;
        const record = members[slot]!;
        try {
          const px = await opts.pixels(record, first + slot, partial);
          if (px.length !== bytesPer) throw new Error(`got ${px.length} bytes of pixels, expected ${bytesPer}`);
          buffer.set(px, slot * bytesPer);
        } catch (err) {
          shardSkipped[slot] = { file: record.file, record: record.id, problem: (err as Error).message };
        }
        opts.onProgress?.(++done, records.length);
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, members.length) }, worker));
    const issues = shardSkipped.filter((s): s is Issue => s !== null);
    for (const issue of issues) log(`skipped ${issue.record}: ${issue.problem}`);
    await writeFileAtomic(join(partial, `${shardName(k)}.bin`), buffer);
    await writeFileAtomic(marker, JSON.stringify(issues));
    skipped.push(...issues);
  }
  if (resumedShards > 0) log(`resumed: ${resumedShards} of ${shardCount} shards were already done`);

  const skippedIds = new Set(skipped.map((s) => s.record));
  const images: DatasetImage[] = [];
  records.forEach((r, i) => {
    if (skippedIds.has(r.id)) return;
    images.push({
      id: r.id,
      ...(r.sourceId === undefined ? {} : { sourceId: r.sourceId }),
      file: r.file,
      split: r.split,
      captions: r.captions,
      shard: Math.floor(i / per),
      slot: i % per,
      ...(r.scene === undefined ? {} : { scene: r.scene }),
    });
  });
  if (images.length === 0)
    throw new DatasetError(
      `${out}: no image could be read (${skipped.length} skipped; first: ${skipped[0]?.file}: ${skipped[0]?.problem})`,
    );
  const minWordCount = opts.minWordCount ?? 5;
  const maxLength = opts.maxLength ?? 16;
  const stats = datasetStats(images, { minWordCount, maxLength });
  const shards: ShardIndex = {
    imageSize,
    imagesPerShard: per,
    files: Array.from({ length: shardCount }, (_, k) => `${shardName(k)}.bin`),
  };
  const inputIssues = [...(opts.inputIssues ?? [])];
  await writeFileAtomic(
    join(partial, 'report.json'),
    JSON.stringify({ skippedImages: skipped, skippedInputs: inputIssues }, null, 2) + '\n',
  );
  const train = images.filter((img) => img.split === 'train').flatMap((img) => img.captions);
  await writeFileAtomic(
    join(partial, 'vocab.json'),
    JSON.stringify(Vocabulary.build(train, minWordCount).toJSON()) + '\n',
  );
  const manifest: Manifest & Record<string, unknown> = {
    format: 'captioner-dataset',
    version: 1,
    name: opts.name,
    source: opts.source,
    ...opts.manifestFields,
    shards,
    stats,
    images,
  };
  await writeFileAtomic(join(partial, 'manifest.json'), JSON.stringify(manifest) + '\n');
  await rename(partial, out);
  // Bookkeeping of the build, no longer needed (harmless if a kill leaves it behind).
  for (let k = 0; k < shardCount; k++) await rm(join(out, `${shardName(k)}.done`), { force: true });
  await rm(join(out, 'plan.json'), { force: true });
  return { dir: opts.out, images: images.length, skipped, inputIssues, resumedShards, shards: shardCount, stats };
}
