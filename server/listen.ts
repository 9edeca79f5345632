/**
 * Starting and stopping the web app: the worker pool, the app (server/app.ts), the listening
 * socket, and a graceful stop — stop accepting connections, let captions in flight finish (up to
 * a grace period, then cancel them), close idle keep-alive connections, end the workers.
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { QueueLocation } from '../queue/connection.ts';
import { RemoteCaptioning } from '../queue/remote.ts';
import { readModelDecoding } from '../model/io/decoding-file.ts';
import { describeRecommendation } from '../model/decode/recommended.ts';
import { createApp } from './app.ts';
import type { RunningCaptionService } from './context.ts';
import type { DecodeLimits } from './decode-options.ts';
import { hostPolicy } from './host-guard.ts';
import { ServerMetrics } from './metrics.ts';
import type { ImageLimits } from './upload.ts';
import { WorkerPool, type PoolOptions } from './workers.ts';

export interface ServeOptions extends PoolOptions {
  port: number;
  host: string;
  limits?: Partial<ImageLimits & DecodeLimits>;
  /** The beam width a request gets when it names none (`serve --beam`; default: the model's recommendation). */
  defaultBeamWidth?: number;
  /** How long in-flight captions may run on after a stop is asked for (ms). */
  graceMs: number;
  /** Host names the server answers to besides its address and loopback (`--allowed-host`). */
  allowedHosts?: readonly string[];
  /**
   * Caption on `captioner worker` processes on this queue (queue/remote.ts) instead of worker
   * threads; `maxQueue` is then the bound on requests in progress at once.
   */
  queue?: QueueLocation;
  /** With `queue`: jobs that may wait on the queue across every web process (`--max-waiting`). */
  maxWaiting?: number;
  log?: (line: string) => void;
}

/** The socket could not be opened: the port is taken, privileged, or the address is not this machine's. */
export class ListenError extends Error {
  override name = 'ListenError';
  constructor(
    message: string,
    /** The system's code: EADDRINUSE, EACCES, EADDRNOTAVAIL, … */
    readonly code: string,
    readonly host: string,
    readonly port: number,
  ) {
    super(message);
  }
}

function listenError(err: NodeJS.ErrnoException, host: string, port: number): ListenError {
  const where = `${host}:${port}`;
  const code = err.code ?? 'unknown';
  const reason =
    code === 'EADDRINUSE'
      ? `port ${port} is already in use on ${host}`
      : code === 'EACCES'
        ? `not allowed to listen on port ${port} (ports below 1024 need privileges)`
        : code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND'
          ? `${host} is not an address of this machine`
          : `cannot listen on ${where}: ${err.message}`;
  return new ListenError(reason, code, host, port);
}

export interface RunningServer {
  url: string;
  server: Server;
  pool: RunningCaptionService;
  /** The graceful stop; safe to call more than once. */
  close(): Promise<void>;
}

/** The port: `--port` when given, else the PORT environment variable, else 3000. */
export function resolvePort(flag: number | undefined, env: string | undefined = process.env.PORT): number {
  const raw = flag ?? (env !== undefined && env !== '' ? Number(env) : 3000);
  if (!Number.isInteger(raw) || raw < 0 || raw > 65535) {
    throw new RangeError(
      `port must be a whole number from 0 to 65535, got ${JSON.stringify(flag ?? env)}${flag === undefined ? ' (from PORT)' : ''}`,
    );
  }
  return raw;
}

/**
 * Host names from `--allowed-host` (repeatable, or comma-separated) when given, else from the
 * CAPTIONER_ALLOWED_HOSTS environment variable (comma-separated).
 */
export function resolveAllowedHosts(
  flag: readonly string[] | undefined,
  env: string | undefined = process.env.CAPTIONER_ALLOWED_HOSTS,
): string[] {
  const given = flag && flag.length > 0 ? flag : env ? [env] : [];
  return given
    .flatMap((v) => v.split(','))
    .map((v) => v.trim())
    .filter(Boolean);
}

/**
 * Loads the model into the worker pool (or connects to the queue's workers), then listens.
 * Resolves once the socket is open.
 */
export async function startServer(opts: ServeOptions): Promise<RunningServer> {
  const log = opts.log ?? (() => {});
  // The model's recommended decoding (decoding.json) is what a request that names nothing gets.
  const recommendedDecoding = await readModelDecoding(opts.modelDir);
  if (recommendedDecoding) log(`the model recommends ${describeRecommendation(recommendedDecoding)}`);
  const pool: RunningCaptionService = opts.queue
    ? await RemoteCaptioning.start({
        location: opts.queue,
        modelDir: opts.modelDir,
        maxJobs: opts.maxQueue,
        ...(opts.maxWaiting !== undefined ? { maxWaiting: opts.maxWaiting } : {}),
        timeoutMs: opts.timeoutMs,
        log,
      })
    : await WorkerPool.start(opts);
  const metrics = new ServerMetrics(pool);
  let app: ReturnType<typeof createApp>;
  try {
    app = createApp({
      pool,
      modelDir: opts.modelDir,
      metrics,
      log,
      hosts: hostPolicy(opts.host, opts.allowedHosts),
      recommendedDecoding,
      ...(opts.limits ? { limits: opts.limits } : {}),
      ...(opts.defaultBeamWidth !== undefined ? { defaultBeamWidth: opts.defaultBeamWidth } : {}),
    });
  } catch (err) {
    await pool.close(0); // settings the app refuses: no worker outlives them
    throw err;
  }
  let server: Server;
  try {
    server = await new Promise<Server>((resolve, reject) => {
      const s = app.listen(opts.port, opts.host, (err?: Error) => (err ? reject(err) : resolve(s)));
      s.once('error', reject);
    });
  } catch (err) {
    await pool.close(0);
    throw listenError(err as NodeJS.ErrnoException, opts.host, opts.port);
  }
  // Uploads are bounded by size; a client that trickles its request cannot hold a socket forever.
  server.requestTimeout = Math.max(opts.timeoutMs * 2, 30_000);
  server.headersTimeout = 20_000;
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const url = `http://${host}:${address.port}`;

  let closing: Promise<void> | null = null;
  const close = () => {
    closing ??= (async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      await pool.close(opts.graceMs);
      metrics.stop();
      // Streams and keep-alive sockets whose work is done or cancelled can go now.
      server.closeIdleConnections();
      const force = setTimeout(() => server.closeAllConnections(), 1000);
      await closed;
      clearTimeout(force);
    })();
    return closing;
  };
  return { url, server, pool, close };
}
