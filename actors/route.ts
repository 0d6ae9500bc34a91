/**
 * The route actor's mechanism: one instance per (modid, cmdid). It holds the
 * route's hosts (./host-slot.ts), feeds every reported call result to the
 * route's profile policy (actors/profiles/: what a report or a tick does to a
 * host), sends each host's machine (./host-machine.ts) the events the policy
 * decides on, keeps the ejection cap and panic bookkeeping
 * (./route-health.ts), turns the hosts' reported load into pick weights
 * (./load-weights.ts), names probing hosts' trial agents (./trial-agents.ts),
 * applies operators' marks (./admin-marks.ts), computes the route's call
 * policy (./call-policy.ts), and produces the effective route and the
 * transition events to publish (./route-output.ts).
 *
 * Every change of a host's state goes through the machine (`send`/`step`),
 * including a restore after a restart or a failover (a RESTORE event) and a
 * switch to the lars profile (PROFILE_LARS). Pure: no I/O, no timers. Time
 * comes in as `now` (ms) on every call; the runtime calls `tick(now)`
 * periodically and `flush(now)` after a burst.
 */
import { AdminMark, CallRetcode, type PickStrategy } from '../schemas/contract.ts';
import type { Profile, Reason, RegistryEntry, RegistryHost, ReportBatch, RouteHost, RouteState } from '../schemas/messages.ts';
import type { PendingRouteEvent, RouteCheckpoint } from './checkpoint.ts';
import type { IngestResult, RouteActorOptions, RouteChanges } from './route-types.ts';
import { applyAdminMark } from './admin-marks.ts';
import { HostSlot, hostCheckpoint, publishedHost, resumeHost, resumePublished } from './host-slot.ts';
import { hostEvent, hostFigures, leftEvent, pickWeight, routeState } from './route-output.ts';
import { ejectionCap, inPanic } from './route-health.ts';
import { LoadWeighting, addUtilization } from './load-weights.ts';
import { RouteCallPolicy } from './call-policy.ts';
import { addLatencies } from './call-window.ts';
import { step, type HostEvent } from './host-machine.ts';
import { paramsOrDefaults, type RouteParams } from './params.ts';
import { quietDue, QUIET_MS } from './route-schedule.ts';
import { NEVER, TrialAgents } from './trial-agents.ts';
import { createPolicy, type PolicyHost, type ProfilePolicy, type RouteMechanism } from './profiles/index.ts';

export type { HostCheckpoint, PendingRouteEvent, RouteCheckpoint } from './checkpoint.ts';
export type { IngestResult, RouteActorOptions, RouteChanges } from './route-types.ts';
export { parseCheckpoint } from './checkpoint.ts';
export { QUIET_MS };

export class RouteActor implements RouteMechanism {
  readonly modid: number;
  readonly cmdid: number;
  readonly nodeId: string;
  profile: Profile = 'default';
  params!: RouteParams;
  /** The strategy agents are told to use: the entry's, or `lars` for a lars-profile route that names none. */
  strategy: PickStrategy | undefined;
  private policy!: ProfilePolicy;
  /** Pick weights from reported load, and slow start. */
  private weighting!: LoadWeighting;
  /** Retry and hedge budgets, hedge delay and shedding from every caller's reports; `published`: as last published. */
  calls!: RouteCallPolicy;
  private slots: HostSlot[] = [];
  private byKey = new Map<string, HostSlot>();
  private version = 0;
  private dirty = false;
  private pending: PendingRouteEvent[] = [];
  private panic = false;
  /** Hosts overloaded or probing. */
  private ejected = 0;
  /** Hosts not draining. */
  private active = 0;
  /** Median latency of the healthy peers at the last tick (figures and outlier rule; set by the default policy). */
  peerLatency = 0;
  /** The agents heard lately, for naming a probing host's trial agent. */
  private trials!: TrialAgents;
  /** The `now` of the last tick (NEVER before the first): what `nextTick` knows the last tick already judged. */
  private lastTick = NEVER;
  /** Inside `tick`: a suspect mark set and cleared within one tick changes panic only by their net result. */
  private ticking = false;
  private removed = false;
  /** The last input (report batch, registry entry, removal) or the actor's start: time-driven changes stop QUIET_MS after it. */
  private lastInput: number;

  constructor(opts: RouteActorOptions) {
    this.modid = opts.modid;
    this.cmdid = opts.cmdid;
    this.nodeId = opts.nodeId;
    this.lastInput = opts.now;
    const cp = opts.checkpoint;
    if (cp && cp.v === 1 && cp.modid === opts.modid && cp.cmdid === opts.cmdid) {
      this.resume(cp, opts.entry, opts.now);
      return;
    }
    const now = opts.now;
    this.version = opts.restored?.version ?? 0;
    this.configure(opts.entry, now);
    this.calls.restore(undefined, opts.restored);
    const restored = new Map((opts.restored?.hosts ?? []).map((h): [string, RouteHost] => [`${h.ip}:${h.port}`, h]));
    for (const h of opts.entry.hosts) {
      if (this.byKey.has(`${h.ip}:${h.port}`)) continue;
      const s = new HostSlot(h, now);
      // where the previous owner left the host, counters afresh; a host it did not have (or drained) is new
      const resumed = resumePublished(this.policy.machine, s, restored.get(s.key), this.policy.ejection, now);
      this.policy.enter(s, now);
      if (!resumed) this.pending.push(hostEvent(this, s, 'none', 'registered', now, {}));
      this.add(s);
    }
    this.recount();
    this.panic = inPanic(this.slots, this.active, this.params);
    this.dirty = true;
  }

  /** Resumes a checkpoint exactly, then applies the registry entry as an update. */
  private resume(cp: RouteCheckpoint, entry: RegistryEntry, now: number): void {
    this.configure({ ...entry, profile: cp.profile, params: cp.params }, now);
    this.weighting.periodStart = cp.load_period_start ?? now;
    this.weighting.unit = cp.load_unit ?? 0;
    this.version = cp.version;
    this.calls.restore(cp.call_policy, undefined);
    for (const h of cp.hosts) {
      const s = resumeHost(this.policy.machine, h, now);
      // a host listed twice: the first
      if (!this.byKey.has(s.key)) this.add(s);
    }
    this.pending = cp.pending.map((e) => ({ ...e, figures: { ...e.figures } }));
    this.peerLatency = cp.peer_latency;
    this.trials.load(cp);
    this.removed = cp.removed;
    this.panic = cp.panic;
    this.dirty = cp.dirty;
    this.recount();
    this.applyRegistry(entry, now);
  }

  private add(s: HostSlot): void {
    this.slots.push(s);
    this.byKey.set(s.key, s);
  }

  get hostCount(): number {
    return this.slots.length;
  }

  get isRemoved(): boolean {
    return this.removed;
  }

  /** Host slot by `ip:port` (for tests and diagnostics). */
  host(key: string): HostSlot | undefined {
    return this.byKey.get(key);
  }

  hosts(): readonly HostSlot[] {
    return this.slots;
  }

  get currentVersion(): number {
    return this.version;
  }

  get inPanic(): boolean {
    return this.panic;
  }

  /** The entry's profile and parameters; a new policy object for them. */
  private configure(entry: Pick<RegistryEntry, 'profile' | 'params' | 'strategy'>, now: number): void {
    const profile = entry.profile ?? 'default';
    this.strategy = entry.strategy ?? (profile === 'lars' ? 'lars' : undefined);
    // A registry entry with bad params keeps the profile's defaults; the runtime reports the error.
    this.params = paramsOrDefaults(profile, entry.params ?? {});
    this.profile = profile;
    this.policy = createPolicy(profile, this.params, this);
    // the current load period goes on under new parameters
    if (this.weighting === undefined) this.weighting = new LoadWeighting(this.params, now);
    else this.weighting.params = this.params;
    if (this.trials === undefined) this.trials = new TrialAgents(this.params);
    else this.trials.params = this.params;
    if (this.calls === undefined) this.calls = new RouteCallPolicy(this.params);
    else this.calls.configure(this.params);
  }

  // ------------------------------------------------------------ fast path

  /** Applies a validated batch: its call results, the utilization the hosts reported (samples for their load weights), its attempt marks. Hot path: no allocation per report. */
  ingest(batch: ReportBatch, now: number): IngestResult {
    this.catchUp(now);
    const hosts = batch.hosts;
    const sender = batch.sender;
    this.trials.heard(sender, now);
    // the call policy's window (undefined: none): the batch's accepted reports are counted in the pass below
    const hist = this.calls.begin(sender, now);
    let accepts = 0;
    this.lastInput = now;
    const map = new Array<HostSlot | undefined>(hosts.length);
    for (let i = 0; i < hosts.length; i++) {
      const h = hosts[i]!;
      const s = this.byKey.get(`${h[0]}:${h[1]}`);
      map[i] = s;
      // the agent named for a probing host's trials reported it: it is at work
      if (s !== undefined && s.trialAgent === sender) s.trialTs = now;
    }
    const reports = batch.reports;
    let applied = 0;
    let unknownHost = 0;
    for (let i = 0; i < reports.length; i++) {
      const r = reports[i]!;
      if (r[1] === 0) accepts++;
      const s = map[r[0]];
      if (s === undefined) {
        unknownHost++;
        continue;
      }
      this.apply(s, r[1], r[2], now);
      applied++;
    }
    if (hist !== undefined) {
      addLatencies(hist, reports);
      if (this.calls.end(batch, accepts, now)) this.dirty = true;
    }
    if (batch.utilization !== undefined) addUtilization(map, batch.utilization);
    return { applied, unknownHost };
  }

  /** Applies one call result to host `key` (`ip:port`). Returns false when the host is unknown. */
  report(key: string, retcode: number, latencyMs: number, now: number): boolean {
    const s = this.byKey.get(key);
    if (!s) return false;
    this.apply(s, retcode, latencyMs, now);
    return true;
  }

  private apply(s: HostSlot, retcode: number, latencyMs: number, now: number): void {
    s.loadCalls++;
    if (retcode !== 0) s.loadErrors++;
    // The latency estimate is kept in both profiles (event figures); only the default profile judges it.
    s.latency = s.latCalls === 0 ? latencyMs : s.latency + this.params.latency_alpha * (latencyMs - s.latency);
    s.latCalls++;
    // an operator's mark decides the host's state, not its reports; a refusal as overloaded ejects nothing (default profile)
    if (s.admin === undefined && (retcode !== CallRetcode.overloaded || this.profile === 'lars')) this.policy.report(s, retcode === 0, latencyMs, now);
  }

  // ------------------------------------------------------------ transitions (RouteMechanism: for the profile policy)

  /** Ejects `s` unless the route's ejection cap holds a healthy host in (then it is marked suspect). */
  eject(s: PolicyHost, reason: Reason, now: number): boolean {
    if (s.state === 'healthy') {
      if (this.ejected >= ejectionCap(this.active, this.params)) {
        if (!s.suspect) {
          s.suspect = true;
          this.updatePanic();
        }
        return false;
      }
    }
    const t = this.policy.ejection;
    return this.send(s, { type: 'EJECT', reason, now, baseMs: t.baseMs, maxMs: t.maxMs, probeFailureMultiplier: t.probeFailureMultiplier }, now);
  }

  /** Sends `event` to the host's machine; a state change resets the counters, is recorded as an event and makes the route dirty. */
  send(s: PolicyHost, event: HostEvent, now: number): boolean {
    const from = s.state;
    if (!step(this.policy.machine, s, event)) return false;
    // figures of the counters that led here, before entering the state resets them
    const figures = hostFigures(s, this.peerLatency);
    if (s.state === 'overloaded' && s.ejectUntil > now) figures.ejection_ms = s.ejectUntil - now;
    figures.ejections = s.ejections;
    this.policy.enter(s, now);
    // every host of the route is a HostSlot
    const slot = s as HostSlot;
    if (s.state === 'draining') this.weighting.forget(slot);
    else if (s.state === 'healthy' && from !== 'healthy') this.weighting.enterHealthy(slot, now);
    else if (from === 'healthy') this.weighting.leaveHealthy(slot);
    slot.trialAgent = undefined;
    if (s.state === 'probing') this.trials.name(slot, now);
    this.pending.push(hostEvent(this, s, from, s.reason, now, figures));
    this.recount();
    this.panic = inPanic(this.slots, this.active, this.params);
    this.dirty = true;
    return true;
  }

  renewWindow(s: PolicyHost, now: number): void {
    const wasSuspect = s.suspect;
    this.policy.setIdle(s, now);
    if (wasSuspect) this.updatePanic();
  }

  private recount(): void {
    let ejected = 0;
    let active = 0;
    for (const s of this.slots) {
      if (s.state !== 'draining') active++;
      if (s.state === 'overloaded' || s.state === 'probing') ejected++;
    }
    this.ejected = ejected;
    this.active = active;
  }

  private updatePanic(): void {
    const p = inPanic(this.slots, this.active, this.params);
    if (p !== this.panic) {
      this.panic = p;
      // a tick publishes the net change (see tick)
      if (!this.ticking) this.dirty = true;
    }
  }

  // ------------------------------------------------------------ time

  /** Timeouts, windows, latency outliers, drains, ejection decay and load weights. Call every few hundred ms. */
  tick(now: number): void {
    const policy = this.policy;
    const drainMs = this.params.drain_time * 1000;
    // A latency outlier the ejection cap holds in loses its suspect mark when
    // its window renews and gets it back from afterTick in the same tick (its
    // latency is not reset by a window): panic is published by its net change
    // over the tick, not as two versions that change nothing.
    const panic = this.panic;
    this.ticking = true;
    let dropped = false;
    try {
      for (const s of this.slots) {
        if (s.state === 'draining') {
          if (now - s.since >= drainMs && s.admin !== AdminMark.drained) dropped = true;
        } else if (s.admin === undefined) {
          policy.tick(s, now);
        }
      }
      if (dropped) this.dropDrained(now);
      policy.afterTick(now);
    } finally {
      this.ticking = false;
    }
    if (this.panic !== panic) this.dirty = true;
    if (this.trials.tick(this.slots, now) && !this.panic) this.dirty = true;
    if (this.weighting.due(now) && this.weighting.update(this.slots, now)) this.dirty = true;
    this.lastTick = now;
  }

  /** First input after a quiet spell: missed ticks applied first, the input judged as if ticked all along (docs/state-machine.md). */
  private catchUp(now: number): void {
    if (now - this.lastInput >= QUIET_MS && now > this.lastTick) this.tick(now);
  }

  /**
   * The earliest time at which `tick` can change the route, ms (Infinity: never by time alone). Ticked before
   * then, the route changes only if something else reached it since its last tick (a report batch, a registry
   * entry, a removal): a runtime ticks a route at its first tick after any of those, and otherwise once this
   * time has come. Mirrors `tick`, rule for rule.
   */
  nextTick(): number {
    const policy = this.policy;
    const drainMs = this.params.drain_time * 1000;
    let due = this.weighting.dueAt();
    for (const s of this.slots) {
      if (s.state === 'draining') {
        if (s.admin !== AdminMark.drained) due = Math.min(due, s.since + drainMs);
      } else if (s.admin === undefined) {
        due = Math.min(due, policy.tickDue(s));
      }
      if (s.state === 'probing' && s.trialAgent !== undefined) due = Math.min(due, this.trials.due(s, this.lastTick));
    }
    return quietDue(due, this.lastInput, this.lastTick);
  }

  /** Drained hosts leave the route (`to: none`). */
  private dropDrained(now: number): void {
    const keep: HostSlot[] = [];
    for (const s of this.slots) {
      if (s.state === 'draining' && s.admin !== AdminMark.drained && now - s.since >= this.params.drain_time * 1000) {
        this.byKey.delete(s.key);
        this.pending.push(leftEvent(this, s, 'draining', now));
      } else {
        keep.push(s);
      }
    }
    if (keep.length === this.slots.length) return;
    this.slots = keep;
    this.recount();
    this.panic = inPanic(this.slots, this.active, this.params);
    this.dirty = true;
  }

  // ------------------------------------------------------------ registry

  /**
   * Applies a new registry entry: new hosts join healthy, missing ones drain, drained ones come back, weights
   * and zones update, a changed profile or parameters take effect. The route is dirty (a new version is
   * published) only when one of these changed something.
   */
  applyRegistry(entry: RegistryEntry, now: number): void {
    this.catchUp(now);
    this.lastInput = now;
    const oldProfile = this.profile;
    const oldParams = JSON.stringify(this.params);
    const oldStrategy = this.strategy;
    this.configure(entry, now);
    let changed = this.profile !== oldProfile || JSON.stringify(this.params) !== oldParams || this.strategy !== oldStrategy;
    // A profile without some of the hosts' states moves them (lars: probing → overloaded), through the machine.
    if (this.profile !== oldProfile) for (const s of this.slots) this.policy.adopt(s, now);
    const wanted = new Map<string, RegistryHost>();
    for (const h of entry.hosts) wanted.set(`${h.ip}:${h.port}`, h);
    for (const s of this.slots) {
      const h = wanted.get(s.key);
      if (h) {
        if (s.weight !== h.weight || s.zone !== (h.zone ?? undefined)) {
          s.weight = h.weight;
          s.zone = h.zone ?? undefined;
          changed = true;
        }
        const mark = h.admin?.state;
        if (mark !== s.admin) this.dirty = applyAdminMark(this, this.pending, s, mark, now, h.admin?.by ?? entry.updated_by);
        else if (s.state === 'draining' && mark !== AdminMark.drained) this.send(s, { type: 'READD', now }, now);
        wanted.delete(s.key);
      } else {
        // out of the registry: whatever an operator had set ends with it
        s.admin = undefined;
        if (s.state !== 'draining') this.send(s, { type: 'DRAIN', now }, now);
      }
    }
    for (const h of wanted.values()) {
      const s = new HostSlot(h, now);
      this.policy.enter(s, now);
      // joining a running route: slow start
      this.weighting.enterHealthy(s, now);
      this.add(s);
      this.pending.push(hostEvent(this, s, 'none', 'registered', now, {}));
      if (h.admin !== undefined) this.dirty = applyAdminMark(this, this.pending, s, h.admin.state, now, h.admin.by);
      changed = true;
    }
    if (this.params.drain_time === 0) this.dropDrained(now);
    this.recount();
    const panic = inPanic(this.slots, this.active, this.params);
    if (panic !== this.panic) {
      this.panic = panic;
      changed = true;
    }
    if (this.removed) {
      this.removed = false;
      changed = true;
    }
    if (changed) this.dirty = true;
  }

  /** The route was deleted from the registry: the next flush publishes a tombstone. */
  remove(now: number): void {
    this.lastInput = now;
    for (const s of this.slots) this.pending.push(leftEvent(this, s, s.state, now));
    this.slots = [];
    this.byKey.clear();
    this.recount();
    this.removed = true;
    this.dirty = true;
  }

  // ------------------------------------------------------------ output

  get isDirty(): boolean {
    return this.dirty;
  }

  /** The effective route as it stands (without bumping the version). */
  snapshot(now: number): RouteState {
    // in panic every agent spreads over every host: no one agent's trials
    const trials = !this.panic && this.params.probe_trial_timeout > 0;
    const hosts = this.slots.map((s) => publishedHost(s, pickWeight(s, this.panic, this.policy), trials));
    return routeState(this, this.version, this.panic, this.removed, hosts, now);
  }

  /** When anything changed since the last flush: the next version of the route and its events. */
  flush(now: number): RouteChanges | undefined {
    if (!this.dirty) return undefined;
    this.dirty = false;
    this.version++;
    const state = this.snapshot(now);
    const events = this.pending.map((e) => ({ ...e, version: this.version }));
    this.pending = [];
    return { state, events };
  }

  /** The route's full state as plain JSON (see actors/checkpoint.ts): a new actor built with it resumes exactly here, on this node or another. */
  checkpoint(now: number): RouteCheckpoint {
    const hosts = this.slots.map(hostCheckpoint);
    return {
      v: 1,
      modid: this.modid,
      cmdid: this.cmdid,
      ts: now,
      version: this.version,
      profile: this.profile,
      params: { ...this.params },
      panic: this.panic,
      removed: this.removed,
      dirty: this.dirty,
      peer_latency: this.peerLatency,
      load_period_start: this.weighting.periodStart,
      load_unit: this.weighting.unit,
      ...this.trials.save(),
      ...this.calls.save(),
      hosts,
      pending: this.pending.map((e) => ({ ...e, figures: { ...e.figures } })),
    };
  }
}
