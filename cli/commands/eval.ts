/** `captioner eval`: caption a data-set split with a trained model, score it, write COCO files and a report. */
import { join } from 'node:path';
import type { Argv } from 'yargs';
import { selectBackend } from '../../model/runtime/backend.ts';
import { DEFAULT_BEAM_WIDTH } from '../../model/decode/options.ts';
import {
  EVAL_DECODE_SETTINGS,
  evalDecodeOptions,
  runEvaluation,
  type EvalDecodeSettings,
} from '../../eval/evaluate.ts';
import type { ExposureFigures } from '../../eval/exposure.ts';
import { formatRate } from '../../eval/report.ts';
import { NOT_COMPUTED, formatScoreTable } from '../../eval/score.ts';
import { logLine, type Command } from '../command.ts';
import { decodeFlag, decodeFlagOptions, integerFlag, optionalIntegerFlag } from '../options.ts';
import { EXIT } from '../errors.ts';
import { progressBar, type Bar } from '../progress.ts';

/**
 * The decoding the flags ask for (eval/evaluate.ts EVAL_DECODE_SETTINGS), checked before anything
 * is loaded, errors naming the flag: a flag greedy decoding does not use (--length-penalty with
 * --beam 1) is refused.
 */
function decodeSettingsFrom(argv: Record<string, unknown>): EvalDecodeSettings {
  const settings: Record<string, unknown> = {};
  for (const key of EVAL_DECODE_SETTINGS) settings[key] = argv[decodeFlag(key)];
  evalDecodeOptions(settings as EvalDecodeSettings, (key) => `--${decodeFlag(key)}`);
  return settings as EvalDecodeSettings;
}

/** The exposure-bias figures in a few lines: overall, and recovery by position of the wrong word. */
export function formatExposure(e: ExposureFigures): string {
  const { teacherForced: tf, freeRunning: fr } = e.overall;
  let out =
    `exposure bias: loss per token ${tf.loss.toFixed(4)} teacher-forced, ${fr.loss.toFixed(4)} free-running; ` +
    `accuracy ${formatRate(tf.accuracy)} teacher-forced, ${formatRate(fr.accuracy)} free-running\n`;
  if (e.recovery) {
    const r = e.recovery;
    const at = r.positions.map((p) => `k=${p.position} ${formatRate(p.exact)} (${p.captions})`).join(', ');
    out += `recovery after a wrong word at position k, of ${r.exactImages} exact captions: ${at || 'none tried'}\n`;
  }
  return out;
}

export const evalCommand: Command = {
  command: 'eval',
  describe:
    'caption a data-set split with a model; print BLEU-1..4, ROUGE-L, CIDEr-D; write COCO files and an HTML report',
  builder: (y: Argv) =>
    y
      .option('model', {
        type: 'string',
        demandOption: true,
        describe: 'model directory (its best checkpoint is used)',
      })
      .option('data', { type: 'string', demandOption: true, describe: 'data-set directory (manifest.json + images)' })
      .option('split', {
        type: 'string',
        default: 'test',
        describe:
          'split to evaluate (on the shapes set, "test" also evaluates "test-compositional", "selection" "selection-compositional")',
      })
      .options(
        decodeFlagOptions(EVAL_DECODE_SETTINGS, 'Decoding:', {
          beamWidth: {
            describe: `beam width (model/decode/beam-search.ts); 1 is greedy decoding [default: the model's decoding.json, else ${DEFAULT_BEAM_WIDTH}]`,
          },
        }),
      )
      .option('batch-size', { type: 'number', default: 32, describe: 'images per decoding batch' })
      .option('gallery', {
        type: 'number',
        default: 6,
        describe: "images in each of the report's best and worst galleries",
      })
      .option('limit', {
        type: 'number',
        describe:
          'only the first N images of each split: a quick look at a checkpoint while it trains (not figures to report)',
      })
      .option('exposure', {
        type: 'boolean',
        describe:
          "also measure exposure bias: loss and accuracy per position with the true prefix fed vs the model's own words, and on shapes data recovery after a wrong word at each position (costs about as much again as captioning with --beam 1, and one more greedy decoding per caption position)",
      })
      .option('out', { type: 'string', describe: 'output directory [default: MODEL/eval-SPLIT]' })
      .option('json', { type: 'boolean', describe: 'print the result as one JSON object on stdout' })
      .example(
        '$0 eval --model models/shapes --data data/shapes',
        'evaluate on "test"; report in models/shapes/eval-test/report.html',
      )
      .example(
        '$0 eval --model models/shapes --data data/shapes --split val --json',
        'machine-readable metrics of the val split',
      )
      .example(
        '$0 eval --model models/shapes --data data/shapes --beam 1 --exposure',
        'also measure exposure bias: teacher-forced vs free-running figures per position, recovery after a wrong word',
      )
      .example(
        '$0 eval --model train/shapes/ckpt-000800 --data data/shapes --beam 1 --limit 200 --out /tmp/look',
        'a quick look at a checkpoint while training goes on',
      ),
  async run(argv) {
    const modelDir = argv.model as string;
    const split = argv.split as string;
    const options = {
      modelDir,
      dataDir: argv.data as string,
      split,
      ...decodeSettingsFrom(argv),
      batchSize: integerFlag(argv, 'batch-size'),
      galleryCount: integerFlag(argv, 'gallery'),
      limit: optionalIntegerFlag(argv, 'limit') ?? 0,
      exposure: argv.exposure === true,
      outDir: (argv.out as string | undefined) ?? join(modelDir, `eval-${split}`),
    };
    await selectBackend(argv.backend as string | undefined, logLine);
    const bars = new Map<string, Bar>();
    const barFor = (key: string, total: number, format: string, unit: string) => {
      let bar = bars.get(key);
      if (!bar) bars.set(key, (bar = progressBar(total, format, unit)));
      return bar;
    };
    try {
      const result = await runEvaluation(options, {
        log: logLine,
        loading(s, done, total) {
          const bar = barFor(`load:${s}`, total, `decoding ${s} images {bar} {value}/{total}`, 'img');
          bar.update(done);
          if (done === total) bar.stop();
        },
        progress(s, done, total) {
          const bar = barFor(`caption:${s}`, total, `captioning ${s} {bar} {value}/{total}`, 'img');
          bar.update(done);
          if (done === total) bar.stop();
        },
        exposure(s, done, total) {
          const bar = barFor(`exposure:${s}`, total, `exposure bias ${s} {bar} {value}/{total}`, 'img');
          bar.update(done);
          if (done === total) bar.stop();
        },
      });
      if (argv.json) {
        process.stdout.write(
          JSON.stringify({
            decoding: result.decoding,
            splits: result.splits,
            report: result.reportFile,
            metrics: result.metricsFile,
          }) + '\n',
        );
        for (const [name, why] of Object.entries(NOT_COMPUTED)) logLine(`${name} not computed: ${why}`);
      } else {
        for (const s of result.splits) {
          process.stdout.write(`split ${s.split} (${result.decoding})\n${formatScoreTable(s.scores, s.images)}`);
          if (s.semantic) {
            process.stdout.write(
              `semantic: exact match ${formatRate(s.semantic.exactRate)}, attribute F1 ${s.semantic.f1.toFixed(4)} ` +
                `(precision ${s.semantic.precision.toFixed(4)}, recall ${s.semantic.recall.toFixed(4)}, ${s.semantic.unparsed} of ${s.semantic.count} captions unparsed)\n`,
            );
            const positions = s.semantic.positions.map((p, k) => `${k + 1}: ${formatRate(p.rate)}`).join(', ');
            process.stdout.write(`objects named right by position: ${positions}\n`);
          }
          if (s.exposure) process.stdout.write(formatExposure(s.exposure));
          if (s.familiarity) {
            const f = s.familiarity;
            process.stdout.write(
              `familiarity: ${f.familiar} of ${f.images} images familiar (${formatRate(f.rate)}), ${f.images - f.familiar} unfamiliar (threshold ${f.threshold.toFixed(2)})\n`,
            );
          }
          process.stdout.write('\n');
        }
      }
      logLine(`COCO files, metrics.json and report in ${options.outDir}; open ${result.reportFile}`);
      return EXIT.ok;
    } finally {
      for (const bar of bars.values()) bar.stop();
    }
  },
};
