/**
 * Static partitioning of a batch run across machines without a queue (`caption --shard i/n`):
 * an image belongs to shard 1 + (hash of its real path mod n), so that n runs with the same
 * inputs and shards 1/n … n/n caption every image exactly once, whatever order or directory each
 * run lists them from.
 */
import { createHash } from 'node:crypto';

export interface Shard {
  /** 1-based. */
  index: number;
  count: number;
}

export class ShardError extends Error {
  override name = 'ShardError';
}

/** Reads "i/n" (1 ≤ i ≤ n); anything else is a ShardError naming the value. */
export function parseShard(text: string): Shard {
  const m = /^(\d+)\/(\d+)$/.exec(text.trim());
  const index = m ? Number(m[1]) : NaN;
  const count = m ? Number(m[2]) : NaN;
  if (!m || count < 1 || index < 1 || index > count)
    throw new ShardError(`--shard ${JSON.stringify(text)}: expected i/n with 1 ≤ i ≤ n, e.g. 2/8`);
  return { index, count };
}

/** The shard (1-based) an image of this real path belongs to among `count`. */
export function shardOf(realPath: string, count: number): number {
  const digest = createHash('sha256').update(realPath).digest();
  return 1 + (digest.readUInt32BE(0) % count);
}
