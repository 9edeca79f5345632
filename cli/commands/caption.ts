/**
 * `captioner caption`: captions image files, folders and globs in batches with a trained model,
 * one record per image (JSON Lines, CSV or TSV) on stdout or in --out. A thin layer over batch/:
 * with --out the run is resumable (batch/output.ts), Ctrl-C stops it after the batch in flight.
 * With --queue the images are captioned by `captioner worker` processes instead (queue/client.ts);
 * with --shard i/n this run takes only its share of the images (batch/shard.ts).
 */
import { extname } from 'node:path';
import type { Argv } from 'yargs';
import { selectBackend } from '../../model/runtime/backend.ts';
import {
  NUMERIC_SETTINGS,
  resolveDecodeOptions,
  type DecodeOptions,
  type DecodeSettings,
  type Strategy,
} from '../../model/decode/options.ts';
import { DEFAULT_MAX_PIXELS } from '../../model/data/image-header.ts';
import { loadModel } from '../../model/io/load.ts';
import { readModelDecoding } from '../../model/io/decoding-file.ts';
import {
  applyRecommendation,
  describeRecommendation,
  type RecommendedDecoding,
} from '../../model/decode/recommended.ts';
import { IMAGE_EXTENSIONS, expandInputs, type InputError, type InputFile } from '../../batch/inputs.ts';
import { openRecordFile, streamOutput, type RecordOutput } from '../../batch/output.ts';
import { RECORD_FORMATS, type RecordFormat } from '../../batch/records.ts';
import { captionFiles, type BatchSummary } from '../../batch/run.ts';
import { parseShard, shardOf } from '../../batch/shard.ts';
import { parseQueueUrl, checkRedis, type QueueLocation } from '../../queue/connection.ts';
import { captionOnQueue } from '../../queue/client.ts';
import { BYTES_THRESHOLD, IMAGE_TRANSPORTS, type ImageTransport } from '../../queue/jobs.ts';
import { liveWorkers, redisClient, type WorkerInfo } from '../../queue/registry.ts';
import { logLine, type Command } from '../command.ts';
import { decodeFlagOptions, decodeSettingsFromFlags, integerFlag } from '../options.ts';
import { EXIT, UsageError } from '../errors.ts';
import { stopOnInterrupt } from '../interrupt.ts';
import { progressBar, type Bar } from '../progress.ts';

/** Default --decode-memory, MiB: room for a few of the largest images --max-pixels lets through. */
const DEFAULT_DECODE_MEMORY_MIB = 512;

/** --format, or the --out file's extension, or JSON Lines. */
function chooseFormat(format: unknown, out: string | undefined): RecordFormat {
  if (typeof format === 'string') return format as RecordFormat;
  const ext = out ? extname(out).toLowerCase().slice(1) : '';
  return (RECORD_FORMATS as readonly string[]).includes(ext) ? (ext as RecordFormat) : 'jsonl';
}

/** How `caption` chooses each strategy, for the error that refuses another strategy's flag. */
const CHOOSE: Record<Strategy, string> = {
  greedy: 'add --greedy',
  beam: 'add --beam N',
  sample: 'add --sample',
};

/**
 * The decoding the flags ask for: greedy with --greedy, beam search with --beam N, sampling with
 * --sample, and with none of them the model's recommended decoding (decoding.json; greedy for a
 * model without one). The other settings from model/decode/options.ts DECODE_SPEC, where a flag
 * of another strategy (--top-k without --sample) is a usage error; a setting no flag gives is the
 * recommendation's.
 */
function decodeSettingsFrom(argv: Record<string, unknown>, recommended: RecommendedDecoding | null): DecodeSettings {
  const chosen = [
    argv.greedy === true && '--greedy',
    argv.beam !== undefined && '--beam',
    argv.sample === true && '--sample',
  ].filter((f): f is string => typeof f === 'string');
  if (chosen.length > 1) throw new UsageError(`${chosen.join(' and ')} exclude each other: choose one`);
  const strategy: Strategy =
    argv.beam !== undefined
      ? 'beam'
      : argv.sample === true
        ? 'sample'
        : argv.greedy === true
          ? 'greedy'
          : (recommended?.strategy ?? 'greedy');
  const given = decodeSettingsFromFlags(argv, NUMERIC_SETTINGS, strategy, (s) => CHOOSE[s]);
  return applyRecommendation(recommended, given, chosen.length > 0);
}

/** The --help group of the decoding flags. */
const DECODING = 'Decoding:';

export const captionCommand: Command = {
  command: 'caption <inputs..>',
  describe: 'caption image files, folders (recursively) and globs with a trained model',
  builder: (y: Argv) =>
    y
      .positional('inputs', {
        type: 'string',
        array: true,
        describe: 'image files, folders (searched recursively for image files) and quoted globs',
      })
      .option('model', {
        type: 'string',
        describe: 'model directory (written by `captioner train`); required unless --queue',
      })
      .option('checkpoint', {
        type: 'string',
        choices: ['best', 'latest'],
        default: 'best',
        describe: 'which checkpoint of the model directory',
      })
      .option('batch-size', { type: 'number', default: 16, describe: 'images decoded together' })
      .option('max-pixels', {
        type: 'number',
        default: DEFAULT_MAX_PIXELS,
        describe: 'largest image, width × height; a larger one is an error record, never decoded',
      })
      .option('decode-memory', {
        type: 'number',
        default: DEFAULT_DECODE_MEMORY_MIB,
        describe:
          'MiB the image decodes in progress may hold, estimated from each header (a larger image decodes alone)',
      })
      .option('greedy', {
        type: 'boolean',
        describe:
          "greedy decoding (the most probable word at each step), whatever the model's decoding.json recommends",
        group: DECODING,
      })
      .option('sample', {
        type: 'boolean',
        describe: 'sample each word instead of taking the most probable',
        group: DECODING,
      })
      .options(
        decodeFlagOptions(NUMERIC_SETTINGS, DECODING, {
          beamWidth: {
            describe:
              "beam search with this many hypotheses per image [default: the model's decoding.json, else greedy decoding]",
          },
          seed: {
            describe:
              'sampling: seed; each image draws from a stream seeded by it and the file path, so reruns repeat [default: 0]',
          },
        }),
      )
      .option('format', {
        type: 'string',
        choices: [...RECORD_FORMATS],
        describe: 'output format [default: from --out extension, else jsonl]',
      })
      .option('attention', {
        type: 'boolean',
        describe:
          'write where the model looked for each word into each record ("attention": {grid, weights}; a model with attention, JSON Lines)',
      })
      .option('out', {
        type: 'string',
        describe:
          'write records to FILE (resumable: a rerun, from any directory, skips images already in it); default stdout',
      })
      .option('queue', {
        type: 'string',
        describe:
          'caption on the workers of this queue (redis://HOST:PORT/DB; `captioner worker`) instead of here; the decoding is the workers’ model’s decoding.json unless flags say otherwise',
        group: 'Scale:',
      })
      .option('images-by', {
        type: 'string',
        choices: [...IMAGE_TRANSPORTS],
        default: 'auto',
        describe: `with --queue: how images reach the workers: auto sends files up to ${BYTES_THRESHOLD / 2 ** 20} MiB as bytes in the job and larger ones by real path (workers must then see the same files at the same paths); bytes or path for all`,
        group: 'Scale:',
      })
      .option('shard', {
        type: 'string',
        describe: 'caption only shard i of n (i/n), chosen by a hash of each real path: n runs cover every image once',
        group: 'Scale:',
      })
      .example('$0 caption photos/ --model models/coco --out captions.jsonl', 'caption a folder; rerun to resume')
      .example('$0 caption a.png --model models/default --attention', "each word's attention weights in the record")
      .example(
        '$0 caption /shared/photos --queue redis://10.0.0.5:6379/0 --out captions.jsonl',
        'caption on the workers',
      )
      .example(
        "$0 caption 'shots/**/*.png' a.jpg --model models/coco --beam 5 --nbest 3 --format csv",
        'beam search, 3 best each, CSV on stdout',
      ),
  async run(argv) {
    const inputs = (argv.inputs as string[] | undefined) ?? [];
    const out = argv.out as string | undefined;
    const format = chooseFormat(argv.format, out);
    const batchSize = integerFlag(argv, 'batch-size');
    const maxPixels = integerFlag(argv, 'max-pixels');
    const decodeMemory = integerFlag(argv, 'decode-memory');
    // The model's recommended decoding fills in what the flags leave out (with --queue, the
    // workers' model's, in each worker).
    const recommended =
      argv.model === undefined
        ? null
        : await readModelDecoding(argv.model as string, argv.checkpoint as 'best' | 'latest');
    if (recommended) logLine(`the model recommends ${describeRecommendation(recommended)}; flags override it`);
    const options: DecodeOptions = decodeSettingsFrom(argv, recommended);
    const nbestColumns = options.nBest ?? 1;
    const queue = argv.queue === undefined ? null : parseQueueUrl(argv.queue as string);
    const shard = argv.shard === undefined ? null : parseShard(argv.shard as string);
    const attention = argv.attention === true;
    if (attention && format !== 'jsonl')
      throw new UsageError(
        `--attention writes a grid of weights per word, which only JSON Lines holds (--format jsonl), not ${format}`,
      );
    if (queue && argv.model !== undefined)
      throw new UsageError('--model and --queue exclude each other: with --queue the workers’ model captions');
    if (!queue && argv.model === undefined)
      throw new UsageError('--model is required (or --queue, to caption on `captioner worker` processes)');

    const expanded = await expandInputs(inputs);
    const { empty } = expanded;
    let { files, unreadable } = expanded;
    for (const e of empty) logLine(`warning: ${e}: no image files (${IMAGE_EXTENSIONS.join(' ')})`);
    if (files.length === 0 && unreadable.length === 0)
      throw new UsageError(`no image files found in ${inputs.join(' ')}`);
    if (shard) {
      files = files.filter((f) => shardOf(f.realPath, shard.count) === shard.index);
      if (shard.index !== 1) unreadable = []; // reported once, by shard 1
    }
    if (queue) {
      const strategyChosen = argv.greedy === true || argv.beam !== undefined || argv.sample === true;
      const transport = argv['images-by'] as ImageTransport;
      return captionOnWorkers(queue, {
        files,
        unreadable,
        out,
        format,
        nbestColumns,
        options,
        strategyChosen,
        transport,
        maxPixels,
        attention,
      });
    }
    if (argv['images-by'] !== 'auto') throw new UsageError('--images-by applies to --queue runs only');

    await selectBackend(argv.backend as string | undefined, logLine);
    const { model, prior, familiarity } = await loadModel(argv.model as string, argv.checkpoint as 'best' | 'latest');
    options.prior = prior; // the model's anti-LM default comes with it
    try {
      resolveDecodeOptions(model, options); // refuse bad options before any output
      if (attention && !model.attentionGrid)
        throw new UsageError(
          `--attention: model ${argv.model as string} has no attention (featureInput "${model.config.featureInput}"), so no maps to write`,
        );
      const calibrated = familiarity !== null;
      const output = out
        ? await openRecordFile(out, format, nbestColumns, calibrated)
        : await streamOutput(process.stdout, format, nbestColumns, calibrated);
      if (out && output.resumed) logResumed(out, output);
      const stop = stopOnInterrupt(
        'interrupted: stopping after this batch (Ctrl-C again to quit at once; records written so far are whole)',
      );
      let bar: Bar | null = null;
      let summary: BatchSummary;
      try {
        summary = await captionFiles({
          model,
          files,
          unreadable,
          output,
          decode: options,
          attention,
          familiarity,
          batchSize,
          maxPixels,
          decodeBudgetBytes: decodeMemory * 2 ** 20,
          signal: stop.signal,
          progress(done, total) {
            bar ??= progressBar(total, 'captioning {bar} {value}/{total} images', 'img');
            bar.update(done);
          },
        });
      } finally {
        (bar as Bar | null)?.stop();
        stop.release();
        await output.sink.close();
      }
      logLine(summaryLine(summary, out, calibrated));
      if (summary.interrupted) return EXIT.interrupted;
      return summary.failed > 0 ? EXIT.failed : EXIT.ok;
    } finally {
      model.dispose();
    }
  },
};

/** The run of `caption --queue`: the same output, resume, progress and summary as in-process. */
async function captionOnWorkers(
  location: QueueLocation,
  run: {
    files: InputFile[];
    unreadable: InputError[];
    out: string | undefined;
    format: RecordFormat;
    nbestColumns: number;
    options: DecodeSettings;
    /** A flag chose the strategy: the workers' model's recommendation fills in the other settings only. */
    strategyChosen: boolean;
    transport: ImageTransport;
    maxPixels: number;
    attention: boolean;
  },
): Promise<number> {
  await checkRedis(location);
  const { out, format, nbestColumns } = run;
  const workers = await workersNow(location);
  // CSV and TSV get the familiarity columns when the workers' model is calibrated: asked of the
  // live workers now (JSON Lines needs no answer: each record carries what its worker wrote).
  const calibrated = format !== 'jsonl' && workers.some((w) => w.calibrated);
  const recommending = workers.find((w) => w.recommended);
  if (recommending?.recommended)
    logLine(`the workers' model recommends ${describeRecommendation(recommending.recommended)}; flags override it`);
  const output = out
    ? await openRecordFile(out, format, nbestColumns, calibrated)
    : await streamOutput(process.stdout, format, nbestColumns, calibrated);
  if (out && output.resumed) logResumed(out, output);
  const stop = stopOnInterrupt(
    'interrupted: stopping (the jobs stay queued; rerun to collect them; Ctrl-C again to quit at once)',
  );
  const todo = run.files.filter((f) => !output.done.has(f.realPath));
  const start = performance.now();
  let bar: Bar | null = null;
  let summary: BatchSummary;
  let calibratedRun: boolean;
  try {
    if (run.unreadable.length) await output.sink.write(run.unreadable.map(({ path, error }) => ({ path, error })));
    const result = await captionOnQueue({
      location,
      files: todo,
      settings: run.options, // DecodeSettings only: the prior is the workers' model's
      // The workers' model's decoding.json fills in what the flags leave out, in each worker.
      recommended: run.strategyChosen ? 'settings' : 'all',
      transport: run.transport,
      maxPixels: run.maxPixels,
      attention: run.attention,
      sink: output.sink,
      signal: stop.signal,
      progress(done, total) {
        if (total === 0) return;
        bar ??= progressBar(total, 'captioning {bar} {value}/{total} images', 'img');
        bar.update(done);
      },
    });
    const seconds = (performance.now() - start) / 1000;
    summary = {
      captioned: result.captioned,
      failed: result.failed + run.unreadable.length,
      skipped: run.files.length - todo.length,
      interrupted: result.interrupted,
      left: result.left,
      imagesPerSecond: (todo.length - result.left) / Math.max(seconds, 1e-9),
      seconds,
      unfamiliar: result.unfamiliar,
    };
    calibratedRun = result.calibrated;
    if (todo.length) logLine(`images sent to the workers: ${result.sent.bytes} as bytes, ${result.sent.path} by path`);
  } finally {
    (bar as Bar | null)?.stop();
    stop.release();
    await output.sink.close();
  }
  logLine(summaryLine(summary, out, calibratedRun));
  if (summary.interrupted) return EXIT.interrupted;
  return summary.failed > 0 ? EXIT.failed : EXIT.ok;
}

/** The live workers (queue/registry.ts); none while no worker is up. */
async function workersNow(location: QueueLocation): Promise<WorkerInfo[]> {
  const client = redisClient(location);
  try {
    return await liveWorkers(client);
  } finally {
    client.disconnect();
  }
}

function logResumed(out: string, output: RecordOutput): void {
  const r = output.resumed!;
  logLine(
    `resuming ${out}: ${r.captioned} images already captioned` +
      (r.retried ? `, ${r.retried} that failed will be retried` : '') +
      (r.droppedPartial ? '; dropped a partial last record' : ''),
  );
}

/** The run's last log line; `calibrated`: how many captioned images look unlike the model's training images. */
function summaryLine(s: BatchSummary, out: string | undefined, calibrated: boolean): string {
  return (
    `${s.interrupted ? 'interrupted' : 'done'}: ${s.captioned} captioned` +
    (calibrated ? ` (${s.unfamiliar} unfamiliar: unlike the model's training images, captions unreliable)` : '') +
    `, ${s.failed} failed` +
    (s.skipped ? `, ${s.skipped} skipped (already in ${out})` : '') +
    (s.interrupted ? `, ${s.left} left for a rerun` : '') +
    ` in ${s.seconds.toFixed(1)} s (${s.imagesPerSecond.toFixed(2)} images/s)`
  );
}
