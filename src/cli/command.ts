/** The shape of a `lars` sub-command. */
import type { LarsConfig } from '../config.ts';

export interface CommandContext {
  config: LarsConfig;
  /** Writes a line to stdout. */
  out(line: string): void;
  /** Resolves when the user asks to stop (SIGINT/SIGTERM). */
  stopSignal: Promise<void>;
}

export interface Command {
  name: string;
  summary: string;
  usage: string;
  /** Extra flags of this command (besides the shared config flags): name → help. */
  flags: Record<string, { help: string; boolean?: boolean }>;
  /**
   * Runs the command; `args` are positional arguments, `flags` the parsed
   * command flags. Returns the exit code. Throws UsageError for bad arguments.
   */
  run(args: string[], flags: Record<string, string | boolean | undefined>, ctx: CommandContext): Promise<number>;
}
