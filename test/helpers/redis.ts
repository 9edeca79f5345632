/**
 * A real Redis server for the queue tests: `redis-server` (Debian's package; .ci/run installs
 * it) on a free loopback port with its data in a temp directory, stopped and removed by `stop`.
 * A missing redis-server fails the test that asks for one; it is never skipped.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';

export interface RedisServer {
  port: number;
  url: string;
  process: ChildProcess;
  /** Kills the server with SIGKILL (a crash: nothing flushed on the way out), then starts it on the same port. */
  crashAndRestart(): Promise<void>;
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

/** Waits until the server on `port` answers PING (or `child` exits). */
async function waitForPing(port: number, child: ChildProcess): Promise<void> {
  const client = new Redis({ port, host: '127.0.0.1', lazyConnect: true, retryStrategy: () => null });
  client.on('error', () => undefined);
  try {
    for (let i = 0; ; i++) {
      try {
        await client.connect();
        await client.ping();
        return;
      } catch (err) {
        if (i > 100 || child.exitCode !== null)
          throw new Error(`redis-server did not start: ${(err as Error).message}`, { cause: err });
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  } finally {
    client.disconnect();
  }
}

async function kill(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await exited;
}

/**
 * Starts redis-server and waits until it answers PING. Persistence is off, unless `appendOnly`:
 * then the append-only file (AOF) with `appendfsync always` (or `fsync`), so that every write
 * Redis acknowledged survives a crash (`crashAndRestart`).
 */
export async function startRedis({
  appendOnly = false,
  fsync = 'always',
}: { appendOnly?: boolean; fsync?: 'always' | 'everysec' } = {}): Promise<RedisServer> {
  const which = spawnSync('redis-server', ['--version']);
  if (which.error) throw new Error('redis-server is not installed (apt-get install redis-server; .ci/run installs it)');
  const dir = await mkdtemp(join(tmpdir(), 'captioner-redis-'));
  const port = await freePort();
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', ''];
  if (appendOnly) args.push('--appendonly', 'yes', '--appendfsync', fsync);
  const spawnServer = () => spawn('redis-server', args, { stdio: 'ignore' });
  let child = spawnServer();
  await waitForPing(port, child);
  return {
    port,
    url: `redis://127.0.0.1:${port}/0`,
    get process() {
      return child;
    },
    async crashAndRestart() {
      await kill(child);
      child = spawnServer();
      await waitForPing(port, child);
    },
    async stop() {
      await kill(child);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
