/**
 * The `captioner` CLI: one yargs command module per verb (cli/commands/), each a thin layer over
 * the library in model/. Errors are mapped to exit codes in one place (cli/errors.ts).
 */
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { BACKENDS } from '../model/runtime/backend.ts';
import { commandsFor } from './commands/index.ts';
import { EXIT, UsageError, exitCodeFor } from './errors.ts';

export async function main(args: string[]): Promise<number> {
  let code: number = EXIT.ok;
  let parser = yargs(args)
    .scriptName('captioner')
    .usage(
      '$0 <command> [options]\n\nImage captioning: a CNN encoder and an LSTM decoder, trained with scheduled sampling.',
    )
    .option('backend', {
      type: 'string',
      choices: [...BACKENDS],
      describe: 'force a TF.js backend (also CAPTIONER_BACKEND); default: the fastest installed',
      global: true,
    })
    .demandCommand(1, 'name a command; see --help')
    .strict()
    .help()
    .alias('h', 'help')
    .version(false)
    .wrap(Math.min(120, process.stdout.columns || 100))
    .fail((msg, err) => {
      throw err ?? new UsageError(`${msg}\nRun with --help for usage.`);
    });
  for (const cmd of await commandsFor(args)) {
    parser = parser.command(cmd.command, cmd.describe, cmd.builder, async (argv) => {
      code = await cmd.run(argv as Record<string, unknown>);
    });
  }
  try {
    await parser.parseAsync();
  } catch (err) {
    process.stderr.write(`error: ${(err as Error).message}\n`);
    if (process.env.CAPTIONER_DEBUG) process.stderr.write(`${(err as Error).stack}\n`);
    code = exitCodeFor(err);
  }
  return code;
}

process.exitCode = await main(hideBin(process.argv));
