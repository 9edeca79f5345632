/**
 * Importing a real captioned data set: read the user's files (coco.ts, flickr8k.ts, table.ts),
 * then write the project's layout through the one builder (../build.ts): images decoded by the
 * project's preprocessing (model/data/image.ts) into shards, in parallel, resumably, unreadable
 * images skipped and reported.
 */
import { buildDataset, type BuildResult, type Issue } from '../build.ts';
import { importPixels, toRecords, type ImportedImage } from './read.ts';

export { readCoco, readKarpathy } from './coco.ts';
export { readFlickr8k } from './flickr8k.ts';
export { readTable } from './table.ts';
export type { ImportedImage } from './read.ts';

export interface ImportOptions {
  out: string;
  name: string;
  /** What was imported, e.g. the command line; saved in the manifest. */
  source: string;
  size: number;
  minWordCount?: number;
  maxLength?: number;
  concurrency?: number;
  onProgress?(done: number, total: number): void;
  log?(line: string): void;
}

/** Writes `images` (read by one of the readers, with the issues it found) as a data set. */
export async function importImages(
  images: readonly ImportedImage[],
  inputIssues: readonly Issue[],
  opts: ImportOptions,
): Promise<BuildResult> {
  return buildDataset({
    out: opts.out,
    name: opts.name,
    source: opts.source,
    imageSize: opts.size,
    records: toRecords(images, opts.out),
    pixels: importPixels(images, opts.size),
    inputIssues,
    minWordCount: opts.minWordCount,
    maxLength: opts.maxLength,
    concurrency: opts.concurrency,
    onProgress: opts.onProgress,
    log: opts.log,
  });
}
