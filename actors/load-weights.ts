/**
 * Pick weights from the hosts' reported load, and slow start: what a
 * healthy host's published `pick_weight` is when it is not simply its
 * registry weight.
 *
 * - **Load weights** follow gRPC's weighted round robin (proposal A58): per
 *   host, over each `weight_update_period`, the calls and errors the agents
 *   reported and the utilization the host reported with its answers give
 *   `weight = qps / (utilization + error share × error_utilization_penalty)`
 *   (A58's `eps / qps` is the error share). For hosts alike but for their
 *   capacity, `qps / utilization` is the rate the host would serve fully
 *   busy: its capacity, whatever share of the traffic it gets now. A weight
 *   is used only once the host has had one for `weight_blackout_period`, and
 *   lapses when not renewed for `weight_expiration_period`. It is not renewed
 *   while the host is out of `healthy`, but kept: an ejection says nothing
 *   of a host's capacity, so a host back from one is weighted at once by
 *   what it served before (A58 starts afresh when a connection is lost; the
 *   counterpart here is a host leaving the route, draining). The weights
 *   in use are scaled so that their mean is the mean registry weight of the
 *   same hosts (ejected ones with a kept weight included, so that the scale
 *   does not move when a host is ejected or comes back); a host without one
 *   keeps its registry weight (A58 gives it the mean weight: the same when
 *   registry weights are equal).
 * - **Slow start** follows Envoy's: a host that comes back healthy (from
 *   probing, a drain, an operator's action) or joins a running route gets
 *   `slow_start_min_percent` of its weight (its load weight when it has one
 *   in use, else its registry weight) at once, growing linearly to all of it
 *   over `slow_start_window`. Hosts created with the route do not ramp (all
 *   of them would, which changes nothing).
 *
 * A host's pick weight in force (`balance`) changes only at an update, and
 * only by at least `weight_change_percent`, so that a route state is not
 * published every period for noise. Pure: time comes in as `now`, ms.
 */
import { LIMITS, type HostState } from '../schemas/messages.ts';
import type { RouteParams } from './params.ts';

/** A time field that holds no time. */
export const NO_TIME = -1;

/** The per-host fields load weighting keeps (on the route's host slot). */
export interface LoadHost {
  readonly weight: number;
  readonly state: HostState;
  /** Calls and errors reported in the current period. */
  loadCalls: number;
  loadErrors: number;
  /** Utilization samples of the current period: their sum and count. */
  utilSum: number;
  utilSamples: number;
  /** The host's load weight (qps / (utilization + error share × penalty)) at its last renewal; 0: none. */
  loadWeight: number;
  /** Since when the host has had a load weight, ms (A58's non_empty_since); NO_TIME: none. */
  loadSince: number;
  /** When the load weight was last renewed, ms. */
  loadTs: number;
  /** When the host's slow start began, ms; NO_TIME: not ramping. */
  rampStart: number;
  /** The pick weight in force for a healthy host from load weights and slow start; 0: its registry weight. */
  balance: number;
}

/** The parameters load weighting reads (a route's RouteParams). */
export type LoadWeightParams = Pick<
  RouteParams,
  | 'load_weighting'
  | 'weight_update_period'
  | 'weight_blackout_period'
  | 'weight_expiration_period'
  | 'error_utilization_penalty'
  | 'weight_change_percent'
  | 'slow_start_window'
  | 'slow_start_min_percent'
>;

/**
 * gRPC's load weight of one host: `qps / (utilization + errorShare × penalty)`,
 * 0 (no weight) when the host served nothing or reported no utilization,
 * or a utilization so near 0 that the quotient is not a number (a denormal
 * such as 5e-324 gives Infinity, which no checkpoint could hold).
 */
export function loadWeight(qps: number, utilization: number, errorShare: number, penalty: number): number {
  if (!(qps > 0) || !(utilization > 0)) return 0;
  const w = qps / (utilization + errorShare * penalty);
  return Number.isFinite(w) ? w : 0;
}

/** Share of its weight a host ramping since `rampStart` gets at `now` (1: the ramp is over). */
export function slowStartFactor(rampStart: number, now: number, p: Pick<LoadWeightParams, 'slow_start_window' | 'slow_start_min_percent'>): number {
  const windowMs = p.slow_start_window * 1000;
  if (rampStart === NO_TIME || windowMs <= 0) return 1;
  const age = now - rampStart;
  if (age >= windowMs) return 1;
  const min = p.slow_start_min_percent / 100;
  const f = age > 0 ? age / windowMs : 0;
  return f > min ? f : min;
}

/** `w` rounded to 1 % of `unit` (a registry weight of 100 gives integers), within the contract's bounds. */
function quantize(w: number, unit: number): number {
  const q = unit / 100;
  const r = Math.round(w / q) * q;
  if (r < q) return q;
  return r > LIMITS.maxWeight ? LIMITS.maxWeight : r;
}

/** Whether `next` differs from `cur` by at least `pct` percent of the larger (or one of them is 0 and the other not). */
function moved(cur: number, next: number, pct: number): boolean {
  if (cur === next) return false;
  if (cur === 0 || next === 0) return true;
  const big = cur > next ? cur : next;
  return Math.abs(next - cur) * 100 >= pct * big;
}

/** Forgets the figures of the current period. */
function clearPeriod(s: LoadHost): void {
  s.loadCalls = 0;
  s.loadErrors = 0;
  s.utilSum = 0;
  s.utilSamples = 0;
}

/** A batch's utilization samples (`[host index, utilization]`) added to its hosts (`map`: by the batch's host index; undefined: not in the route). */
export function addUtilization(map: ReadonlyArray<LoadHost | undefined>, util: ReadonlyArray<readonly [number, number]>): void {
  for (let i = 0; i < util.length; i++) {
    const u = util[i]!;
    const s = map[u[0]];
    if (s === undefined) continue;
    s.utilSum += u[1];
    s.utilSamples++;
  }
}

/** Forgets everything of a host's load (it is leaving the route, or load weighting is off). */
export function clearLoad(s: LoadHost): void {
  clearPeriod(s);
  s.loadWeight = 0;
  s.loadSince = NO_TIME;
  s.loadTs = NO_TIME;
}

export class LoadWeighting {
  params: LoadWeightParams;
  /** Start of the current period, ms. */
  periodStart: number;
  /**
   * Pick weight per unit of load weight at the last update (the weights in
   * use scaled to their hosts' mean registry weight); 0 when no host had one.
   */
  unit = 0;

  constructor(params: LoadWeightParams, now: number) {
    this.params = params;
    this.periodStart = now;
  }

  /** Whether the current period is over at `now`. */
  due(now: number): boolean {
    return now - this.periodStart >= this.params.weight_update_period * 1000;
  }

  /** When the current period is over (`due` from then on), ms. */
  dueAt(): number {
    return this.periodStart + this.params.weight_update_period * 1000;
  }

  /** Whether `s` has a load weight that is in use (renewed, past its blackout) at `now`. */
  private inUse(s: LoadHost, now: number): boolean {
    return s.loadWeight > 0 && now - s.loadSince >= this.params.weight_blackout_period * 1000;
  }

  /**
   * A host entered `healthy` from another state, or joined a running route:
   * its slow start begins, toward its load weight when it has one in use.
   */
  enterHealthy(s: LoadHost, now: number): void {
    clearPeriod(s);
    s.rampStart = NO_TIME;
    s.balance = 0;
    const base = this.unit > 0 && this.inUse(s, now) ? s.loadWeight * this.unit : 0;
    if (this.params.slow_start_window > 0) {
      s.rampStart = now;
      s.balance = quantize((base > 0 ? base : s.weight) * slowStartFactor(now, now, this.params), s.weight);
    } else if (base > 0) {
      s.balance = quantize(base, s.weight);
    }
  }

  /** A host left `healthy` (ejected, probing): its slow start ends; its load weight is kept, not renewed, until it lapses. */
  leaveHealthy(s: LoadHost): void {
    clearPeriod(s);
    s.rampStart = NO_TIME;
    s.balance = 0;
  }

  /** A host is draining (leaving the route, or an operator's maintenance): it starts afresh if it comes back. */
  forget(s: LoadHost): void {
    clearLoad(s);
    s.rampStart = NO_TIME;
    s.balance = 0;
  }

  /**
   * Ends the current period at `now`: renews, blacks out and expires the
   * healthy hosts' load weights, and sets each one's pick weight in force.
   * Returns true when a host's pick weight in force changed.
   */
  update(hosts: readonly LoadHost[], now: number): boolean {
    const p = this.params;
    const dtS = (now - this.periodStart) / 1000;
    this.periodStart = now;
    const blackoutMs = p.weight_blackout_period * 1000;
    const expiryMs = p.weight_expiration_period * 1000;
    let n = 0;
    let sumLoad = 0;
    let sumWeight = 0;
    for (const s of hosts) {
      if (p.load_weighting < 1) {
        clearLoad(s);
        continue;
      }
      if (s.state === 'healthy' && s.utilSamples > 0 && s.loadCalls > 0 && dtS > 0) {
        const w = loadWeight(s.loadCalls / dtS, s.utilSum / s.utilSamples, s.loadErrors / s.loadCalls, p.error_utilization_penalty);
        if (w > 0) {
          s.loadWeight = w;
          s.loadTs = now;
          if (s.loadSince === NO_TIME) s.loadSince = now;
        }
      }
      clearPeriod(s);
      if (s.loadWeight > 0 && now - s.loadTs >= expiryMs) {
        s.loadWeight = 0;
        s.loadSince = NO_TIME;
        s.loadTs = NO_TIME;
      }
      // hosts out for a while count too: the scale stays put when one is ejected
      if (s.loadWeight > 0 && now - s.loadSince >= blackoutMs) {
        n++;
        sumLoad += s.loadWeight;
        sumWeight += s.weight;
      }
    }
    this.unit = n > 0 ? sumWeight / sumLoad : 0;
    let changed = false;
    for (const s of hosts) {
      if (s.state !== 'healthy') continue;
      let w = 0;
      if (n > 0 && s.loadWeight > 0 && now - s.loadSince >= blackoutMs) w = s.loadWeight * this.unit;
      const f = slowStartFactor(s.rampStart, now, p);
      if (f >= 1) s.rampStart = NO_TIME;
      if (f < 1) w = (w > 0 ? w : s.weight) * f;
      const next = w > 0 ? quantize(w, s.weight) : 0;
      if (moved(s.balance, next, p.weight_change_percent)) {
        s.balance = next;
        changed = true;
      }
    }
    return changed;
  }
}
