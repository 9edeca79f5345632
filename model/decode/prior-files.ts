/**
 * The language prior (./prior.ts) from files: a checkpoint's language-prior.json, or counted from
 * a data set's split. Apart from prior.ts because these read files; the browser bundle uses
 * prior.ts alone and fetches the JSON.
 */
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { makeExamples } from '../data/batch.ts';
import { readManifest, splitImages } from '../data/dataset.ts';
import type { Vocabulary } from '../text/vocab.ts';
import { LanguagePrior, PRIOR_FILE, PriorError, type AntiLmDefaults } from './prior.ts';

/** The prior stored in a checkpoint directory, or null when it has none. */
export async function readPrior(dir: string, vocab: Vocabulary): Promise<LanguagePrior | null> {
  const path = join(dir, PRIOR_FILE);
  if (
    !(await stat(path).then(
      () => true,
      () => false,
    ))
  )
    return null;
  let json: unknown;
  try {
    json = JSON.parse(await readFile(path, 'utf8'));
  } catch (err) {
    throw new PriorError(`${path}: cannot read (${(err as Error).message})`);
  }
  return LanguagePrior.fromJSON(json, vocab, path);
}

/**
 * The prior of a data set's split (its training split, for a model trained on it), encoded with
 * the model's vocabulary and caption limit exactly as training encodes it.
 */
export async function priorOfSplit(
  dataDir: string,
  split: string,
  vocab: Vocabulary,
  maxLength: number,
  antiLm: Partial<AntiLmDefaults> = {},
): Promise<LanguagePrior> {
  const images = splitImages(await readManifest(dataDir), split);
  if (images.length === 0) throw new PriorError(`${dataDir}: split "${split}" has no images`);
  return LanguagePrior.fromCaptions(
    makeExamples(images, vocab, maxLength).map((e) => e.ids),
    vocab.size,
    1,
    antiLm,
  );
}
