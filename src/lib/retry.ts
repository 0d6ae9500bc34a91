/**
 * The one retry helper of the runtime: attempts with exponential backoff and
 * jitter (p-retry underneath), retrying only the errors `retryIf` accepts.
 * Anything else, and the last error once the attempts are spent, is thrown
 * as it was.
 */
import pRetry, { type RetryContext } from 'p-retry';

export interface RetryOptions {
  /** Attempts in all, the first included (≥ 1). */
  attempts: number;
  /** Delay before the first retry, ms (0: retry at once). */
  minMs?: number;
  /** Longest delay between attempts, ms. */
  maxMs?: number;
  /** Growth of the delay per retry. */
  factor?: number;
  /** Multiply each delay by a random 1–2 (spreads racing processes apart). */
  randomize?: boolean;
  /** Whether this error is worth another attempt; default: every error. */
  retryIf?: (err: unknown, attempt: number) => boolean | Promise<boolean>;
  /** Called after a failed attempt that will be retried (logging, repairs). */
  onRetry?: (err: unknown, attempt: number) => void | Promise<void>;
  /** Stops retrying: the pending wait ends and the signal's reason is thrown. */
  signal?: AbortSignal;
}

/** Runs `fn(attempt)` (attempt counts from 1) until it resolves, an error is not retryable, or the attempts are spent. */
export async function retry<T>(fn: (attempt: number) => Promise<T>, o: RetryOptions): Promise<T> {
  const retryIf = o.retryIf;
  const onRetry = o.onRetry;
  return pRetry(fn, {
    retries: Math.max(0, o.attempts - 1),
    minTimeout: o.minMs ?? 100,
    maxTimeout: o.maxMs ?? 10_000,
    factor: o.factor ?? 2,
    randomize: o.randomize ?? false,
    signal: o.signal,
    shouldRetry: async (c: RetryContext) => {
      const again = retryIf ? await retryIf(c.error, c.attemptNumber) : true;
      if (again && c.retriesLeft > 0) await onRetry?.(c.error, c.attemptNumber);
      return again;
    },
  });
}
