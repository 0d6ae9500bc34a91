/** Exit codes of `lars`, and the one place that maps errors to them. */
import { ConfigError, UsageError } from '../lib/errors.ts';

export const ExitCode = {
  ok: 0,
  /** Anything that is not the caller's fault: NATS unreachable, server errors, a route that is not there. */
  failure: 1,
  /** The command line or the configuration is wrong: bad flag, bad value, missing argument, unknown command. */
  usage: 2,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

export function exitCodeFor(err: unknown): ExitCode {
  if (err instanceof UsageError || err instanceof ConfigError) return ExitCode.usage;
  return ExitCode.failure;
}

/** Whether the error's message should be followed by a pointer to the command's help. */
export function wantsHelpHint(err: unknown): boolean {
  return err instanceof UsageError;
}
