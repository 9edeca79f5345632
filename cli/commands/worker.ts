/**
 * `captioner worker`: takes captioning jobs from a Redis-backed queue (BullMQ) and captions them
 * in batches with a trained model, until stopped (SIGINT or SIGTERM: the jobs held are finished
 * first). A thin layer over queue/worker.ts; `caption --queue` enqueues the jobs. The model is
 * loaded before the queue is touched: a worker whose model fails to load takes no job.
 */
import type { Argv } from 'yargs';
import { loadModel } from '../../model/io/load.ts';
import { readModelDecoding } from '../../model/io/decoding-file.ts';
import { describeRecommendation } from '../../model/decode/recommended.ts';
import { selectBackend } from '../../model/runtime/backend.ts';
import { checkRedis, parseQueueUrl } from '../../queue/connection.ts';
import { modelFingerprint, startHeartbeat, workerId } from '../../queue/registry.ts';
import { startServeWorker } from '../../queue/serve-jobs.ts';
import { startCaptionWorker } from '../../queue/worker.ts';
import { describeNative, nativeStatus } from '../../model/runtime/native.ts';
import { logLine, type Command } from '../command.ts';
import { EXIT } from '../errors.ts';
import { integerFlag } from '../options.ts';

const QUEUE = 'Queue:';

export const workerCommand: Command = {
  command: 'worker',
  describe: 'caption images from a Redis job queue (fed by `caption --queue`) until stopped',
  builder: (y: Argv) =>
    y
      .option('queue', {
        type: 'string',
        demandOption: true,
        describe: 'the queue: redis://HOST:PORT/DB',
        group: QUEUE,
      })
      .option('model', {
        type: 'string',
        demandOption: true,
        describe: 'model directory (written by `captioner train`)',
      })
      .option('checkpoint', {
        type: 'string',
        choices: ['best', 'latest'],
        default: 'best',
        describe: 'which checkpoint of the model directory',
      })
      .option('concurrency', {
        type: 'number',
        default: 32,
        describe: 'jobs held at once (decoding and captioning); at least --batch-size to fill batches',
        group: QUEUE,
      })
      .option('serve-concurrency', {
        type: 'number',
        default: 1,
        describe: 'web requests (`serve --queue`) captioned at once, word by word; 0: batch jobs only',
        group: QUEUE,
      })
      .option('heartbeat', {
        type: 'number',
        default: 2000,
        describe:
          'ms between the heartbeats that tell `serve --queue` this worker is alive; it counts as gone after three missed',
        group: QUEUE,
      })
      .option('batch-size', { type: 'number', default: 16, describe: 'images captioned together, at most' })
      .option('decode-memory', {
        type: 'number',
        default: 512,
        describe: 'MiB the image decodes in progress may hold, estimated from each header',
      })
      .option('lock-duration', {
        type: 'number',
        default: 30000,
        describe: "ms a job's lock lasts unrenewed: how long a dead worker's jobs wait before another takes them",
        group: QUEUE,
      })
      .option('stalled-interval', {
        type: 'number',
        default: 30000,
        describe: 'ms between this worker’s checks for jobs whose worker died',
        group: QUEUE,
      })
      .option('max-stalled', {
        type: 'number',
        default: 1,
        describe: 'times a job may lose its worker and be taken again before it fails',
        group: QUEUE,
      })
      .example('$0 worker --queue redis://10.0.0.5:6379/0 --model models/coco', 'serve the queue with this model')
      .epilog(
        "Small images come in their jobs (caption --images-by); larger ones are read by the path the enqueueing run resolved, so every worker must then see the same files at the same paths. Stop with Ctrl-C or SIGTERM; the jobs held are finished first. The decoding flags and --max-pixels are given to caption --queue and travel with each job; this model's decoding.json fills in what they leave out. See docs/scale.md.",
      ),
  async run(argv) {
    const location = parseQueueUrl(argv.queue as string);
    const concurrency = integerFlag(argv, 'concurrency');
    const batchSize = integerFlag(argv, 'batch-size');
    const decodeMemory = integerFlag(argv, 'decode-memory');
    const lockDurationMs = integerFlag(argv, 'lock-duration');
    const stalledIntervalMs = integerFlag(argv, 'stalled-interval');
    const maxStalledCount = integerFlag(argv, 'max-stalled', 0);
    const serveConcurrency = integerFlag(argv, 'serve-concurrency', 0);
    const heartbeatMs = integerFlag(argv, 'heartbeat', 100);
    const which = argv.checkpoint as 'best' | 'latest';

    const backend = await selectBackend(argv.backend as string | undefined, logLine);
    const { model, prior, familiarity } = await loadModel(argv.model as string, which);
    try {
      // What `caption --queue` jobs without a strategy flag decode with, as `caption --model` would.
      const recommended = await readModelDecoding(argv.model as string, which);
      if (recommended) logLine(`worker: the model recommends ${describeRecommendation(recommended)}`);
      const fingerprint = await modelFingerprint(argv.model as string, which);
      await checkRedis(location);
      // Announced before it takes a job (see startHeartbeat).
      const heartbeat = await startHeartbeat(
        location,
        {
          id: workerId(),
          model: fingerprint,
          config: model.config,
          vocabSize: model.vocab.size,
          attentionGrid: model.attentionGrid,
          calibrated: familiarity !== null,
          recommended,
          backend,
          backendDetail:
            backend === 'cpu'
              ? describeNative(nativeStatus() ?? { enabled: false, kernels: [], detail: 'not tried' })
              : '',
          serveConcurrency,
        },
        { intervalMs: heartbeatMs, onError: (err) => logLine(`worker: heartbeat: ${err.message}`) },
      );
      let captioned = 0;
      let failed = 0;
      const worker = startCaptionWorker({
        model,
        prior,
        familiarity,
        recommended,
        location,
        concurrency,
        batchSize,
        decodeBudgetBytes: decodeMemory * 2 ** 20,
        lockDurationMs,
        stalledIntervalMs,
        maxStalledCount,
        onBatch(c, f) {
          captioned += c;
          failed += f;
        },
        onError: (err) => logLine(`worker: ${err.message}`),
      });
      const web =
        serveConcurrency > 0
          ? await startServeWorker({
              model,
              prior,
              familiarity,
              fingerprint,
              location,
              concurrency: serveConcurrency,
              lockDurationMs,
              stalledIntervalMs,
              onError: (err) => logLine(`worker: ${err.message}`),
            })
          : null;
      logLine(
        `worker: captioning jobs from ${location.display} with ${argv.model as string} (model ${fingerprint}, pid ${process.pid})`,
      );
      const signal = await new Promise<NodeJS.Signals>((resolve) => {
        process.once('SIGINT', () => resolve('SIGINT'));
        process.once('SIGTERM', () => resolve('SIGTERM'));
      });
      logLine(`worker: ${signal}: finishing the jobs held, then stopping (again to quit at once)`);
      // A second signal quits at once: the jobs held go back to the queue when their locks expire.
      const quit = () => process.exit(EXIT.interrupted);
      process.once('SIGINT', quit);
      process.once('SIGTERM', quit);
      // Still alive while it finishes (a web tier fails the requests of a worker whose heartbeat
      // stops), but taking nothing new.
      await heartbeat.drain();
      await Promise.all([worker.close(), web?.close()]);
      await heartbeat.stop();
      logLine(
        `worker stopped: ${captioned} captioned, ${failed} failed attempts` +
          (web ? `; ${web.cancelled} web requests cancelled part-way` : ''),
      );
      return signal === 'SIGINT' ? EXIT.interrupted : EXIT.ok;
    } finally {
      model.dispose();
    }
  },
};
