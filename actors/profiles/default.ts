/**
 * The `default` profile: Lars' rules for healthy hosts (./lars.ts) plus
 * latency outliers, ejection time growing with repeated ejections, recovery
 * through `probing` with trial traffic, and (in the route's mechanism, by its
 * parameters) the ejection cap and panic mode. docs/state-machine.md
 * describes each rule and its defaults.
 */
import { hostMachine } from '../host-machine.ts';
import { ejectionTimes, type EjectionTimes } from '../ejection.ts';
import type { RouteParams } from '../params.ts';
import { count, enterLars, hostTick, hostTickDue, idleReport, setIdle } from './lars.ts';
import type { PolicyHost, ProfilePolicy, RouteMechanism } from './types.ts';

export class DefaultPolicy implements ProfilePolicy {
  readonly profile = 'default' as const;
  readonly machine = hostMachine;
  readonly params: RouteParams;
  readonly ejection: EjectionTimes;
  private readonly route: RouteMechanism;
  /** Scratch for the peers' latencies at a tick (reused: ticks allocate nothing per host). */
  private lat: number[] = [];

  constructor(params: RouteParams, route: RouteMechanism) {
    this.params = params;
    this.route = route;
    // the n-th ejection lasts n × base_ejection_time, up to max_ejection_time; longer after a failed probe
    this.ejection = ejectionTimes('default', params);
  }

  report(s: PolicyHost, ok: boolean, latencyMs: number, now: number): void {
    const p = this.params;
    count(s, ok);
    switch (s.state) {
      case 'healthy':
        idleReport(s, ok, now, p, this.route);
        return;
      case 'probing': {
        const slow = this.isSlow(latencyMs);
        if (ok && !slow) {
          if (s.continSucc >= p.probe_succ_limit) this.route.send(s, { type: 'RECOVER', reason: 'probe_success', now }, now);
        } else {
          // An error, or a success as slow as an outlier: not a recovery.
          s.continSucc = 0;
          // A failed call as slow as an outlier left its caller waiting far
          // beyond the peers (a caller's timeout): the host is still sick, and
          // the round ends at once. Only for a call picked within this round
          // (it took no longer than the round has lasted): a call picked
          // before it says nothing of the host now. Other failures count one
          // each: a fast error may be a leftover or noise.
          s.probeErr = !ok && slow && latencyMs <= now - s.since ? p.probe_err_limit : s.probeErr + 1;
          if (s.probeErr >= p.probe_err_limit) this.route.eject(s, 'probe_failure', now);
        }
        return;
      }
      case 'overloaded':
        // Out until its ejection time is over (the tick); reports of calls still in flight only count.
        return;
      case 'draining':
        return;
    }
  }

  /** A latency an outlier would have, judged against the peers' median at the last tick. */
  private isSlow(latencyMs: number): boolean {
    const p = this.params;
    const m = this.route.peerLatency;
    return m > 0 && latencyMs > m * p.latency_factor && latencyMs - m >= p.latency_min_gap_ms;
  }

  tick(s: PolicyHost, now: number): void {
    hostTick(this, s, now, this.route);
  }

  tickDue(s: PolicyHost): number {
    return hostTickDue(this, s);
  }

  /** Latency outliers: a healthy host far slower than the median of its peers is ejected. */
  afterTick(now: number): void {
    const p = this.params;
    const hosts = this.route.hosts();
    const median = this.peerMedian(hosts);
    this.route.peerLatency = median;
    if (this.lat.length < 3) return;
    let ejected = false;
    for (const s of hosts) {
      if (s.state !== 'healthy' || s.latCalls < p.latency_min_calls) continue;
      if (s.latency > median * p.latency_factor && s.latency - median >= p.latency_min_gap_ms) {
        ejected = this.route.eject(s, 'latency_outlier', now) || ejected;
      }
    }
    // the peers are the healthy hosts: after an ejection, the median of those left (what the next tick would compute)
    if (ejected) this.route.peerLatency = this.peerMedian(hosts);
  }

  /** The median latency of the healthy hosts with enough calls (their mean when fewer than three); `lat` holds them. */
  private peerMedian(hosts: readonly PolicyHost[]): number {
    const p = this.params;
    const lat = this.lat;
    lat.length = 0;
    for (const s of hosts) if (s.state === 'healthy' && s.latCalls >= p.latency_min_calls) lat.push(s.latency);
    if (lat.length < 3) return lat.length > 0 ? lat.reduce((a, b) => a + b, 0) / lat.length : 0;
    lat.sort((a, b) => a - b);
    const mid = lat.length >> 1;
    return lat.length % 2 === 1 ? lat[mid]! : (lat[mid - 1]! + lat[mid]!) / 2;
  }

  enter(s: PolicyHost, now: number): void {
    if (s.state === 'probing') {
      // The ejection is over: the host is judged afresh, on its trial calls only
      // (reports of calls that were in flight while it was out do not count).
      s.probeErr = 0;
      s.continSucc = 0;
      s.continErr = 0;
      s.vsucc = 0;
      s.verr = 0;
      s.rsucc = 0;
      s.rerr = 0;
      s.windowStart = now;
      s.latCalls = 0;
      s.latency = 0;
      s.suspect = false;
      return;
    }
    enterLars(s, now, this.params);
  }

  setIdle(s: PolicyHost, now: number): void {
    setIdle(s, now, this.params);
  }

  pickWeight(s: PolicyHost): number {
    if (s.state === 'healthy') return s.weight;
    // trial traffic
    if (s.state === 'probing') return Math.max(1, Math.round((s.weight * this.params.probe_weight_percent) / 100));
    return 0;
  }

  adopt(_s: PolicyHost, _now: number): void {
    // Every state of the lars profile exists here: an overloaded host's ejection ends at its ejectUntil.
  }

  ejectionDue(s: PolicyHost): number {
    return s.ejectUntil;
  }
}
