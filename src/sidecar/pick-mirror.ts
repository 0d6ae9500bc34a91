/**
 * A UDP thread's copy of the sidecar agent's routes (udp-thread.ts): the
 * agent-route model of each route (actors/agent-route.ts, the agent's own),
 * brought up to date from the route's arena (route-arena.ts: the state the
 * main thread wrote there on its last update) when the thread next picks
 * from it, and picked from as the agent picks: the route's strategy, the feedback of the
 * calls this thread handed out, the bound on a probing host's trial calls.
 *
 * One agent identity, several pickers: each route's probing hosts are
 * picked by one thread only (its trial thread: a thread reading the route's
 * port by Lars' rule, `(modid + cmdid) mod ports`, where Lars' clients send
 * it), so the agent's bound on trial calls in flight (`probeTrials`) holds
 * for the sidecar as a whole, as it does with one thread; the other threads
 * pick them with weight 0.
 *
 * Reports go to the main thread's one agent (`report` is given) after the
 * local feedback; routes not followed yet are asked of the main thread
 * (`follow`), within the sidecar's route bound as far as this thread can
 * tell (the routes followed, shared memory): the main thread has the last
 * word and may refuse (`refused`).
 */
import { AgentRoute } from '../../actors/agent-route.ts';
import { createStrategy } from '../../actors/strategies/index.ts';
import { createZoneAware } from '../../actors/strategies/zone.ts';
import { noteReport, notePick, pickBounded } from '../../actors/strategies/feedback.ts';
import type { MakeStrategy } from '../../actors/agent-route.ts';
import type { RouteState } from '../../schemas/messages.ts';
import { NoHostCode, type HostPick } from '../agent/agent.ts';
import { RouteStatus } from '../agent/route-follower.ts';
import { RouteStateReader } from '../agent/route-state-reader.ts';
import { ArenaReader, ArenaStatus } from './route-arena.ts';
import { BadRequest, DROP_SLOT, type HostCache, type UdpBudget, type UdpPicker } from './lars-udp.ts';
import { THREAD_PICKS, THREAD_REFUSED, type MirrorPickOptions } from './thread-messages.ts';

const NOT_REGISTERED: HostPick = Object.freeze({ ok: false as const, code: NoHostCode.noRoute, message: 'route is not registered' });
const LOADING: HostPick = Object.freeze({ ok: false as const, code: NoHostCode.noRoute, message: 'route is loading' });
const NO_HOST: HostPick = Object.freeze({ ok: false as const, code: NoHostCode.noHost, message: 'no host may be picked now' });

class MirrorRoute extends AgentRoute {
  status: RouteStatus = RouteStatus.loading;
  state: RouteState | undefined = undefined;
  readonly reader = new RouteStateReader();
  arena: ArenaReader | undefined = undefined;
}

/**
 * The thread of `threads` that sends a route's probing hosts their trial
 * calls: of the threads reading the route's Lars port (udp-threads.ts
 * `portsOfThread`), the first.
 */
export function trialThread(modid: number, cmdid: number, threads: number, ports: number): number {
  return ((modid + cmdid) % ports) % threads;
}

export interface PickMirrorOptions {
  pick: MirrorPickOptions;
  index: number;
  threads: number;
  /** The sidecar's UDP ports, how many. */
  ports: number;
  maxRoutes: number;
  /** This thread's counters (thread-messages.ts layout). */
  counters: Float64Array;
  /** Routes the agent follows (slot 0), kept by the main thread. */
  followed: Int32Array;
  hosts: HostCache;
  /** Asks the main thread to follow a route. */
  follow: (modid: number, cmdid: number) => void;
  /** Hands a report to the main thread's agent. */
  report: (modid: number, cmdid: number, ip: number, port: number, retcode: number, latencyUs: number) => void;
  clock?: () => number;
}

export class PickMirror implements UdpPicker, UdpBudget {
  readonly max: number;
  readonly follower = {
    peek: (modid: number, cmdid: number): MirrorRoute | undefined => {
      const r = this.routes.get(modid)?.get(cmdid);
      if (r?.arena !== undefined && r.arena.changed()) this.sync(r);
      return r;
    },
  };
  private readonly o: PickMirrorOptions;
  private readonly clock: () => number;
  private readonly routes = new Map<number, Map<number, MirrorRoute>>();
  private readonly c: Float64Array;

  constructor(o: PickMirrorOptions) {
    this.o = o;
    this.max = o.maxRoutes;
    this.c = o.counters;
    this.clock = o.clock ?? Date.now;
  }

  private readonly newStrategy: MakeStrategy = (name) => {
    const p = this.o.pick;
    const opts = { now: this.clock, decayMs: p.feedback.decayMs, timeoutMs: p.feedback.timeoutMs };
    if (p.pickZone === undefined) return createStrategy(name, opts);
    return createZoneAware(() => createStrategy(name, opts), { zone: p.pickZone, minHealthyPercent: p.zoneMinHealthyPercent });
  };

  /** The route's mirror, made (and, with `ask`, asked of the main thread) on first use. */
  private routeFor(modid: number, cmdid: number, ask: boolean): MirrorRoute {
    let inner = this.routes.get(modid);
    if (inner === undefined) {
      inner = new Map();
      this.routes.set(modid, inner);
    }
    let r = inner.get(cmdid);
    if (r === undefined) {
      const probes = trialThread(modid, cmdid, this.o.threads, this.o.ports) === this.o.index;
      r = new MirrorRoute(this.o.pick.agentId, this.o.pick.strategy, this.newStrategy, probes);
      inner.set(cmdid, r);
      if (ask) this.o.follow(modid, cmdid);
    }
    return r;
  }

  allows(modid: number, cmdid: number): boolean {
    if (this.follower.peek(modid, cmdid) !== undefined) return true;
    if (Atomics.load(this.o.followed, 0) < this.max) return true;
    this.c[THREAD_REFUSED]!++;
    return false;
  }

  pick(modid: number, cmdid: number): HostPick {
    const r = this.routeFor(modid, cmdid, true);
    if (r.arena !== undefined && r.arena.changed()) this.sync(r);
    if (r.status !== RouteStatus.loaded) return r.status === RouteStatus.loading ? LOADING : NOT_REGISTERED;
    const fb = this.o.pick.feedback;
    const now = r.weighsLoad ? this.clock() : this.clock;
    const i = pickBounded(r.strategy, r.hosts, undefined, now, this.o.pick.probeTrials, fb.timeoutMs);
    if (i < 0) return NO_HOST;
    const h = r.hosts[i]!;
    notePick(h, now, fb, r.weighsLoad);
    this.c[THREAD_PICKS]!++;
    return h.result;
  }

  report(modid: number, cmdid: number, host: { ip: string; port: number }, retcode: number, latencyMs: number): void {
    const r = this.follower.peek(modid, cmdid);
    if (r !== undefined) {
      const h = r.byResult.get(host) ?? r.byKey.get(`${host.ip}:${host.port}`);
      if (h !== undefined) noteReport(h, retcode === 0, latencyMs, this.clock(), this.o.pick.feedback);
    }
    this.o.report(modid, cmdid, this.o.hosts.intOf(host), host.port, retcode, Math.round(latencyMs * 1000));
  }

  async getRoute(modid: number, cmdid: number): Promise<undefined> {
    this.routeFor(modid, cmdid, true);
    return undefined;
  }

  // ---------------------------------------------------------------- from the main thread

  /** The arena of a followed route (read on the next pick from it). */
  arena(modid: number, cmdid: number, sab: SharedArrayBuffer): void {
    this.routeFor(modid, cmdid, false).arena = new ArenaReader(sab);
  }

  /** What the route's arena holds now, if it changed. */
  private sync(r: MirrorRoute): void {
    const v = r.arena!.read();
    if (v === undefined) return;
    if (v.status === ArenaStatus.state) this.apply(r, v.bytes);
    else if (v.status === ArenaStatus.unregistered && r.state === undefined) r.status = RouteStatus.unregistered;
  }

  /** A new state of a followed route, as the agent applied it; false when the bytes are not a route state. */
  state(modid: number, cmdid: number, bytes: Uint8Array): boolean {
    return this.apply(this.routeFor(modid, cmdid, false), bytes);
  }

  private apply(r: MirrorRoute, bytes: Uint8Array): boolean {
    const v = r.reader.read(bytes);
    if (!v.ok) return false;
    r.state = v.value;
    r.status = v.value.removed ? RouteStatus.unregistered : RouteStatus.loaded;
    r.apply(v.value);
    return true;
  }

  /** The main thread would not follow the route (the route bound): forgotten here, counted as the single thread counts it. */
  refused(modid: number, cmdid: number): void {
    const inner = this.routes.get(modid);
    if (inner?.get(cmdid)?.state !== undefined) return;
    inner?.delete(cmdid);
    this.c[DROP_SLOT.get(BadRequest.tooManyRoutes)!]!++;
  }
}
