/**
 * Parameters of the host-state machine, by profile. Names and defaults of the
 * `lars` profile are Lars' own (lb_agent conf); times are seconds as in Lars.
 * docs/state-machine.md explains each one and why its default is what it is.
 */
import type { Profile } from '../schemas/messages.ts';

export interface LarsParams {
  /** After probe_num picks among healthy hosts, one pick goes to an overloaded host (agent side). */
  probe_num: number;
  /** Virtual successes a host starts with when it becomes healthy. */
  init_succ_cnt: number;
  /** Virtual errors a host starts with when it becomes overloaded. */
  init_err_cnt: number;
  /** healthy → overloaded when verr / (vsucc + verr) > err_rate. */
  err_rate: number;
  /** overloaded → healthy when vsucc / (vsucc + verr) > succ_rate. */
  succ_rate: number;
  /** healthy → overloaded at this many consecutive errors. */
  contin_err_limit: number;
  /** overloaded → healthy at this many consecutive successes. */
  contin_succ_limit: number;
  /** Real error rate over one idle_timeout window that overloads a host. */
  window_err_rate: number;
  /** Window length for healthy hosts, s: at its end the counters reset (or the host is overloaded by window_err_rate). */
  idle_timeout: number;
  /** An overloaded host is forced back after this long, s (lars profile); see base_ejection_time for default. */
  overload_timeout: number;
}

export interface DefaultParams extends LarsParams {
  /** A host whose latency is above latency_factor × the peers' median is an outlier... */
  latency_factor: number;
  /** ...and above the median by at least this many ms (ignores noise on fast routes). */
  latency_min_gap_ms: number;
  /** Calls a host needs in its window before its latency is judged. */
  latency_min_calls: number;
  /** Weight of each new latency sample in the host's moving average. */
  latency_alpha: number;
  /** First ejection lasts this long, s; the n-th lasts n times as long... */
  base_ejection_time: number;
  /** ...up to this cap, s. */
  max_ejection_time: number;
  /**
   * An ejection that follows a failed probe lasts this many times what the
   * ejection count alone gives: the host stayed sick through its whole
   * ejection, and each probe round costs a caller's call.
   */
  probe_failure_multiplier: number;
  /** A healthy host's ejection count drops by one after this long without ejection, s. */
  ejection_decay_time: number;
  /** At most this percent of a route's hosts are ejected (overloaded or probing) at once; at least one may be. */
  max_ejection_percent: number;
  /** Below this percent of well hosts the route is in panic and traffic spreads over every non-draining host. */
  panic_threshold: number;
  /** A probing host gets this percent of its weight as trial traffic. */
  probe_weight_percent: number;
  /** Consecutive successes that bring a probing host back. */
  probe_succ_limit: number;
  /**
   * Errors that send a probing host back to overloaded, with a longer
   * ejection. A trial call that fails as slowly as a latency outlier (a
   * caller's timeout) counts for all of them: one such call ends the round.
   */
  probe_err_limit: number;
  /**
   * One agent at a time sends a probing host its trial calls (named in the
   * route state); when it reported nothing of the host for this long, s,
   * another one takes over. Set above the callers' timeout. 0: every agent
   * may send trials (each within its own bound).
   */
  probe_trial_timeout: number;
  /** A host removed from the registry drains (no picks, reports still taken) this long, s, then leaves the route. */
  drain_time: number;
  /**
   * Calls a host needs in its window before the window's real error rate
   * (window_err_rate) may eject it: a single failure on an idle host does not
   * (lars profile: 1, Lars' own rule: any call).
   */
  min_requests: number;
  /**
   * 1: at least one host may always be ejected, whatever max_ejection_percent
   * gives (Envoy's rule; in a one- or two-host route panic or the other host
   * then carries the traffic). 0: the cap is floor(hosts × max_ejection_percent
   * / 100) strictly, so a route too small for the percent ejects nobody.
   */
  eject_at_least_one: number;
  /**
   * 1: a healthy host's pick weight comes from its reported load (gRPC's
   * weighted round robin): qps / (utilization + error share ×
   * error_utilization_penalty), scaled so the weighted hosts' mean is their
   * mean registry weight. Only hosts that report utilization get one. 0: off.
   */
  load_weighting: number;
  /** Load weights are computed from the calls, errors and utilization of this period, s. */
  weight_update_period: number;
  /** A host's load weight is used only once it has had one for this long, s (a new or returning host's first figures are noisy). */
  weight_blackout_period: number;
  /** A load weight not renewed for this long lapses, s: the host falls back to its registry weight (and blackout starts again). */
  weight_expiration_period: number;
  /** How much errors count against a host's load weight: the error share of its calls, times this, is added to its utilization. */
  error_utilization_penalty: number;
  /** A new route version is published for load weights only when a host's pick weight moved by at least this percent. */
  weight_change_percent: number;
  /** A host that comes back healthy (or joins a running route) ramps its pick weight up over this long, s; 0: off. */
  slow_start_window: number;
  /** ...starting from this percent of its weight. */
  slow_start_min_percent: number;
}

export type RouteParams = DefaultParams;

/** Lars' shipped defaults (lb_agent conf). */
export const LARS_DEFAULTS: LarsParams = {
  probe_num: 10,
  init_succ_cnt: 180,
  init_err_cnt: 5,
  err_rate: 0.1,
  succ_rate: 0.5,
  contin_err_limit: 15,
  contin_succ_limit: 15,
  window_err_rate: 0.7,
  idle_timeout: 15,
  overload_timeout: 15,
};

export const DEFAULT_PARAMS: DefaultParams = {
  ...LARS_DEFAULTS,
  latency_factor: 5,
  latency_min_gap_ms: 20,
  latency_min_calls: 20,
  latency_alpha: 0.1,
  base_ejection_time: 5,
  max_ejection_time: 300,
  probe_failure_multiplier: 3,
  ejection_decay_time: 60,
  max_ejection_percent: 50,
  panic_threshold: 50,
  probe_weight_percent: 10,
  probe_succ_limit: 5,
  probe_err_limit: 2,
  probe_trial_timeout: 2,
  drain_time: 10,
  min_requests: 10,
  eject_at_least_one: 1,
  load_weighting: 1,
  weight_update_period: 1,
  weight_blackout_period: 10,
  weight_expiration_period: 180,
  error_utilization_penalty: 1,
  weight_change_percent: 5,
  slow_start_window: 10,
  slow_start_min_percent: 10,
};

/** Lars has no cap, no panic, no latency rule, no load weights and no slow start: the lars profile turns them off. */
const LARS_PROFILE: DefaultParams = {
  ...DEFAULT_PARAMS,
  ...LARS_DEFAULTS,
  max_ejection_percent: 100,
  panic_threshold: 0,
  min_requests: 1,
  load_weighting: 0,
  slow_start_window: 0,
};

const BOUNDS: Record<keyof DefaultParams, [min: number, max: number]> = {
  probe_num: [0, 1_000_000],
  init_succ_cnt: [0, 1_000_000],
  init_err_cnt: [0, 1_000_000],
  err_rate: [0, 1],
  succ_rate: [0, 1],
  contin_err_limit: [1, 1_000_000],
  contin_succ_limit: [1, 1_000_000],
  window_err_rate: [0, 1],
  idle_timeout: [0.01, 86_400],
  overload_timeout: [0.01, 86_400],
  latency_factor: [1, 1_000],
  latency_min_gap_ms: [0, 3_600_000],
  latency_min_calls: [1, 1_000_000],
  latency_alpha: [0.0001, 1],
  base_ejection_time: [0.01, 86_400],
  max_ejection_time: [0.01, 86_400],
  probe_failure_multiplier: [1, 1_000],
  ejection_decay_time: [0.01, 86_400],
  max_ejection_percent: [0, 100],
  panic_threshold: [0, 100],
  probe_weight_percent: [1, 100],
  probe_succ_limit: [1, 1_000_000],
  probe_err_limit: [1, 1_000_000],
  probe_trial_timeout: [0, 3_600],
  drain_time: [0, 86_400],
  min_requests: [1, 1_000_000],
  eject_at_least_one: [0, 1],
  load_weighting: [0, 1],
  weight_update_period: [0.1, 3_600],
  weight_blackout_period: [0, 86_400],
  weight_expiration_period: [0.1, 86_400],
  error_utilization_penalty: [0, 1_000],
  weight_change_percent: [0, 100],
  slow_start_window: [0, 86_400],
  slow_start_min_percent: [1, 100],
};

export const PARAM_NAMES = Object.keys(BOUNDS) as Array<keyof DefaultParams>;

export type ParamsResult = { ok: true; params: RouteParams } | { ok: false; error: string };

/** The profile's defaults with `overrides` applied; unknown names or out-of-range values are errors. */
export function resolveParams(profile: Profile, overrides: Record<string, number> = {}): ParamsResult {
  const params: RouteParams = { ...(profile === 'lars' ? LARS_PROFILE : DEFAULT_PARAMS) };
  for (const [k, v] of Object.entries(overrides)) {
    const b = BOUNDS[k as keyof DefaultParams];
    if (!b) return { ok: false, error: `unknown parameter ${k}` };
    if (typeof v !== 'number' || !Number.isFinite(v) || v < b[0] || v > b[1]) {
      return { ok: false, error: `parameter ${k} must be in ${b[0]}..${b[1]}, got ${String(v)}` };
    }
    params[k as keyof DefaultParams] = v;
  }
  return { ok: true, params };
}
