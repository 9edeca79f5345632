/**
 * `captioner calibrate`: fits a model's familiarity calibration (model/familiarity/) on the data
 * set it was trained on and writes it into its checkpoint, so that every caption then says how
 * familiar its image looks. `captioner train` does the same at the end of a run; this is for
 * models trained before, or to calibrate again with other settings.
 */
import type { Argv } from 'yargs';
import { selectBackend } from '../../model/runtime/backend.ts';
import { CALIBRATE_DEFAULTS, calibrateCheckpoint } from '../../model/familiarity/calibrate.ts';
import { familiarityBytes } from '../../model/familiarity/store.ts';
import { DEFAULT_FEATURE_RECIPE, FEATURE_RECIPES, type FeatureRecipe } from '../../model/familiarity/features.ts';
import { logLine, type Command } from '../command.ts';
import { integerFlag } from '../options.ts';
import { EXIT, UsageError } from '../errors.ts';
import { progressBar, type Bar } from '../progress.ts';

export const calibrateCommand: Command = {
  command: 'calibrate',
  describe: "fit a model's familiarity calibration, so that captions say when an image is unlike its training images",
  builder: (y: Argv) =>
    y
      .option('model', {
        type: 'string',
        demandOption: true,
        describe: 'model directory (its best checkpoint) or a checkpoint directory; the calibration is written there',
      })
      .option('data', { type: 'string', demandOption: true, describe: 'the data set the model was trained on' })
      .option('fit-split', {
        type: 'string',
        default: CALIBRATE_DEFAULTS.fitSplit,
        describe: 'the split whose images the density is fitted on',
      })
      .option('val-split', {
        type: 'string',
        default: CALIBRATE_DEFAULTS.valSplit,
        describe: 'the split the threshold is chosen on',
      })
      .option('max-images', {
        type: 'number',
        default: CALIBRATE_DEFAULTS.maxFitImages,
        describe: 'fit on at most N images of --fit-split, evenly spread (0: all)',
      })
      .option('familiar', {
        type: 'number',
        default: CALIBRATE_DEFAULTS.targetFamiliar,
        describe: 'the share of --val-split images that must come out familiar, in (0, 1]',
      })
      .option('batch-size', {
        type: 'number',
        default: CALIBRATE_DEFAULTS.batchSize,
        describe: 'images per encoder batch',
      })
      .option('features', {
        type: 'string',
        choices: [...FEATURE_RECIPES],
        default: DEFAULT_FEATURE_RECIPE,
        describe: 'which encoder features the density reads (docs/familiarity.md compares them)',
        group: 'Experiments:',
      })
      .option('json', { type: 'boolean', describe: 'print the calibration as one JSON object on stdout' })
      .example('$0 calibrate --model models/default --data data/shapes-v2', 'calibrate the bundled model on its data')
      .example(
        '$0 calibrate --model models/shapes --data data/shapes --familiar 0.99',
        'a looser threshold: 99 % of val images familiar',
      ),
  async run(argv) {
    const target = argv.familiar as number;
    if (!(typeof target === 'number' && target > 0 && target <= 1))
      throw new UsageError(`--familiar must be a share in (0, 1], got ${String(argv.familiar)}`);
    const maxFitImages = integerFlag(argv, 'max-images', 0);
    const batchSize = integerFlag(argv, 'batch-size');
    await selectBackend(argv.backend as string | undefined, logLine);
    const bars = new Map<string, Bar>();
    try {
      const started = performance.now();
      const { files, params } = await calibrateCheckpoint(argv.model as string, {
        dataDir: argv.data as string,
        fitSplit: argv['fit-split'] as string,
        valSplit: argv['val-split'] as string,
        maxFitImages,
        targetFamiliar: target,
        batchSize,
        features: argv.features as FeatureRecipe,
        log: logLine,
        progress(stage, done, total) {
          let bar = bars.get(stage);
          if (!bar) {
            const what = stage === 'fit' ? 'features of the fit images' : 'scores of the val images';
            bars.set(stage, (bar = progressBar(total, `${what} {bar} {value}/{total}`, 'img')));
          }
          bar.update(done);
          if (done === total) bar.stop();
        },
      });
      const { calibration: c, dims, threshold } = params;
      const bytes = familiarityBytes(dims, params.means.length / dims);
      if (argv.json) {
        process.stdout.write(
          JSON.stringify({ files, threshold, dims, bytes, shrinkage: params.shrinkage, calibration: c }) + '\n',
        );
      }
      logLine(
        `familiarity: ${(c.valFamiliar * 100).toFixed(1)} % of ${c.valImages} "${c.valSplit}" images familiar at threshold ${threshold.toFixed(3)} ` +
          `(fitted on ${c.fitImages} "${c.fitSplit}" images, ${dims} features; ${bytes} bytes) in ${((performance.now() - started) / 1000).toFixed(1)} s; written to ${files.join(' and ')}`,
      );
      return EXIT.ok;
    } finally {
      for (const bar of bars.values()) bar.stop();
    }
  },
};
