/** Commands contributed by other components (analytics). */
import type { Command, CommandGroup } from '../command.ts';
import { statsCommand, sinkCommand } from './stats.ts';
import { agentCommand } from './agent.ts';
import { simulateCommand } from './simulate.ts';
import { clusterGroup } from './cluster.ts';
import { consoleCommand } from './console.ts';
import { xdsCommand } from './xds.ts';

export const extraCommands: Array<Command | CommandGroup> = [sinkCommand, statsCommand, simulateCommand, agentCommand, clusterGroup, consoleCommand, xdsCommand];
