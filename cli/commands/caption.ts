/**
 * `captioner caption`: captions image files, folders and globs in batches with a trained model,
 * one record per image (JSON Lines, CSV or TSV) on stdout or in --out. With --out the run is
 * resumable: images already captioned there are skipped, and records are appended whole, each
 * batch flushed to disk, so a kill at any moment leaves at worst a partial last line, which the
 * next run drops and redoes.
 */
import { open, readFile } from 'node:fs/promises';
import { extname, resolve } from 'node:path';
import type { Argv } from 'yargs';
import { selectBackend } from '../../model/runtime/backend.ts';
import { deriveSeed } from '../../model/util/rng.ts';
import {
  captionImages,
  resolveDecodeOptions,
  type CaptionResult,
  type DecodeOptions,
} from '../../model/decode/decode.ts';
import { ifExists, writeFileAtomic } from '../../model/io/fsutil.ts';
import { imagesToTensor, loadImagePixels } from '../../model/data/image.ts';
import { loadModel } from '../../model/io/load.ts';
import {
  RECORD_FORMATS,
  formatRecord,
  headerText,
  isCaptioned,
  parseRecords,
  type CaptionRecord,
  type RecordFormat,
} from '../caption-records.ts';
import { logLine, type Command } from '../command.ts';
import { ANTI_LM_OPTIONS, integerFlag, optionalIntegerFlag } from '../options.ts';
import { EXIT, UsageError } from '../errors.ts';
import { expandInputs } from '../inputs.ts';
import { progressBar } from '../progress.ts';

interface Sink {
  write(text: string): Promise<void>;
  close(): Promise<void>;
}

function stdoutSink(): Sink {
  return {
    write: (text) => new Promise((done, fail) => process.stdout.write(text, (err) => (err ? fail(err) : done()))),
    close: async () => {},
  };
}

/** Appends to `path`, flushing each write to disk before the next batch is counted as done. */
async function appendSink(path: string): Promise<Sink> {
  const handle = await open(path, 'a');
  return {
    async write(text) {
      await handle.write(text);
      await handle.sync();
    },
    close: () => handle.close(),
  };
}

/** --format, or the --out file's extension, or JSON Lines. */
function chooseFormat(format: unknown, out: string | undefined): RecordFormat {
  if (typeof format === 'string') return format as RecordFormat;
  const ext = out ? extname(out).toLowerCase().slice(1) : '';
  return (RECORD_FORMATS as readonly string[]).includes(ext) ? (ext as RecordFormat) : 'jsonl';
}

/** The decoding the flags ask for; flags that belong to another strategy are usage errors. */
function decodeOptionsFrom(argv: Record<string, unknown>): DecodeOptions {
  const beam = optionalIntegerFlag(argv, 'beam');
  const sample = argv.sample === true;
  if (beam !== undefined && sample) throw new UsageError('--beam and --sample exclude each other: choose one');
  for (const flag of ['temperature', 'top-k', 'top-p', 'seed']) {
    if (argv[flag] !== undefined && !sample) throw new UsageError(`--${flag} applies to sampling: add --sample`);
  }
  for (const flag of ['nbest', 'length-penalty']) {
    if (argv[flag] !== undefined && beam === undefined)
      throw new UsageError(`--${flag} applies to beam search: add --beam N`);
  }
  const options: DecodeOptions = { strategy: beam !== undefined ? 'beam' : sample ? 'sample' : 'greedy' };
  if (beam !== undefined) options.beamWidth = beam;
  const maxLength = optionalIntegerFlag(argv, 'max-length');
  if (maxLength !== undefined) options.maxLength = maxLength;
  const nBest = optionalIntegerFlag(argv, 'nbest');
  if (nBest !== undefined) options.nBest = nBest;
  if (typeof argv['length-penalty'] === 'number') options.lengthPenalty = argv['length-penalty'];
  if (typeof argv.temperature === 'number') options.temperature = argv.temperature;
  if (typeof argv['top-k'] === 'number') options.topK = argv['top-k'];
  if (typeof argv['top-p'] === 'number') options.topP = argv['top-p'];
  if (typeof argv.seed === 'number') options.seed = argv.seed;
  if (typeof argv['anti-lm'] === 'number') options.antiLm = argv['anti-lm'];
  if (typeof argv['anti-lm-plausibility'] === 'number') options.antiLmPlausibility = argv['anti-lm-plausibility'];
  return options;
}

function recordFor(path: string, r: CaptionResult, nBest: number | undefined): CaptionRecord {
  const rec: CaptionRecord = { path, caption: r.caption, logProb: r.logProb };
  if (nBest !== undefined && r.nbest) rec.nbest = r.nbest;
  return rec;
}

/** An image's error without the path its record already names. */
function errorText(err: unknown, path: string): string {
  const message = (err as Error).message ?? String(err);
  return (message.startsWith(`${path}: `) ? message.slice(path.length + 2) : message).replace(/\s+/g, ' ');
}

/**
 * The sampling seed of one image: --seed and its path (FNV-1a hash of the path as given), so
 * that a rerun or a resumed run draws the same caption whatever batch the image falls in.
 */
export function imageSeed(seed: number, path: string): number {
  let h = 0x811c9dc5;
  for (const byte of Buffer.from(path, 'utf8')) h = Math.imul(h ^ byte, 0x01000193) >>> 0;
  return deriveSeed(seed, h);
}

type Loaded = { path: string; pixels: Uint8Array } | { path: string; error: string };

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
        demandOption: true,
        describe: 'model directory (written by `captioner train`)',
      })
      .option('checkpoint', {
        type: 'string',
        choices: ['best', 'latest'],
        default: 'best',
        describe: 'which checkpoint of the model directory',
      })
      .option('batch-size', { type: 'number', default: 16, describe: 'images decoded together' })
      .option('beam', { type: 'number', describe: 'beam search with this many beams (default: greedy)' })
      .option('length-penalty', {
        type: 'number',
        describe: 'beam search: α of the GNMT length penalty ((5+|Y|)/6)^α [default: 0]',
      })
      .option('nbest', { type: 'number', describe: 'beam search: also output the K best captions (K ≤ --beam)' })
      .option('sample', { type: 'boolean', describe: 'sample each word instead of taking the most probable' })
      .option('temperature', { type: 'number', describe: 'sampling: softmax temperature [default: 1]' })
      .option('top-k', { type: 'number', describe: 'sampling: only the k most probable words [default: all]' })
      .option('top-p', { type: 'number', describe: 'sampling: only the nucleus of mass p [default: 1]' })
      .option('seed', {
        type: 'number',
        describe:
          'sampling: seed; each image draws from a stream seeded by it and the file path, so reruns repeat [default: 0]',
      })
      .option('max-length', { type: 'number', describe: "longest caption in words [default: the model's]" })
      .options(ANTI_LM_OPTIONS)
      .option('format', {
        type: 'string',
        choices: [...RECORD_FORMATS],
        describe: 'output format [default: from --out extension, else jsonl]',
      })
      .option('out', {
        type: 'string',
        describe: 'write records to FILE (resumable: a rerun skips images already in it); default stdout',
      })
      .example('$0 caption photos/ --model models/coco --out captions.jsonl', 'caption a folder; rerun to resume')
      .example(
        "$0 caption 'shots/**/*.png' a.jpg --model models/coco --beam 5 --nbest 3 --format csv",
        'beam search, 3 best each, CSV on stdout',
      ),
  async run(argv) {
    const inputs = (argv.inputs as string[] | undefined) ?? [];
    const out = argv.out as string | undefined;
    const format = chooseFormat(argv.format, out);
    const batchSize = integerFlag(argv, 'batch-size');
    const options = decodeOptionsFrom(argv);
    const nbestColumns = options.nBest ?? 1;

    const { files, missing, empty } = await expandInputs(inputs);
    for (const e of empty) logLine(`warning: ${e}: no image files (${'.jpg .png .webp .gif .tif .avif …'})`);
    if (files.length === 0 && missing.length === 0) throw new UsageError(`no image files found in ${inputs.join(' ')}`);

    await selectBackend(argv.backend as string | undefined, logLine);
    const model = await loadModel(argv.model as string, argv.checkpoint as 'best' | 'latest');
    try {
      resolveDecodeOptions(model, options); // refuse bad options before any output
      const size = model.config.imageSize;

      // Resuming: keep what an earlier run captioned, drop its failures and any partial last record.
      const done = new Set<string>();
      let sink: Sink;
      if (out) {
        const text = await ifExists(readFile(out, 'utf8'));
        const existing = parseRecords(text ?? '', format, nbestColumns, out);
        const kept = existing.records.filter(isCaptioned);
        if (
          text === null ||
          existing.droppedPartial ||
          kept.length !== existing.records.length ||
          (text === '' && format !== 'jsonl')
        ) {
          await writeFileAtomic(
            out,
            headerText(format, nbestColumns) + kept.map((r) => formatRecord(format, r, nbestColumns)).join(''),
          );
        }
        for (const r of kept) done.add(resolve(r.path));
        if (text !== null) {
          const failed = existing.records.length - kept.length;
          logLine(
            `resuming ${out}: ${kept.length} images already captioned` +
              (failed ? `, ${failed} that failed will be retried` : '') +
              (existing.droppedPartial ? '; dropped a partial last record' : ''),
          );
        }
        sink = await appendSink(out);
      } else {
        sink = stdoutSink();
        await sink.write(headerText(format, nbestColumns));
      }

      const todo = files.filter((f) => !done.has(resolve(f)));
      const skipped = files.length - todo.length;
      let failed = 0;
      let captioned = 0;
      let interrupted = false;
      const onSigint = () => {
        if (interrupted) process.exit(EXIT.interrupted);
        interrupted = true;
        logLine(
          'interrupted: stopping after this batch (Ctrl-C again to quit at once; records written so far are whole)',
        );
      };
      process.on('SIGINT', onSigint);
      const start = performance.now();
      const bar = todo.length > 0 ? progressBar(todo.length, 'captioning {bar} {value}/{total} images', 'img') : null;
      try {
        if (missing.length) {
          failed += missing.length;
          await sink.write(
            missing
              .map((path) => formatRecord(format, { path, error: 'no such file, folder or glob match' }, nbestColumns))
              .join(''),
          );
        }
        const load = (paths: string[]): Promise<Loaded[]> =>
          Promise.all(
            paths.map((path) =>
              loadImagePixels(path, size).then(
                (pixels): Loaded => ({ path, pixels }),
                (err): Loaded => ({ path, error: errorText(err, path) }),
              ),
            ),
          );
        const batches: string[][] = [];
        for (let i = 0; i < todo.length; i += batchSize) batches.push(todo.slice(i, i + batchSize));
        // The next batch's files decode (in sharp's threads) while this batch's captions are computed.
        let next = batches.length ? load(batches[0]!) : null;
        for (let b = 0; b < batches.length && !interrupted; b++) {
          const loaded = await next!;
          next = b + 1 < batches.length ? load(batches[b + 1]!) : null;
          const good = loaded.filter((l): l is Loaded & { pixels: Uint8Array } => 'pixels' in l);
          let results: CaptionResult[] = [];
          if (good.length) {
            const images = imagesToTensor(
              good.map((g) => g.pixels),
              size,
            );
            try {
              const imageSeeds =
                options.strategy === 'sample' ? good.map((g) => imageSeed(options.seed ?? 0, g.path)) : undefined;
              results = captionImages(model, images, imageSeeds ? { ...options, imageSeeds } : options);
            } finally {
              images.dispose();
            }
          }
          let r = 0;
          const records = loaded.map((l): CaptionRecord =>
            'pixels' in l ? recordFor(l.path, results[r++]!, options.nBest) : { path: l.path, error: l.error },
          );
          await sink.write(records.map((rec) => formatRecord(format, rec, nbestColumns)).join(''));
          captioned += good.length;
          failed += loaded.length - good.length;
          bar?.update(captioned + failed - missing.length);
        }
        await next; // a batch loaded but not run (interrupted) settles before we go
      } finally {
        bar?.stop();
        process.off('SIGINT', onSigint);
        await sink.close();
      }
      const seconds = (performance.now() - start) / 1000;
      const processed = captioned + failed - missing.length;
      logLine(
        `${interrupted ? 'interrupted' : 'done'}: ${captioned} captioned, ${failed} failed` +
          (skipped ? `, ${skipped} skipped (already in ${out})` : '') +
          (interrupted ? `, ${todo.length - processed} left for a rerun` : '') +
          ` in ${seconds.toFixed(1)} s (${(processed / Math.max(seconds, 1e-9)).toFixed(2)} images/s)`,
      );
      if (interrupted) return EXIT.interrupted;
      return failed > 0 ? EXIT.failed : EXIT.ok;
    } finally {
      model.dispose();
    }
  },
};
