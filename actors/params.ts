/**
 * Parameters of the host-state machine, by profile: one table, one row per
 * parameter with its default, the lars profile's value, its bounds and what
 * it means. The parameters' type, the profiles' values, the validation of a
 * registry entry's overrides and the docs check (test/unit/params-docs.test.ts)
 * all come from it: a new parameter is one row here and one in
 * docs/state-machine.md's table, which explains each one and why its default
 * is what it is. Names and defaults of Lars' own parameters are Lars' (lb_agent
 * conf); times are seconds as in Lars.
 */
import type { Profile } from '../schemas/messages.ts';

/** One parameter. */
export interface ParamSpec {
  /** The default profile's value. */
  readonly default: number;
  /**
   * The lars profile's value. Absent: Lars has no such parameter (`—` in the
   * docs' lars column) and the lars profile keeps the default.
   */
  readonly lars?: number;
  /** One of Lars' own parameters (lb_agent conf): its name and default are Lars'. */
  readonly lbAgent?: true;
  /** Bounds a registry entry's override must lie in, inclusive. */
  readonly min: number;
  readonly max: number;
  /** What it means. */
  readonly doc: string;
}

export const PARAMS = {
  probe_num: { default: 10, lars: 10, lbAgent: true, min: 0, max: 1_000_000, doc: 'After probe_num picks among healthy hosts, one pick goes to an overloaded host (agent side).' },
  init_succ_cnt: { default: 180, lars: 180, lbAgent: true, min: 0, max: 1_000_000, doc: 'Virtual successes a host starts with when it becomes healthy.' },
  init_err_cnt: { default: 5, lars: 5, lbAgent: true, min: 0, max: 1_000_000, doc: 'Virtual errors a host starts with when it becomes overloaded.' },
  err_rate: { default: 0.1, lars: 0.1, lbAgent: true, min: 0, max: 1, doc: 'healthy → overloaded when verr / (vsucc + verr) > err_rate.' },
  succ_rate: { default: 0.5, lars: 0.5, lbAgent: true, min: 0, max: 1, doc: 'overloaded → healthy when vsucc / (vsucc + verr) > succ_rate.' },
  contin_err_limit: { default: 15, lars: 15, lbAgent: true, min: 1, max: 1_000_000, doc: 'healthy → overloaded at this many consecutive errors.' },
  contin_succ_limit: { default: 15, lars: 15, lbAgent: true, min: 1, max: 1_000_000, doc: 'overloaded → healthy at this many consecutive successes.' },
  window_err_rate: { default: 0.7, lars: 0.7, lbAgent: true, min: 0, max: 1, doc: 'Real error rate over one idle_timeout window that overloads a host.' },
  idle_timeout: { default: 15, lars: 15, lbAgent: true, min: 0.01, max: 86_400, doc: 'Window length for healthy hosts, s: at its end the counters reset (or the host is overloaded by window_err_rate).' },
  overload_timeout: { default: 15, lars: 15, lbAgent: true, min: 0.01, max: 86_400, doc: 'An overloaded host is forced back after this long, s (lars profile); see base_ejection_time for default.' },
  latency_factor: { default: 5, min: 1, max: 1_000, doc: "A host whose latency is above latency_factor × the peers' median is an outlier..." },
  latency_min_gap_ms: { default: 20, min: 0, max: 3_600_000, doc: '...and above the median by at least this many ms (ignores noise on fast routes).' },
  latency_min_calls: { default: 20, min: 1, max: 1_000_000, doc: 'Calls a host needs in its window before its latency is judged.' },
  latency_alpha: { default: 0.1, min: 0.0001, max: 1, doc: "Weight of each new latency sample in the host's moving average." },
  base_ejection_time: { default: 5, min: 0.01, max: 86_400, doc: 'First ejection lasts this long, s; the n-th lasts n times as long...' },
  max_ejection_time: { default: 300, min: 0.01, max: 86_400, doc: '...up to this cap, s.' },
  probe_failure_multiplier: {
    default: 3,
    min: 1,
    max: 1_000,
    doc: 'An ejection that follows a failed probe lasts this many times what the ejection count alone gives: the host stayed sick through its whole ejection, and each probe round costs a caller\'s call.',
  },
  ejection_decay_time: { default: 60, min: 0.01, max: 86_400, doc: "A healthy host's ejection count drops by one after this long without ejection, s." },
  max_ejection_percent: { default: 50, lars: 100, min: 0, max: 100, doc: "At most this percent of a route's hosts are ejected (overloaded or probing) at once; at least one may be." },
  panic_threshold: { default: 50, lars: 0, min: 0, max: 100, doc: 'Below this percent of well hosts the route is in panic and traffic spreads over every non-draining host.' },
  probe_weight_percent: { default: 10, min: 1, max: 100, doc: 'A probing host gets this percent of its weight as trial traffic.' },
  probe_succ_limit: { default: 5, min: 1, max: 1_000_000, doc: 'Consecutive successes that bring a probing host back.' },
  probe_err_limit: {
    default: 2,
    min: 1,
    max: 1_000_000,
    doc: "Errors that send a probing host back to overloaded, with a longer ejection. A trial call that fails as slowly as a latency outlier (a caller's timeout) counts for all of them: one such call ends the round.",
  },
  probe_trial_timeout: {
    default: 2,
    min: 0,
    max: 3_600,
    doc: "One agent at a time sends a probing host its trial calls (named in the route state); when it reported nothing of the host for this long, s, another one takes over. Set above the callers' timeout. 0: every agent may send trials (each within its own bound).",
  },
  drain_time: { default: 10, min: 0, max: 86_400, doc: 'A host removed from the registry drains (no picks, reports still taken) this long, s, then leaves the route.' },
  min_requests: {
    default: 10,
    lars: 1,
    min: 1,
    max: 1_000_000,
    doc: "Calls a host needs in its window before the window's real error rate (window_err_rate) may eject it: a single failure on an idle host does not (lars profile: 1, Lars' own rule: any call).",
  },
  eject_at_least_one: {
    default: 1,
    lars: 1,
    min: 0,
    max: 1,
    doc: "1: at least one host may always be ejected, whatever max_ejection_percent gives (Envoy's rule; in a one- or two-host route panic or the other host then carries the traffic). 0: the cap is floor(hosts × max_ejection_percent / 100) strictly, so a route too small for the percent ejects nobody.",
  },
  load_weighting: {
    default: 1,
    lars: 0,
    min: 0,
    max: 1,
    doc: "1: a healthy host's pick weight comes from its reported load (gRPC's weighted round robin): qps / (utilization + error share × error_utilization_penalty), scaled so the weighted hosts' mean is their mean registry weight. Only hosts that report utilization get one. 0: off.",
  },
  weight_update_period: { default: 1, lars: 1, min: 0.1, max: 3_600, doc: 'Load weights are computed from the calls, errors and utilization of this period, s.' },
  weight_blackout_period: { default: 10, lars: 10, min: 0, max: 86_400, doc: "A host's load weight is used only once it has had one for this long, s (a new or returning host's first figures are noisy)." },
  weight_expiration_period: { default: 180, lars: 180, min: 0.1, max: 86_400, doc: 'A load weight not renewed for this long lapses, s: the host falls back to its registry weight (and blackout starts again).' },
  error_utilization_penalty: { default: 1, lars: 1, min: 0, max: 1_000, doc: "How much errors count against a host's load weight: the error share of its calls, times this, is added to its utilization." },
  weight_change_percent: { default: 5, lars: 5, min: 0, max: 100, doc: "A new route version is published for load weights only when a host's pick weight moved by at least this percent." },
  slow_start_window: { default: 10, lars: 0, min: 0, max: 86_400, doc: 'A host that comes back healthy (or joins a running route) ramps its pick weight up over this long, s; 0: off.' },
  slow_start_min_percent: { default: 10, lars: 10, min: 1, max: 100, doc: '...starting from this percent of its weight.' },
  call_policy: {
    default: 1,
    min: 0,
    max: 1,
    doc: "1: the route computes its call policy from every caller's reports (retry and hedge budgets, hedge delay, shedding) and publishes it with its state. 0: off; agents keep their own defaults.",
  },
  call_window: { default: 10, min: 1, max: 600, doc: "The sliding window of the route's call policy, s: first attempts, retries, hedges, accepts and latencies of every caller over this long." },
  retry_budget_percent: {
    default: 10,
    min: 0,
    max: 10_000,
    doc: "Retries may add at most this percent of the route's first attempts over the window, all callers together (each agent enforces its share locally).",
  },
  retry_min_per_sec: { default: 3, min: 0, max: 1_000_000, doc: '...plus this many retries per second for the whole route, shared among its callers (a floor for routes called rarely).' },
  hedge_percentile: { default: 99, min: 50, max: 99.9, doc: "An idempotent call with no answer after this percentile of the route's measured latency may be hedged to another host..." },
  hedge_min_delay_ms: { default: 1, min: 0, max: 3_600_000, doc: '...the hedge delay is at least this, ms...' },
  hedge_max_delay_ms: { default: 1000, min: 0, max: 3_600_000, doc: '...and at most this, ms.' },
  hedge_budget_percent: { default: 5, min: 0, max: 100, doc: "Hedges may add at most this percent of the route's first attempts over the window; 0: no hedging." },
  shed_k: {
    default: 2,
    min: 0,
    max: 100,
    doc: "Client-side adaptive throttling (the SRE book's K): agents refuse max(0, (requests - K × accepts) / (requests + 1)) of new calls, requests and accepts of every caller over the last 2 s; 0: off.",
  },
} as const satisfies Record<string, ParamSpec>;

export type ParamName = keyof typeof PARAMS;

/** A route's resolved parameters: every one of the table's, by name (see PARAMS for what each means). */
export type RouteParams = { [K in ParamName]: number };

/** Lars' own parameters (lb_agent conf). */
export type LarsParams = { [K in ParamName as (typeof PARAMS)[K] extends { lbAgent: true } ? K : never]: number };

/** The default profile's parameters: all of them. */
export type DefaultParams = RouteParams;

/** The parameters' names, in the table's order. */
export const PARAM_NAMES = Object.keys(PARAMS) as ParamName[];

const SPECS: ReadonlyArray<readonly [ParamName, ParamSpec]> = PARAM_NAMES.map((k) => [k, PARAMS[k]]);

/**
 * A table value as the engine best holds it: an integer as a small integer.
 * Read from the table (whose entries mix integers and fractions), 10 comes out
 * as a boxed double, and a parameter set built from such values boxes every
 * number again in each route's copy (672 against 400 bytes a route).
 */
const small = (v: number): number => (Number.isInteger(v) && Math.abs(v) < 2 ** 30 ? v | 0 : v);

/** Lars' shipped defaults (lb_agent conf). */
export const LARS_DEFAULTS = Object.fromEntries(SPECS.filter(([, s]) => s.lbAgent === true).map(([k, s]) => [k, small(s.default)])) as LarsParams;

/** The default profile's parameters. (Built with Object.fromEntries: an object of fixed shape, read on the report path.) */
export const DEFAULT_PARAMS = Object.fromEntries(SPECS.map(([k, s]) => [k, small(s.default)])) as RouteParams;

/** Lars has no cap, no panic, no latency rule, no load weights and no slow start: the lars profile turns them off. */
const LARS_PROFILE = Object.fromEntries(SPECS.map(([k, s]) => [k, small(s.lars ?? s.default)])) as RouteParams;

/** Each parameter's bounds, by name (a Map: no name of Object.prototype is a parameter). */
const BOUNDS = new Map<string, readonly [min: number, max: number]>(SPECS.map(([k, s]) => [k, [s.min, s.max]]));

export type ParamsResult = { ok: true; params: RouteParams } | { ok: false; error: string };

/** The profile's defaults with `overrides` applied; unknown names or out-of-range values are errors. */
export function resolveParams(profile: Profile, overrides: Record<string, number> = {}): ParamsResult {
  const params: RouteParams = { ...(profile === 'lars' ? LARS_PROFILE : DEFAULT_PARAMS) };
  for (const [k, v] of Object.entries(overrides)) {
    const b = BOUNDS.get(k);
    if (!b) return { ok: false, error: `unknown parameter ${k}` };
    if (typeof v !== 'number' || !Number.isFinite(v) || v < b[0] || v > b[1]) {
      return { ok: false, error: `parameter ${k} must be in ${b[0]}..${b[1]}, got ${String(v)}` };
    }
    params[k as ParamName] = v;
  }
  return { ok: true, params };
}

/** The profile's defaults with `overrides` applied, or the profile's defaults alone when an override is bad (the caller reports it). */
export function paramsOrDefaults(profile: Profile, overrides: Record<string, number> = {}): RouteParams {
  const r = resolveParams(profile, overrides);
  return r.ok ? r.params : (resolveParams(profile) as { ok: true; params: RouteParams }).params;
}
