/** Every CLI verb, registered from this one list. */
import type { Command } from '../command.ts';
import { dataCommand } from './data.ts';
import { trainCommand } from './train.ts';

export const COMMANDS: readonly Command[] = [trainCommand, dataCommand];
