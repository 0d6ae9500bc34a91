/**
 * A route profile's policy: the rules that decide what a call result or a
 * tick does to a host, apart from the route's mechanism (slots, the ingest
 * loop, ejection cap and panic bookkeeping, versions, registry merge) in
 * actors/route.ts.
 *
 * One policy object per route, built for the route's profile and parameters
 * (`createPolicy` in ./index.ts): the route calls its methods directly on the
 * hot path, so each call site sees at most the two policy classes.
 */
import type { Profile, Reason } from '../../schemas/messages.ts';
import type { EjectionTimes } from '../ejection.ts';
import type { HostEvent, HostFields, HostMachine } from '../host-machine.ts';
import type { RouteParams } from '../params.ts';

/** The per-host fields a policy reads and resets (the route's host slot). */
export interface PolicyHost extends HostFields {
  readonly ip: string;
  readonly port: number;
  weight: number;
  // Lars counters (host_info)
  vsucc: number;
  verr: number;
  rsucc: number;
  rerr: number;
  continSucc: number;
  continErr: number;
  /** Start of the current window (Lars idle_ts). */
  windowStart: number;
  // beyond Lars
  /** Moving average of the latency, ms. */
  latency: number;
  /** Latency samples since the host last entered healthy. */
  latCalls: number;
  /** Failed probes since the host entered probing. */
  probeErr: number;
  /** Crossed an ejection threshold but the ejection cap held it in. */
  suspect: boolean;
  /** Last time the ejection count decayed (or the host entered healthy). */
  lastDecay: number;
}

/** What a policy asks of the route's mechanism (implemented by RouteActor). */
export interface RouteMechanism {
  /** Median latency of the healthy peers at the last tick, ms (0 when unknown). Written by policies that judge latency. */
  peerLatency: number;
  /** The route's hosts. */
  hosts(): readonly PolicyHost[];
  /**
   * healthy/probing → overloaded, unless the ejection cap holds a healthy host
   * in (then it is marked suspect). True when the host was ejected.
   */
  eject(s: PolicyHost, reason: Reason, now: number): boolean;
  /** Sends a machine event; a state change is recorded as a route event. True when the state changed. */
  send(s: PolicyHost, event: HostEvent, now: number): boolean;
  /** The window of a healthy host rolls over without an ejection: Lars' set_idle, and the suspect mark goes. */
  renewWindow(s: PolicyHost, now: number): void;
}

export interface ProfilePolicy {
  readonly profile: Profile;
  /** The host-state machine of the profile (the default one, or one with other guards via `provide()`). */
  readonly machine: HostMachine;
  readonly params: RouteParams;
  /** What the length of a host's ejection is computed from (`ejectionMs`, actors/ejection.ts). */
  readonly ejection: EjectionTimes;
  /** One call result (retcode 0 = success): counts it and applies the rules of the host's state (Lars' report()). */
  report(s: PolicyHost, ok: boolean, latencyMs: number, now: number): void;
  /** A tick for one host that is not draining: windows, timeouts, ejection decay. */
  tick(s: PolicyHost, now: number): void;
  /** The earliest time at which `tick(s, now)` can change the host, ms (Infinity: never by time alone). */
  tickDue(s: PolicyHost): number;
  /**
   * After every host's tick: rules over the whole route (latency outliers).
   * Judges what reports and states say, not the time: called again with
   * nothing reported and no state changed in between, it changes nothing.
   */
  afterTick(now: number): void;
  /** Counter resets on entering the host's current state (Lars' set_idle / set_overload). */
  enter(s: PolicyHost, now: number): void;
  /** Lars' set_idle: a fresh window with init_succ_cnt virtual successes. */
  setIdle(s: PolicyHost, now: number): void;
  /** The weight agents pick a host with outside panic (draining hosts get 0 before this is asked). */
  pickWeight(s: PolicyHost): number;
  /** The route has just switched to this profile: moves a host into a state the profile has (lars: probing → overloaded). */
  adopt(s: PolicyHost, now: number): void;
  /** When an overloaded host's ejection is over, ms. */
  ejectionDue(s: PolicyHost): number;
}
