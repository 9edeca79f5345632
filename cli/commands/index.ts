/**
 * Every CLI verb, registered from this one list. A verb's module (and so the libraries it needs:
 * TF.js, Express, BullMQ…) is loaded only when that verb runs, or all of them for the top-level
 * help: a `captioner score` need not load the job queue.
 */
import type { Command } from '../command.ts';

export interface CommandEntry {
  /** The verb: the first word of its module's `command`. */
  name: string;
  load: () => Promise<Command>;
}

export const COMMANDS: readonly CommandEntry[] = [
  { name: 'train', load: async () => (await import('./train.ts')).trainCommand },
  { name: 'data', load: async () => (await import('./data.ts')).dataCommand },
  { name: 'caption', load: async () => (await import('./caption.ts')).captionCommand },
  { name: 'score', load: async () => (await import('./score.ts')).scoreCommand },
  { name: 'eval', load: async () => (await import('./eval.ts')).evalCommand },
  { name: 'prior', load: async () => (await import('./prior.ts')).priorCommand },
  { name: 'calibrate', load: async () => (await import('./calibrate.ts')).calibrateCommand },
  { name: 'experiment', load: async () => (await import('./experiment.ts')).experimentCommand },
  { name: 'serve', load: async () => (await import('./serve.ts')).serveCommand },
  { name: 'export-site', load: async () => (await import('./export-site.ts')).exportSiteCommand },
  { name: 'worker', load: async () => (await import('./worker.ts')).workerCommand },
];

/**
 * The commands to register for a command line: only the verb its first word names, or every verb
 * when it names none (`--help`, a typo, or a global option first), so that help and yargs'
 * errors list them all.
 */
export async function commandsFor(args: readonly string[]): Promise<Command[]> {
  const named = COMMANDS.find((c) => c.name === args[0]);
  return Promise.all((named ? [named] : COMMANDS).map((c) => c.load()));
}
