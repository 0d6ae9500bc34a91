/** Commands contributed by other components (analytics). */
import type { Command } from '../command.ts';
import { statsCommand, sinkCommand } from './stats.ts';
import { agentCommand } from '../../sidecar/cli.ts';
import { simulateCommand } from '../../sim/cli.ts';

export const extraCommands: Command[] = [sinkCommand, statsCommand, simulateCommand, agentCommand];
