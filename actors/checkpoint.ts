/**
 * A route actor's full state as plain JSON, for restoring it exactly on
 * another node (failover, hand-over of a partition).
 *
 * The published RouteState is what agents need; it lacks what the route
 * node needs to go on deciding exactly where the previous owner stopped:
 * Lars' counters, windows, probing progress, ejection counts and deadlines,
 * suspect marks, the peers' latency median, unpublished events.
 *
 * Times are absolute ms since the Unix epoch, as the actor keeps them: a
 * deadline taken on one node is honoured on the next as it is. Node clocks
 * agree to well under the windows and ejection times (seconds); a skew shifts
 * a pending window or ejection by that skew, nothing more.
 */
import type { HostState, Profile, Reason, RouteEvent } from '../schemas/messages.ts';
import { hostFieldError, type HostCheckpoint } from './host-slot.ts';

/** A transition not yet published (its route version is given at the next flush). */
export type PendingRouteEvent = Omit<RouteEvent, 'version'>;

/** One host's checkpoint (./host-slot.ts). */
export type { HostCheckpoint } from './host-slot.ts';

export interface RouteCheckpoint {
  v: 1;
  modid: number;
  cmdid: number;
  /** When it was taken, ms. */
  ts: number;
  /** The last published route version (the next flush publishes version + 1). */
  version: number;
  profile: Profile;
  /** The route's effective parameters (profile defaults with the registry's overrides applied). */
  params: Record<string, number>;
  panic: boolean;
  removed: boolean;
  /** Changes not yet published. */
  dirty: boolean;
  /** Median latency of the healthy peers at the last tick, ms. */
  peer_latency: number;
  /** Start of the current load-weight period, ms (absent in older checkpoints: the period starts at the restore). */
  load_period_start?: number;
  /** Pick weight per unit of load weight at the last load-weight update (0: none; absent in older checkpoints). */
  load_unit?: number;
  /** The sender of the latest report batch, and the latest other than it (absent: none yet, or an older checkpoint). */
  last_sender?: string;
  prev_sender?: string;
  /** When each was last heard, ms (absent in older checkpoints: not heard lately, so not named for trial calls). */
  last_heard?: number;
  prev_heard?: number;
  /**
   * The call policy last published: `[retry_budget, retry_floor, hedge_delay_ms (-1: none), hedge_budget, shed]`
   * (absent: none published, or an older checkpoint). The window behind it starts afresh.
   */
  call_policy?: number[];
  /** In the route's order. */
  hosts: HostCheckpoint[];
  pending: PendingRouteEvent[];
}

export type CheckpointResult = { ok: true; value: RouteCheckpoint } | { ok: false; error: string };

// Exhaustive over the contract's unions (the compiler names a missing or unknown value); type-only imports.
const STATES: Record<HostState, true> = { healthy: true, overloaded: true, probing: true, draining: true };
const PROFILES: Record<Profile, true> = { lars: true, default: true };
const REASONS: Record<Reason, true> = {
  registered: true,
  consecutive_errors: true,
  error_rate: true,
  window_error_rate: true,
  latency_outlier: true,
  success_rate: true,
  consecutive_successes: true,
  timeout: true,
  probe_success: true,
  probe_failure: true,
  removed: true,
  readded: true,
  restored: true,
  profile_changed: true,
  admin_drain: true,
  admin_undrain: true,
  admin_eject: true,
  admin_clear: true,
};
const known = (set: Readonly<Record<string, true>>, x: unknown): boolean => typeof x === 'string' && Object.hasOwn(set, x);

const isState = (x: unknown): boolean => known(STATES, x);
const isReason = (x: unknown): boolean => known(REASONS, x);

function fail(error: string): CheckpointResult {
  return { ok: false, error };
}

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function finite(x: unknown): x is number {
  return typeof x === 'number' && Number.isFinite(x);
}

/**
 * Checks the shape of a checkpoint read from the network or a store (types,
 * known states and reasons, finite numbers). Pending events are checked for
 * the fields the actor reads back. It does not check that the parameters are
 * in range: the actor resolves them against the profile and falls back to the
 * profile's defaults.
 */
export function parseCheckpoint(x: unknown): CheckpointResult {
  if (!isRecord(x)) return fail('not an object');
  if (x['v'] !== 1) return fail('v must be 1');
  for (const k of ['modid', 'cmdid', 'ts', 'version', 'peer_latency'] as const) if (!finite(x[k])) return fail(`${k} must be a number`);
  for (const k of ['load_period_start', 'load_unit', 'last_heard', 'prev_heard'] as const) if (x[k] !== undefined && !finite(x[k])) return fail(`${k} must be a number`);
  for (const k of ['last_sender', 'prev_sender'] as const) if (x[k] !== undefined && typeof x[k] !== 'string') return fail(`${k} must be a string`);
  const cpol = x['call_policy'];
  if (cpol !== undefined && !(Array.isArray(cpol) && cpol.length === 5 && cpol.every(finite))) return fail('call_policy must be 5 numbers');
  if (!known(PROFILES, x['profile'])) return fail('unknown profile');
  for (const k of ['panic', 'removed', 'dirty'] as const) if (typeof x[k] !== 'boolean') return fail(`${k} must be a boolean`);
  const params = x['params'];
  if (!isRecord(params) || !Object.values(params).every(finite)) return fail('params must map names to numbers');
  const hosts = x['hosts'];
  if (!Array.isArray(hosts)) return fail('hosts must be an array');
  for (let i = 0; i < hosts.length; i++) {
    const h: unknown = hosts[i];
    if (!isRecord(h)) return fail(`hosts[${i}] is not an object`);
    const bad = hostFieldError(h, isState, isReason);
    if (bad !== undefined) return fail(`hosts[${i}].${bad}`);
  }
  const pending = x['pending'];
  if (!Array.isArray(pending)) return fail('pending must be an array');
  for (const [i, e] of pending.entries()) {
    if (!isRecord(e) || typeof e['ip'] !== 'string' || !finite(e['port']) || !finite(e['ts']) || !isRecord(e['figures'])) {
      return fail(`pending[${i}] is not a route event`);
    }
  }
  return { ok: true, value: x as unknown as RouteCheckpoint };
}
