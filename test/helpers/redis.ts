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

/** Starts redis-server (persistence off unless `appendonly`), and waits until it answers PING. */
export async function startRedis(): Promise<RedisServer> {
  const which = spawnSync('redis-server', ['--version']);
  if (which.error) throw new Error('redis-server is not installed (apt-get install redis-server; .ci/run installs it)');
  const dir = await mkdtemp(join(tmpdir(), 'captioner-redis-'));
  const port = await freePort();
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', ''], {
    stdio: 'ignore',
  });
  const url = `redis://127.0.0.1:${port}/0`;
  const client = new Redis({ port, host: '127.0.0.1', lazyConnect: true, retryStrategy: () => null });
  client.on('error', () => undefined);
  for (let i = 0; ; i++) {
    try {
      await client.connect();
      await client.ping();
      break;
    } catch (err) {
      if (i > 100 || child.exitCode !== null)
        throw new Error(`redis-server did not start: ${(err as Error).message}`, { cause: err });
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  client.disconnect();
  return {
    port,
    url,
    process: child,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGKILL');
        await exited;
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}
