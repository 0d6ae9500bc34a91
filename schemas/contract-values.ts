/**
 * The contract's named values (version 1): the schema version, the limits,
 * and every enumeration a message carries (host states, profiles, pick
 * strategies, reasons, attempt kinds, retcodes with a meaning, reject kinds,
 * operator marks, self-registration states), each an `as const` object with
 * its type. The message schemas (contract.ts) are built from them;
 * contract.ts exports them too.
 */
export const SCHEMA_VERSION = 1 as const;

export const LIMITS = {
  /** Reports in one batch. */
  maxBatchReports: 10_000,
  /** Distinct hosts in one batch. */
  maxBatchHosts: 1_024,
  /** Encoded size of any message, bytes (NATS' default max_payload). */
  maxMessageBytes: 1_048_576,
  /** Largest latency accepted, ms (one hour). */
  maxLatencyMs: 3_600_000,
  /** Largest report offset from the batch time, ms (one hour). */
  maxOffsetMs: 3_600_000,
  maxSenderLength: 128,
  maxZoneLength: 64,
  maxReasonLength: 64,
  /** Hosts in one route. */
  maxRouteHosts: 1_024,
  minWeight: 1,
  maxWeight: 10_000,
  defaultWeight: 100,
  /** retcode is an int32 as in Lars. */
  minRetcode: -2_147_483_648,
  maxRetcode: 2_147_483_647,
  /** Largest time, ms since the epoch (the ECMAScript Date range). */
  maxTimeMs: 8.64e15,
  /** Route versions stay exact in a float64. */
  maxVersion: Number.MAX_SAFE_INTEGER,
  /** A self-registration's time to live, ms: at least a second, at most ten minutes. */
  minSelfTtlMs: 1_000,
  maxSelfTtlMs: 600_000,
  maxInstanceLength: 128,
  /** Largest attempt number of one logical call in a report's attempt mark. */
  maxAttempt: 255,
  /** Largest retry budget a route publishes: retries per first attempt. */
  maxRetryBudget: 100,
  /** Largest retry floor a route publishes: retries per second per agent. */
  maxRetryFloor: 1_000_000,
} as const;

export const HostState = {
  healthy: 'healthy',
  overloaded: 'overloaded',
  probing: 'probing',
  draining: 'draining',
} as const;
export type HostState = (typeof HostState)[keyof typeof HostState];

export const Profile = { lars: 'lars', default: 'default' } as const;
export type Profile = (typeof Profile)[keyof typeof Profile];

/** Pick strategies agents know (actors/strategies/); a route may name one. */
export const PickStrategy = { lars: 'lars', swrr: 'swrr', p2c: 'p2c', p2c_ewma: 'p2c_ewma', hash: 'hash' } as const;
export type PickStrategy = (typeof PickStrategy)[keyof typeof PickStrategy];

/** Why a host changed state. Published in every route event and route state. */
export const Reason = {
  registered: 'registered',
  consecutive_errors: 'consecutive_errors',
  error_rate: 'error_rate',
  window_error_rate: 'window_error_rate',
  latency_outlier: 'latency_outlier',
  success_rate: 'success_rate',
  consecutive_successes: 'consecutive_successes',
  timeout: 'timeout',
  probe_success: 'probe_success',
  probe_failure: 'probe_failure',
  removed: 'removed',
  readded: 'readded',
  restored: 'restored',
  /** The route switched to the lars profile: a probing host becomes overloaded (lars has no probing). */
  profile_changed: 'profile_changed',
  /** Operator actions (`lars host`): a maintenance drain and its end, a forced ejection and its end. */
  admin_drain: 'admin_drain',
  admin_undrain: 'admin_undrain',
  admin_eject: 'admin_eject',
  admin_clear: 'admin_clear',
} as const;
export type Reason = (typeof Reason)[keyof typeof Reason];

/**
 * What one call of a report was, in a batch's `attempts` marks: a report
 * without a mark is a first attempt. A retry goes to another host after a
 * failed attempt; a hedge is sent while an earlier attempt is still
 * outstanding (the first answer wins).
 */
export const AttemptKind = { first: 0, retry: 1, hedge: 2 } as const;
export type AttemptKind = (typeof AttemptKind)[keyof typeof AttemptKind];

/**
 * Who wrote a report batch, in its `side`: the callers (absent or `client`:
 * agents, the SDK's integrations, the sidecar), or the host that served the
 * calls (`server`: a server-side reporter, for callers that report nothing
 * themselves, such as proxyless gRPC over xDS).
 */
export const ReportSide = { client: 'client', server: 'server' } as const;
export type ReportSide = (typeof ReportSide)[keyof typeof ReportSide];

/**
 * Retcodes with a meaning of their own (any other non-zero retcode is an
 * error, as in Lars). `overloaded`: the host refused the call because it is
 * overloaded (HTTP 503 with Retry-After, gRPC RESOURCE_EXHAUSTED); it counts
 * against the route's accept ratio (client-side throttling) like any error.
 */
export const CallRetcode = { ok: 0, overloaded: -4 } as const;

/** Why an inbound message was dropped. Counted per kind by every consumer. */
export const RejectKind = {
  malformed: 'malformed',
  wrong_type: 'wrong_type',
  out_of_range: 'out_of_range',
  oversize: 'oversize',
  bad_version: 'bad_version',
  subject_mismatch: 'subject_mismatch',
  unknown_route: 'unknown_route',
  unknown_host: 'unknown_host',
  /** A report batch whose message id (`Nats-Msg-Id`) was ingested already: a publish retried after its first copy arrived. */
  duplicate: 'duplicate',
} as const;
export type RejectKind = (typeof RejectKind)[keyof typeof RejectKind];

/** What an operator set on a host (`lars host drain|eject`), until undone (`undrain|clear`). */
export const AdminMark = {
  /** Maintenance: no traffic, the host stays in the route (not dropped after drain_time). */
  drained: 'drained',
  /** Forced out: no traffic, no probes, until cleared. */
  ejected: 'ejected',
} as const;
export type AdminMark = (typeof AdminMark)[keyof typeof AdminMark];

/** What a self-registered host says of itself. */
export const SelfState = {
  /** Serving: a member of the route. */
  up: 'up',
  /** Stopping: leaves the route at once (drains at the agents), then deletes its key. */
  draining: 'draining',
} as const;
export type SelfState = (typeof SelfState)[keyof typeof SelfState];
