/** Commands contributed by other components (analytics). */
import type { Command } from '../command.ts';

export const extraCommands: Command[] = [];
