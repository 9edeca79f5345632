/**
 * `captioner data <format>`: make a data set in the project's layout, a thin layer over
 * data-scripts/. `shapes` generates one; the others import files the user has downloaded.
 * Exit status 0 when everything was written, 1 when any image or input record was skipped
 * (listed in OUT/report.json), 3 when an input cannot be read at all.
 */
import { basename } from 'node:path';
import type { Argv } from 'yargs';
import type { BuildResult, Issue } from '../../data-scripts/build.ts';
import {
  importImages,
  readCoco,
  readFlickr8k,
  readKarpathy,
  readTable,
  type ImportedImage,
} from '../../data-scripts/import/index.ts';
import {
  LATEST_SHAPES_GENERATOR,
  SHAPES_GENERATOR_VERSIONS,
  generateShapes,
  type ShapesGeneratorVersion,
} from '../../data-scripts/shapes/generate.ts';
import { MAX_SHAPES, maxCaptionWords } from '../../data-scripts/shapes/grammar.ts';
import { logLine, type Command } from '../command.ts';
import { EXIT, UsageError } from '../errors.ts';
import { integerFlag } from '../options.ts';
import { progressBar, type Bar } from '../progress.ts';

const FORMATS = ['shapes', 'coco', 'karpathy', 'flickr8k', 'flickr30k', 'csv', 'jsonl'] as const;
type Format = (typeof FORMATS)[number];

/** Options each format requires (beyond --out). */
const REQUIRED: Record<Format, string[]> = {
  shapes: [],
  coco: ['images'],
  karpathy: ['karpathy', 'images'],
  flickr8k: ['captions', 'images'],
  flickr30k: ['karpathy', 'images'],
  csv: ['input'],
  jsonl: ['input'],
};

function string(argv: Record<string, unknown>, key: string): string | undefined {
  const v = argv[key];
  return typeof v === 'string' && v ? v : undefined;
}

function number(argv: Record<string, unknown>, key: string, fallback: number): number {
  const v = argv[key];
  return typeof v === 'number' ? v : fallback;
}

export const dataCommand: Command = {
  command: 'data <format>',
  describe: 'make a data set: generate "shapes", or import coco, karpathy, flickr8k, flickr30k, csv, jsonl',
  builder: (y: Argv) =>
    y
      .positional('format', { type: 'string', choices: [...FORMATS], describe: 'what to make the data set from' })
      .options({
        out: {
          type: 'string',
          demandOption: true,
          describe: 'data-set directory to create (must not exist; OUT.partial holds an interrupted run)',
          group: 'Output:',
        },
        size: { type: 'number', default: 64, describe: 'side of the square shard images, pixels', group: 'Output:' },
        'min-word-count': {
          type: 'number',
          default: 5,
          describe: 'vocabulary statistics: minimum count of a training word',
          group: 'Output:',
        },
        'max-length': {
          type: 'number',
          describe: 'vocabulary statistics: longest caption in words [default: 16; shapes: its longest caption]',
          group: 'Output:',
        },
        concurrency: { type: 'number', describe: 'images in flight (default: 2 per core)', group: 'Output:' },
        json: { type: 'boolean', describe: 'print the result as one JSON object on stdout', group: 'Output:' },
        count: { type: 'number', default: 1000, describe: 'shapes: number of images', group: 'shapes:' },
        seed: {
          type: 'number',
          default: 1,
          describe: 'shapes: generator seed; csv/jsonl: seed of the hashed splits',
          group: 'shapes:',
        },
        'generator-version': {
          type: 'number',
          choices: [...SHAPES_GENERATOR_VERSIONS],
          default: LATEST_SHAPES_GENERATOR,
          describe:
            'shapes: 2 gives each seed its own scenes and grammatical captions; 1 reproduces data sets made before v2 (the bundled model was trained on v1)',
          group: 'shapes:',
        },
        'max-shapes': {
          type: 'number',
          default: 3,
          describe: `shapes: most objects in a scene (up to ${MAX_SHAPES}; above 3, long captions of 30 words and more)`,
          group: 'shapes:',
        },
        'min-shapes': { type: 'number', default: 1, describe: 'shapes: fewest objects in a scene', group: 'shapes:' },
        'captions-per-image': { type: 'number', default: 5, describe: 'shapes: captions per image', group: 'shapes:' },
        'val-fraction': {
          type: 'number',
          default: 0.1,
          describe: 'shapes, csv, jsonl: fraction of images in val',
          group: 'shapes:',
        },
        'test-fraction': {
          type: 'number',
          default: 0.1,
          describe: 'shapes, csv, jsonl: fraction of images in test',
          group: 'shapes:',
        },
        'compositional-fraction': {
          type: 'number',
          default: 0.1,
          describe: 'shapes: fraction in test-compositional (held-out colour+shape pairs)',
          group: 'shapes:',
        },
        'selection-count': {
          type: 'number',
          default: 0,
          describe:
            'shapes (v2): also make N selection scenes from --selection-seed, in "selection" and "selection-compositional": data to choose a recipe on that no train, val or test scene shares',
          group: 'shapes:',
        },
        'selection-seed': {
          type: 'number',
          describe: 'shapes: the seed of the selection scenes (required with --selection-count; not --seed)',
          group: 'shapes:',
        },
        'selection-compositional-fraction': {
          type: 'number',
          default: 0.5,
          describe: 'shapes: fraction of selection scenes holding a held-out colour+shape pair',
          group: 'shapes:',
        },
        annotations: {
          type: 'string',
          array: true,
          describe: 'coco: captions_*.json annotation files (train/val by file name)',
          group: 'Imports:',
        },
        karpathy: {
          type: 'string',
          describe: 'coco, karpathy, flickr30k: Karpathy split file (dataset_coco.json, …)',
          group: 'Imports:',
        },
        images: {
          type: 'string',
          describe: 'directory of the images (coco: the one holding train2014/ val2014/)',
          group: 'Imports:',
        },
        captions: { type: 'string', describe: 'flickr8k: Flickr8k.token.txt', group: 'Imports:' },
        'train-list': {
          type: 'string',
          describe: 'flickr8k: train list (default Flickr_8k.trainImages.txt beside --captions)',
          group: 'Imports:',
        },
        'val-list': {
          type: 'string',
          describe: 'flickr8k: val list (default Flickr_8k.devImages.txt)',
          group: 'Imports:',
        },
        'test-list': {
          type: 'string',
          describe: 'flickr8k: test list (default Flickr_8k.testImages.txt)',
          group: 'Imports:',
        },
        input: {
          type: 'string',
          describe: 'csv, jsonl: the caption table (image,caption[,split][,id])',
          group: 'Imports:',
        },
      })
      .example('$0 data shapes --out data/shapes --count 20000 --size 64 --seed 1', 'generate the shapes benchmark')
      .example(
        '$0 data shapes --out data/long --count 4000 --size 48 --min-shapes 4 --max-shapes 6',
        'scenes of 4 to 6 objects: captions of up to 32 words (the RNN lab, docs/lab.md)',
      )
      .example(
        '$0 data shapes --out data/shapes-v2 --count 60000 --size 64 --seed 1 --val-fraction 0.05 --test-fraction 0.05 --compositional-fraction 0.05 --selection-count 6000 --selection-seed 2',
        "the bundled model's training data, with selection scenes of another seed",
      )
      .example(
        '$0 data coco --annotations captions_train2014.json captions_val2014.json --karpathy dataset_coco.json --images coco --out data/coco',
        'import COCO with the Karpathy splits',
      )
      .example(
        '$0 data flickr8k --captions Flickr8k_text/Flickr8k.token.txt --images Flicker8k_Dataset --out data/flickr8k',
        'import Flickr8k',
      )
      .example(
        '$0 data flickr30k --karpathy dataset_flickr30k.json --images flickr30k-images --out data/flickr30k',
        'import Flickr30k',
      )
      .example('$0 data csv --input mine/captions.csv --out data/mine', 'import your own image,caption table'),
  async run(argv) {
    const format = argv.format as Format;
    const out = string(argv, 'out')!;
    for (const key of REQUIRED[format])
      if (!string(argv, key)) throw new UsageError(`data ${format}: --${key} is required`);
    if (format === 'coco' && !string(argv, 'karpathy') && !(argv.annotations as string[] | undefined)?.length) {
      throw new UsageError('data coco: give --annotations, --karpathy, or both');
    }
    const size = integerFlag(argv, 'size', 8);
    const common = {
      out,
      minWordCount: number(argv, 'minWordCount', 5),
      maxLength: number(argv, 'maxLength', format === 'shapes' ? maxCaptionWords(number(argv, 'maxShapes', 3)) : 16),
      concurrency: typeof argv.concurrency === 'number' ? argv.concurrency : undefined,
      log: logLine,
    };
    let bar: Bar | null = null;
    const onProgress = (done: number, total: number) => {
      bar ??= progressBar(total, 'writing images {bar} {value}/{total}', 'img');
      bar.update(done);
    };
    const started = performance.now();
    let result: BuildResult;
    try {
      if (format === 'shapes') {
        try {
          result = await generateShapes({
            ...common,
            size,
            count: number(argv, 'count', 1000),
            seed: number(argv, 'seed', 1),
            generatorVersion: number(argv, 'generatorVersion', LATEST_SHAPES_GENERATOR) as ShapesGeneratorVersion,
            captionsPerImage: number(argv, 'captionsPerImage', 5),
            valFraction: number(argv, 'valFraction', 0.1),
            testFraction: number(argv, 'testFraction', 0.1),
            compositionalFraction: number(argv, 'compositionalFraction', 0.1),
            minShapes: number(argv, 'minShapes', 1),
            maxShapes: number(argv, 'maxShapes', 3),
            selectionCount: number(argv, 'selectionCount', 0),
            ...(argv.selectionSeed === undefined ? {} : { selectionSeed: number(argv, 'selectionSeed', 0) }),
            selectionCompositionalFraction: number(argv, 'selectionCompositionalFraction', 0.5),
            onProgress,
          });
        } catch (err) {
          if (err instanceof RangeError) throw new UsageError(err.message);
          throw err;
        }
      } else {
        const issues: Issue[] = [];
        let images: ImportedImage[];
        const imagesDir = string(argv, 'images') ?? '';
        if (format === 'coco' || format === 'karpathy' || format === 'flickr30k') {
          const karpathy = string(argv, 'karpathy');
          const annotations = (argv.annotations as string[] | undefined) ?? [];
          images = karpathy
            ? await readKarpathy({ karpathy, images: imagesDir, annotations }, issues)
            : await readCoco({ annotations, images: imagesDir }, issues);
        } else if (format === 'flickr8k') {
          const read = await readFlickr8k(
            {
              captions: string(argv, 'captions')!,
              images: imagesDir,
              trainList: string(argv, 'trainList'),
              valList: string(argv, 'valList'),
              testList: string(argv, 'testList'),
            },
            issues,
          );
          if (read.unlisted) logLine(`${read.unlisted} captioned images are in no split list; left out`);
          images = read.images;
        } else {
          images = await readTable(
            format,
            {
              input: string(argv, 'input')!,
              images: string(argv, 'images'),
              seed: number(argv, 'seed', 1),
              valFraction: number(argv, 'valFraction', 0.1),
              testFraction: number(argv, 'testFraction', 0.1),
            },
            issues,
          );
        }
        for (const issue of issues.slice(0, 20)) logLine(`skipped: ${issue.file}: ${issue.record}: ${issue.problem}`);
        if (issues.length > 20) logLine(`… and ${issues.length - 20} more input problems (all in ${out}/report.json)`);
        logLine(`${images.length} images read; writing ${size}×${size} shards to ${out}`);
        result = await importImages(images, issues, {
          ...common,
          name: format === 'karpathy' ? basename(string(argv, 'karpathy')!, '.json') : format,
          source: `captioner data ${format}`,
          size,
          onProgress,
        });
      }
    } finally {
      (bar as Bar | null)?.stop();
    }
    const seconds = (performance.now() - started) / 1000;
    const splits = Object.entries(result.stats.splits)
      .map(([s, n]) => `${s} ${n.images}`)
      .join(', ');
    logLine(
      `wrote ${result.images} images (${splits}) in ${seconds.toFixed(1)} s; vocabulary ${result.stats.vocabularySize} words at min count ${result.stats.minWordCount}`,
    );
    const skipped = result.skipped.length + result.inputIssues.length;
    if (skipped)
      logLine(
        `${result.skipped.length} images and ${result.inputIssues.length} input records skipped: see ${out}/report.json`,
      );
    if (argv.json) {
      const { stats, ...rest } = result;
      process.stdout.write(
        JSON.stringify({ ...rest, splits: stats.splits, vocabularySize: stats.vocabularySize, seconds }) + '\n',
      );
    }
    return skipped ? EXIT.failed : EXIT.ok;
  },
};
