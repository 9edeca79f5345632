/**
 * `captioner experiment run|report`: a thin layer over experiment/ (the runner: arms × seeds of
 * training runs one after another in this process, resumable, then evaluated; results.json and
 * report.html).
 */
import type { Argv } from 'yargs';
import { runExperiment } from '../../experiment/run.ts';
import { selectBackend } from '../../model/runtime/backend.ts';
import { writeExperimentResults } from '../../experiment/results.ts';
import { logLine, type Command } from '../command.ts';
import { EXIT, UsageError } from '../errors.ts';
import { stopOnInterrupt } from '../interrupt.ts';
import { optionalIntegerFlag } from '../options.ts';
import { progressBar, type Bar } from '../progress.ts';

export const experimentCommand: Command = {
  command: 'experiment <action> [dir]',
  describe: 'run an experiment file (a base recipe, arms that change it, seeds; resumable) or rebuild its report',
  builder: (y: Argv) =>
    y
      .positional('action', {
        type: 'string',
        choices: ['run', 'report'],
        describe: 'run: train and evaluate every arm × seed, then report; report: rebuild results.json and report.html',
      })
      .positional('dir', {
        type: 'string',
        describe: 'run: the experiment file (EXPERIMENT.json); report: the experiment directory (--out of run)',
      })
      .option('data', { type: 'string', describe: 'run: the data-set directory every run trains and is evaluated on' })
      .option('out', {
        type: 'string',
        describe: 'run: the experiment directory (runs/, results.json, report.html); run again to resume',
      })
      .option('seeds', { type: 'number', describe: "run: seeds per arm, 1 … N [default: the file's seeds, else 3]" })
      .option('max-steps', { type: 'number', describe: 'run: cut every run to N steps (a smoke run)' })
      .option('json', { type: 'boolean', describe: 'print the outcome as one JSON object on stdout' })
      .example(
        '$0 experiment run configs/experiments/padding.json --data data/shapes2k-32 --out lab/padding',
        'every arm × 3 seeds, then lab/padding/results.json and report.html',
      )
      .example(
        '$0 experiment run configs/experiments/cells.json --data data/long --out /tmp/smoke --seeds 1 --max-steps 20',
        'a smoke run: one seed, 20 steps a run',
      )
      .example('$0 experiment report lab/padding', 'rebuild the results and report from the runs on disk'),
  async run(argv) {
    const action = argv.action as 'run' | 'report';
    const target = argv.dir as string | undefined;
    if (!target)
      throw new UsageError(
        `experiment ${action}: name the ${action === 'run' ? 'experiment file' : 'experiment directory'}`,
      );
    if (action === 'report') {
      const { resultsFile, reportFile, results } = await writeExperimentResults(target);
      if (argv.json)
        process.stdout.write(JSON.stringify({ complete: results.complete, resultsFile, reportFile }) + '\n');
      logLine(`${results.complete ? 'complete' : 'INCOMPLETE'}: ${resultsFile}, ${reportFile}`);
      return results.complete ? EXIT.ok : EXIT.failed;
    }
    for (const flag of ['data', 'out'] as const)
      if (typeof argv[flag] !== 'string' || !argv[flag]) throw new UsageError(`experiment run: --${flag} is required`);
    const seeds = optionalIntegerFlag(argv, 'seeds');
    const maxSteps = optionalIntegerFlag(argv, 'max-steps');
    await selectBackend(argv.backend as string | undefined, logLine);
    const stop = stopOnInterrupt(
      'interrupted: the run in flight saves a checkpoint, then the experiment stops (run it again to resume)',
    );
    let bar: Bar | null = null;
    let barKey = '';
    try {
      const outcome = await runExperiment(
        {
          experiment: target,
          data: argv.data as string,
          out: argv.out as string,
          seeds,
          maxSteps,
          command: ['captioner', ...process.argv.slice(2)].join(' '),
        },
        {
          log(line) {
            (bar as Bar | null)?.stop();
            bar = null;
            logLine(line);
          },
          progress(p) {
            if (p.phase !== 'train' || p.totalSteps === 0) return;
            const key = `${p.index}`;
            if (key !== barKey || !bar) {
              (bar as Bar | null)?.stop();
              barKey = key;
              bar = progressBar(
                p.totalSteps,
                `run ${p.index}/${p.runs} ${p.arm} s${p.seed} {bar} {value}/{total} steps`,
                'steps',
              );
            }
            bar.update(p.step);
          },
          signal: stop.signal,
        },
      );
      (bar as Bar | null)?.stop();
      if (argv.json) process.stdout.write(JSON.stringify(outcome) + '\n');
      if (outcome.interrupted) {
        logLine(`stopped; run the same command again to resume`);
        return EXIT.interrupted;
      }
      logLine(
        `${outcome.complete ? 'done' : `INCOMPLETE (${outcome.failed.length} failed)`}: ${outcome.resultsFile}, ${outcome.reportFile}`,
      );
      return outcome.complete ? EXIT.ok : EXIT.failed;
    } finally {
      (bar as Bar | null)?.stop();
      stop.release();
    }
  },
};
