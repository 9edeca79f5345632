/**
 * decoding.json, a model's recommended decoding (model/decode/recommended.ts), read from and
 * written to a checkpoint directory or a flat model directory.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DecodeOptionsError } from '../decode/options.ts';
import { DECODING_FILE, parseRecommendedDecoding, type RecommendedDecoding } from '../decode/recommended.ts';
import { CheckpointError, readCheckpointConfig } from './checkpoint.ts';
import { ifExists, writeFileAtomic } from './fsutil.ts';

/**
 * The recommendation in `dir` (a checkpoint directory), or null when it has none; a broken file
 * is a CheckpointError naming it.
 */
export async function readRecommendedDecoding(dir: string): Promise<RecommendedDecoding | null> {
  const path = join(dir, DECODING_FILE);
  const text = await ifExists(readFile(path, 'utf8'));
  if (text === null) return null;
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new CheckpointError(`${path}: invalid JSON (${(err as Error).message})`);
  }
  try {
    return parseRecommendedDecoding(json, path);
  } catch (err) {
    if (err instanceof DecodeOptionsError) throw new CheckpointError(err.message);
    throw err;
  }
}

/** Writes `recommended` as `dir`/decoding.json, atomically. */
export async function writeRecommendedDecoding(dir: string, recommended: RecommendedDecoding): Promise<void> {
  await writeFileAtomic(join(dir, DECODING_FILE), JSON.stringify(recommended, null, 2) + '\n');
}

/**
 * The recommended decoding of a model directory's best (or latest) checkpoint, or of a
 * checkpoint directory, without loading the weights: what a front end reads before it checks its
 * flags against the strategy the model recommends.
 */
export async function readModelDecoding(
  modelDir: string,
  which: 'best' | 'latest' = 'best',
): Promise<RecommendedDecoding | null> {
  const { dir } = await readCheckpointConfig(modelDir, which);
  return readRecommendedDecoding(dir);
}
