/**
 * Ctrl-C for the long-running commands, in one place: the first SIGINT asks the work to stop at
 * its next safe point (after the batch or step in flight, with what it made saved), a second
 * quits at once with the interrupted exit code.
 */
import { logLine } from './command.ts';
import { EXIT } from './errors.ts';

export interface Interrupt {
  /** Aborted at the first Ctrl-C: the work polls it (or listens) and stops when it may. */
  readonly signal: AbortSignal;
  /** Removes the SIGINT handler (call it in a `finally`). */
  release(): void;
}

/** Installs the SIGINT handler; `message` is logged at the first Ctrl-C, saying what happens next. */
export function stopOnInterrupt(message: string): Interrupt {
  const controller = new AbortController();
  const onSigint = () => {
    if (controller.signal.aborted) process.exit(EXIT.interrupted);
    logLine(message);
    controller.abort();
  };
  process.on('SIGINT', onSigint);
  return { signal: controller.signal, release: () => process.off('SIGINT', onSigint) };
}
