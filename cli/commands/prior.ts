/**
 * `captioner prior`: counts the word pairs of a data set's training captions into a model's
 * checkpoint (language-prior.json), for anti-LM decoding (model/decode/prior.ts, model/decode/decode.ts), and
 * sets the anti-LM weight the model is decoded with when a command does not say.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Argv } from 'yargs';
import { readCheckpointConfig } from '../../model/io/checkpoint.ts';
import { writeFileAtomic } from '../../model/io/fsutil.ts';
import { PRIOR_FILE, isAntiLmPlausibility, isAntiLmWeight } from '../../model/decode/prior.ts';
import { priorOfSplit } from '../../model/decode/prior-files.ts';
import { Vocabulary } from '../../model/text/vocab.ts';
import { logLine, type Command } from '../command.ts';
import { EXIT, UsageError } from '../errors.ts';

export const priorCommand: Command = {
  command: 'prior',
  describe: "count a data set's training word pairs into a model, for anti-LM decoding (--anti-lm)",
  builder: (y: Argv) =>
    y
      .option('model', {
        type: 'string',
        demandOption: true,
        describe: 'model directory (its best checkpoint) or a checkpoint directory',
      })
      .option('data', { type: 'string', demandOption: true, describe: 'the data set the model was trained on' })
      .option('split', { type: 'string', default: 'train', describe: 'the split whose captions are counted' })
      .option('checkpoint', {
        type: 'string',
        choices: ['best', 'latest'],
        default: 'best',
        describe: 'which checkpoint of the model directory',
      })
      .option('anti-lm', {
        type: 'number',
        default: 0,
        describe: 'the anti-LM weight λ the model is then decoded with by default (0: off until a command asks)',
      })
      .option('anti-lm-plausibility', {
        type: 'number',
        default: 0.15,
        describe: 'anti-LM: only words with p ≥ β·max p are chosen',
      })
      .example(
        '$0 prior --model models/shapes --data data/shapes',
        'count the pairs; decode with --anti-lm 0.1 to use them',
      )
      .example(
        '$0 prior --model models/shapes --data data/shapes --anti-lm 0.12',
        'and decode with λ = 0.12 unless told otherwise',
      ),
  async run(argv) {
    const weight = argv['anti-lm'] as number;
    const plausibility = argv['anti-lm-plausibility'] as number;
    if (!isAntiLmWeight(weight)) throw new UsageError(`--anti-lm must be a number ≥ 0, got ${weight}`);
    if (!isAntiLmPlausibility(plausibility))
      throw new UsageError(`--anti-lm-plausibility must be in (0, 1], got ${plausibility}`);
    const { dir, config } = await readCheckpointConfig(argv.model as string, argv.checkpoint as 'best' | 'latest');
    const vocabPath = join(dir, 'vocab.json');
    const vocab = Vocabulary.fromJSON(JSON.parse(await readFile(vocabPath, 'utf8')), vocabPath);
    const prior = await priorOfSplit(argv.data as string, argv.split as string, vocab, config.model.maxLength, {
      weight,
      plausibility,
    });
    const out = join(dir, PRIOR_FILE);
    await writeFileAtomic(out, JSON.stringify(prior.toJSON(vocab)) + '\n');
    logLine(
      `${out}: word pairs of ${argv.data} (${argv.split}); anti-LM λ = ${prior.antiLm.weight}, β = ${prior.antiLm.plausibility}`,
    );
    return EXIT.ok;
  },
};
