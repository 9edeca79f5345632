/** `captioner score`: coco-caption metrics for a COCO results file against a COCO annotation file. */
import type { Argv } from 'yargs';
import { describeIds, emptyCandidates, readCaptionPairs } from '../../eval/coco-files.ts';
import { NOT_COMPUTED, formatScoreTable, scoreCaptions, scoresToJson } from '../../eval/score.ts';
import { logLine, type Command } from '../command.ts';
import { EXIT } from '../errors.ts';

export const scoreCommand: Command = {
  command: 'score',
  describe: 'score captions with BLEU-1..4, ROUGE-L and CIDEr-D exactly as coco-caption does',
  builder: (y: Argv) =>
    y
      .option('refs', {
        type: 'string',
        demandOption: true,
        describe: 'COCO caption annotation file: {"images":[{"id"}], "annotations":[{"image_id","caption"}]}',
      })
      .option('results', {
        type: 'string',
        demandOption: true,
        describe: 'COCO results file: [{"image_id","caption"}], one per image',
      })
      .option('subset', {
        type: 'boolean',
        describe: 'score only the annotated images that have a result (else each image needs one)',
      })
      .option('json', { type: 'boolean', describe: 'print one JSON object (the six metrics and perImage) on stdout' })
      .example('$0 score --refs captions_val.json --results results.json', 'print the metrics table')
      .example(
        '$0 score --refs captions_val.json --results results.json --json | jq .CIDEr-D',
        'machine-readable output',
      ),
  async run(argv) {
    const pairs = await readCaptionPairs(argv.refs as string, argv.results as string, { subset: Boolean(argv.subset) });
    const empty = emptyCandidates(pairs);
    if (empty.length) {
      logLine(
        `warning: ${empty.length} of ${pairs.length} result captions have no words (${describeIds(empty)}); ` +
          'they are scored as coco-caption scores an empty caption: no match, ROUGE-L and CIDEr-D 0 for that image',
      );
    }
    const report = scoreCaptions(pairs);
    if (argv.json) {
      process.stdout.write(JSON.stringify(scoresToJson(report)) + '\n');
      for (const [name, why] of Object.entries(NOT_COMPUTED)) logLine(`${name} not computed: ${why}`);
    } else {
      process.stdout.write(formatScoreTable(report.corpus, pairs.length));
    }
    return EXIT.ok;
  },
};
