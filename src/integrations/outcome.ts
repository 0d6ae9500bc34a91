/**
 * Which call outcomes count as failures, for the RPC integrations (HTTP and
 * gRPC): one pure classification turning an outcome and its latency into the
 * retcode the agent reports (0 success, anything else an error).
 */

/** Retcodes reported for outcomes without a status of their own. */
export const Retcode = {
  ok: 0,
  /** The call did not end within its timeout (reported when it timed out). */
  timeout: -1,
  /** No connection, reset, refused, or the request could not be sent. */
  connection: -2,
  /** A success slower than `slowMs`. */
  slow: -3,
} as const;
export type Retcode = (typeof Retcode)[keyof typeof Retcode];

/** gRPC status codes (the numbers of grpc's `Status`), kept here so this module needs no gRPC package. */
export const GrpcCode = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;
export type GrpcCode = (typeof GrpcCode)[keyof typeof GrpcCode];

/** What counts as a failure. Every field has a default (see DEFAULT_FAILURE_POLICY). */
export interface FailurePolicy {
  /** HTTP 500-599 (default true). */
  readonly http5xx: boolean;
  /** HTTP 429 Too Many Requests (default true). */
  readonly http429: boolean;
  /** Other HTTP 400-499 (default false: the caller's mistake, not the host's). */
  readonly http4xx: boolean;
  /** Calls that time out (default true). */
  readonly timeouts: boolean;
  /** Connection errors: refused, reset, closed before the answer (default true). */
  readonly connectionErrors: boolean;
  /** gRPC status codes that are failures (default UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, INTERNAL, UNKNOWN). */
  readonly grpcCodes: readonly number[];
  /** A success slower than this, ms, is a failure; 0 turns the rule off (default 0). */
  readonly slowMs: number;
}

export const DEFAULT_GRPC_FAILURE_CODES: readonly number[] = Object.freeze([
  GrpcCode.UNAVAILABLE,
  GrpcCode.DEADLINE_EXCEEDED,
  GrpcCode.RESOURCE_EXHAUSTED,
  GrpcCode.INTERNAL,
  GrpcCode.UNKNOWN,
]);

export const DEFAULT_FAILURE_POLICY: FailurePolicy = Object.freeze({
  http5xx: true,
  http429: true,
  http4xx: false,
  timeouts: true,
  connectionErrors: true,
  grpcCodes: DEFAULT_GRPC_FAILURE_CODES,
  slowMs: 0,
});

/** A resolved policy: the gRPC codes as a lookup table so classifying allocates nothing. */
export interface ResolvedFailurePolicy extends FailurePolicy {
  readonly grpcFailure: Uint8Array;
}

/** Fills defaults and checks values; throws RangeError on a bad one (a caller bug). */
export function resolveFailurePolicy(p: Partial<FailurePolicy> = {}): ResolvedFailurePolicy {
  const r = { ...DEFAULT_FAILURE_POLICY, ...p };
  if (!(r.slowMs >= 0) || !Number.isFinite(r.slowMs)) throw new RangeError(`failure policy: slowMs must be a finite number ≥ 0, got ${r.slowMs}`);
  const grpcFailure = new Uint8Array(17);
  for (const c of r.grpcCodes) {
    if (!Number.isInteger(c) || c < 1 || c > 16) throw new RangeError(`failure policy: ${c} is not a gRPC error code (1-16)`);
    grpcFailure[c] = 1;
  }
  return Object.freeze({ ...r, grpcCodes: Object.freeze([...r.grpcCodes]), grpcFailure });
}

/** A response arrived with this HTTP status: the retcode to report. */
export function httpRetcode(p: ResolvedFailurePolicy, status: number, latencyMs: number): number {
  if (status >= 500 && status <= 599) return p.http5xx ? status : slowOrOk(p, latencyMs);
  if (status === 429) return p.http429 ? status : slowOrOk(p, latencyMs);
  if (status >= 400 && status <= 499) return p.http4xx ? status : slowOrOk(p, latencyMs);
  return slowOrOk(p, latencyMs);
}

/** A gRPC call ended with this status code: the retcode to report (the code itself when it is a failure). */
export function grpcRetcode(p: ResolvedFailurePolicy, code: number, latencyMs: number): number {
  if (code > 0 && code < p.grpcFailure.length && p.grpcFailure[code] === 1) return code;
  return slowOrOk(p, latencyMs);
}

/** The call timed out. */
export function timeoutRetcode(p: ResolvedFailurePolicy): number {
  return p.timeouts ? Retcode.timeout : Retcode.ok;
}

/** The call failed before any answer (connect refused, reset, closed). */
export function connectionRetcode(p: ResolvedFailurePolicy): number {
  return p.connectionErrors ? Retcode.connection : Retcode.ok;
}

function slowOrOk(p: ResolvedFailurePolicy, latencyMs: number): number {
  return p.slowMs > 0 && latencyMs > p.slowMs ? Retcode.slow : Retcode.ok;
}
