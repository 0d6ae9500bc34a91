/** The shape of a `lars` sub-command; src/cli/main.ts turns these into the yargs command tree. */
import type { LarsConfig } from '../lib/config.ts';

export interface CommandContext {
  config: LarsConfig;
  /** Writes a line to stdout (the command's data). */
  out(line: string): void;
  /** Writes a notice to stderr (progress, hints: never data); defaults to nothing. */
  note?(line: string): void;
  /**
   * Asks the person at the terminal a yes/no question; resolves undefined
   * when nobody can answer (stdin is not a terminal). Absent: nobody can answer.
   */
  confirm?(question: string): Promise<boolean | undefined>;
  /** Resolves when the user asks to stop (SIGINT/SIGTERM). */
  stopSignal: Promise<void>;
  /** Milliseconds since the epoch; injected for tests. */
  now?(): number;
}

/** A positional argument, in order. */
export interface CommandArg {
  name: string;
  help: string;
  /** Takes every remaining positional (and may be empty). */
  variadic?: boolean;
  /** May be left out (the command decides what that means). */
  optional?: boolean;
}

export interface CommandFlag {
  help: string;
  boolean?: boolean;
  /** Repeatable: the command gets every value as a string[]. */
  multiple?: boolean;
  /** Value placeholder shown in help, e.g. `seconds`. */
  placeholder?: string;
  choices?: readonly string[];
  /** Default shown in help (the command applies it). */
  defaultText?: string;
  alias?: string;
}

export type FlagValue = string | boolean | string[] | undefined;

export interface Command {
  name: string;
  summary: string;
  /** The usage line, starting with `lars`. */
  usage: string;
  /** Positional arguments; none when absent. */
  args?: CommandArg[];
  /** Extra flags of this command (besides the shared config flags): name → help. */
  flags: Record<string, CommandFlag>;
  /** Examples for the help text: [command line, what it does]. */
  examples?: Array<[string, string]>;
  /**
   * Runs the command; `args` are positional arguments, `flags` the parsed
   * command flags. Returns the exit code. Throws UsageError for bad arguments.
   */
  run(args: string[], flags: Record<string, FlagValue>, ctx: CommandContext): Promise<number>;
}

/** A command with sub-commands (`lars route add|rm|ls|watch`). */
export interface CommandGroup {
  name: string;
  summary: string;
  commands: Command[];
}
