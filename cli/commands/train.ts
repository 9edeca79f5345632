/** `captioner train`: a thin layer over model/train/trainer.ts. */
import type { Argv } from 'yargs';
import { selectBackend } from '../../model/runtime/backend.ts';
import { TRAIN_DEFAULTS, TRAIN_GROUPS, TRAIN_SPEC } from '../../model/train/config.ts';
import { resolveTrainConfig, train, type TrainHooks, type TrainProgress } from '../../model/train/trainer.ts';
import type { ConfigLayer } from '../../model/util/config.ts';
import { readRecipe, type Recipe } from '../../model/train/recipe.ts';
import { trainPhases } from '../../model/train/phased.ts';
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
        describe:
          'JSON recipe: settings, optionally "phases" run one after another and a recommended "decoding", e.g. configs/shapes.json (flags override it; docs/training.md#recipes)',
      })
      .option('json', { type: 'boolean', describe: 'print the result as one JSON object on stdout' })
      .example('$0 train --data data/shapes --out models/shapes', 'train with the default settings')
      .example('$0 train --data data/v2 --out s1 --config configs/shapes.json', "a recipe's phases, one after another")
      .example('$0 train --data data/shapes --out models/shapes --resume', 'continue where the last run stopped');
  },
  async run(argv) {
    const recipe = typeof argv.config === 'string' ? await readRecipe(argv.config) : null;
    const flags = flagLayer(TRAIN_SPEC, argv);
    if (recipe?.phases) return runPhases(recipe, flags, argv.backend as string | undefined, argv.json === true);
    const config = await resolveTrainConfig(recipe ? [recipe.base, flags] : [flags]);
    await selectBackend(argv.backend as string | undefined, logLine);
    logLine(`config: ${JSON.stringify(config)}`);
    const stop = stopOnInterrupt('interrupted: saving a checkpoint after this step (Ctrl-C again to quit at once)');
    const bars = new TrainBars();
    try {
      const result = await train(
        config,
        bars.hooks(() => stop.signal.aborted),
        { decoding: recipe?.decoding ?? null },
      );
      bars.stop();
      if (argv.json) process.stdout.write(JSON.stringify(result) + '\n');
      logLine(`${result.stopped ? 'stopped' : 'done'} after ${result.steps} steps; model in ${result.modelDir}`);
      return result.stopped ? EXIT.interrupted : EXIT.ok;
    } finally {
      bars.stop();
      stop.release();
    }
  },
};

/** A recipe of phases (model/train/phased.ts): each phase's bars in turn, one summary at the end. */
async function runPhases(
  recipe: Recipe,
  flags: ConfigLayer,
  backend: string | undefined,
  json: boolean,
): Promise<number> {
  await selectBackend(backend, logLine);
  logLine(`recipe ${recipe.source}: ${recipe.phases!.map((p, i) => `${i + 1}. ${p.name}`).join(', ')}`);
  const stop = stopOnInterrupt('interrupted: saving a checkpoint after this step (Ctrl-C again to quit at once)');
  let bars = new TrainBars();
  try {
    const result = await trainPhases(recipe, flags, {
      ...bars.hooks(() => stop.signal.aborted),
      phase() {
        bars.stop();
        bars = new TrainBars();
      },
      progress: (p) => bars.progress(p),
      loading: (done, total) => bars.loading(done, total),
      calibrating: (stage, done, total) => bars.calibrating(stage, done, total),
    });
    bars.stop();
    if (json) process.stdout.write(JSON.stringify(result) + '\n');
    const steps = result.phases.map((p) => `${p.name} ${p.steps ?? '–'}`).join(', ');
    logLine(
      result.stopped
        ? `stopped (steps per phase: ${steps}); rerun with --resume to go on`
        : `done (steps per phase: ${steps}); model in ${result.modelDir}`,
    );
    return result.stopped ? EXIT.interrupted : EXIT.ok;
  } finally {
    bars.stop();
    stop.release();
  }
}

/** The progress bars of one training run: loading images, training steps, the familiarity calibration. */
class TrainBars {
  private bar: Bar | null = null;
  private loadBar: Bar | null = null;
  private readonly calibrationBars = new Map<string, Bar>();

  hooks(shouldStop: () => boolean): TrainHooks {
    return {
      log: logLine,
      loading: (done, total) => this.loading(done, total),
      progress: (p) => this.progress(p),
      calibrating: (stage, done, total) => this.calibrating(stage, done, total),
      shouldStop,
    };
  }

  loading(done: number, total: number): void {
    this.loadBar ??= progressBar(total, 'decoding images {bar} {value}/{total}', 'img');
    this.loadBar.update(done);
    if (done === total) this.loadBar.stop();
  }

  progress(p: TrainProgress): void {
    // Self-critical training has no ε: its bar shows the batch's mean rewards instead.
    const scst = p.stats.scst;
    this.bar ??= progressBar(
      p.totalSteps,
      scst
        ? 'training {bar} {value}/{total} steps | epoch {epoch} | reward {sample} (greedy {greedy}) | {tps} tok/s'
        : 'training {bar} {value}/{total} steps | epoch {epoch} | loss {loss} | ε {eps} | {tps} tok/s',
      'steps',
      { startAt: p.step - 1 }, // a resumed run's first step is not its first
    );
    this.bar.update(p.step, {
      epoch: `${p.epoch + 1}/${p.epochs}`,
      loss: p.stats.lossPerToken.toFixed(4),
      eps: p.stats.samplingProbability.toFixed(3),
      sample: scst?.sampleReward.toFixed(3) ?? '',
      greedy: scst?.greedyReward.toFixed(3) ?? '',
      tps: Math.round(p.tokensPerSecond),
    });
  }

  calibrating(stage: 'fit' | 'val', done: number, total: number): void {
    this.bar?.stop(); // training is over: one bar at a time on the terminal
    let b = this.calibrationBars.get(stage);
    if (!b) {
      const what = stage === 'fit' ? 'familiarity: features of training images' : 'familiarity: validation scores';
      this.calibrationBars.set(stage, (b = progressBar(total, `${what} {bar} {value}/{total}`, 'img')));
    }
    b.update(done);
    if (done === total) b.stop();
  }

  stop(): void {
    this.bar?.stop();
    this.loadBar?.stop();
    for (const b of this.calibrationBars.values()) b.stop();
  }
}
