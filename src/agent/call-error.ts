/**
 * What `agent.call` says when it gives up: why it stopped and every attempt
 * it made (host, kind, outcome, retcode, latency), as one typed error.
 */
import { ErrorCode, LarsError } from '../lib/errors.ts';

/** Why a call stopped without a result. */
export const CallStop = {
  /** A retry would have gone past the route's retry budget (this agent's share). */
  budget: 'budget',
  /** The call's deadline passed. */
  deadline: 'deadline',
  /** The route is shedding: the call was refused locally, before any attempt (fall back, do not retry). */
  shed: 'shed',
  /** No host to try: the route has none that may be picked, or none other than those tried already. */
  noHost: 'no_host',
  /** Every attempt allowed (`maxAttempts`) failed. */
  attempts: 'attempts',
  /** The last failure was not one to retry (the caller's `classify`). */
  notRetriable: 'not_retriable',
  /** The caller's signal aborted the call. */
  aborted: 'aborted',
} as const;
export type CallStop = (typeof CallStop)[keyof typeof CallStop];

/** One attempt of a call. */
export interface AttemptRecord {
  /** 1 for the first attempt, 2 for the next, ... */
  readonly attempt: number;
  readonly kind: 'first' | 'retry' | 'hedge';
  /** `ip:port`. */
  readonly host: string;
  /** ok: answered; error: failed (fn threw); timeout: no answer within its time; aborted: stopped because the call ended otherwise. */
  readonly outcome: 'ok' | 'error' | 'timeout' | 'aborted';
  /** The retcode reported for it (none for an aborted attempt, which is not reported). */
  readonly retcode: number | undefined;
  readonly latencyMs: number;
  readonly error?: unknown;
}

export class CallError extends LarsError {
  readonly reason: CallStop;
  readonly modid: number;
  readonly cmdid: number;
  readonly attempts: readonly AttemptRecord[];

  constructor(modid: number, cmdid: number, reason: CallStop, attempts: readonly AttemptRecord[], detail?: string) {
    const tried = attempts.map((a) => `#${a.attempt} ${a.kind} ${a.host} ${a.outcome}${a.retcode !== undefined ? ` (${a.retcode})` : ''}`).join(', ');
    const last = [...attempts].reverse().find((a) => a.error !== undefined)?.error;
    super(ErrorCode.callFailed, `call to route ${modid}.${cmdid} stopped: ${reason}${detail ? ` (${detail})` : ''}; attempts: ${tried || 'none'}`, last !== undefined ? { cause: last } : undefined);
    this.name = 'CallError';
    this.reason = reason;
    this.modid = modid;
    this.cmdid = cmdid;
    this.attempts = attempts;
  }
}

/** The error an attempt's signal carries when its own time ran out. */
export class AttemptTimeoutError extends Error {
  constructor(ms: number) {
    super(`attempt timed out after ${ms} ms`);
    this.name = 'AttemptTimeoutError';
  }
}
