/**
 * What the sink does when ClickHouse says no: wait and retry (transient),
 * re-create the schema (missing), or split the batch to find the rows it
 * rejects (data). Plus the backoff schedule (the NATS client's backoff and delay).
 */
import { backoff, delay, type Backoff } from '@nats-io/transport-node';

export const FailureKind = {
  /** Server away, slow, overloaded: keep the batch, back off, retry. */
  transient: 'transient',
  /** The table or database is gone: run the migrations, then retry. */
  missingSchema: 'missing_schema',
  /** The server answered with an exception about the rows: split and quarantine. */
  data: 'data',
} as const;
export type FailureKind = (typeof FailureKind)[keyof typeof FailureKind];

export interface Failure {
  kind: FailureKind;
  /** ClickHouse error code, when the server sent one. */
  code?: number;
  message: string;
}

/**
 * Server exceptions that say nothing about the rows. Anything else the server
 * answers with counts as a verdict on the data; a network-level error (no
 * ClickHouse code) is transient.
 */
const TRANSIENT_CODES: ReadonlySet<number> = new Set([
  3, // UNEXPECTED_END_OF_FILE (request cut short)
  74, // CANNOT_READ_FROM_FILE_DESCRIPTOR
  75, // CANNOT_WRITE_TO_FILE_DESCRIPTOR
  76, // CANNOT_OPEN_FILE
  159, // TIMEOUT_EXCEEDED
  160, // TOO_SLOW
  164, // READONLY
  202, // TOO_MANY_SIMULTANEOUS_QUERIES
  203, // NO_FREE_CONNECTION
  209, // SOCKET_TIMEOUT
  210, // NETWORK_ERROR
  236, // ABORTED
  241, // MEMORY_LIMIT_EXCEEDED
  242, // TABLE_IS_READ_ONLY
  243, // NOT_ENOUGH_SPACE
  252, // TOO_MANY_PARTS
  279, // ALL_CONNECTION_TRIES_FAILED
  285, // TOO_FEW_LIVE_REPLICAS
  319, // UNKNOWN_STATUS_OF_INSERT
  394, // QUERY_WAS_CANCELLED
  425, // SYSTEM_ERROR
  473, // DEADLOCK_AVOIDED
  999, // KEEPER_EXCEPTION
  1000, // POCO_EXCEPTION
  1001, // STD_EXCEPTION
]);

const MISSING_SCHEMA_CODES: ReadonlySet<number> = new Set([
  60, // UNKNOWN_TABLE
  81, // UNKNOWN_DATABASE
]);

/** The ClickHouse code in an error, from the client's parsed form or from the text (18.16 prints `Code: 81, e.displayText() = ...`). */
export function clickhouseCode(err: unknown): number | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const c = (err as { code?: unknown }).code;
  if (typeof c === 'string' && /^\d+$/.test(c)) return Number(c);
  if (typeof c === 'number' && Number.isInteger(c) && c > 0 && c < 100_000) return c;
  const msg = (err as { message?: unknown }).message;
  if (typeof msg === 'string') {
    const m = /\bCode: (\d+)[.,]/.exec(msg);
    if (m) return Number(m[1]);
  }
  return undefined;
}

export function classifyFailure(err: unknown): Failure {
  const message = err instanceof Error ? err.message : String(err);
  const code = clickhouseCode(err);
  if (code === undefined) return { kind: FailureKind.transient, message };
  if (MISSING_SCHEMA_CODES.has(code)) return { kind: FailureKind.missingSchema, code, message };
  if (TRANSIENT_CODES.has(code)) return { kind: FailureKind.transient, code, message };
  return { kind: FailureKind.data, code, message };
}

export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 100, maxMs: 10_000 };

/** The NATS client's backoff over a doubling schedule: initialMs, 2×, 4×, … up to maxMs. */
export function backoffSchedule(o: BackoffOptions): Backoff {
  const policy: number[] = [];
  for (let ms = Math.max(1, o.initialMs); ; ms *= 2) {
    if (ms >= o.maxMs) {
      policy.push(o.maxMs);
      break;
    }
    policy.push(ms);
  }
  return backoff(policy);
}

/** Delay before retry number `attempt` (0-based): doubling up to the cap, with the client's jitter (0.5–1.5×). */
export function backoffDelay(attempt: number, o: BackoffOptions): number {
  return Math.round(backoffSchedule(o).backoff(attempt));
}

/** Resolves after `ms`, or at once when `signal` aborts (the NATS client's cancellable delay). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.resolve();
  const d = delay(ms);
  const cancel = (): void => d.cancel();
  signal?.addEventListener('abort', cancel, { once: true });
  return d.finally(() => signal?.removeEventListener('abort', cancel));
}

export { RateLimitedLog } from '../lib/ratelog.ts';
