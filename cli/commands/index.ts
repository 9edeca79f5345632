/** Every CLI verb, registered from this one list. */
import type { Command } from '../command.ts';
import { dataCommand } from './data.ts';
import { serveCommand } from './serve.ts';
import { trainCommand } from './train.ts';
import { captionCommand } from './caption.ts';
import { scoreCommand } from './score.ts';
import { evalCommand } from './eval.ts';
import { priorCommand } from './prior.ts';
import { workerCommand } from './worker.ts';
import { calibrateCommand } from './calibrate.ts';
import { exportSiteCommand } from './export-site.ts';
import { experimentCommand } from './experiment.ts';

export const COMMANDS: readonly Command[] = [
  trainCommand,
  dataCommand,
  captionCommand,
  scoreCommand,
  evalCommand,
  priorCommand,
  calibrateCommand,
  experimentCommand,
  serveCommand,
  exportSiteCommand,
  workerCommand,
];
