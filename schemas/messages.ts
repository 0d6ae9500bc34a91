/**
 * Wire messages of the Lars-on-NATS contract (version 1), their limits and
 * their validators. Every message is a msgpack map (plain msgpack: no
 * extension types, no records) with snake_case keys, and carries `v` (the
 * schema version) and `sender`. schemas/README.md is the prose form of this
 * file; the JSON Schemas beside it describe the same shapes.
 *
 * This module imports nothing.
 */
import { UINT32_MAX } from './subjects.ts';

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
} as const;

export const HostState = {
  healthy: 'healthy',
  overloaded: 'overloaded',
  probing: 'probing',
  draining: 'draining',
} as const;
export type HostState = (typeof HostState)[keyof typeof HostState];
const HOST_STATES: ReadonlySet<string> = new Set(Object.values(HostState));

export const Profile = { lars: 'lars', default: 'default' } as const;
export type Profile = (typeof Profile)[keyof typeof Profile];

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
} as const;
export type Reason = (typeof Reason)[keyof typeof Reason];

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
} as const;
export type RejectKind = (typeof RejectKind)[keyof typeof RejectKind];

export type Validated<T> = { ok: true; value: T } | { ok: false; kind: RejectKind; detail: string };

/**
 * One call result inside a batch: `[host_index, retcode, latency_ms, offset_ms]`.
 * host_index points into `ReportBatch.hosts`; retcode 0 is success, anything
 * else an error (Lars); latency_ms is float ≥ 0; offset_ms is the integer
 * number of ms after `ReportBatch.ts` at which the call ended.
 */
export type ReportTuple = [hostIndex: number, retcode: number, latencyMs: number, offsetMs: number];

/** A batch of call results for one route. Subject `<prefix>.report.<partition>.<modid>.<cmdid>`. */
export interface ReportBatch {
  v: 1;
  /** Agent id of the caller. */
  sender: string;
  modid: number;
  cmdid: number;
  /** Batch base time, ms since the Unix epoch. */
  ts: number;
  /** The caller's zone, when known. */
  zone?: string;
  /** Distinct hosts the reports refer to: `[ipv4, port]`. */
  hosts: Array<[ip: string, port: number]>;
  reports: ReportTuple[];
}

/** One host as published in the effective route. */
export interface RouteHost {
  ip: string;
  port: number;
  /** Configured weight (registry). */
  weight: number;
  zone?: string;
  state: HostState;
  reason: Reason;
  /** When the host entered `state`, ms since epoch. */
  since: number;
  /**
   * The weight agents pick with: `weight` when healthy, a fraction of it when
   * probing, 0 when overloaded or draining; in panic every non-draining host
   * gets `weight`.
   */
  pick_weight: number;
}

/** Full effective route. Subject `<prefix>.route.<modid>.<cmdid>` and KV `<prefix>_routes` key `<modid>.<cmdid>`. */
export interface RouteState {
  v: 1;
  /** Route node id. */
  sender: string;
  modid: number;
  cmdid: number;
  /** Monotonic per route; agents keep the highest they have seen. */
  version: number;
  ts: number;
  profile: Profile;
  /** Too few hosts are healthy: agents spread over every non-draining host. */
  panic: boolean;
  /** The route was deleted from the registry; agents forget it. */
  removed: boolean;
  /** Lars' probe_num: the lars strategy sends one pick in probe_num + 1 to an overloaded host. */
  probe_num: number;
  hosts: RouteHost[];
}

/** Figures behind a transition (all numbers; absent when not applicable). */
export interface EventFigures {
  err_rate?: number;
  succ_rate?: number;
  window_err_rate?: number;
  consecutive_errors?: number;
  consecutive_successes?: number;
  latency_ms?: number;
  peer_latency_ms?: number;
  calls?: number;
  ejections?: number;
  ejection_ms?: number;
}

/** One host state transition. Subject `<prefix>.event.<modid>.<cmdid>`. */
export interface RouteEvent {
  v: 1;
  sender: string;
  modid: number;
  cmdid: number;
  ts: number;
  ip: string;
  port: number;
  /** Previous state, or 'none' for a host that just appeared. */
  from: HostState | 'none';
  /** New state, or 'none' for a host dropped after draining. */
  to: HostState | 'none';
  reason: Reason;
  /** Route version that carries this transition. */
  version: number;
  figures: EventFigures;
}

export interface RegistryHost {
  ip: string;
  port: number;
  weight: number;
  zone?: string;
}

/** Admin-set hosts of one route. KV `<prefix>_registry` key `<modid>.<cmdid>`. */
export interface RegistryEntry {
  v: 1;
  modid: number;
  cmdid: number;
  profile?: Profile;
  /** Overrides of the profile's parameters, by parameter name. */
  params?: Record<string, number>;
  hosts: RegistryHost[];
  updated_by: string;
  ts: number;
}

// ---------------------------------------------------------------- validators

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

export function isIPv4(s: unknown): s is string {
  return typeof s === 'string' && s.length <= 15 && IPV4.test(s);
}

export function isPort(n: unknown): n is number {
  return typeof n === 'number' && Number.isInteger(n) && n >= 1 && n <= 65535;
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function fail<T>(kind: RejectKind, detail: string): Validated<T> {
  return { ok: false, kind, detail };
}

function checkUint32(x: unknown, field: string): string | undefined {
  if (typeof x !== 'number' || !Number.isInteger(x)) return `${field} must be an integer`;
  if (x < 0 || x > UINT32_MAX) return `${field} out of range`;
  return undefined;
}

function checkHeader(m: Record<string, unknown>): Validated<never> | undefined {
  if (m['v'] !== SCHEMA_VERSION) return fail('bad_version', `unsupported version ${String(m['v'])}`);
  const s = m['sender'];
  if (typeof s !== 'string') return fail('wrong_type', 'sender must be a string');
  if (s.length === 0 || s.length > LIMITS.maxSenderLength) return fail('out_of_range', 'sender length');
  for (const f of ['modid', 'cmdid'] as const) {
    const e = checkUint32(m[f], f);
    if (e) return fail(e.endsWith('integer') ? 'wrong_type' : 'out_of_range', e);
  }
  const ts = m['ts'];
  if (typeof ts !== 'number' || !Number.isFinite(ts)) return fail('wrong_type', 'ts must be a number');
  if (ts < 0 || ts > 8.64e15) return fail('out_of_range', 'ts out of range');
  return undefined;
}

/**
 * Validates a decoded report batch. Runs on every batch a route node takes,
 * so it is a plain loop without allocation per report.
 */
export function validateReportBatch(m: unknown): Validated<ReportBatch> {
  if (!isObject(m)) return fail('wrong_type', 'batch must be a map');
  const h = checkHeader(m);
  if (h) return h;
  const zone = m['zone'];
  if (zone !== undefined && zone !== null) {
    if (typeof zone !== 'string') return fail('wrong_type', 'zone must be a string');
    if (zone.length > LIMITS.maxZoneLength) return fail('out_of_range', 'zone length');
  }
  const hostsIn = m['hosts'];
  const reportsIn = m['reports'];
  if (!Array.isArray(hostsIn)) return fail('wrong_type', 'hosts must be an array');
  if (!Array.isArray(reportsIn)) return fail('wrong_type', 'reports must be an array');
  const hosts = hostsIn as unknown[];
  const reports = reportsIn as unknown[];
  if (hosts.length === 0 || reports.length === 0) return fail('out_of_range', 'empty batch');
  if (hosts.length > LIMITS.maxBatchHosts) return fail('oversize', `${hosts.length} hosts in one batch`);
  if (reports.length > LIMITS.maxBatchReports) return fail('oversize', `${reports.length} reports in one batch`);
  for (let i = 0; i < hosts.length; i++) {
    const e = hosts[i] as unknown[];
    if (!Array.isArray(e) || e.length !== 2) return fail('wrong_type', `hosts[${i}] must be [ip, port]`);
    if (typeof e[0] !== 'string' || typeof e[1] !== 'number') return fail('wrong_type', `hosts[${i}] types`);
    if (!isIPv4(e[0])) return fail('out_of_range', `hosts[${i}] ip`);
    if (!isPort(e[1])) return fail('out_of_range', `hosts[${i}] port`);
  }
  const nh = hosts.length;
  for (let i = 0; i < reports.length; i++) {
    const r = reports[i] as unknown[];
    if (!Array.isArray(r) || r.length !== 4) return fail('wrong_type', `reports[${i}] must be a 4-tuple`);
    const hi = r[0];
    const rc = r[1];
    const lat = r[2];
    const off = r[3];
    if (typeof hi !== 'number' || typeof rc !== 'number' || typeof lat !== 'number' || typeof off !== 'number') {
      return fail('wrong_type', `reports[${i}] must hold numbers`);
    }
    if (!(hi >= 0 && hi < nh && (hi | 0) === hi)) return fail('out_of_range', `reports[${i}] host index`);
    if ((rc | 0) !== rc) return fail('out_of_range', `reports[${i}] retcode`);
    if (!(lat >= 0 && lat <= LIMITS.maxLatencyMs)) return fail('out_of_range', `reports[${i}] latency`);
    if (!(off >= 0 && off <= LIMITS.maxOffsetMs && Math.floor(off) === off)) {
      return fail('out_of_range', `reports[${i}] offset`);
    }
  }
  return { ok: true, value: m as unknown as ReportBatch };
}

function validateHostCommon(e: unknown, i: number): Validated<RegistryHost> {
  if (!isObject(e)) return fail('wrong_type', `hosts[${i}] must be a map`);
  if (typeof e['ip'] !== 'string') return fail('wrong_type', `hosts[${i}].ip must be a string`);
  if (!isIPv4(e['ip'])) return fail('out_of_range', `hosts[${i}].ip`);
  if (typeof e['port'] !== 'number') return fail('wrong_type', `hosts[${i}].port must be a number`);
  if (!isPort(e['port'])) return fail('out_of_range', `hosts[${i}].port`);
  const w = e['weight'];
  if (typeof w !== 'number') return fail('wrong_type', `hosts[${i}].weight must be a number`);
  if (!Number.isInteger(w) || w < LIMITS.minWeight || w > LIMITS.maxWeight) return fail('out_of_range', `hosts[${i}].weight`);
  const z = e['zone'];
  if (z !== undefined && z !== null && (typeof z !== 'string' || z.length > LIMITS.maxZoneLength)) {
    return fail('wrong_type', `hosts[${i}].zone`);
  }
  return { ok: true, value: e as unknown as RegistryHost };
}

export function validateRegistryEntry(m: unknown): Validated<RegistryEntry> {
  if (!isObject(m)) return fail('wrong_type', 'registry entry must be a map');
  if (m['v'] !== SCHEMA_VERSION) return fail('bad_version', `unsupported version ${String(m['v'])}`);
  for (const f of ['modid', 'cmdid'] as const) {
    const e = checkUint32(m[f], f);
    if (e) return fail('out_of_range', e);
  }
  const p = m['profile'];
  if (p !== undefined && p !== null && p !== 'lars' && p !== 'default') return fail('out_of_range', 'profile');
  const params = m['params'];
  if (params !== undefined && params !== null) {
    if (!isObject(params)) return fail('wrong_type', 'params must be a map');
    for (const [k, v] of Object.entries(params)) {
      if (typeof v !== 'number' || !Number.isFinite(v)) return fail('wrong_type', `params.${k} must be a number`);
    }
  }
  const hosts = m['hosts'];
  if (!Array.isArray(hosts)) return fail('wrong_type', 'hosts must be an array');
  if (hosts.length > LIMITS.maxRouteHosts) return fail('oversize', 'too many hosts');
  const seen = new Set<string>();
  for (let i = 0; i < hosts.length; i++) {
    const r = validateHostCommon(hosts[i], i);
    if (!r.ok) return r;
    const key = `${r.value.ip}:${r.value.port}`;
    if (seen.has(key)) return fail('out_of_range', `duplicate host ${key}`);
    seen.add(key);
  }
  if (typeof m['updated_by'] !== 'string') return fail('wrong_type', 'updated_by must be a string');
  if (typeof m['ts'] !== 'number') return fail('wrong_type', 'ts must be a number');
  return { ok: true, value: m as unknown as RegistryEntry };
}

export function validateRouteState(m: unknown): Validated<RouteState> {
  if (!isObject(m)) return fail('wrong_type', 'route state must be a map');
  const h = checkHeader(m);
  if (h) return h;
  const ver = m['version'];
  if (typeof ver !== 'number' || !Number.isSafeInteger(ver) || ver < 1) return fail('out_of_range', 'version');
  if (m['profile'] !== 'lars' && m['profile'] !== 'default') return fail('out_of_range', 'profile');
  if (typeof m['panic'] !== 'boolean' || typeof m['removed'] !== 'boolean') return fail('wrong_type', 'panic/removed');
  const pn = m['probe_num'];
  if (typeof pn !== 'number' || !Number.isInteger(pn) || pn < 0) return fail('out_of_range', 'probe_num');
  const hosts = m['hosts'];
  if (!Array.isArray(hosts)) return fail('wrong_type', 'hosts must be an array');
  if (hosts.length > LIMITS.maxRouteHosts) return fail('oversize', 'too many hosts');
  for (let i = 0; i < hosts.length; i++) {
    const r = validateHostCommon(hosts[i], i);
    if (!r.ok) return r;
    const e = hosts[i] as Record<string, unknown>;
    if (typeof e['state'] !== 'string' || !HOST_STATES.has(e['state'])) return fail('out_of_range', `hosts[${i}].state`);
    if (typeof e['reason'] !== 'string' || e['reason'].length > LIMITS.maxReasonLength) {
      return fail('wrong_type', `hosts[${i}].reason`);
    }
    if (typeof e['since'] !== 'number') return fail('wrong_type', `hosts[${i}].since`);
    const pw = e['pick_weight'];
    if (typeof pw !== 'number' || !(pw >= 0 && pw <= LIMITS.maxWeight)) return fail('out_of_range', `hosts[${i}].pick_weight`);
  }
  return { ok: true, value: m as unknown as RouteState };
}

export function validateRouteEvent(m: unknown): Validated<RouteEvent> {
  if (!isObject(m)) return fail('wrong_type', 'route event must be a map');
  const h = checkHeader(m);
  if (h) return h;
  if (!isIPv4(m['ip'])) return fail('out_of_range', 'ip');
  if (!isPort(m['port'])) return fail('out_of_range', 'port');
  const from = m['from'];
  const to = m['to'];
  if (typeof from !== 'string' || (from !== 'none' && !HOST_STATES.has(from))) return fail('out_of_range', 'from');
  if (typeof to !== 'string' || (to !== 'none' && !HOST_STATES.has(to))) return fail('out_of_range', 'to');
  if (typeof m['reason'] !== 'string' || m['reason'].length > LIMITS.maxReasonLength) return fail('wrong_type', 'reason');
  if (typeof m['version'] !== 'number') return fail('wrong_type', 'version');
  const fig = m['figures'];
  if (!isObject(fig)) return fail('wrong_type', 'figures must be a map');
  for (const [k, v] of Object.entries(fig)) {
    if (typeof v !== 'number') return fail('wrong_type', `figures.${k} must be a number`);
  }
  return { ok: true, value: m as unknown as RouteEvent };
}
