/** `captioner train`: a thin layer over model/train/trainer.ts. */
import type { Argv } from 'yargs';
import { selectBackend } from '../../model/runtime/backend.ts';
import { TRAIN_DEFAULTS, TRAIN_GROUPS, TRAIN_SPEC } from '../../model/train/config.ts';
import { resolveTrainConfig, train } from '../../model/train/trainer.ts';
import { readConfigFile } from '../../model/util/config-file.ts';
import { logLine, type Command } from '../command.ts';
import { EXIT } from '../errors.ts';
import { stopOnInterrupt } from '../interrupt.ts';
import { flagLayer, specGroups, specOptions } from '../options.ts';
import { progressBar, type Bar } from '../progress.ts';

export const trainCommand: Command = {
  command: 'train',
  describe: 'train a captioning model on a data set (resumable), from a recipe in configs/ and flags',
  builder: (y: Argv) => {
    let parser = y.options(specOptions(TRAIN_SPEC, TRAIN_DEFAULTS));
    for (const { flags, title } of specGroups(TRAIN_SPEC, TRAIN_GROUPS, { run: ['config'] }))
      parser = parser.group(flags, title);
    return parser
      .option('config', {
        type: 'string',
        describe: 'JSON recipe of settings, e.g. configs/default-model/stage1.json (flags override it)',
      })
      .option('json', { type: 'boolean', describe: 'print the result as one JSON object on stdout' })
      .example('$0 train --data data/shapes --out models/shapes', 'train with the default settings')
      .example(
        '$0 train --config configs/default-model/stage1.json --data data/shapes60k --out train/stage1',
        "stage 1 of the bundled model's recipe",
      )
      .example('$0 train --data data/shapes --out models/shapes --resume', 'continue where the last run stopped');
  },
  async run(argv) {
    const layers = [];
    if (typeof argv.config === 'string') layers.push(await readConfigFile(argv.config));
    layers.push(flagLayer(TRAIN_SPEC, argv));
    const config = await resolveTrainConfig(layers);
    await selectBackend(argv.backend as string | undefined, logLine);
    logLine(`config: ${JSON.stringify(config)}`);

    const stop = stopOnInterrupt('interrupted: saving a checkpoint after this step (Ctrl-C again to quit at once)');
    let bar: Bar | null = null;
    let loadBar: Bar | null = null;
    const calibrationBars = new Map<string, Bar>();
    try {
      const result = await train(config, {
        log: logLine,
        loading(done, total) {
          loadBar ??= progressBar(total, 'decoding images {bar} {value}/{total}', 'img');
          loadBar.update(done);
          if (done === total) loadBar.stop();
        },
        progress(p) {
          // Self-critical training has no ε: its bar shows the batch's mean rewards instead.
          const scst = p.stats.scst;
          bar ??= progressBar(
            p.totalSteps,
            scst
              ? 'training {bar} {value}/{total} steps | epoch {epoch} | reward {sample} (greedy {greedy}) | {tps} tok/s'
              : 'training {bar} {value}/{total} steps | epoch {epoch} | loss {loss} | ε {eps} | {tps} tok/s',
            'steps',
          );
          bar.update(p.step, {
            epoch: `${p.epoch + 1}/${p.epochs}`,
            loss: p.stats.lossPerToken.toFixed(4),
            eps: p.stats.samplingProbability.toFixed(3),
            sample: scst?.sampleReward.toFixed(3) ?? '',
            greedy: scst?.greedyReward.toFixed(3) ?? '',
            tps: Math.round(p.tokensPerSecond),
          });
        },
        calibrating(stage, done, total) {
          (bar as Bar | null)?.stop(); // training is over: one bar at a time on the terminal
          let b = calibrationBars.get(stage);
          if (!b) {
            const what =
              stage === 'fit' ? 'familiarity: features of training images' : 'familiarity: validation scores';
            calibrationBars.set(stage, (b = progressBar(total, `${what} {bar} {value}/{total}`, 'img')));
          }
          b.update(done);
          if (done === total) b.stop();
        },
        shouldStop: () => stop.signal.aborted,
      });
      (bar as Bar | null)?.stop();
      if (argv.json) process.stdout.write(JSON.stringify(result) + '\n');
      logLine(`${result.stopped ? 'stopped' : 'done'} after ${result.steps} steps; model in ${result.modelDir}`);
      return result.stopped ? EXIT.interrupted : EXIT.ok;
    } finally {
      (bar as Bar | null)?.stop();
      for (const b of calibrationBars.values()) b.stop();
      stop.release();
    }
  },
};
