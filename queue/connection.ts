/**
 * Where the captioning queue lives: a Redis URL (`redis://HOST:PORT/DB`) read into the
 * connection options BullMQ and ioredis take, and a first contact that fails fast with a message
 * naming the server, rather than ioredis' endless reconnecting.
 */
import type { ConnectionOptions } from 'bullmq';
import { Redis } from 'ioredis';

/** A --queue value that is not a Redis URL; the message names the value and the expected form. */
export class QueueUrlError extends Error {
  override name = 'QueueUrlError';
}

/** Redis cannot be reached, or answered with an error, at the first contact. */
export class QueueConnectionError extends Error {
  override name = 'QueueConnectionError';
}

/** The queue's Redis server: host, port, database, and the URL as shown in messages (no password). */
export interface QueueLocation {
  host: string;
  port: number;
  db: number;
  password?: string;
  username?: string;
  /** redis://HOST:PORT/DB, for messages. */
  display: string;
}

/** Reads `redis://[USER:PASSWORD@]HOST[:PORT][/DB]` (port 6379 and database 0 by default). */
export function parseQueueUrl(url: string): QueueLocation {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new QueueUrlError(`--queue ${JSON.stringify(url)} is not a URL; expected redis://HOST:PORT/DB`);
  }
  if (parsed.protocol !== 'redis:')
    throw new QueueUrlError(`--queue ${JSON.stringify(url)}: expected a redis:// URL (redis://HOST:PORT/DB)`);
  if (!parsed.hostname) throw new QueueUrlError(`--queue ${JSON.stringify(url)}: no host (redis://HOST:PORT/DB)`);
  const port = parsed.port === '' ? 6379 : Number(parsed.port);
  const dbText = parsed.pathname.replace(/^\//, '');
  const db = dbText === '' ? 0 : Number(dbText);
  if (!Number.isInteger(db) || db < 0)
    throw new QueueUrlError(
      `--queue ${JSON.stringify(url)}: the database ${JSON.stringify(dbText)} is not a number ≥ 0`,
    );
  const host = parsed.hostname.replace(/^\[(.*)\]$/, '$1');
  const location: QueueLocation = { host, port, db, display: `redis://${parsed.host}/${db}` };
  if (parsed.password) location.password = decodeURIComponent(parsed.password);
  if (parsed.username) location.username = decodeURIComponent(parsed.username);
  return location;
}

/** ioredis options for `location`; BullMQ's blocking connections need maxRetriesPerRequest null. */
export function redisOptions(location: QueueLocation): ConnectionOptions {
  const { display: _, ...rest } = location;
  return { ...rest, maxRetriesPerRequest: null };
}

/**
 * Connects once to `location` and PINGs, giving up after `timeoutMs` with a QueueConnectionError
 * naming the server, so that a wrong address is an error at start, not a hang.
 */
export async function checkRedis(location: QueueLocation, timeoutMs = 5000): Promise<void> {
  const { display: _, ...rest } = location;
  const client = new Redis({
    ...rest,
    lazyConnect: true,
    connectTimeout: timeoutMs,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  client.on('error', () => undefined); // the failure is reported by connect() below
  try {
    await client.connect();
    await client.ping();
  } catch (err) {
    throw new QueueConnectionError(`cannot reach Redis at ${location.display} (${(err as Error).message})`, {
      cause: err,
    });
  } finally {
    client.disconnect();
  }
}
