/** `captioner serve`: the web app (server/) on a port, with a graceful stop on SIGTERM/SIGINT. */
import { availableParallelism } from 'node:os';
import type { Argv } from 'yargs';
import { DEFAULT_DECODE_LIMITS } from '../../server/decode-options.ts';
import { resolvePort, startServer } from '../../server/listen.ts';
import { logLine, type Command } from '../command.ts';
import { EXIT, UsageError } from '../errors.ts';
import { integerFlag, optionalIntegerFlag } from '../options.ts';

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
      .option('workers', {
        type: 'number',
        describe: 'caption worker threads, each with a copy of the model [default: cores - 1, at least 1]',
      })
      .option('queue', {
        type: 'number',
        default: 16,
        describe: 'caption jobs that may wait for a worker; past that, 503',
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
      .option('beam', {
        type: 'number',
        default: 3,
        describe: "beam width a request gets when it names none; the page's Beam width field starts at it (at most 10)",
      })
      .option('grace', {
        type: 'number',
        default: 10_000,
        describe: 'on SIGTERM/SIGINT, ms to let captions in flight finish',
      })
      .example('$0 serve --model models/shapes', 'serve on http://127.0.0.1:3000')
      .example(
        'PORT=8080 $0 serve --model models/shapes --host 0.0.0.0 --workers 2',
        'serve on every interface, port 8080',
      ),
  async run(argv) {
    let port: number;
    try {
      port = resolvePort(argv.port as number | undefined);
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    const beamWidth = integerFlag(argv, 'beam', 1);
    if (beamWidth > DEFAULT_DECODE_LIMITS.maxBeamWidth)
      throw new UsageError(`--beam must be at most ${DEFAULT_DECODE_LIMITS.maxBeamWidth}, got ${beamWidth}`);
    const workers = optionalIntegerFlag(argv, 'workers', 1) ?? Math.max(1, availableParallelism() - 1);
    logLine(`loading ${String(argv.model)} into ${workers} worker${workers === 1 ? '' : 's'}…`);
    const running = await startServer({
      modelDir: String(argv.model),
      port,
      host: String(argv.host),
      workers,
      maxQueue: integerFlag(argv, 'queue', 0),
      timeoutMs: integerFlag(argv, 'timeout', 1),
      limits: { maxBytes: integerFlag(argv, 'max-upload', 1), maxPixels: integerFlag(argv, 'max-pixels', 1) },
      graceMs: integerFlag(argv, 'grace', 0),
      defaultBeamWidth: beamWidth,
      ...(typeof argv.backend === 'string' ? { backend: argv.backend } : {}),
      log: logLine,
    });
    const { backend, backendDetail } = running.pool.info;
    logLine(
      `model ${String(argv.model)} on the ${backend} backend${backendDetail ? ` (${backendDetail})` : ''}; listening on ${running.url}`,
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
