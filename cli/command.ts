/** The shape of one CLI verb: a yargs builder and a handler that returns an exit code. */
import type { Argv } from 'yargs';

export interface Command {
  command: string;
  describe: string;
  builder(yargs: Argv): Argv;
  run(argv: Record<string, unknown>): Promise<number>;
}

/** Log lines go to stderr, clearing a progress bar's line first, so that stdout carries only results. */
export function logLine(line: string): void {
  process.stderr.write(process.stderr.isTTY ? `\r\x1b[K${line}\n` : `${line}\n`);
}
