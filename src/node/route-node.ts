/**
 * A route node: hosts one route actor per (modid, cmdid) of the partitions it
 * owns, feeds them the report batches arriving on those partitions' subjects,
 * ticks them, and publishes every change (full route state on the route
 * subject and in the routes KV bucket; one event per transition).
 *
 * Fencing: a route state is published only while the ownership still holds
 * the partition (a lease renewed recently enough by the local clock); the
 * routes KV write is conditional on the revision this node last wrote or
 * read at takeover, and a conflict means the partition is lost: its actors
 * are dropped at once and ownership decides afresh. A new owner restores
 * each route from its checkpoint (`<prefix>_checkpoints`), else from its
 * last published state (actors/resume.ts).
 *
 * This class starts and stops the node, follows ownership changes (acquire,
 * hand over, lose) and runs the tick and flush loop; its parts do the rest:
 * PartitionTable (each partition's phase), EffectiveRegistry (admin and
 * self-registered entries, applied in order), RouteTable (the routes held),
 * RestoreReader (restore reads), Ingress (report batches read or rejected),
 * Publisher (states on the bus under the lease), StateWriter (fenced writes,
 * checkpoints).
 */
import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import { names as makeNames, DEFAULT_PARTITIONS, type Names } from '../../schemas/subjects.ts';
import type { RouteState, RouteEvent } from '../../schemas/messages.ts';
import type { HeardHost } from '../../actors/self-registration.ts';
import type { RouteActor } from '../../actors/route.ts';
import { PUBLISH_LEAD } from '../../actors/resume.ts';
import { encode } from '../../schemas/codec.ts';
import { Registry } from '../registry/registry.ts';
import { RouteStore } from '../registry/route-store.ts';
import { RejectCounter } from '../lib/rejects.ts';
import { silentLogger, type Logger } from '../lib/log.ts';
import { CheckpointStore } from '../cluster/checkpoints.ts';
import { StaticOwnership, type OwnershipHealth, type PartitionOwnership } from '../cluster/ownership.ts';
import { errField, partitionRanges, PartitionLog } from '../lib/ratelog.ts';
import { EffectiveRegistry, type RegistryWatchEntry } from './effective-registry.ts';
import { RestoreReader } from './restore-reader.ts';
import { RouteTable } from './route-table.ts';
import { Publisher } from './publisher.ts';
import { followConnection } from './reconnect.ts';
import { StateWriter } from './state-writer.ts';
import { Ingress } from './ingress.ts';
import { PartitionTable } from './partition-table.ts';
import { newCounters, type RouteNodeStats } from './counters.ts';
import type { RouteSlot } from './route-slot.ts';

export { PUBLISH_LEAD, restoreVersion } from '../../actors/resume.ts';
export type { RouteNodeStats } from './counters.ts';

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

/** A partition coming to or leaving this node (observability, handover timing). */
export interface PartitionEvent {
  partition: number;
  /** acquired: routes loaded and reports subscribed; released: reports no longer taken (handover begins); lost: dropped after a failed fenced write or lease. */
  kind: 'acquired' | 'released' | 'lost';
  /** Node clock, ms. */
  at: number;
}

export class RouteNode {
  readonly nodeId: string;
  readonly names: Names;
  readonly partitions: number;
  readonly rejects: RejectCounter;
  private readonly nc: NatsConnection;
  private readonly log: Logger;
  /** One line per burst of partitions lost by this node's own finding (a fenced write refused). */
  private readonly lostLog: PartitionLog;
  private readonly clock: () => number;
  private readonly ownership: PartitionOwnership;
  private readonly tickMs: number;
  private readonly counters = newCounters();
  /** Every partition's phase and flags. */
  private readonly table: PartitionTable<Subscription>;
  private readonly ingress: Ingress;
  private readonly registry: EffectiveRegistry;
  private readonly publisher: Publisher;
  private restore!: RestoreReader;
  private writer!: StateWriter;
  private rt!: RouteTable;
  /** The route table's routes, by route key. */
  private routes!: Map<string, RouteSlot>;
  private readonly dirty = new Set<RouteSlot>();
  private flushScheduled = false;
  /** When the pending flush was first asked for (performance.now()): publish latency. */
  private dirtyAt = 0;
  private tickTimer: ReturnType<typeof setInterval> | undefined;
  private closed = false;
  /** Set while stopping: partitions handed over keep their actors (readable after the stop) and are not counted lost. */
  private stopping = false;
  private readonly partitionListeners = new Set<(e: PartitionEvent) => void>();
  /** Partitions being restored now, and who waits for none to be (`settled`). */
  private acquiring = 0;
  private restored: Array<() => void> = [];
  /**
   * Routes restored while partitions were being taken over, whose only change
   * is the takeover itself: they are published under this node's name (and
   * stored) once no partition is being restored, so that restoring, which
   * lets the partitions' reports be judged, is not slowed down by tens of
   * thousands of writes. A report or registry entry for one publishes it at once.
   */
  private readonly republish = new Set<RouteSlot>();
  private statusLoop: Promise<void> | undefined;

  private constructor(opts: RouteNodeOptions) {
    this.nc = opts.nc;
    this.nodeId = opts.nodeId;
    this.names = makeNames(opts.prefix);
    this.partitions = opts.partitions ?? DEFAULT_PARTITIONS;
    this.log = (opts.log ?? silentLogger()).child({ mod: 'route-node' });
    this.lostLog = new PartitionLog(this.log, { level: 'warn', msg: 'partitions lost; their routes are dropped', eventMsg: 'partition lost; its routes are dropped', groupBy: 'why' });
    this.clock = opts.clock ?? Date.now;
    this.ownership = opts.ownership ?? StaticOwnership.all(this.partitions);
    this.tickMs = opts.tickMs ?? 100;
    this.rejects = new RejectCounter(this.log, opts.rejectLogIntervalMs ?? 10_000, this.clock);
    this.table = new PartitionTable(this.partitions);
    this.ingress = new Ingress(this.rejects, this.partitions, this.clock);
    const isClosed = (): boolean => this.closed;
    this.registry = new EffectiveRegistry({ names: this.names, partitions: this.partitions, clock: this.clock, rejects: this.rejects, log: this.log, isClosed, apply: (e) => this.rt.apply(e) });
    const lose = (p: number, why: string): void => this.losePartition(p, why);
    this.publisher = new Publisher({ nc: this.nc, names: this.names, log: this.log, counters: this.counters, ownership: this.ownership, table: this.table, isClosed, routes: () => this.routes.values(), isCurrent: (slot) => this.rt.isCurrent(slot), lose, markDirty: (slot) => this.markDirty(slot) });
  }

  /** Starts a node: loads the registry and last route states, then subscribes to its partitions. */
  static async start(opts: RouteNodeOptions): Promise<RouteNode> {
    const node = new RouteNode(opts);
    try {
      await opts.onStart?.(opts.nc, node.names);
      const registry = await Registry.open(opts.nc, node.names);
      const store = await RouteStore.open(opts.nc, node.names);
      const checkpoints = await CheckpointStore.open(opts.nc, node.names.prefix);
      node.openParts(store, checkpoints);
      const initial = new Set(node.ownership.owned());
      for (const p of initial) node.table.take(p);
      // The last states and checkpoints are read in one pass first: the initial entries restore their routes from them.
      await node.restore.preload();
      await node.registry.start(opts.nc, registry);
      node.restore.endPreload();
      for (const p of initial) node.subscribePartition(p);
      node.ownership.onChange((owned) => node.onOwnershipChange(owned));
      node.statusLoop = followConnection(opts.nc, node.names, opts.onStart, () => node.closed, node.log);
      node.tickTimer = setInterval(() => node.tick(), node.tickMs);
      node.tickTimer.unref?.();
      await node.ownership.start?.({ handOver: (ps) => node.handOver(ps, !node.stopping), ingest: () => node.ingestFigures(), verify: (ps) => node.rt.verify(ps) });
      // Changes that came while starting.
      node.onOwnershipChange(node.ownership.owned());
      node.log.info({ routes: node.routes.size, partitions: node.ownership.owned().size }, 'route node started');
    } catch (err) {
      // Whatever started is stopped, so that the caller can start a node again (the bus was settling).
      await node.abandon();
      throw err;
    }
    return node;
  }

  /** Stops what a start that failed part way had started (timers, watches, the ownership), publishing and handing over nothing. */
  private async abandon(): Promise<void> {
    this.stopping = true;
    this.closed = true;
    if (this.tickTimer) clearInterval(this.tickTimer);
    (this.rt as RouteTable | undefined)?.stop();
    this.registry.stop();
    await this.ownership.close().catch((err: unknown) => this.log.warn({ err: errField(this.log, err) }, 'ownership not closed after a failed start'));
  }

  private openParts(store: RouteStore, checkpoints: CheckpointStore): void {
    const isClosed = (): boolean => this.closed;
    this.restore = new RestoreReader({ store, checkpoints, prefix: this.names.prefix, log: this.log, isClosed });
    const isActive = (p: number): boolean => this.table.isActive(p);
    const markDirty = (slot: RouteSlot): void => this.markDirty(slot);
    this.rt = new RouteTable({ names: this.names, nodeId: this.nodeId, partitions: this.partitions, clock: this.clock, log: this.log, restore: this.restore, registry: this.registry, isActive, isClosed, markDirty });
    this.routes = this.rt.routes;
    this.writer = new StateWriter({
      store,
      checkpoints,
      names: this.names,
      nodeId: this.nodeId,
      clock: this.clock,
      log: this.log,
      counters: this.counters,
      isClosed,
      isCurrent: (slot) => this.rt.isCurrent(slot),
      onStored: (slot, w) => this.publisher.sendStored(slot, w),
      onConflict: (slot, route) => {
        if (slot.unverified) this.table.get(slot.partition).verifyNext = true;
        if (this.rt.isCurrent(slot)) this.losePartition(slot.partition, `route ${route} was written by another node`);
      },
    });
  }

  // ---------------------------------------------------------------- partitions

  private subscribePartition(p: number): void {
    if (this.table.get(p).sub) return;
    const sub = this.nc.subscribe(this.names.reportPartitionWildcard(p));
    this.table.serve(p, sub);
    void (async () => {
      for await (const m of sub) this.onReport(m, p);
    })().catch((err: unknown) => this.log.error({ err, partition: p }, 'partition subscription ended'));
  }

  /** Stops serving a partition at once: no more reports, its actors and pending writes dropped. */
  private dropPartition(p: number): void {
    this.table.drop(p);
    for (const [key, slot] of this.routes) {
      if (slot.partition !== p) continue;
      this.rt.delete(key, slot);
      this.dirty.delete(slot);
      this.writer.forget(slot);
      this.republish.delete(slot);
    }
  }

  private onOwnershipChange(owned: ReadonlySet<number>): void {
    if (this.closed) return;
    // Handed-over partitions are gone already: what is left here was lost (the ownership logged why).
    for (const p of this.table.active()) if (!owned.has(p) && !this.table.get(p).kept) this.losePartition(p, 'the ownership no longer holds it', false);
    const added = [...owned].filter((p) => !this.table.isActive(p));
    if (added.length === 0) return;
    for (const p of added) this.table.take(p);
    void this.acquire(added).catch((err: unknown) => this.log.error({ err, partitions: added }, 'partition load failed'));
  }

  /** Loads the routes of newly owned partitions (restoring each), then subscribes to their reports; each partition as soon as its routes are in. */
  private async acquire(ps: number[]): Promise<void> {
    const byPartition = new Map<number, RegistryWatchEntry[]>(ps.map((p) => [p, this.registry.ofPartition(p)]));
    await Promise.all(ps.map((p) => this.acquirePartition(p, byPartition.get(p)!)));
    const routes = [...byPartition.values()].reduce((a, l) => a + l.length, 0);
    this.log.info({ partitions: partitionRanges(ps), count: ps.length, routes }, `partitions acquired: ${ps.length} (${partitionRanges(ps)}), ${routes} routes`);
  }

  /** Restores one partition's routes, then takes its reports; the last restore to end lets the routes waiting in `republish` go out. */
  private async acquirePartition(p: number, entries: RegistryWatchEntry[]): Promise<void> {
    this.acquiring++;
    try {
      await this.restore.restorePartition(p, entries, this.table.takeVerify(p), (e) => this.registry.enqueue(e, true));
      if (this.table.isActive(p) && !this.closed) {
        this.subscribePartition(p);
        this.emitPartition({ partition: p, kind: 'acquired', at: this.clock() });
      }
    } finally {
      if (--this.acquiring === 0) {
        const waiting = [...this.republish];
        this.republish.clear();
        for (const slot of waiting) this.markDirty(slot);
        const done = this.restored;
        this.restored = [];
        for (const f of done) f();
      }
    }
  }

  /**
   * Hands partitions over: stops taking their reports, publishes what
   * changed, waits for the route states and checkpoints to be stored, and
   * (with `drop`) drops the actors. The ownership releases the leases after.
   */
  private async handOver(ps: readonly number[], drop: boolean): Promise<void> {
    const set = new Set(ps);
    const at = this.clock();
    for (const p of ps) {
      this.table.unsubscribe(p);
      this.emitPartition({ partition: p, kind: 'released', at });
    }
    this.flush();
    // From here their changes go into the checkpoints (dirty, with pending events) for the next owner to publish.
    for (const p of ps) this.table.hand(p);
    try {
      const t0 = performance.now();
      this.flushNow();
      await this.writer.settledFor(set);
      const t1 = performance.now();
      const written = this.counters.handoverCheckpoints;
      await this.writer.writeHandovers(set, this.routes, (p) => this.ownership.holds?.(p) !== false);
      if (drop) for (const p of ps) this.dropPartition(p);
      else for (const p of ps) this.table.keep(p);
      this.log.debug({ partitions: ps, settleMs: Math.round(t1 - t0), checkpointsMs: Math.round(performance.now() - t1), checkpoints: this.counters.handoverCheckpoints - written }, 'partitions ready to hand over');
    } finally {
      for (const p of ps) this.table.endHanding(p);
    }
  }

  /** A fenced write or renewal failed: the partition belongs to someone else now. */
  private losePartition(p: number, why: string, log = true): void {
    if (!this.table.isActive(p)) return;
    this.table.get(p).heldBack = false;
    this.counters.partitionsLost++;
    if (log) this.lostLog.add(p, { why });
    else this.log.debug({ partition: p, why }, 'partition lost; its routes are dropped');
    this.dropPartition(p);
    this.emitPartition({ partition: p, kind: 'lost', at: this.clock() });
    this.ownership.lost?.(p);
  }

  private emitPartition(e: PartitionEvent): void {
    for (const l of this.partitionListeners) {
      try {
        l(e);
      } catch (err) {
        this.log.error({ err }, 'partition listener failed');
      }
    }
  }

  // ---------------------------------------------------------------- reports (hot path)

  private onReport(m: Msg, partition: number): void {
    this.counters.batches++;
    const b = this.ingress.readBatch(m, partition);
    if (b === undefined) return;
    const slot = this.routes.get(`${b.modid}.${b.cmdid}`);
    if (!slot || slot.actor.isRemoved) {
      this.rejects.reject('unknown_route', `route ${b.modid}.${b.cmdid} is not registered`, { subject: m.subject });
      return;
    }
    const r = slot.actor.ingest(b, this.clock());
    this.rt.reached(slot);
    this.counters.reports += r.applied;
    if (r.unknownHost > 0) this.rejects.reject('unknown_host', `${r.unknownHost} reports for hosts not in ${b.modid}.${b.cmdid}`, { subject: m.subject }, r.unknownHost);
    if (slot.actor.isDirty) this.markDirty(slot);
  }

  private tick(): void {
    this.registry.expire();
    this.rt.tick(this.clock());
  }

  // ---------------------------------------------------------------- publishing

  private markDirty(slot: RouteSlot): void {
    this.dirty.add(slot);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      this.dirtyAt = performance.now();
      setImmediate(() => this.flush(FLUSH_SLICE));
    }
  }

  /** A flush that was asked for, done now. */
  private flushNow(): void {
    if (this.flushScheduled) this.flush();
  }

  /** Publishes the changed routes; at most `limit` of them, the rest in the next turn (a takeover of thousands of routes must not stall the lease renewals). */
  private flush(limit = Infinity): void {
    this.flushScheduled = false;
    const now = this.clock();
    let n = 0;
    for (const slot of this.dirty) {
      if (n++ >= limit) break;
      this.dirty.delete(slot);
      const a0 = slot.actor;
      if (this.routes.get(this.names.routeKey(a0.modid, a0.cmdid)) !== slot || this.table.isHanding(slot.partition)) continue;
      if (slot.takeover && this.acquiring > 0) {
        this.republish.add(slot);
        continue;
      }
      if (this.ownership.holds && !this.ownership.holds(slot.partition)) {
        // The lease may have expired (a stall, a slow renewal): publish nothing until it is renewed.
        this.counters.fenced++;
        this.publisher.reassert(slot.partition);
        continue;
      }
      slot.takeover = false;
      this.republish.delete(slot);
      const ch = a0.flush(now);
      if (!ch) continue;
      const a = slot.actor;
      const data = encode(ch.state);
      const prev = this.writer.pending(slot);
      if (slot.storeFirst || ch.state.version > slot.ackedVersion + PUBLISH_LEAD) {
        // Stored first, published once the write is acknowledged; the events of a state it replaces go with it.
        if (!slot.storeFirst) this.counters.publishWaits++;
        this.writer.set(slot, { data, removed: ch.state.removed, version: ch.state.version, held: { state: ch.state, events: prev?.held ? [...prev.held.events, ...ch.events] : ch.events, at: this.dirtyAt } });
      } else {
        // Events of a state that waited for its write and is replaced by this one go out with this one.
        this.publisher.send(slot, ch.state, data, prev?.held ? [...prev.held.events, ...ch.events] : ch.events, this.dirtyAt);
        this.writer.set(slot, { data, removed: ch.state.removed, version: ch.state.version });
      }
      if (a.isRemoved) this.rt.delete(this.names.routeKey(a.modid, a.cmdid), slot);
    }
    if (this.dirty.size > 0 && !this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush(FLUSH_SLICE));
    }
    this.writer.pump();
  }

  // ---------------------------------------------------------------- public

  /** Resolves when every route state has been written to KV (those of partitions being restored now included). */
  async settled(): Promise<void> {
    if (this.acquiring > 0) await new Promise<void>((r) => this.restored.push(r));
    this.flushNow();
    await this.writer.whenIdle();
  }

  /** The self-registered hosts of a route as this node last heard them, live or not. */
  selfRegistered(modid: number, cmdid: number): HeardHost[] {
    return this.registry.selfRegistered(this.names.routeKey(modid, cmdid));
  }

  /** Listener for partitions coming and going (handover timing, tests). Returns a remover. */
  onPartition(l: (e: PartitionEvent) => void): () => void {
    this.partitionListeners.add(l);
    return () => this.partitionListeners.delete(l);
  }

  /** Reports and batches ingested so far, and batches waiting in the partition subscriptions. */
  ingestFigures(): { reports: number; batches: number; pending: number } {
    return { reports: this.counters.reports, batches: this.counters.batches, pending: this.table.pending() };
  }

  /** This node's share of the partitions and the partitions without a live owner, as its ownership sees them (undefined: an explicit assignment). */
  ownershipHealth(): OwnershipHealth | undefined {
    return this.ownership.health?.();
  }

  /** Partitions this node serves now: routes loaded and reports taken (from `acquired` until `released` or `lost`). */
  servedPartitions(): number[] {
    return this.table.subscribed();
  }

  /** Listener for every published route change (dev demo, tests, metrics: `publishMs` from the first dirty mark to the publish); one that throws is logged and ignored. Returns a remover. */
  onChange(l: (state: RouteState, events: RouteEvent[], publishMs: number) => void): () => void {
    return this.publisher.onChange(l);
  }

  route(modid: number, cmdid: number): RouteActor | undefined {
    return this.routes.get(this.names.routeKey(modid, cmdid))?.actor;
  }

  stats(): RouteNodeStats {
    return { routes: this.routes.size, hosts: this.rt.hosts(), ...this.counters, rejects: this.rejects.snapshot() };
  }

  /**
   * Graceful stop: announces leaving, then partition after partition (a few
   * at a time) stops taking its reports, publishes and stores its changes and
   * a checkpoint of each of its routes, and releases its lease (the successor
   * takes it over at once). The actors stay readable after the stop.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.stopping = true;
    if (this.tickTimer) clearInterval(this.tickTimer);
    this.rt.stop();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise((r) => (timer = setTimeout(r, 3000)));
    // A lease ownership hands its partitions over one after another here, each lease released once its checkpoints are stored.
    await Promise.race([this.ownership.leave?.().catch((err: unknown) => this.log.warn({ err: errField(this.log, err) }, 'leaving failed')), deadline]);
    // What is still served (an explicit assignment, or a handover that ran out of time) is handed over at once.
    await Promise.race([this.handOver(this.table.active().filter((p) => !this.table.get(p).kept), false), deadline]);
    clearTimeout(timer);
    this.closed = true;
    this.registry.stop();
    await this.ownership.close();
    this.lostLog.flush();
    this.publisher.flushLogs();
    this.log.info(this.stats(), 'route node stopped');
  }
}

/** Changed routes published per event-loop turn. */
const FLUSH_SLICE = 1024;
