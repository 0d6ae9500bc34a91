/** Commands contributed by other components (analytics). */
import type { Command } from '../command.ts';
import { statsCommand, sinkCommand } from './stats.ts';

export const extraCommands: Command[] = [sinkCommand, statsCommand];
