/**
 * `captioner serve`: the web app (server/) on a port, with a graceful stop on SIGTERM/SIGINT.
 * Captions in its own worker threads, or with `--queue redis://…` on `captioner worker`
 * processes (queue/remote.ts).
 */
import { availableParallelism } from 'node:os';
import type { Argv } from 'yargs';
import { DEFAULT_BEAM_WIDTH, DEFAULT_DECODE_LIMITS, checkSetting } from '../../model/decode/options.ts';
import { LOOPBACK_HOSTS, normaliseHost } from '../../server/host-guard.ts';
import { ListenError, resolveAllowedHosts, resolvePort, startServer } from '../../server/listen.ts';
import { DEFAULT_IMAGE_LIMITS } from '../../server/upload.ts';
import { parseQueueUrl, type QueueLocation } from '../../queue/connection.ts';
import { logLine, type Command } from '../command.ts';
import { EXIT, UsageError } from '../errors.ts';
import { integerFlag, optionalIntegerFlag } from '../options.ts';

/** A socket that could not be opened, as a usage error that says which flag or variable picks another. */
function listenUsageError(err: ListenError, fromFlag: boolean): UsageError {
  const source = fromFlag ? '--port' : process.env.PORT ? 'the PORT environment variable' : 'the default port';
  if (err.code === 'EADDRINUSE' || err.code === 'EACCES')
    return new UsageError(
      `${err.message} (from ${source}); pick another with --port N or the PORT environment variable`,
    );
  if (err.code === 'EADDRNOTAVAIL' || err.code === 'ENOTFOUND')
    return new UsageError(`${err.message}; pick another with --host (127.0.0.1, or 0.0.0.0 for every interface)`);
  return new UsageError(err.message);
}

/** The host names a server answers to, for its start-up line. */
function hostNames(host: string, allowed: readonly string[]): string {
  const bound = normaliseHost(host);
  const wildcard = bound === '0.0.0.0' || bound === '[::]' || bound === '';
  const names = [...LOOPBACK_HOSTS, wildcard ? "this machine's addresses" : bound, ...allowed.map(normaliseHost)];
  return [...new Set(names)].join(', ');
}

/**
 * `--queue`: a whole number (jobs that may wait for a worker thread, the flag's first meaning) or
 * a redis:// URL (caption on the queue's workers).
 */
function queueFlag(value: unknown): { maxQueue: number } | { location: QueueLocation } {
  if (value === undefined) return { maxQueue: 16 };
  const text = String(value);
  if (/^[-+.\d]+$/.test(text)) {
    const n = Number(text);
    if (!Number.isInteger(n) || n < 0) throw new UsageError(`--queue must be a whole number ≥ 0, got ${text}`);
    return { maxQueue: n };
  }
  return { location: parseQueueUrl(text) };
}

export const serveCommand: Command = {
  command: 'serve',
  describe: 'serve the web page and HTTP API for a trained model',
  builder: (y: Argv) =>
    y
      .option('model', { type: 'string', demandOption: true, describe: 'model directory (as written by train)' })
      .option('port', { type: 'number', describe: 'port to listen on [default: $PORT or 3000]' })
      .option('host', {
        type: 'string',
        default: '127.0.0.1',
        describe: 'address to listen on (0.0.0.0 for every interface)',
      })
      .option('allowed-host', {
        type: 'string',
        array: true,
        describe:
          "a host name the server answers to besides localhost, 127.0.0.1, [::1] and the --host address (every one of the machine's addresses for 0.0.0.0); repeatable; other Host headers get 421 [default: $CAPTIONER_ALLOWED_HOSTS, comma-separated]",
      })
      .option('workers', {
        type: 'number',
        describe: 'caption worker threads, each with a copy of the model [default: cores - 1, at least 1]',
      })
      .option('queue', {
        type: 'string',
        describe:
          'a number: caption jobs that may wait for a worker thread, past that 503 [default: 16]; or redis://HOST:PORT/DB: caption on the `captioner worker` processes of that queue instead of threads (docs/scale.md)',
      })
      .option('max-jobs', {
        type: 'number',
        default: 32,
        describe: 'with --queue redis://…: caption requests in progress at once (upload to answer); past that, 503',
      })
      .option('max-waiting', {
        type: 'number',
        describe:
          'with --queue redis://…: caption jobs that may wait on the queue for a worker, counted across every web process serving the model (replicas); past that, 503 [default: no bound but --max-jobs per process]',
      })
      .option('timeout', {
        type: 'number',
        default: 30_000,
        describe: 'time limit per caption request in ms (queue wait included)',
      })
      .option('max-upload', {
        type: 'number',
        default: 10 * 1024 * 1024,
        describe: 'largest upload in bytes (413 past it)',
      })
      .option('max-pixels', {
        type: 'number',
        default: 40_000_000,
        describe: 'largest image in pixels, width × height (413 past it)',
      })
      .option('max-decode-mb', {
        type: 'number',
        default: DEFAULT_IMAGE_LIMITS.maxDecodeBytes / 1024 / 1024,
        describe:
          'memory the image decodes in progress may hold together, in MB, estimated from each header (16-bit, alpha and interlacing count); an image that alone needs more gets 413',
      })
      .option('beam', {
        type: 'number',
        describe: `beam width a request gets when it names none; the page's Beam width field starts at it (at most ${DEFAULT_DECODE_LIMITS.maxBeamWidth}) [default: the model's decoding.json, else ${DEFAULT_BEAM_WIDTH}]`,
      })
      .option('grace', {
        type: 'number',
        default: 10_000,
        describe: 'on SIGTERM/SIGINT, ms to let captions in flight finish',
      })
      .example('$0 serve --model models/shapes', 'serve on http://127.0.0.1:3000')
      .example(
        '$0 serve --model models/shapes --queue redis://10.0.0.5:6379/0',
        'the page and API here, captioning on `captioner worker --queue redis://10.0.0.5:6379/0 --model models/shapes` processes',
      )
      .example(
        'PORT=8080 $0 serve --model models/shapes --host 0.0.0.0 --allowed-host captions.example.org --workers 2',
        'serve on every interface, port 8080, also under the name captions.example.org',
      ),
  async run(argv) {
    let port: number;
    try {
      port = resolvePort(argv.port as number | undefined);
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    // The decoding spec's bounds for a request's beam width (1 to the server's limit).
    const beamWidth =
      argv.beam === undefined ? undefined : checkSetting('beamWidth', argv.beam, '--beam', DEFAULT_DECODE_LIMITS);
    const workers = optionalIntegerFlag(argv, 'workers', 1) ?? Math.max(1, availableParallelism() - 1);
    const host = String(argv.host);
    const allowedHosts = resolveAllowedHosts(argv['allowed-host'] as string[] | undefined);
    const queue = queueFlag(argv.queue);
    if (argv['max-waiting'] !== undefined && !('location' in queue))
      throw new UsageError('--max-waiting bounds a job queue: it needs --queue redis://HOST:PORT/DB');
    if ('location' in queue)
      logLine(`reading ${String(argv.model)}; captioning on the workers of ${queue.location.display}…`);
    else logLine(`loading ${String(argv.model)} into ${workers} worker${workers === 1 ? '' : 's'}…`);
    const running = await startServer({
      modelDir: String(argv.model),
      port,
      host,
      allowedHosts,
      workers,
      ...('location' in queue
        ? {
            queue: queue.location,
            maxQueue: integerFlag(argv, 'max-jobs', 1),
            maxWaiting: optionalIntegerFlag(argv, 'max-waiting', 1),
          }
        : { maxQueue: queue.maxQueue }),
      timeoutMs: integerFlag(argv, 'timeout', 1),
      limits: {
        maxBytes: integerFlag(argv, 'max-upload', 1),
        maxPixels: integerFlag(argv, 'max-pixels', 1),
        maxDecodeBytes: integerFlag(argv, 'max-decode-mb', 1) * 1024 * 1024,
      },
      graceMs: integerFlag(argv, 'grace', 0),
      ...(beamWidth !== undefined ? { defaultBeamWidth: beamWidth } : {}),
      ...(typeof argv.backend === 'string' ? { backend: argv.backend } : {}),
      log: logLine,
    }).catch((err: unknown) => {
      throw err instanceof ListenError ? listenUsageError(err, argv.port !== undefined) : err;
    });
    const { backend, backendDetail } = running.pool.info;
    logLine(
      `model ${String(argv.model)} on the ${backend} backend${backendDetail ? ` (${backendDetail})` : ''}; listening on ${running.url}`,
    );
    logLine(
      `answering to the host names ${hostNames(host, allowedHosts)} (others get 421; add one with --allowed-host)`,
    );

    await new Promise<void>((resolve) => {
      const stop = (signal: string) => {
        logLine(`${signal}: stopping (finishing captions in flight for up to ${String(argv.grace)} ms)…`);
        process.off('SIGTERM', onTerm);
        process.off('SIGINT', onInt);
        // A second signal while stopping quits at once.
        process.once('SIGTERM', () => process.exit(EXIT.interrupted));
        process.once('SIGINT', () => process.exit(EXIT.interrupted));
        running.close().then(resolve, (err: unknown) => {
          logLine(`error while stopping: ${(err as Error).message}`);
          resolve();
        });
      };
      const onTerm = () => stop('SIGTERM');
      const onInt = () => stop('SIGINT');
      process.on('SIGTERM', onTerm);
      process.on('SIGINT', onInt);
    });
    logLine('stopped');
    return EXIT.ok;
  },
};
