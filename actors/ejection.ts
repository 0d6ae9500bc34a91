/**
 * How long an ejection lasts: one rule, used by the host machine's EJECT (a
 * threshold crossed, a failed probe, an operator's ejection), by the lars
 * profile's switch of a probing host (PROFILE_LARS) and by a route resumed
 * from a published state.
 *
 * Envoy's outlier detection (`ejectHost`): the n-th ejection of a host lasts
 * min(n × base, max). The default profile takes base_ejection_time and
 * max_ejection_time, and multiplies the base of an ejection that follows a
 * failed probe by probe_failure_multiplier (the host stayed sick through its
 * whole ejection: it is probed less often). The lars profile forces an
 * overloaded host back after overload_timeout, however often it was
 * overloaded (base = max). An operator's ejection lasts until cleared.
 */
import type { Profile, Reason } from '../schemas/messages.ts';
import type { RouteParams } from './params.ts';

/** What an ejection's length is computed from, ms. */
export interface EjectionTimes {
  /** The first ejection's length... */
  readonly baseMs: number;
  /** ...the cap on any. */
  readonly maxMs: number;
  /** The base of an ejection for `probe_failure` is multiplied by this (absent: 1). */
  readonly probeFailureMultiplier?: number;
}

/** An operator's ejection lasts until cleared: a hundred years. */
export const ADMIN_EJECT_MS = 100 * 365 * 24 * 3600 * 1000;

/** The times of an operator's ejection (`admin_eject`). */
export const ADMIN_EJECTION: EjectionTimes = { baseMs: ADMIN_EJECT_MS, maxMs: ADMIN_EJECT_MS };

/** The ejection times of a route with `profile` and parameters `p`. */
export function ejectionTimes(profile: Profile, p: RouteParams): EjectionTimes {
  if (profile === 'lars') {
    const ms = p.overload_timeout * 1000;
    return { baseMs: ms, maxMs: ms };
  }
  return { baseMs: p.base_ejection_time * 1000, maxMs: p.max_ejection_time * 1000, probeFailureMultiplier: p.probe_failure_multiplier };
}

/**
 * The length of a host's `n`-th ejection (n counts this one), for `reason`,
 * ms: min(n × base, max), the base multiplied after a failed probe.
 * `reason` undefined: an ejection whose cause is not weighed.
 */
export function ejectionMs(t: EjectionTimes, reason: Reason | undefined, n: number): number {
  const base = reason === 'probe_failure' && t.probeFailureMultiplier !== undefined ? t.baseMs * t.probeFailureMultiplier : t.baseMs;
  return Math.min(base * n, t.maxMs);
}
