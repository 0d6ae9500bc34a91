/**
 * A route node: hosts one route actor per (modid, cmdid) of the partitions it
 * owns, feeds them the report batches arriving on those partitions' subjects,
 * ticks them, and publishes every change (full route state on the route
 * subject and in the routes KV bucket; one event per transition).
 */
import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import type { KvWatchEntry } from '@nats-io/kv';
import { names as makeNames, partitionOf, parseRouteTail, DEFAULT_PARTITIONS, type Names } from '../../schemas/subjects.ts';
import { LIMITS, validateReportBatch, type RegistryEntry, type RouteState, type RouteEvent } from '../../schemas/messages.ts';
import { RouteActor } from '../../actors/route.ts';
import { resolveParams } from '../../actors/params.ts';
import { encode, tryDecode } from '../codec.ts';
import { Registry, RouteStore, routeKeyParts, isConflict, watchBucket } from '../registry.ts';
import { RejectCounter } from '../rejects.ts';
import { silentLogger, type Logger } from '../log.ts';
import { StaticOwnership, type PartitionOwnership } from './ownership.ts';

export interface RouteNodeOptions {
  nc: NatsConnection;
  nodeId: string;
  prefix?: string;
  partitions?: number;
  log?: Logger;
  ownership?: PartitionOwnership;
  /** Injected clock, ms. */
  clock?: () => number;
  /** How often route actors are ticked (timeouts, windows, latency), ms. */
  tickMs?: number;
  /** Minimum interval between two log lines of one reject kind, ms. */
  rejectLogIntervalMs?: number;
  /** Called once at start, before subscribing (e.g. to create the JetStream streams). */
  onStart?: (nc: NatsConnection, names: Names) => Promise<void>;
}

export interface RouteNodeStats {
  routes: number;
  hosts: number;
  batches: number;
  reports: number;
  published: number;
  events: number;
  kvWrites: number;
  kvConflicts: number;
  rejects: Record<string, number>;
}

interface RouteSlot {
  actor: RouteActor;
  /** Registry revision last applied. */
  registryRevision: number;
  /** Routes KV revision of our last write (fencing), 0 = key absent. */
  kvRevision: number | undefined;
}

export class RouteNode {
  readonly nodeId: string;
  readonly names: Names;
  readonly partitions: number;
  readonly rejects: RejectCounter;
  private readonly nc: NatsConnection;
  private readonly log: Logger;
  private readonly clock: () => number;
  private readonly ownership: PartitionOwnership;
  private readonly tickMs: number;
  private registry!: Registry;
  private store!: RouteStore;
  private readonly routes = new Map<string, RouteSlot>();
  private readonly dirty = new Set<RouteSlot>();
  private flushScheduled = false;
  private readonly subs = new Map<number, Subscription>();
  private tickTimer: ReturnType<typeof setInterval> | undefined;
  private watchStop: (() => void) | undefined;
  private readonly kvPending = new Map<RouteSlot, RouteState>();
  private kvActive = 0;
  private kvIdle: Array<() => void> = [];
  private closed = false;
  /** Last route states read in bulk at start (only while starting). */
  private preloaded: Map<string, { state: RouteState; revision: number }> | undefined;
  /** Registry entries are applied one at a time, in arrival order. */
  private regChain: Promise<void> = Promise.resolve();
  private readonly listeners = new Set<(state: RouteState, events: RouteEvent[]) => void>();
  private readonly counters = { batches: 0, reports: 0, published: 0, events: 0, kvWrites: 0, kvConflicts: 0 };

  private constructor(opts: RouteNodeOptions) {
    this.nc = opts.nc;
    this.nodeId = opts.nodeId;
    this.names = makeNames(opts.prefix);
    this.partitions = opts.partitions ?? DEFAULT_PARTITIONS;
    this.log = (opts.log ?? silentLogger()).child({ mod: 'route-node' });
    this.clock = opts.clock ?? Date.now;
    this.ownership = opts.ownership ?? StaticOwnership.all(this.partitions);
    this.tickMs = opts.tickMs ?? 100;
    this.rejects = new RejectCounter(this.log, opts.rejectLogIntervalMs ?? 10_000, this.clock);
  }

  /** Starts a node: loads the registry and last route states, then subscribes to its partitions. */
  static async start(opts: RouteNodeOptions): Promise<RouteNode> {
    const node = new RouteNode(opts);
    await opts.onStart?.(opts.nc, node.names);
    node.registry = await Registry.open(opts.nc, node.names);
    node.store = await RouteStore.open(opts.nc, node.names);
    await node.startRegistryWatch();
    for (const p of node.ownership.owned()) node.subscribePartition(p);
    node.ownership.onChange((owned) => node.onOwnershipChange(owned));
    node.tickTimer = setInterval(() => node.tick(), node.tickMs);
    node.tickTimer.unref?.();
    node.log.info({ routes: node.routes.size, partitions: node.ownership.owned().size }, 'route node started');
    return node;
  }

  // ---------------------------------------------------------------- registry

  private async startRegistryWatch(): Promise<void> {
    // The last published state of every route, read in one pass, so that
    // loading many routes costs no read per route.
    const lastStates = new Map<string, { state: RouteState; revision: number }>();
    const routesWatch = await watchBucket(this.store.kv, (e) => {
      const st = RouteStore.decodeEntry(e);
      if (st) lastStates.set(e.key, { state: st, revision: e.revision });
      else lastStates.delete(e.key);
    });
    await routesWatch.initialized;
    routesWatch.stop();
    this.preloaded = lastStates;
    const w = await watchBucket(this.registry.kv, (e) => (this.closed ? undefined : this.enqueueRegistry(e)), {
      onError: (err) => {
        if (!this.closed) this.log.error({ err }, 'registry watch ended');
      },
    });
    this.watchStop = () => w.stop();
    await w.initialized;
    await this.regChain;
    this.preloaded = undefined;
  }

  private enqueueRegistry(e: Pick<KvWatchEntry, 'key' | 'revision' | 'operation' | 'value'>): Promise<void> {
    const p = this.regChain.then(() => this.onRegistryEntry(e));
    this.regChain = p.catch((err: unknown) => this.log.error({ err, key: e.key }, 'registry entry failed'));
    return this.regChain;
  }

  private async onRegistryEntry(e: Pick<KvWatchEntry, 'key' | 'revision' | 'operation' | 'value'>): Promise<void> {
    const parts = routeKeyParts(e.key);
    if (!parts) {
      this.log.warn({ key: e.key }, 'registry key is not <modid>.<cmdid>; ignored');
      return;
    }
    const { modid, cmdid } = parts;
    if (!this.ownership.owned().has(partitionOf(modid, cmdid, this.partitions))) return;
    const key = this.names.routeKey(modid, cmdid);
    const slot = this.routes.get(key);
    if (slot && e.revision <= slot.registryRevision) return;
    let entry: RegistryEntry | undefined;
    try {
      entry = Registry.decode(e as never);
    } catch (err) {
      this.log.error({ err, key }, 'invalid registry entry; route left as it was');
      return;
    }
    const now = this.clock();
    if (entry) {
      const pr = resolveParams(entry.profile ?? 'default', entry.params ?? {});
      if (!pr.ok) this.log.error({ route: key, error: pr.error }, 'registry params rejected; using profile defaults');
    }
    if (!entry) {
      if (slot) {
        slot.registryRevision = e.revision;
        slot.actor.remove(now);
        this.markDirty(slot);
      }
      return;
    }
    if (slot && !slot.actor.isRemoved) {
      slot.registryRevision = e.revision;
      slot.actor.applyRegistry(entry, now);
      this.markDirty(slot);
      return;
    }
    // New route (or re-created after removal): resume from the last published state.
    const last = this.preloaded ? this.preloaded.get(key) : await this.store.get(modid, cmdid).catch(() => undefined);
    const actor = new RouteActor({ modid, cmdid, nodeId: this.nodeId, entry, now, restored: last?.state.removed ? { ...last.state, hosts: [] } : last?.state });
    const ns: RouteSlot = { actor, registryRevision: e.revision, kvRevision: last?.revision ?? 0 };
    this.routes.set(key, ns);
    this.markDirty(ns);
  }

  // ---------------------------------------------------------------- partitions

  private subscribePartition(p: number): void {
    if (this.subs.has(p)) return;
    const sub = this.nc.subscribe(this.names.reportPartitionWildcard(p));
    this.subs.set(p, sub);
    void (async () => {
      for await (const m of sub) this.onReport(m, p);
    })().catch((err: unknown) => this.log.error({ err, partition: p }, 'partition subscription ended'));
  }

  private onOwnershipChange(owned: ReadonlySet<number>): void {
    for (const [p, sub] of this.subs) {
      if (!owned.has(p)) {
        sub.unsubscribe();
        this.subs.delete(p);
      }
    }
    for (const [key, slot] of this.routes) {
      if (!owned.has(partitionOf(slot.actor.modid, slot.actor.cmdid, this.partitions))) this.routes.delete(key);
    }
    for (const p of owned) this.subscribePartition(p);
    void this.reloadRegistry();
  }

  private async reloadRegistry(): Promise<void> {
    const keys = await this.registry.kv.keys();
    for await (const k of keys) {
      const e = await this.registry.kv.get(k);
      if (e) await this.enqueueRegistry(e);
    }
  }

  // ---------------------------------------------------------------- reports (hot path)

  private onReport(m: Msg, partition: number): void {
    this.counters.batches++;
    const data = m.data;
    if (data.length > LIMITS.maxMessageBytes) {
      this.rejects.reject('oversize', `${data.length} bytes`, { subject: m.subject });
      return;
    }
    const d = tryDecode(data);
    if (!d.ok) {
      this.rejects.reject('malformed', d.error.message, { subject: m.subject, payload: data });
      return;
    }
    const v = validateReportBatch(d.value);
    if (!v.ok) {
      this.rejects.reject(v.kind, v.detail, { subject: m.subject, payload: data });
      return;
    }
    const b = v.value;
    const tail = parseRouteTail(m.subject);
    if (!tail || tail.modid !== b.modid || tail.cmdid !== b.cmdid || partitionOf(b.modid, b.cmdid, this.partitions) !== partition) {
      this.rejects.reject('subject_mismatch', `batch for ${b.modid}.${b.cmdid} on ${m.subject}`, { subject: m.subject });
      return;
    }
    const slot = this.routes.get(`${b.modid}.${b.cmdid}`);
    if (!slot || slot.actor.isRemoved) {
      this.rejects.reject('unknown_route', `route ${b.modid}.${b.cmdid} is not registered`, { subject: m.subject });
      return;
    }
    const r = slot.actor.ingest(b, this.clock());
    this.counters.reports += r.applied;
    if (r.unknownHost > 0) this.rejects.reject('unknown_host', `${r.unknownHost} reports for hosts not in ${b.modid}.${b.cmdid}`, { subject: m.subject }, r.unknownHost);
    if (slot.actor.isDirty) this.markDirty(slot);
  }

  private tick(): void {
    const now = this.clock();
    for (const slot of this.routes.values()) {
      slot.actor.tick(now);
      if (slot.actor.isDirty) this.markDirty(slot);
    }
  }


  // ---------------------------------------------------------------- publishing

  private markDirty(slot: RouteSlot): void {
    this.dirty.add(slot);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  private flush(): void {
    this.flushScheduled = false;
    const now = this.clock();
    for (const slot of this.dirty) {
      const ch = slot.actor.flush(now);
      if (!ch) continue;
      const a = slot.actor;
      try {
        this.nc.publish(this.names.route(a.modid, a.cmdid), encode(ch.state));
        this.counters.published++;
        for (const e of ch.events) {
          this.nc.publish(this.names.event(a.modid, a.cmdid), encode(e));
          this.counters.events++;
          this.log.info({ route: `${a.modid}.${a.cmdid}`, host: `${e.ip}:${e.port}`, from: e.from, to: e.to, reason: e.reason, version: e.version, figures: e.figures }, 'host state changed');
        }
      } catch (err) {
        // Disconnected: the KV write below and the agents' re-read on reconnect carry the state.
        this.log.warn({ err, route: `${a.modid}.${a.cmdid}` }, 'publish failed');
      }
      for (const l of this.listeners) l(ch.state, ch.events);
      this.kvPending.set(slot, ch.state);
      if (a.isRemoved) this.routes.delete(this.names.routeKey(a.modid, a.cmdid));
    }
    this.dirty.clear();
    this.pumpKv();
  }

  private pumpKv(): void {
    while (this.kvActive < 16 && this.kvPending.size > 0) {
      const [slot, state] = this.kvPending.entries().next().value as [RouteSlot, RouteState];
      this.kvPending.delete(slot);
      this.kvActive++;
      void this.writeKv(slot, state).finally(() => {
        this.kvActive--;
        this.pumpKv();
        if (this.kvActive === 0 && this.kvPending.size === 0) {
          const w = this.kvIdle;
          this.kvIdle = [];
          for (const f of w) f();
        }
      });
    }
  }

  private async writeKv(slot: RouteSlot, state: RouteState): Promise<void> {
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        slot.kvRevision = await this.store.put(state, slot.kvRevision);
        this.counters.kvWrites++;
        return;
      } catch (err) {
        if (isConflict(err)) {
          // Someone else wrote this route (a previous owner): fencing. Re-read and go on as the owner.
          this.counters.kvConflicts++;
          this.log.warn({ route: `${state.modid}.${state.cmdid}` }, 'route state was written by another node; taking over');
          const cur = await this.store.get(state.modid, state.cmdid).catch(() => undefined);
          slot.kvRevision = cur?.revision ?? 0;
          if (cur && cur.state.version >= state.version) state = { ...state, version: cur.state.version + 1 };
          continue;
        }
        if (this.closed) return;
        this.log.warn({ err, route: `${state.modid}.${state.cmdid}` }, 'route state KV write failed; will retry');
        await new Promise((r) => setTimeout(r, 250 * (attempt + 1)));
      }
    }
    // Keep the newest state for the next flush rather than losing it.
    if (!this.kvPending.has(slot)) this.kvPending.set(slot, state);
  }

  /** Resolves when every route state has been written to KV. */
  async settled(): Promise<void> {
    if (this.flushScheduled) this.flush();
    if (this.kvActive === 0 && this.kvPending.size === 0) return;
    await new Promise<void>((r) => this.kvIdle.push(r));
  }

  /** Listener for every published route change (dev demo, tests). Returns a remover. */
  onChange(l: (state: RouteState, events: RouteEvent[]) => void): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  route(modid: number, cmdid: number): RouteActor | undefined {
    return this.routes.get(this.names.routeKey(modid, cmdid))?.actor;
  }

  stats(): RouteNodeStats {
    let hosts = 0;
    for (const s of this.routes.values()) hosts += s.actor.hostCount;
    return { routes: this.routes.size, hosts, ...this.counters, rejects: this.rejects.snapshot() };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    if (this.tickTimer) clearInterval(this.tickTimer);
    for (const sub of this.subs.values()) sub.unsubscribe();
    this.subs.clear();
    this.flush();
    await Promise.race([this.settled(), new Promise((r) => setTimeout(r, 3000))]);
    this.closed = true;
    this.watchStop?.();
    await this.ownership.close();
    this.log.info(this.stats(), 'route node stopped');
  }
}
