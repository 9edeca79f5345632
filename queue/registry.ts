/**
 * Which workers are alive, and with what model: each `captioner worker` writes a heartbeat key
 * (`captioner:worker:ID`, JSON WorkerInfo) that expires unless renewed, and removes it when it
 * stops. The web tier (`serve --queue`, queue/remote.ts) reads them for /readyz and to refuse
 * requests at once while no worker could take them; `caption --queue` reads them to know whether
 * the workers' model is calibrated (CSV and TSV then get the familiarity columns).
 *
 * A model's fingerprint is a hash of the files it is loaded from, so that the web tier hands its
 * uploads only to workers that loaded the same model (queue/serve-jobs.ts names the web queue by it).
 */
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import type { ModelConfig } from '../model/nn/captioner.ts';
import type { RecommendedDecoding } from '../model/decode/recommended.ts';
import { readCheckpointConfig } from '../model/io/checkpoint.ts';
import type { QueueLocation } from './connection.ts';

const KEY_PREFIX = 'captioner:worker:';

/** What a worker says of itself in its heartbeat. */
export interface WorkerInfo {
  /** host:pid, unique while the worker lives. */
  id: string;
  /** The model's fingerprint (`modelFingerprint`). */
  model: string;
  config: ModelConfig;
  vocabSize: number;
  attentionGrid: [number, number] | null;
  /** Whether the model has a familiarity calibration (results then carry `familiarity`). */
  calibrated: boolean;
  /** The model's recommended decoding (its decoding.json), or null. */
  recommended: RecommendedDecoding | null;
  backend: string;
  backendDetail: string;
  /** Web-tier jobs (`serve --queue`) it takes at once; 0: batch jobs only. */
  serveConcurrency: number;
  /** Stopping: it finishes the jobs it holds and takes no other (`Heartbeat.drain`). */
  draining?: boolean;
}

/** An ioredis client for `location` that keeps reconnecting (a Redis restart), its commands waiting meanwhile. */
export function redisClient(location: QueueLocation): Redis {
  const { display: _, ...rest } = location;
  const client = new Redis({ ...rest, maxRetriesPerRequest: null });
  return client;
}

/**
 * The fingerprint of the model in `modelDir` (its `which` checkpoint): a hash of the files a
 * model is loaded from (configuration, vocabulary, weights, prior, calibration).
 */
export async function modelFingerprint(modelDir: string, which: 'best' | 'latest' = 'best'): Promise<string> {
  const { dir } = await readCheckpointConfig(modelDir, which);
  const names = (await readdir(dir, { withFileTypes: true }))
    .filter((e) => e.isFile() && /^(config|vocab|weights|backbone|language-prior|familiarity)\./.test(e.name))
    .map((e) => e.name)
    .sort();
  const hash = createHash('sha256');
  for (const name of names)
    hash
      .update(name)
      .update('\0')
      .update(await readFile(join(dir, name)));
  return hash.digest('hex').slice(0, 16);
}

/** A running heartbeat; `drain` says the worker is stopping (alive, taking no job); `stop` removes the key. */
export interface Heartbeat {
  drain(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * Announces `info` every `intervalMs`, with a time to live of three intervals: a worker killed
 * without stopping drops out of the registry within that time. Failures (Redis restarting) are
 * given to `onError` and the beat goes on. Resolves after the first beat: a worker starts taking
 * jobs after it, so that a web tier never sees a job's worker before the worker itself.
 */
export async function startHeartbeat(
  location: QueueLocation,
  info: WorkerInfo,
  { intervalMs = 2000, onError }: { intervalMs?: number; onError?: (err: Error) => void } = {},
): Promise<Heartbeat> {
  const client = redisClient(location);
  client.on('error', (err) => onError?.(err));
  const key = KEY_PREFIX + info.id;
  let value = JSON.stringify(info);
  const beat = () => client.set(key, value, 'PX', intervalMs * 3).then(undefined, (err: Error) => onError?.(err));
  await beat();
  const timer = setInterval(() => void beat(), intervalMs);
  return {
    async drain() {
      value = JSON.stringify({ ...info, draining: true });
      await beat();
    },
    async stop() {
      clearInterval(timer);
      await client.del(key).catch((err: Error) => onError?.(err));
      client.disconnect();
    },
  };
}

/** The workers whose heartbeat has not expired. */
export async function liveWorkers(client: Redis): Promise<WorkerInfo[]> {
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await client.scan(cursor, 'MATCH', `${KEY_PREFIX}*`, 'COUNT', 1000);
    cursor = next;
    keys.push(...batch);
  } while (cursor !== '0');
  if (keys.length === 0) return [];
  const values = await client.mget(keys);
  return values.flatMap((v) => (v === null ? [] : [JSON.parse(v) as WorkerInfo]));
}

/** The id a worker process announces itself with. */
export function workerId(): string {
  return `${hostname()}:${process.pid}`;
}
