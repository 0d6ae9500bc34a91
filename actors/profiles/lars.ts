/**
 * The `lars` profile: Lars' lb_agent rules, exactly.
 *
 * Each rule mirrors a line of Lars' `load_balance::report()`,
 * `host_info::set_idle()`, `host_info::set_overload()` and
 * `host_info::check_window()` (lb_agent, load_balance.cpp / host_info.cpp);
 * the Lars line is quoted next to it. Lars keeps a boolean `overload` per
 * host: `overload == false` is `healthy` here, `true` is `overloaded`. Lars
 * counts time in seconds (`time(NULL)`), this code in ms, so its timeouts are
 * compared as `now - ts >= timeout * 1000`.
 *
 * The default profile reuses the functions exported here for the rules it
 * shares with Lars (./default.ts).
 */
import { hostMachine, type HostMachine } from '../host-machine.ts';
import { ejectionMs, ejectionTimes, type EjectionTimes } from '../ejection.ts';
import type { RouteParams } from '../params.ts';
import type { Reason } from '../../schemas/messages.ts';
import type { PolicyHost, ProfilePolicy, RouteMechanism } from './types.ts';

/** Lars has no probing: recovery goes straight from overloaded to healthy. */
export const larsMachine: HostMachine = hostMachine.provide({ guards: { probesBeforeRecovery: () => false } });

/**
 * The reason stamped on a probing host that becomes overloaded because its
 * route switched to the lars profile (the registry entry changed).
 */
export const PROFILE_CHANGE_REASON: Reason = 'profile_changed';

/** Counting, the first step of `load_balance::report()`. */
export function count(s: PolicyHost, ok: boolean): void {
  if (ok) {
    // if (retcode == lars::RET_SUCC) {
    s.vsucc++; //   hi->vsucc ++;
    s.rsucc++; //   hi->rsucc ++;
    s.continSucc++; //   hi->contin_succ ++;
    s.continErr = 0; //   hi->contin_err = 0;
  } else {
    // else {
    s.verr++; //   hi->verr ++;
    s.rerr++; //   hi->rerr ++;
    s.continErr++; //   hi->contin_err ++;
    s.continSucc = 0; //   hi->contin_succ = 0;
  }
}

/**
 * `load_balance::report()` for an idle (healthy) host after counting: an error
 * may overload it, then the window is checked. Lars returns after
 * set_overload; a host the ejection cap holds in (default profile only: lars'
 * cap is 100 %) goes on to the window check like a host that did not trip.
 */
export function idleReport(s: PolicyHost, ok: boolean, now: number, p: RouteParams, route: RouteMechanism): void {
  // if (hi->overload == false && retcode != lars::RET_SUCC) {
  if (!ok) {
    // double err_rate = hi->verr * 1.0 / (hi->vsucc + hi->verr);
    // if (err_rate > lb_config.err_rate) overload = true;
    if (s.verr / (s.vsucc + s.verr) > p.err_rate) {
      // if (overload) { hi->set_overload(); ...; return; }
      if (route.eject(s, 'error_rate', now)) return;
    } else if (s.continErr >= p.contin_err_limit) {
      // if (overload == false && hi->contin_err >= (uint32_t)lb_config.contin_err_limit) overload = true;
      if (route.eject(s, 'consecutive_errors', now)) return;
    }
  }
  // if (hi->overload == false) { if (current_time - hi->idle_ts >= lb_config.idle_timeout) { ... } }
  if (now - s.windowStart >= p.idle_timeout * 1000) closeWindow(s, now, p, route);
}

/** `host_info::check_window()`: the real error rate of the window reaches window_err_rate. */
export function checkWindow(s: PolicyHost, p: RouteParams): boolean {
  // if (rsucc + rerr == 0) return false;
  const calls = s.rsucc + s.rerr;
  if (calls === 0) return false;
  // beyond Lars (min_requests is 1 in the lars profile): too few calls to judge
  if (calls < p.min_requests) return false;
  // if (rerr * 1.0 / (rsucc + rerr) >= lb_config.window_err_rate) return true;
  return s.rerr / calls >= p.window_err_rate;
}

/** The end of an idle host's window (`idle_timeout`): overloaded by check_window(), else a fresh window. */
export function closeWindow(s: PolicyHost, now: number, p: RouteParams, route: RouteMechanism): void {
  // if (hi->check_window() == true) { hi->set_overload(); ... }
  if (checkWindow(s, p) && route.eject(s, 'window_error_rate', now)) return;
  // else { hi->set_idle(); }
  route.renewWindow(s, now);
}

/** Lars checks the window on the next report; the tick checks it too, so an idle host's window closes as well. */
export function idleTick(s: PolicyHost, now: number, p: RouteParams, route: RouteMechanism): void {
  if (now - s.windowStart >= p.idle_timeout * 1000) closeWindow(s, now, p, route);
  // Beyond Lars: the ejection count (published in event figures; the default profile scales ejections by it) decays.
  if (s.state === 'healthy' && s.ejections > 0 && now - s.lastDecay >= p.ejection_decay_time * 1000) {
    route.send(s, { type: 'DECAY', now }, now);
    s.lastDecay = now;
  }
}

/**
 * A host's tick under either profile: a healthy host's window and decay
 * (`idleTick`); an overloaded host comes back once its ejection is due (Lars
 * checks overload_timeout on the next report; the tick checks it too, so a
 * host nobody calls comes back). Probing and draining hosts wait for reports.
 */
export function hostTick(policy: ProfilePolicy, s: PolicyHost, now: number, route: RouteMechanism): void {
  switch (s.state) {
    case 'healthy':
      idleTick(s, now, policy.params, route);
      return;
    case 'overloaded':
      if (now >= policy.ejectionDue(s)) route.send(s, { type: 'EJECTION_ELAPSED', now }, now);
      return;
    case 'probing':
    case 'draining':
      return;
  }
}

/**
 * The earliest time at which `hostTick` can change the host, ms (Infinity:
 * never by time alone): a healthy host's window end or decay, an overloaded
 * host's ejection end. Kept next to `hostTick`, rule for rule.
 */
export function hostTickDue(policy: ProfilePolicy, s: PolicyHost): number {
  const p = policy.params;
  switch (s.state) {
    case 'healthy': {
      const windowEnd = s.windowStart + p.idle_timeout * 1000;
      return s.ejections > 0 ? Math.min(windowEnd, s.lastDecay + p.ejection_decay_time * 1000) : windowEnd;
    }
    case 'overloaded':
      return policy.ejectionDue(s);
    case 'probing':
    case 'draining':
      return Infinity;
  }
}

/** `host_info::set_idle()` (the state flag and idle_ts: the machine and windowStart). */
export function setIdle(s: PolicyHost, now: number, p: RouteParams): void {
  s.vsucc = p.init_succ_cnt; // vsucc = lb_config.init_succ_cnt;
  s.verr = 0; // verr = 0;
  s.rsucc = 0; // rsucc = 0;
  s.rerr = 0; // rerr = 0;
  s.continSucc = 0; // contin_succ = 0;
  s.continErr = 0; // contin_err = 0;
  s.windowStart = now; // idle_ts = time(NULL);
  s.suspect = false; // beyond Lars: a fresh window clears the ejection cap's mark
}

/** `host_info::set_overload()` (overload_ts is the machine's `since`). */
export function setOverload(s: PolicyHost, p: RouteParams): void {
  s.vsucc = 0; // vsucc = 0;
  s.verr = p.init_err_cnt; // verr = lb_config.init_err_cnt;
  s.rsucc = 0; // rsucc = 0;
  s.rerr = 0; // rerr = 0;
  s.continErr = 0; // contin_err = 0;
  s.continSucc = 0; // contin_succ = 0;
  s.suspect = false;
}

/** Counter resets on entering healthy, overloaded or draining (both profiles). */
export function enterLars(s: PolicyHost, now: number, p: RouteParams): void {
  switch (s.state) {
    case 'healthy':
      setIdle(s, now, p);
      // beyond Lars: latency is judged afresh, and decay counts from now
      s.latCalls = 0;
      s.latency = 0;
      s.lastDecay = now;
      break;
    case 'overloaded':
      setOverload(s, p);
      break;
    case 'draining':
      s.suspect = false;
      break;
    case 'probing':
      break;
  }
}

export class LarsPolicy implements ProfilePolicy {
  readonly profile = 'lars' as const;
  readonly machine = larsMachine;
  readonly params: RouteParams;
  readonly ejection: EjectionTimes;
  private readonly route: RouteMechanism;

  constructor(params: RouteParams, route: RouteMechanism) {
    this.params = params;
    this.route = route;
    // An overloaded host is forced back after overload_timeout, however often it was overloaded.
    this.ejection = ejectionTimes('lars', params);
  }

  report(s: PolicyHost, ok: boolean, _latencyMs: number, now: number): void {
    const p = this.params;
    count(s, ok);
    switch (s.state) {
      case 'healthy':
        idleReport(s, ok, now, p, this.route);
        return;
      case 'overloaded':
        // else if (hi->overload == true && retcode == lars::RET_SUCC) {
        if (ok) {
          // double succ_rate = hi->vsucc * 1.0 / (hi->vsucc + hi->verr);
          // if (succ_rate > lb_config.succ_rate) idle = true;
          if (s.vsucc / (s.vsucc + s.verr) > p.succ_rate) {
            // if (idle) { hi->set_idle(); ...; return; }
            this.route.send(s, { type: 'RECOVER', reason: 'success_rate', now }, now);
            return;
          }
          // if (idle == false && hi->contin_succ >= (uint32_t)lb_config.contin_succ_limit) idle = true;
          if (s.continSucc >= p.contin_succ_limit) {
            this.route.send(s, { type: 'RECOVER', reason: 'consecutive_successes', now }, now);
            return;
          }
        }
        // else { if (current_time - hi->overload_ts >= lb_config.overload_timeout) { hi->set_idle(); ... } }
        if (now - s.since >= p.overload_timeout * 1000) this.route.send(s, { type: 'EJECTION_ELAPSED', now }, now);
        return;
      case 'probing':
      case 'draining':
        return;
    }
  }

  tick(s: PolicyHost, now: number): void {
    hostTick(this, s, now, this.route);
  }

  tickDue(s: PolicyHost): number {
    return hostTickDue(this, s);
  }

  afterTick(_now: number): void {
    // Lars judges no latency.
  }

  enter(s: PolicyHost, now: number): void {
    enterLars(s, now, this.params);
  }

  setIdle(s: PolicyHost, now: number): void {
    setIdle(s, now, this.params);
  }

  pickWeight(s: PolicyHost): number {
    // Lars picks among idle hosts; overloaded ones only get the strategy's probe_num picks.
    return s.state === 'healthy' ? s.weight : 0;
  }

  adopt(s: PolicyHost, now: number): void {
    if (s.state === 'probing') {
      // a fresh overload_timeout: what any lars ejection lasts
      this.route.send(s, { type: 'PROFILE_LARS', reason: PROFILE_CHANGE_REASON, now, ejectMs: ejectionMs(this.ejection, PROFILE_CHANGE_REASON, 1) }, now);
    }
  }

  ejectionDue(s: PolicyHost): number {
    // current_time - hi->overload_ts >= lb_config.overload_timeout
    return s.since + this.params.overload_timeout * 1000;
  }
}
