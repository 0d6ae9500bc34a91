/**
 * The route actor's logic: one instance per (modid, cmdid). It holds the
 * route's hosts, applies every reported call result to plain per-host
 * counters (the fast path), drives each host's node-state machine with the
 * few events that can change a state, and produces the effective route and
 * the transition events to publish.
 *
 * Pure: no I/O, no timers. Time comes in as `now` (ms) on every call; the
 * runtime calls `tick(now)` periodically and `flush(now)` after a burst.
 */
import type { HostState, Profile, Reason, RegistryEntry, RegistryHost, ReportBatch, RouteEvent, RouteHost, RouteState, EventFigures } from '../schemas/messages.ts';
import { machineFor, step, type NodeEvent, type NodeFields, type NodeMachine } from './node-machine.ts';
import { resolveParams, type NodeParams } from './params.ts';

/** One host of a route: identity, machine fields and the per-report counters. */
export class HostSlot implements NodeFields {
  readonly ip: string;
  readonly port: number;
  readonly key: string;
  weight: number;
  zone: string | undefined;
  // machine fields
  state: HostState = 'healthy';
  since: number;
  reason: Reason = 'registered';
  ejections = 0;
  ejectUntil = 0;
  // Lars counters
  vsucc = 0;
  verr = 0;
  rsucc = 0;
  rerr = 0;
  continSucc = 0;
  continErr = 0;
  /** Start of the current window (Lars idle_ts). */
  windowStart: number;
  // default profile
  latency = 0;
  latCalls = 0;
  probeErr = 0;
  /** Crossed an ejection threshold but the ejection cap held it in. */
  suspect = false;
  lastDecay: number;

  constructor(h: RegistryHost, now: number) {
    this.ip = h.ip;
    this.port = h.port;
    this.key = `${h.ip}:${h.port}`;
    this.weight = h.weight;
    this.zone = h.zone ?? undefined;
    this.since = now;
    this.windowStart = now;
    this.lastDecay = now;
  }
}

export interface IngestResult {
  /** Reports applied to known hosts. */
  applied: number;
  /** Reports for hosts this route does not have (dropped). */
  unknownHost: number;
}

export interface RouteChanges {
  state: RouteState;
  events: RouteEvent[];
}

export interface RouteActorOptions {
  modid: number;
  cmdid: number;
  /** Sender id stamped on published messages. */
  nodeId: string;
  entry: RegistryEntry;
  now: number;
  /** Last published state (from the routes KV), to resume version and host states after a restart. */
  restored?: RouteState;
}

type PendingEvent = Omit<RouteEvent, 'version'>;

function resetCounters(s: HostSlot, vsucc: number, verr: number): void {
  s.vsucc = vsucc;
  s.verr = verr;
  s.rsucc = 0;
  s.rerr = 0;
  s.continSucc = 0;
  s.continErr = 0;
}

export class RouteActor {
  readonly modid: number;
  readonly cmdid: number;
  readonly nodeId: string;
  profile: Profile = 'default';
  params!: NodeParams;
  private machine!: NodeMachine;
  private slots: HostSlot[] = [];
  private byKey = new Map<string, HostSlot>();
  private version: number;
  private dirty = false;
  private pending: PendingEvent[] = [];
  private panic = false;
  /** Hosts overloaded or probing. */
  private ejected = 0;
  /** Hosts not draining. */
  private active = 0;
  /** Median latency of the healthy peers at the last tick (figures and outlier rule). */
  private peerLatency = 0;
  private removed = false;

  constructor(opts: RouteActorOptions) {
    this.modid = opts.modid;
    this.cmdid = opts.cmdid;
    this.nodeId = opts.nodeId;
    this.version = opts.restored?.version ?? 0;
    this.configure(opts.entry);
    const restored = new Map<string, RouteHost>();
    for (const h of opts.restored?.hosts ?? []) restored.set(`${h.ip}:${h.port}`, h);
    for (const h of opts.entry.hosts) {
      const s = new HostSlot(h, opts.now);
      const r = restored.get(s.key);
      if (r && r.state !== 'draining') {
        // Resume where the previous owner left the host; counters start afresh.
        s.state = r.state === 'probing' && this.profile === 'lars' ? 'overloaded' : r.state;
        s.reason = r.reason;
        s.since = r.since;
        if (s.state === 'overloaded' || s.state === 'probing') {
          s.ejections = 1;
          s.ejectUntil = opts.now + this.params.base_ejection_time * 1000;
        }
        this.enterCounters(s, opts.now);
      } else {
        this.enterCounters(s, opts.now);
        this.pending.push(this.makeEvent(s, 'none', 'registered', opts.now, {}));
      }
      this.slots.push(s);
      this.byKey.set(s.key, s);
    }
    this.recount();
    this.panic = this.computePanic();
    this.dirty = true;
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

  private configure(entry: RegistryEntry): void {
    const profile = entry.profile ?? 'default';
    const r = resolveParams(profile, entry.params ?? {});
    // A registry entry with bad params keeps the profile's defaults; the runtime reports the error.
    this.params = r.ok ? r.params : (resolveParams(profile) as { ok: true; params: NodeParams }).params;
    this.profile = profile;
    this.machine = machineFor(profile);
  }

  // ------------------------------------------------------------ fast path

  /** Applies a validated batch. Hot path: no allocation per report. */
  ingest(batch: ReportBatch, now: number): IngestResult {
    const hosts = batch.hosts;
    const map = new Array<HostSlot | undefined>(hosts.length);
    for (let i = 0; i < hosts.length; i++) {
      const h = hosts[i]!;
      map[i] = this.byKey.get(`${h[0]}:${h[1]}`);
    }
    const reports = batch.reports;
    let applied = 0;
    let unknownHost = 0;
    for (let i = 0; i < reports.length; i++) {
      const r = reports[i]!;
      const s = map[r[0]];
      if (s === undefined) {
        unknownHost++;
        continue;
      }
      this.apply(s, r[1], r[2], now);
      applied++;
    }
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
    const p = this.params;
    const ok = retcode === 0;
    if (ok) {
      s.vsucc++;
      s.rsucc++;
      s.continSucc++;
      s.continErr = 0;
    } else {
      s.verr++;
      s.rerr++;
      s.continErr++;
      s.continSucc = 0;
    }
    s.latency = s.latCalls === 0 ? latencyMs : s.latency + p.latency_alpha * (latencyMs - s.latency);
    s.latCalls++;
    switch (s.state) {
      case 'healthy':
        if (!ok) {
          // Lars: error rate over virtual counts first, then the consecutive run.
          if (s.verr / (s.vsucc + s.verr) > p.err_rate) {
            if (this.tryEject(s, 'error_rate', now)) return;
          } else if (s.continErr >= p.contin_err_limit) {
            if (this.tryEject(s, 'consecutive_errors', now)) return;
          }
        }
        if (now - s.windowStart >= p.idle_timeout * 1000) this.closeWindow(s, now);
        return;
      case 'overloaded':
        if (this.profile === 'lars') {
          if (ok) {
            if (s.vsucc / (s.vsucc + s.verr) > p.succ_rate) {
              this.send(s, { type: 'RECOVER', reason: 'success_rate', now }, now);
              return;
            }
            if (s.continSucc >= p.contin_succ_limit) {
              this.send(s, { type: 'RECOVER', reason: 'consecutive_successes', now }, now);
              return;
            }
          }
          if (now - s.since >= p.overload_timeout * 1000) this.send(s, { type: 'EJECTION_ELAPSED', now }, now);
        }
        return;
      case 'probing':
        if (ok && !this.isSlow(latencyMs)) {
          if (s.continSucc >= p.probe_succ_limit) this.send(s, { type: 'RECOVER', reason: 'probe_success', now }, now);
        } else {
          // An error, or a success as slow as an outlier: not a recovery.
          s.continSucc = 0;
          s.probeErr++;
          if (s.probeErr >= p.probe_err_limit) this.tryEject(s, 'probe_failure', now);
        }
        return;
      case 'draining':
        return;
    }
  }

  /** A latency an outlier would have, judged against the peers' median at the last tick. */
  private isSlow(latencyMs: number): boolean {
    const p = this.params;
    const m = this.peerLatency;
    return this.profile !== 'lars' && m > 0 && latencyMs > m * p.latency_factor && latencyMs - m >= p.latency_min_gap_ms;
  }

  /** Lars' window rule: at the end of a healthy host's window, overload it on a high real error rate, else reset. */
  private closeWindow(s: HostSlot, now: number): void {
    const calls = s.rsucc + s.rerr;
    if (calls > 0 && s.rerr / calls >= this.params.window_err_rate) {
      if (this.tryEject(s, 'window_error_rate', now)) return;
    }
    const wasSuspect = s.suspect;
    this.resetIdle(s, now);
    if (wasSuspect) this.updatePanic();
  }

  /** Ejects `s` unless the route's ejection cap holds it in (default profile). */
  private tryEject(s: HostSlot, reason: Reason, now: number): boolean {
    if (s.state === 'healthy') {
      const cap = Math.max(1, Math.floor((this.active * this.params.max_ejection_percent) / 100));
      if (this.ejected >= cap) {
        if (!s.suspect) {
          s.suspect = true;
          this.updatePanic();
        }
        return false;
      }
    }
    const p = this.params;
    const baseMs = (this.profile === 'lars' ? p.overload_timeout : p.base_ejection_time) * 1000;
    const maxMs = this.profile === 'lars' ? baseMs : p.max_ejection_time * 1000;
    return this.send(s, { type: 'EJECT', reason, now, baseMs, maxMs }, now);
  }

  // ------------------------------------------------------------ transitions

  private send(s: HostSlot, event: NodeEvent, now: number): boolean {
    const from = s.state;
    const figures = this.figures(s, now);
    if (!step(this.machine, s, event)) return false;
    if (s.state === 'overloaded' && s.ejectUntil > now) figures.ejection_ms = s.ejectUntil - now;
    figures.ejections = s.ejections;
    this.enterCounters(s, now);
    this.pending.push(this.makeEvent(s, from, s.reason, now, figures));
    this.recount();
    this.panic = this.computePanic();
    this.dirty = true;
    return true;
  }

  /** Counter resets on entering a state (Lars set_idle / set_overload). */
  private enterCounters(s: HostSlot, now: number): void {
    switch (s.state) {
      case 'healthy':
        this.resetIdle(s, now);
        s.latCalls = 0;
        s.latency = 0;
        s.lastDecay = now;
        break;
      case 'overloaded':
        // Lars' set_overload
        resetCounters(s, 0, this.params.init_err_cnt);
        s.suspect = false;
        break;
      case 'probing':
        s.probeErr = 0;
        s.continSucc = 0;
        s.continErr = 0;
        break;
      case 'draining':
        s.suspect = false;
        break;
    }
  }

  /** Lars' set_idle: a fresh window with init_succ_cnt virtual successes. */
  private resetIdle(s: HostSlot, now: number): void {
    resetCounters(s, this.params.init_succ_cnt, 0);
    s.windowStart = now;
    s.suspect = false;
  }

  private figures(s: HostSlot, _now: number): EventFigures {
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
      f.peer_latency_ms = this.peerLatency;
    }
    return f;
  }

  private makeEvent(s: HostSlot, from: HostState | 'none', reason: Reason, now: number, figures: EventFigures): PendingEvent {
    return {
      v: 1,
      sender: this.nodeId,
      modid: this.modid,
      cmdid: this.cmdid,
      ts: now,
      ip: s.ip,
      port: s.port,
      from,
      to: s.state,
      reason,
      figures,
    };
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

  private computePanic(): boolean {
    const t = this.params.panic_threshold;
    if (t <= 0 || this.active === 0) return false;
    let well = 0;
    for (const s of this.slots) if (s.state === 'healthy' && !s.suspect) well++;
    return (well * 100) / this.active < t;
  }

  private updatePanic(): void {
    const p = this.computePanic();
    if (p !== this.panic) {
      this.panic = p;
      this.dirty = true;
    }
  }

  // ------------------------------------------------------------ time

  /** Timeouts, windows, latency outliers, drains and ejection decay. Call every few hundred ms. */
  tick(now: number): void {
    const p = this.params;
    const lars = this.profile === 'lars';
    let dropped = false;
    for (const s of this.slots) {
      switch (s.state) {
        case 'healthy':
          if (now - s.windowStart >= p.idle_timeout * 1000) this.closeWindow(s, now);
          if (s.state === 'healthy' && s.ejections > 0 && now - s.lastDecay >= p.ejection_decay_time * 1000) {
            s.ejections--;
            s.lastDecay = now;
          }
          break;
        case 'overloaded': {
          const due = lars ? s.since + p.overload_timeout * 1000 : s.ejectUntil;
          if (now >= due) this.send(s, { type: 'EJECTION_ELAPSED', now }, now);
          break;
        }
        case 'draining':
          if (now - s.since >= p.drain_time * 1000) dropped = true;
          break;
        case 'probing':
          break;
      }
    }
    if (dropped) this.dropDrained(now);
    if (!lars) this.latencyOutliers(now);
  }

  private latencyOutliers(now: number): void {
    const p = this.params;
    const lat: number[] = [];
    for (const s of this.slots) if (s.state === 'healthy' && s.latCalls >= p.latency_min_calls) lat.push(s.latency);
    if (lat.length < 3) {
      this.peerLatency = lat.length > 0 ? lat.reduce((a, b) => a + b, 0) / lat.length : 0;
      return;
    }
    lat.sort((a, b) => a - b);
    const mid = lat.length >> 1;
    const median = lat.length % 2 === 1 ? lat[mid]! : (lat[mid - 1]! + lat[mid]!) / 2;
    this.peerLatency = median;
    for (const s of this.slots) {
      if (s.state !== 'healthy' || s.latCalls < p.latency_min_calls) continue;
      if (s.latency > median * p.latency_factor && s.latency - median >= p.latency_min_gap_ms) {
        this.tryEject(s, 'latency_outlier', now);
      }
    }
  }

  private dropDrained(now: number): void {
    const keep: HostSlot[] = [];
    for (const s of this.slots) {
      if (s.state === 'draining' && now - s.since >= this.params.drain_time * 1000) {
        this.byKey.delete(s.key);
        const e = this.makeEvent(s, 'draining', 'removed', now, {});
        e.to = 'none';
        this.pending.push(e);
      } else {
        keep.push(s);
      }
    }
    this.slots = keep;
    this.recount();
    this.panic = this.computePanic();
    this.dirty = true;
  }

  // ------------------------------------------------------------ registry

  /** Applies a new registry entry: new hosts join healthy, missing ones drain, weights update. */
  applyRegistry(entry: RegistryEntry, now: number): void {
    const oldProfile = this.profile;
    const oldParams = JSON.stringify(this.params);
    this.configure(entry);
    if (this.profile !== oldProfile || JSON.stringify(this.params) !== oldParams) this.dirty = true;
    if (this.profile === 'lars') {
      // lars has no probing state: a probing host is overloaded under lars' rules.
      for (const s of this.slots) if (s.state === 'probing') s.state = 'overloaded';
    }
    const wanted = new Map<string, RegistryHost>();
    for (const h of entry.hosts) wanted.set(`${h.ip}:${h.port}`, h);
    for (const s of this.slots) {
      const h = wanted.get(s.key);
      if (h) {
        if (s.weight !== h.weight || s.zone !== (h.zone ?? undefined)) {
          s.weight = h.weight;
          s.zone = h.zone ?? undefined;
          this.dirty = true;
        }
        if (s.state === 'draining') this.send(s, { type: 'READD', now }, now);
        wanted.delete(s.key);
      } else if (s.state !== 'draining') {
        this.send(s, { type: 'DRAIN', now }, now);
      }
    }
    for (const h of wanted.values()) {
      const s = new HostSlot(h, now);
      this.enterCounters(s, now);
      this.slots.push(s);
      this.byKey.set(s.key, s);
      this.pending.push(this.makeEvent(s, 'none', 'registered', now, {}));
      this.dirty = true;
    }
    if (this.params.drain_time === 0) this.dropDrained(now);
    this.recount();
    this.panic = this.computePanic();
    this.dirty = true;
    this.removed = false;
  }

  /** The route was deleted from the registry: the next flush publishes a tombstone. */
  remove(now: number): void {
    for (const s of this.slots) {
      const e = this.makeEvent(s, s.state, 'removed', now, {});
      e.to = 'none';
      this.pending.push(e);
    }
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
    const p = this.params;
    const hosts: RouteHost[] = this.slots.map((s) => {
      const h: RouteHost = {
        ip: s.ip,
        port: s.port,
        weight: s.weight,
        state: s.state,
        reason: s.reason,
        since: s.since,
        pick_weight: this.pickWeight(s, p),
      };
      if (s.zone !== undefined) h.zone = s.zone;
      return h;
    });
    return {
      v: 1,
      sender: this.nodeId,
      modid: this.modid,
      cmdid: this.cmdid,
      version: Math.max(1, this.version),
      ts: now,
      profile: this.profile,
      panic: this.panic,
      removed: this.removed,
      probe_num: p.probe_num,
      hosts,
    };
  }

  private pickWeight(s: HostSlot, p: NodeParams): number {
    if (s.state === 'draining') return 0;
    if (this.panic) return s.weight;
    if (s.state === 'healthy') return s.weight;
    if (s.state === 'probing') return Math.max(1, Math.round((s.weight * p.probe_weight_percent) / 100));
    return 0;
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
}
