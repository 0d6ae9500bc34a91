/**
 * The agent SDK: picks hosts locally from a cached effective route (no
 * network hop per pick), follows route changes, and batches call results to
 * the route nodes.
 *
 * Route following: on first use of a route the agent subscribes to its route
 * subject, then reads the last state from the routes KV bucket, and keeps the
 * highest version it has seen; full state in every message makes a missed
 * one harmless. After a reconnect it reads the KV value of every route again,
 * so the final state is never missed. While NATS or the route node is away it
 * keeps serving the last known route.
 */
import { randomBytes } from 'node:crypto';
import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { names as makeNames, partitionOf, DEFAULT_PARTITIONS, type Names } from '../../schemas/subjects.ts';
import { LIMITS, validateRouteState, isIPv4, isPort, type ReportBatch, type ReportTuple, type RouteState } from '../../schemas/messages.ts';
import { createStrategy } from '../../actors/strategies/index.ts';
import type { PickableHost, Strategy, StrategyName, Random } from '../../actors/strategies/types.ts';
import { encode, tryDecode } from '../codec.ts';
import { RouteStore } from '../registry.ts';
import { RejectCounter } from '../rejects.ts';
import { connectNats } from '../nats/connect.ts';
import { silentLogger, type Logger } from '../log.ts';
import { ClosedError } from '../errors.ts';

export interface AgentOptions {
  /** An open connection (the agent will not close it), or... */
  nc?: NatsConnection;
  /** ...a URL to connect to (the agent owns and closes that connection). */
  servers?: string;
  prefix?: string;
  partitions?: number;
  /** Sender id on every report batch; default a random id. */
  agentId?: string;
  /** The caller's zone, stamped on reports. */
  zone?: string;
  /** Pick strategy; default smooth weighted round robin. */
  strategy?: StrategyName;
  /** A batch is sent when it holds this many reports... */
  batchMaxReports?: number;
  /** ...or when its oldest report is this old, ms. */
  batchMaxDelayMs?: number;
  /** How long `getHost` waits for a route on its first use, ms. */
  loadTimeoutMs?: number;
  /** Reports kept while they cannot be published; beyond it the oldest are dropped and counted. */
  maxPendingReports?: number;
  log?: Logger;
  random?: Random;
  /** Injected clock, ms. */
  clock?: () => number;
}

/** Result of a pick: a host, or why there is none. */
export type HostPick =
  | { readonly ok: true; readonly ip: string; readonly port: number }
  | { readonly ok: false; readonly code: NoHostCode; readonly message: string };

export const NoHostCode = {
  /** The route is not registered (or was removed), or has not loaded yet. */
  noRoute: 'NO_ROUTE',
  /** The route has no host that may be picked now (Lars RET_OVERLOAD). */
  noHost: 'NO_HOST',
} as const;
export type NoHostCode = (typeof NoHostCode)[keyof typeof NoHostCode];

export interface AgentStats {
  routes: number;
  picks: number;
  reports: number;
  batches: number;
  droppedReports: number;
  routeUpdates: number;
  staleUpdates: number;
  resyncs: number;
  rejects: Record<string, number>;
}

class AgentHost implements PickableHost {
  readonly ip: string;
  readonly port: number;
  pickWeight: number;
  state: PickableHost['state'];
  latencyMs = 0;
  inflight = 0;
  /** Preallocated pick result: picking allocates nothing. */
  readonly result: HostPick;

  constructor(ip: string, port: number, pickWeight: number, state: PickableHost['state']) {
    this.ip = ip;
    this.port = port;
    this.pickWeight = pickWeight;
    this.state = state;
    this.result = Object.freeze({ ok: true as const, ip, port });
  }
}

class ReportBuffer {
  readonly modid: number;
  readonly cmdid: number;
  readonly subject: string;
  hostIndex = new Map<string, number>();
  /** Index by the caller's host object (usually a pick result): the fast path. */
  objIndex = new Map<object, number>();
  hosts: Array<[string, number]> = [];
  reports: ReportTuple[] = [];
  ts = 0;

  constructor(modid: number, cmdid: number, subject: string) {
    this.modid = modid;
    this.cmdid = cmdid;
    this.subject = subject;
  }

  reset(): void {
    this.hostIndex = new Map();
    this.objIndex = new Map();
    this.hosts = [];
    this.reports = [];
    this.ts = 0;
  }
}

class AgentRoute {
  readonly modid: number;
  readonly cmdid: number;
  state: RouteState | undefined;
  /** The KV said the route does not exist (or it was removed). */
  missing = false;
  hosts: AgentHost[] = [];
  byKey = new Map<string, AgentHost>();
  byResult = new Map<object, AgentHost>();
  readonly strategy: Strategy;
  sub: Subscription | undefined;
  loaded: Promise<void> | undefined;
  readonly listeners = new Set<(s: RouteState) => void>();

  constructor(modid: number, cmdid: number, strategy: Strategy) {
    this.modid = modid;
    this.cmdid = cmdid;
    this.strategy = strategy;
  }
}

const NO_ROUTE: HostPick = Object.freeze({ ok: false as const, code: NoHostCode.noRoute, message: 'route is not registered' });
const NO_HOST: HostPick = Object.freeze({ ok: false as const, code: NoHostCode.noHost, message: 'no host may be picked now' });

export class Agent {
  readonly id: string;
  readonly names: Names;
  private readonly nc: NatsConnection;
  private readonly ownsConnection: boolean;
  private readonly partitions: number;
  private readonly strategyName: StrategyName;
  private readonly random: Random | undefined;
  private readonly zone: string | undefined;
  private readonly batchMaxReports: number;
  private readonly batchMaxDelayMs: number;
  private readonly loadTimeoutMs: number;
  private readonly maxPendingReports: number;
  private readonly clock: () => number;
  private readonly log: Logger;
  readonly rejects: RejectCounter;
  private readonly routes = new Map<number, Map<number, AgentRoute>>();
  private readonly buffers = new Map<number, Map<number, ReportBuffer>>();
  private readonly fullBuffers: ReportBuffer[] = [];
  private flushTimer: ReturnType<typeof setTimeout> | undefined;
  private store: RouteStore | undefined;
  private storePromise: Promise<RouteStore | undefined> | undefined;
  private closed = false;
  private connected = true;
  private readonly counters = { picks: 0, reports: 0, batches: 0, droppedReports: 0, routeUpdates: 0, staleUpdates: 0, resyncs: 0 };

  /** Use createAgent(). */
  constructor(nc: NatsConnection, ownsConnection: boolean, opts: AgentOptions) {
    this.nc = nc;
    this.ownsConnection = ownsConnection;
    this.id = opts.agentId ?? `agent-${randomBytes(6).toString('hex')}`;
    this.names = makeNames(opts.prefix);
    this.partitions = opts.partitions ?? DEFAULT_PARTITIONS;
    this.strategyName = opts.strategy ?? 'swrr';
    this.random = opts.random ?? Math.random;
    this.zone = opts.zone;
    this.batchMaxReports = Math.min(opts.batchMaxReports ?? 1000, LIMITS.maxBatchReports);
    this.batchMaxDelayMs = opts.batchMaxDelayMs ?? 20;
    this.loadTimeoutMs = opts.loadTimeoutMs ?? 2000;
    this.maxPendingReports = opts.maxPendingReports ?? 100_000;
    this.clock = opts.clock ?? Date.now;
    this.log = (opts.log ?? silentLogger()).child({ mod: 'agent', agent: this.id });
    this.rejects = new RejectCounter(this.log);
    void this.watchStatus();
  }

  // ---------------------------------------------------------------- picking

  /**
   * Picks a host for a call. On a route's first use, waits (at most
   * loadTimeoutMs) for its current state; after that it answers from the
   * local cache at once.
   */
  async getHost(modid: number, cmdid: number, key?: string): Promise<HostPick> {
    const r = this.routeFor(modid, cmdid);
    if (r.state === undefined && !r.missing) await this.waitLoaded(r);
    return this.pickFrom(r, key);
  }

  /**
   * Synchronous pick from the local cache. A route not loaded yet answers
   * NO_ROUTE (and starts loading), as Lars does on a first call.
   */
  pick(modid: number, cmdid: number, key?: string): HostPick {
    return this.pickFrom(this.routeFor(modid, cmdid), key);
  }

  private pickFrom(r: AgentRoute, key: string | undefined): HostPick {
    if (r.state === undefined || r.missing) return NO_ROUTE;
    const i = r.strategy.pick(key);
    if (i < 0) return NO_HOST;
    const h = r.hosts[i]!;
    h.inflight++;
    this.counters.picks++;
    return h.result;
  }

  /** The current effective route (loading it on first use), or undefined when it is not registered. */
  async getRoute(modid: number, cmdid: number): Promise<RouteState | undefined> {
    const r = this.routeFor(modid, cmdid);
    if (r.state === undefined && !r.missing) await this.waitLoaded(r);
    return r.missing ? undefined : r.state;
  }

  /** Calls `listener` with every new state of the route (and the current one, once loaded). Returns a remover. */
  watchRoute(modid: number, cmdid: number, listener: (s: RouteState) => void): () => void {
    const r = this.routeFor(modid, cmdid);
    r.listeners.add(listener);
    if (r.state) listener(r.state);
    return () => r.listeners.delete(listener);
  }

  /** Loads routes ahead of their first pick. */
  async prepare(routes: Array<[modid: number, cmdid: number]>): Promise<void> {
    await Promise.all(routes.map(([m, c]) => this.getRoute(m, c)));
  }

  private routeFor(modid: number, cmdid: number): AgentRoute {
    let inner = this.routes.get(modid);
    if (inner === undefined) {
      inner = new Map();
      this.routes.set(modid, inner);
    }
    let r = inner.get(cmdid);
    if (r === undefined) {
      if (this.closed) throw new ClosedError('agent');
      r = new AgentRoute(modid, cmdid, createStrategy(this.strategyName, { random: this.random }));
      inner.set(cmdid, r);
      this.startFollowing(r);
    }
    return r;
  }

  private startFollowing(r: AgentRoute): void {
    // Subscribe first, then read the KV: a change between the two arrives on the subscription.
    r.sub = this.nc.subscribe(this.names.route(r.modid, r.cmdid), {
      callback: (err, m) => {
        if (err) return;
        this.onRouteMessage(r, m.data, m.subject);
      },
    });
    r.loaded = this.readStored(r);
  }

  private async waitLoaded(r: AgentRoute): Promise<void> {
    let t: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([r.loaded, new Promise<void>((resolve) => (t = setTimeout(resolve, this.loadTimeoutMs)))]);
    if (t) clearTimeout(t);
  }

  private async routeStore(): Promise<RouteStore | undefined> {
    if (this.store) return this.store;
    if (!this.storePromise) {
      this.storePromise = RouteStore.bind(this.nc, this.names).then((s) => {
        this.store = s;
        this.storePromise = undefined;
        return s;
      });
    }
    return this.storePromise;
  }

  private async readStored(r: AgentRoute): Promise<void> {
    try {
      const store = await this.routeStore();
      const cur = store ? await store.get(r.modid, r.cmdid) : undefined;
      if (cur) this.applyState(r, cur.state);
      else if (r.state === undefined) r.missing = true;
    } catch (err) {
      this.log.warn({ err, route: `${r.modid}.${r.cmdid}` }, 'could not read route state; serving what is cached');
    }
  }

  private onRouteMessage(r: AgentRoute, data: Uint8Array, subject: string): void {
    const d = tryDecode(data);
    if (!d.ok) {
      this.rejects.reject('malformed', d.error.message, { subject, payload: data });
      return;
    }
    const v = validateRouteState(d.value);
    if (!v.ok) {
      this.rejects.reject(v.kind, v.detail, { subject, payload: data });
      return;
    }
    if (v.value.modid !== r.modid || v.value.cmdid !== r.cmdid) {
      this.rejects.reject('subject_mismatch', `state of ${v.value.modid}.${v.value.cmdid} on ${subject}`, { subject });
      return;
    }
    this.applyState(r, v.value);
  }

  private applyState(r: AgentRoute, s: RouteState): void {
    if (r.state !== undefined && s.version <= r.state.version) {
      this.counters.staleUpdates++;
      return;
    }
    this.counters.routeUpdates++;
    r.state = s;
    r.missing = s.removed;
    let next = r.hosts;
    let same = next.length === s.hosts.length;
    for (let i = 0; same && i < next.length; i++) {
      const a = next[i]!;
      const h = s.hosts[i]!;
      same = a.ip === h.ip && a.port === h.port;
    }
    if (same) {
      // The usual change (states and weights of the same hosts): no maps rebuilt.
      for (let i = 0; i < next.length; i++) {
        const a = next[i]!;
        const h = s.hosts[i]!;
        a.pickWeight = h.pick_weight;
        a.state = h.state;
      }
    } else {
      next = [];
      const byKey = new Map<string, AgentHost>();
      const byResult = new Map<object, AgentHost>();
      for (const h of s.hosts) {
        const key = `${h.ip}:${h.port}`;
        let ah = r.byKey.get(key);
        if (ah === undefined) ah = new AgentHost(h.ip, h.port, h.pick_weight, h.state);
        ah.pickWeight = h.pick_weight;
        ah.state = h.state;
        next.push(ah);
        byKey.set(key, ah);
        byResult.set(ah.result, ah);
      }
      r.hosts = next;
      r.byKey = byKey;
      r.byResult = byResult;
    }
    r.strategy.update({ hosts: next, panic: s.panic, probeNum: s.probe_num });
    for (const l of r.listeners) {
      try {
        l(s);
      } catch (err) {
        this.log.error({ err }, 'route listener threw');
      }
    }
  }

  private async watchStatus(): Promise<void> {
    for await (const s of this.nc.status()) {
      if (this.closed) return;
      if (s.type === 'disconnect') this.connected = false;
      if (s.type === 'reconnect') {
        this.connected = true;
        this.counters.resyncs++;
        this.log.info('reconnected; re-reading every followed route');
        for (const inner of this.routes.values()) for (const r of inner.values()) void this.readStored(r);
        this.flushAll();
      }
    }
  }

  // ---------------------------------------------------------------- reporting

  /**
   * Records a call result: retcode 0 is success, anything else an error
   * (Lars); latencyMs is the call's duration. Batched to the route nodes.
   */
  report(modid: number, cmdid: number, host: { ip: string; port: number }, retcode: number, latencyMs: number): void {
    if (this.closed) return;
    if (!Number.isInteger(retcode) || !(latencyMs >= 0)) throw new RangeError(`bad report: retcode ${retcode} latency ${latencyMs}`);
    const now = this.clock();
    const lat = latencyMs > LIMITS.maxLatencyMs ? LIMITS.maxLatencyMs : latencyMs;
    // A pick result of this agent is known valid and found by identity: no string building, no regex.
    const r = this.routes.get(modid)?.get(cmdid);
    let h = r?.byResult.get(host);
    if (h === undefined) {
      if (!isIPv4(host.ip) || !isPort(host.port)) throw new RangeError(`bad report: host ${host.ip}:${host.port}`);
      h = r?.byKey.get(`${host.ip}:${host.port}`);
    }
    if (h !== undefined) {
      // local feedback for p2c
      if (h.inflight > 0) h.inflight--;
      h.latencyMs = h.latencyMs === 0 ? lat : h.latencyMs + 0.2 * (lat - h.latencyMs);
    }
    let inner = this.buffers.get(modid);
    if (inner === undefined) {
      inner = new Map();
      this.buffers.set(modid, inner);
    }
    let b = inner.get(cmdid);
    if (b === undefined) {
      b = new ReportBuffer(modid, cmdid, this.names.report(partitionOf(modid, cmdid, this.partitions), modid, cmdid));
      inner.set(cmdid, b);
    }
    if (b.reports.length === 0) b.ts = now;
    let hi = b.objIndex.get(host);
    if (hi === undefined) {
      const hk = `${host.ip}:${host.port}`;
      hi = b.hostIndex.get(hk);
      if (hi === undefined) {
        hi = b.hosts.length;
        b.hosts.push([host.ip, host.port]);
        b.hostIndex.set(hk, hi);
      }
      b.objIndex.set(host, hi);
    }
    let off = now - b.ts;
    if (off < 0) off = 0;
    b.reports.push([hi, retcode | 0, lat, off > LIMITS.maxOffsetMs ? LIMITS.maxOffsetMs : Math.floor(off)]);
    this.counters.reports++;
    if (b.reports.length >= this.batchMaxReports || b.hosts.length >= LIMITS.maxBatchHosts || off >= LIMITS.maxOffsetMs) this.publish(b);
    else if (this.flushTimer === undefined) this.flushTimer = setTimeout(() => this.flushAll(), this.batchMaxDelayMs);
  }

  private publish(b: ReportBuffer): void {
    if (b.reports.length === 0) return;
    const batch: ReportBatch = { v: 1, sender: this.id, modid: b.modid, cmdid: b.cmdid, ts: b.ts, hosts: b.hosts, reports: b.reports };
    if (this.zone !== undefined) batch.zone = this.zone;
    const n = b.reports.length;
    try {
      this.nc.publish(b.subject, encode(batch));
      this.counters.batches++;
    } catch (err) {
      this.counters.droppedReports += n;
      this.log.warn({ err, reports: n }, 'report batch could not be published; dropped');
    }
    b.reset();
  }

  /** Publishes every buffered report now. */
  flushAll(): void {
    if (this.flushTimer !== undefined) {
      clearTimeout(this.flushTimer);
      this.flushTimer = undefined;
    }
    for (const inner of this.buffers.values()) for (const b of inner.values()) this.publish(b);
  }

  /** Publishes buffered reports and waits until the server has them. */
  async flush(): Promise<void> {
    this.flushAll();
    if (!this.nc.isClosed()) await this.nc.flush();
  }

  /** False between a lost connection and the reconnect (picks keep working from the cache). */
  isConnected(): boolean {
    return this.connected && !this.nc.isClosed();
  }

  stats(): AgentStats {
    let routes = 0;
    for (const inner of this.routes.values()) routes += inner.size;
    return { routes, ...this.counters, rejects: this.rejects.snapshot() };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    try {
      await this.flush();
    } catch {
      // closing anyway
    }
    this.closed = true;
    for (const inner of this.routes.values()) for (const r of inner.values()) r.sub?.unsubscribe();
    if (this.ownsConnection) await this.nc.drain().catch(() => this.nc.close());
  }
}

/** Creates an agent on an open connection or on a new one to `servers`. */
export async function createAgent(opts: AgentOptions = {}): Promise<Agent> {
  if (opts.nc) return new Agent(opts.nc, false, opts);
  const nc = await connectNats({ url: opts.servers ?? process.env['LARS_NATS_URL'] ?? 'nats://127.0.0.1:4222', name: opts.agentId ?? 'lars-agent' });
  return new Agent(nc, true, opts);
}
