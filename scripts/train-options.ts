/**
 * Prints `captioner train`'s settings as Markdown tables, one per option group, from the spec in
 * model/train/config.ts (the same source as `captioner train --help`), for docs/training.md:
 *
 *   node --import tsx scripts/train-options.ts > /tmp/train-options.md
 */
import { specMarkdown } from '../cli/options.ts';
import { TRAIN_DEFAULTS, TRAIN_GROUPS, TRAIN_SPEC } from '../model/train/config.ts';

process.stdout.write(specMarkdown(TRAIN_SPEC, TRAIN_DEFAULTS, TRAIN_GROUPS));
