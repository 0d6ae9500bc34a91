/**
 * What a route publishes: its state (`RouteState`, the effective route agents
 * pick from), and the transition events of its hosts (`RouteEvent`, less the
 * version the flush gives it) with the figures that say why: the counters
 * that led to a transition, as they stood before entering the new state
 * reset them.
 */
import { AdminMark, type PickStrategy } from '../schemas/contract.ts';
import type { EventFigures, HostState, Profile, Reason, RouteHost, RouteState } from '../schemas/messages.ts';
import type { PendingRouteEvent } from './checkpoint.ts';
import type { HostSlot } from './host-slot.ts';
import type { PolicyHost, ProfilePolicy } from './profiles/types.ts';
import type { CallPolicy } from './call-policy.ts';

/** Who publishes a route's events, and for which route. */
export interface RouteIds {
  readonly nodeId: string;
  readonly modid: number;
  readonly cmdid: number;
}

/** What a route's state names besides its hosts. */
export interface PublishedRoute extends RouteIds {
  readonly profile: Profile;
  readonly params: { readonly probe_num: number };
  /** The strategy agents are told to use (none: theirs). */
  readonly strategy: PickStrategy | undefined;
  /** The call policy published with the state (none: the state carries no call-policy fields). */
  readonly calls?: { readonly published: CallPolicy | undefined };
}

/** The state of route `r` at `now`, as version `version` (at least 1). */
export function routeState(r: PublishedRoute, version: number, panic: boolean, removed: boolean, hosts: RouteHost[], now: number): RouteState {
  const state: RouteState = {
    v: 1,
    sender: r.nodeId,
    modid: r.modid,
    cmdid: r.cmdid,
    version: Math.max(1, version),
    ts: now,
    profile: r.profile,
    panic,
    removed,
    probe_num: r.params.probe_num,
    hosts,
  };
  if (r.strategy !== undefined) state.strategy = r.strategy;
  const c = r.calls?.published;
  if (c !== undefined) {
    state.retry_budget = c.retryBudget;
    state.retry_floor = c.retryFloor;
    if (c.hedgeDelayMs !== undefined) state.hedge_delay_ms = c.hedgeDelayMs;
    state.hedge_budget = c.hedgeBudget;
    state.shed = c.shed;
  }
  return state;
}

/**
 * The weight agents pick host `s` with: none while it drains or an operator
 * ejected it (in panic too); its registry weight in panic; else its load
 * weight or slow start when healthy and it has one, or what the profile gives.
 */
export function pickWeight(s: HostSlot, panic: boolean, policy: ProfilePolicy): number {
  if (s.state === 'draining' || s.admin === AdminMark.ejected) return 0;
  if (panic) return s.weight;
  if (s.state === 'healthy' && s.balance > 0) return s.balance;
  return policy.pickWeight(s);
}

/** The figures of host `s`'s counters now; `peerLatency` is the healthy peers' median latency, ms. */
export function hostFigures(s: PolicyHost, peerLatency: number): EventFigures {
  const v = s.vsucc + s.verr;
  const r = s.rsucc + s.rerr;
  const f: EventFigures = {
    err_rate: v > 0 ? s.verr / v : 0,
    succ_rate: v > 0 ? s.vsucc / v : 0,
    window_err_rate: r > 0 ? s.rerr / r : 0,
    consecutive_errors: s.continErr,
    consecutive_successes: s.continSucc,
    calls: r,
  };
  if (s.latCalls > 0) {
    f.latency_ms = s.latency;
    f.peer_latency_ms = peerLatency;
  }
  return f;
}

/** Host `s` went from `from` to its current state for `reason` at `now`. */
export function hostEvent(route: RouteIds, s: PolicyHost, from: HostState | 'none', reason: Reason, now: number, figures: EventFigures): PendingRouteEvent {
  return {
    v: 1,
    sender: route.nodeId,
    modid: route.modid,
    cmdid: route.cmdid,
    ts: now,
    ip: s.ip,
    port: s.port,
    from,
    to: s.state,
    reason,
    figures,
  };
}

/** Host `s` left the route (`to: none`, reason `removed`) from state `from` at `now`. */
export function leftEvent(route: RouteIds, s: PolicyHost, from: HostState, now: number): PendingRouteEvent {
  const e = hostEvent(route, s, from, 'removed', now, {});
  e.to = 'none';
  return e;
}
