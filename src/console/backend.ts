/**
 * The console's view of a running system, from NATS only: the routes bucket
 * and the registry watched (never polled) for the route list, one route's
 * subjects followed while a page shows it, and the registry for operator
 * actions. ClickHouse, when there is one, adds the figures behind each
 * host's last transition, the pictures over time and the audit trail.
 */
import type { KV, KvEntry } from '@nats-io/kv';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { names as namesOf, type Names } from '../../schemas/subjects.ts';
import { validateRouteEvent, validateRouteState, type RegistryEntry, type RouteEvent, type RouteState, type SelfRegistration } from '../../schemas/messages.ts';
import { HostState } from '../../schemas/contract.ts';
import { tryDecode } from '../../schemas/codec.ts';
import { Registry, routeKeyParts } from '../registry/registry.ts';
import { RouteStore } from '../registry/route-store.ts';
import { bindBucket } from '../nats/buckets.ts';
import { LiveWatch } from '../nats/live-watch.ts';
import { decodeSelfRegistration } from '../../schemas/records.ts';
import { silentLogger, type Logger } from '../lib/log.ts';
import { RateLimitedLog } from '../lib/ratelog.ts';
import type { AnalyticsEngine } from '../analytics/engine.ts';
import { actOnHost, type HostActionRequest, type HostActionResult } from '../admin/host-actions.ts';
import { lastTransitions, type AuditRow, type RouteRef } from './queries.ts';

export type StateCounts = Record<HostState, number>;

/** What the route list and the route page say of a route itself. */
export interface RouteHead {
  route: string;
  modid: number;
  cmdid: number;
  /** False: registered, but no route node has published it. */
  published: boolean;
  registered: boolean;
  profile: string;
  version: number;
  /** When the state was published (ms since the epoch); 0 when never. */
  ts: number;
  sender: string;
  panic: boolean;
  /** The share of calls agents refuse while the route sheds (docs/calls.md); 0 when it does not. */
  shed: number;
  removed: boolean;
}

/** One line of the route list. */
export interface RouteSummary extends RouteHead {
  hosts: number;
  states: StateCounts;
  /** Hosts not healthy (overloaded + probing + draining). */
  unhealthy: number;
}

/** One host of the route page. */
export interface HostRow {
  host: string;
  ip: string;
  port: number;
  zone: string;
  weight: number;
  state: string;
  reason: string;
  since: number;
  pick_weight: number;
  /** The share of picks the published weights give this host, 0..1. */
  share: number;
  /** admin, self (instance), or both. */
  origin: string;
  admin?: { state: string; by: string; ts: number };
  /** The host's last transition with its figures, when known. */
  last?: AuditRow;
}

export interface RouteDetail extends RouteHead {
  strategy?: string;
  /** The call policy the route published (docs/calls.md), when it publishes one. */
  calls?: { retry_budget: number; retry_floor: number; hedge_delay_ms?: number; hedge_budget: number };
  probe_num: number;
  states: StateCounts;
  hosts: HostRow[];
}

const emptyCounts = (): StateCounts => ({ healthy: 0, probing: 0, overloaded: 0, draining: 0 });

/** Worst first: overloaded, probing, draining, healthy. */
const STATE_RANK: Record<string, number> = { overloaded: 0, probing: 1, draining: 2, healthy: 3 };

function routeHead(ref: RouteRef, s: RouteState | undefined, reg: RegistryEntry | undefined): RouteHead {
  return {
    route: `${ref.modid}.${ref.cmdid}`,
    modid: ref.modid,
    cmdid: ref.cmdid,
    published: s !== undefined,
    registered: reg !== undefined,
    profile: s?.profile ?? reg?.profile ?? 'default',
    version: s?.version ?? 0,
    ts: s?.ts ?? 0,
    sender: s?.sender ?? '',
    panic: s?.panic ?? false,
    shed: s?.shed ?? 0,
    removed: s?.removed ?? false,
  };
}

function summarize(key: string, s: RouteState | undefined, reg: RegistryEntry | undefined): RouteSummary {
  const states = emptyCounts();
  for (const h of s?.hosts ?? []) states[h.state]++;
  return {
    ...routeHead(routeKeyParts(key)!, s, reg),
    hosts: s ? s.hosts.length : (reg?.hosts.length ?? 0),
    states,
    unhealthy: states.overloaded + states.probing + states.draining,
  };
}

/** Panic first, then the most unhealthy hosts, then unpublished, then by route. */
export function compareSummaries(a: RouteSummary, b: RouteSummary): number {
  return Number(b.panic) - Number(a.panic) || b.unhealthy - a.unhealthy || Number(a.published) - Number(b.published) || a.modid - b.modid || a.cmdid - b.cmdid;
}

export function auditOfEvent(e: RouteEvent): AuditRow {
  return { t: Math.floor(e.ts / 1000), host: `${e.ip}:${e.port}`, from: e.from, to: e.to, reason: e.reason, version: e.version, sender: e.sender, by: e.by ?? '', figures: { ...e.figures } as Record<string, number> };
}

export interface ConsoleBackendOptions {
  nc: NatsConnection;
  prefix: string;
  log?: Logger;
  /** Absent: no pictures over time, audit trail from live events only. */
  engine?: AnalyticsEngine;
  now?: () => number;
}

interface Followed {
  sub: Subscription;
  evSub: Subscription;
  listeners: Set<FollowListener>;
  last: Map<string, AuditRow>;
  recent: AuditRow[];
  state: RouteState | undefined;
  /** The ClickHouse read of the last transitions, once. */
  loaded: Promise<void>;
  pending: boolean;
  busy: boolean;
}

export interface FollowListener {
  detail(d: RouteDetail): void;
  event(a: AuditRow): void;
}

const RECENT_EVENTS = 500;

export class ConsoleBackend {
  readonly names: Names;
  readonly engine: AnalyticsEngine | undefined;
  private readonly nc: NatsConnection;
  private readonly log: Logger;
  private readonly rateLog: RateLimitedLog;
  private readonly now: () => number;
  private readonly states = new Map<string, RouteState>();
  private readonly entries = new Map<string, RegistryEntry>();
  private readonly summaries = new Map<string, RouteSummary>();
  private readonly followed = new Map<string, Followed>();
  private readonly watches: LiveWatch[] = [];
  private registry: Registry | undefined;
  private routesKv: KV | undefined;
  private registryKv: KV | undefined;
  private selfKv: KV | undefined;
  private binding: Promise<void> | undefined;
  private closed = false;

  private constructor(o: ConsoleBackendOptions) {
    this.nc = o.nc;
    this.names = namesOf(o.prefix);
    this.engine = o.engine;
    this.log = (o.log ?? silentLogger()).child({ mod: 'console' });
    this.rateLog = new RateLimitedLog(this.log, 10_000, Date.now);
    this.now = o.now ?? Date.now;
  }

  static async start(o: ConsoleBackendOptions): Promise<ConsoleBackend> {
    const b = new ConsoleBackend(o);
    try {
      await b.bind();
    } catch (err) {
      // The watches started so far are stopped: the caller may start a backend again.
      await b.close().catch(() => undefined);
      throw err;
    }
    void b.followConnection();
    return b;
  }

  /** Binds the buckets that exist (none is created); called again while some are missing. */
  private bind(): Promise<void> {
    if (this.routesKv && this.registryKv) return Promise.resolve();
    this.binding ??= (async () => {
      try {
        // Watches that start over with a full view when they end (a server restarted, a bucket made anew) or the connection comes back.
        if (!this.registryKv && (this.registryKv = await bindBucket(this.nc, this.names.registryBucket).catch(() => undefined))) {
          const w = new LiveWatch({ kv: this.registryKv, what: 'registry', log: this.log, onSnapshot: (all) => this.replace(this.entries, all, (e) => this.onRegistry(e)), onEntry: (e) => this.onRegistry(e) });
          this.watches.push(w);
          await w.start();
          this.registry = await Registry.open(this.nc, this.names);
        }
        if (!this.routesKv && (this.routesKv = await bindBucket(this.nc, this.names.routesBucket).catch(() => undefined))) {
          const w = new LiveWatch({ kv: this.routesKv, what: 'routes', log: this.log, onSnapshot: (all) => this.replace(this.states, all, (e) => this.onRouteEntry(e)), onEntry: (e) => this.onRouteEntry(e) });
          this.watches.push(w);
          await w.start();
        }
      } finally {
        this.binding = undefined;
      }
    })();
    return this.binding;
  }

  /** A full view of a bucket: keys held but absent from it are gone, then every entry applies. */
  private replace(held: Map<string, unknown>, all: ReadonlyMap<string, KvEntry>, apply: (e: KvEntry) => void): void {
    for (const k of [...held.keys()]) {
      if (all.has(k)) continue;
      held.delete(k);
      this.resummarize(k);
    }
    for (const e of all.values()) apply(e);
  }

  /** After a reconnect the views are read again: what changed while away is not missed. */
  private async followConnection(): Promise<void> {
    try {
      for await (const s of this.nc.status()) {
        if (this.closed) break;
        if (s.type === 'reconnect') for (const w of this.watches) w.restart('reconnected');
      }
    } catch {
      // the connection closed
    }
  }

  private onRegistry(e: KvEntry): void {
    if (!routeKeyParts(e.key)) return;
    let entry: RegistryEntry | undefined;
    try {
      entry = Registry.decode(e);
    } catch (err) {
      this.rateLog.warn('bad registry entry', { key: e.key, err }, 'registry entry skipped');
    }
    if (entry) this.entries.set(e.key, entry);
    else this.entries.delete(e.key);
    this.resummarize(e.key);
  }

  private onRouteEntry(e: KvEntry): void {
    if (!routeKeyParts(e.key)) return;
    const s = RouteStore.decodeEntry(e);
    if (s) this.states.set(e.key, s);
    else this.states.delete(e.key);
    this.resummarize(e.key);
  }

  private resummarize(key: string): void {
    const s = this.states.get(key);
    const reg = this.entries.get(key);
    if (!s && !reg) this.summaries.delete(key);
    else this.summaries.set(key, summarize(key, s, reg));
  }

  /** Every route the registry or the routes bucket knows, worst first. */
  async routes(): Promise<RouteSummary[]> {
    await this.bind();
    return [...this.summaries.values()].sort(compareSummaries);
  }

  /** Where the hosts of a route come from, and the admin marks (registry and self-registrations). */
  private async origins(ref: RouteRef, s: RouteState | undefined): Promise<{ entry: RegistryEntry | undefined; self: SelfRegistration[] }> {
    const key = this.names.routeKey(ref.modid, ref.cmdid);
    // The watched registry is current (a route node publishes a registry change after the watch has it); a read only before the watch has the key.
    const entry = this.entries.get(key) ?? (this.registry ? (await this.registry.get(ref.modid, ref.cmdid).catch(() => undefined))?.entry : undefined);
    const inRegistry = new Set((entry?.hosts ?? []).map((h) => `${h.ip}:${h.port}`));
    const self: SelfRegistration[] = [];
    if (s && s.hosts.some((h) => !inRegistry.has(`${h.ip}:${h.port}`))) {
      this.selfKv ??= await bindBucket(this.nc, this.names.selfRegBucket).catch(() => undefined);
      if (this.selfKv) {
        const keys: string[] = [];
        for await (const k of await this.selfKv.keys(`${key}.*`)) keys.push(k);
        for (const k of keys) {
          const e = await this.selfKv.get(k);
          if (e?.operation !== 'PUT') continue;
          const v = decodeSelfRegistration(e.value);
          if (v.ok) self.push(v.value);
        }
      }
    }
    return { entry, self };
  }

  private async compose(ref: RouteRef, s: RouteState | undefined, last: Map<string, AuditRow>): Promise<RouteDetail | undefined> {
    const { entry, self } = await this.origins(ref, s);
    if (!s && !entry) return undefined;
    const regHosts = new Map((entry?.hosts ?? []).map((h) => [`${h.ip}:${h.port}`, h]));
    const selfHosts = new Map(self.map((r) => [`${r.ip}:${r.port}`, r]));
    const total = s ? s.hosts.reduce((a, h) => a + h.pick_weight, 0) : 0;
    const states = emptyCounts();
    const hosts: HostRow[] = [];
    if (s) {
      for (const h of s.hosts) {
        const key = `${h.ip}:${h.port}`;
        states[h.state]++;
        const reg = regHosts.get(key);
        const sr = selfHosts.get(key);
        const origin = reg && sr ? `admin + self (${sr.instance})` : reg ? 'admin' : sr ? `self (${sr.instance})` : 'self';
        const row: HostRow = { host: key, ip: h.ip, port: h.port, zone: h.zone ?? '', weight: h.weight, state: h.state, reason: h.reason, since: h.since, pick_weight: h.pick_weight, share: total > 0 ? h.pick_weight / total : 0, origin };
        if (reg?.admin) row.admin = { ...reg.admin };
        const l = last.get(key);
        if (l) row.last = l;
        hosts.push(row);
      }
    } else {
      for (const [key, h] of regHosts) {
        const row: HostRow = { host: key, ip: h.ip, port: h.port, zone: h.zone ?? '', weight: h.weight, state: 'unpublished', reason: 'no route node has published this route', since: entry!.ts, pick_weight: 0, share: 0, origin: 'admin' };
        if (h.admin) row.admin = { ...h.admin };
        hosts.push(row);
      }
    }
    hosts.sort((a, b) => (STATE_RANK[a.state] ?? 9) - (STATE_RANK[b.state] ?? 9) || b.since - a.since || a.host.localeCompare(b.host));
    const d: RouteDetail = { ...routeHead(ref, s, entry), probe_num: s?.probe_num ?? 0, states, hosts };
    const strategy = s?.strategy ?? entry?.strategy;
    if (strategy) d.strategy = strategy;
    if (s?.retry_budget !== undefined) {
      d.calls = { retry_budget: s.retry_budget, retry_floor: s.retry_floor ?? 0, hedge_budget: s.hedge_budget ?? 0 };
      if (s.hedge_delay_ms !== undefined) d.calls.hedge_delay_ms = s.hedge_delay_ms;
    }
    return d;
  }

  /** One route as the page shows it; undefined when neither registered nor published. */
  async detail(ref: RouteRef): Promise<RouteDetail | undefined> {
    await this.bind();
    const key = this.names.routeKey(ref.modid, ref.cmdid);
    const f = this.followed.get(key);
    if (f) await f.loaded;
    const s = f?.state ?? (this.routesKv ? RouteStore.decodeEntry((await this.routesKv.get(key)) ?? ({ operation: 'DEL' } as KvEntry)) : undefined);
    const last = f ? f.last : await this.loadLast(ref);
    return this.compose(ref, s, last);
  }

  private async loadLast(ref: RouteRef): Promise<Map<string, AuditRow>> {
    if (!this.engine) return new Map();
    try {
      return await lastTransitions(this.engine, ref, this.now() - 7 * 86_400_000);
    } catch (err) {
      this.rateLog.warn('last transitions', { err }, 'reading the last transitions from ClickHouse failed');
      return new Map();
    }
  }

  /** Transitions seen live since the route was first followed, newest first. */
  recentEvents(ref: RouteRef, host?: string): AuditRow[] {
    const f = this.followed.get(this.names.routeKey(ref.modid, ref.cmdid));
    const all = f ? [...f.recent].reverse() : [];
    return host ? all.filter((a) => a.host === host) : all;
  }

  /**
   * Follows one route's subjects for a page: `detail` with every published
   * state (the newest only, when they come faster than they are composed),
   * `event` with every transition. One NATS subscription pair per route,
   * shared by its pages. Returns the unfollow.
   */
  follow(ref: RouteRef, l: FollowListener): () => void {
    const key = this.names.routeKey(ref.modid, ref.cmdid);
    let f = this.followed.get(key);
    if (!f) {
      const followed: Followed = {
        listeners: new Set(),
        last: new Map(),
        recent: [],
        state: this.states.get(key),
        loaded: Promise.resolve(),
        pending: false,
        busy: false,
        sub: this.nc.subscribe(this.names.route(ref.modid, ref.cmdid), {
          callback: (_e, m) => {
            const d = tryDecode(m.data);
            const v = d.ok ? validateRouteState(d.value) : undefined;
            if (!v?.ok) return void this.rateLog.warn('bad route state', { subject: m.subject }, 'invalid route state skipped');
            if (followed.state && v.value.version <= followed.state.version) return;
            followed.state = v.value;
            this.push(ref, followed);
          },
        }),
        evSub: this.nc.subscribe(this.names.event(ref.modid, ref.cmdid), {
          callback: (_e, m) => {
            const d = tryDecode(m.data);
            const v = d.ok ? validateRouteEvent(d.value) : undefined;
            if (!v?.ok) return void this.rateLog.warn('bad route event', { subject: m.subject }, 'invalid route event skipped');
            const a = auditOfEvent(v.value);
            followed.last.set(a.host, a);
            followed.recent.push(a);
            if (followed.recent.length > RECENT_EVENTS) followed.recent.shift();
            for (const x of followed.listeners) x.event(a);
          },
        }),
      };
      followed.loaded = this.loadLast(ref).then((m) => {
        for (const [k, a] of m) if (!followed.last.has(k) || followed.last.get(k)!.t < a.t) followed.last.set(k, a);
      });
      this.followed.set(key, followed);
      f = followed;
    }
    f.listeners.add(l);
    const mine = f;
    return () => {
      mine.listeners.delete(l);
      if (mine.listeners.size === 0 && this.followed.get(key) === mine) {
        this.followed.delete(key);
        mine.sub.unsubscribe();
        mine.evSub.unsubscribe();
      }
    };
  }

  /** Composes and sends the newest state; states arriving meanwhile collapse into one more pass. */
  private push(ref: RouteRef, f: Followed): void {
    if (f.busy) {
      f.pending = true;
      return;
    }
    f.busy = true;
    void (async () => {
      try {
        do {
          f.pending = false;
          await f.loaded;
          const d = await this.compose(ref, f.state, f.last);
          if (d) for (const x of f.listeners) x.detail(d);
        } while (f.pending && !this.closed);
      } catch (err) {
        this.rateLog.warn('compose', { err }, 'route page update failed');
      } finally {
        f.busy = false;
      }
    })();
  }

  /**
   * Carries out an operator action on the registry. A drain or eject that
   * would leave the route without a healthy host (or in panic) is refused
   * with ConfirmationRequiredError unless `r.force` (the page asks first).
   */
  async act(r: HostActionRequest): Promise<HostActionResult> {
    this.registry ??= await Registry.open(this.nc, this.names);
    const published = {
      get: async (modid: number, cmdid: number): Promise<{ state: RouteState } | undefined> => {
        await this.bind();
        const e = this.routesKv ? await this.routesKv.get(this.names.routeKey(modid, cmdid)) : null;
        const state = e ? RouteStore.decodeEntry(e) : undefined;
        return state ? { state } : undefined;
      },
    };
    return actOnHost(this.registry, r, published);
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const w of this.watches) w.stop();
    for (const f of this.followed.values()) {
      f.sub.unsubscribe();
      f.evSub.unsubscribe();
    }
    this.followed.clear();
  }
}
