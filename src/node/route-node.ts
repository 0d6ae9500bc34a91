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
 * last published state.
 */
import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import type { KvWatchEntry } from '@nats-io/kv';
import { names as makeNames, partitionOf, parseRouteTail, DEFAULT_PARTITIONS, type Names } from '../../schemas/subjects.ts';
import { LIMITS, validateReportBatch, validateRegistryEntry, type RegistryEntry, type RouteState, type RouteEvent } from '../../schemas/messages.ts';
import { mergeEntry, type HeardHost } from '../../actors/self-registration.ts';
import { RouteActor, type RouteCheckpoint } from '../../actors/route.ts';
import { resolveParams } from '../../actors/params.ts';
import { encode, tryDecode } from '../lib/codec.ts';
import { Registry, routeKeyParts } from '../registry/registry.ts';
import { RouteStore } from '../registry/route-store.ts';
import { isConflict, openBucket, watchBucket } from '../nats/buckets.ts';
import { RejectCounter } from '../lib/rejects.ts';
import { silentLogger, type Logger } from '../lib/log.ts';
import { retry } from '../lib/retry.ts';
import { Limiter, pool } from '../lib/pool.ts';
import { clusterNames } from '../cluster/names.ts';
import { CheckpointStore, type CheckpointRecord, type StoredRecord } from '../cluster/checkpoints.ts';
import { ReportDedup, DedupVerdict } from '../cluster/report-dedup.ts';
import { StaticOwnership, type OwnershipHealth, type PartitionOwnership } from '../cluster/ownership.ts';
import { errText } from '../lib/ratelog.ts';
import { errField, partitionRanges, PartitionLog } from '../lib/ratelog.ts';
import { SelfRegistry } from './self-registry.ts';
import { TickSchedule } from './tick-schedule.ts';

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
  /** Route states held back because the partition's lease was not fresh enough. */
  fenced: number;
  /** Partitions dropped because a fenced write or a lease renewal failed. */
  partitionsLost: number;
  /** Route checkpoints stored at handovers (in the partitions' handover records). */
  handoverCheckpoints: number;
  rejects: Record<string, number>;
}

/** A partition coming to or leaving this node (observability, handover timing). */
export interface PartitionEvent {
  partition: number;
  /** acquired: routes loaded and reports subscribed; released: reports no longer taken (handover begins); lost: dropped after a failed fenced write or lease. */
  kind: 'acquired' | 'released' | 'lost';
  /** Node clock, ms. */
  at: number;
}

/**
 * A route's effective registry entry as the node keeps it: the admin entry
 * merged with the route's self-registered hosts (actors/self-registration.ts).
 * `revision` is the node's own count of changes, one sequence for both
 * sources. `admin` is the admin entry's value when the value is a merge
 * (null: no admin entry); absent, the value is the admin entry's own.
 */
type RegistryWatchEntry = Pick<KvWatchEntry, 'key' | 'revision' | 'operation' | 'value'> & { admin?: Uint8Array | null };

interface RouteSlot {
  actor: RouteActor;
  partition: number;
  /** Registry revision last applied. */
  registryRevision: number;
  /** Routes KV revision of our last write (fencing), 0 = key absent. */
  kvRevision: number | undefined;
  /** `kvRevision` came from the checkpoint, not from a read of the routes bucket: true until a write succeeds on it. */
  unverified?: boolean;
  /** Resumed from a checkpoint that had nothing unpublished, and reached by nothing since (no report, no registry entry): its first publish can wait (`republish`). */
  takeover?: boolean;
  /** Highest version of the route the routes bucket has acknowledged from this node (or held when the route was restored). */
  ackedVersion: number;
  /**
   * The next state is published only once stored (set at a restore): the
   * revision it was restored from may be stale, and the compare-and-set of
   * that first write proves it is not before anything goes to the agents.
   */
  storeFirst: boolean;
  /** Versions whose write timed out: one of them found stored under this node's name was this node's own write. */
  uncertain?: Set<number>;
  /** A state stored while the lease was not fresh: published once it is renewed. */
  unsent?: PendingWrite;
  /** Events of states never published (replaced while waiting): they go out with the route's next publish. */
  carried?: RouteEvent[];
}

export class RouteNode {
  readonly nodeId: string;
  readonly names: Names;
  readonly partitions: number;
  readonly rejects: RejectCounter;
  private readonly nc: NatsConnection;
  private readonly log: Logger;
  /** One line per burst of partitions lost by this node's own finding (a fenced write refused), and of partitions held back. */
  private readonly lostLog: PartitionLog;
  private readonly heldBackLog: PartitionLog;
  private readonly clock: () => number;
  private readonly ownership: PartitionOwnership;
  private readonly tickMs: number;
  private registry!: Registry;
  private store!: RouteStore;
  private readonly routes = new Map<string, RouteSlot>();
  /** Which routes the next tick ticks. */
  private readonly ticks = new TickSchedule<RouteSlot>();
  private readonly dirty = new Set<RouteSlot>();
  private flushScheduled = false;
  private readonly subs = new Map<number, Subscription>();
  private tickTimer: ReturnType<typeof setInterval> | undefined;
  private watchStop: (() => void) | undefined;
  /** Route states waiting for their KV write, as published (the newest of each route). */
  private readonly kvPending = new Map<RouteSlot, PendingWrite>();
  /** Routes with a state write in flight: their next one waits for it (both would expect the same revision). */
  private readonly kvWriting = new Set<RouteSlot>();
  private kvActive = 0;
  private kvIdle: Array<() => void> = [];
  /** Route-state writes in flight per partition, and who waits for any write to end (a partition's handover). */
  private readonly kvActiveBy = new Map<number, number>();
  private kvDone: Array<() => void> = [];
  private closed = false;
  /** Set while stopping: partitions handed over keep their actors (readable after the stop) and are not counted lost. */
  private closing: Set<number> | undefined;
  /** Report batches already ingested, by message id: a retried publish reaches the subscription twice. */
  private readonly dedup: ReportDedup;
  /** Last route states read in bulk at start (only while starting). */
  private preloaded: Map<string, { state: RouteState; revision: number }> | undefined;
  /** Registry entries are applied one at a time, in arrival order. */
  private regChain: Promise<void> = Promise.resolve();
  private readonly listeners = new Set<(state: RouteState, events: RouteEvent[], publishMs: number) => void>();
  /** When the pending flush was first asked for (performance.now()): publish latency. */
  private dirtyAt = 0;
  private readonly partitionListeners = new Set<(e: PartitionEvent) => void>();
  private readonly counters = { batches: 0, reports: 0, published: 0, events: 0, kvWrites: 0, kvConflicts: 0, fenced: 0, partitionsLost: 0, handoverCheckpoints: 0, publishWaits: 0, ownWritesFound: 0 };
  private checkpoints!: CheckpointStore;
  /** Last checkpoints read in bulk at start (only while starting). */
  private preloadedCheckpoints: Map<string, CheckpointRecord> | undefined;
  /** Partitions served: routes loaded (or loading) and reports subscribed. */
  private readonly active = new Set<number>();
  /** Partitions being handed over: nothing more is published for them. */
  private readonly handing = new Set<number>();
  /** Partitions with route states held back (logged once until the lease is renewed). */
  private readonly heldBack = new Set<number>();
  /** Partitions whose lease is being renewed before their held-back states are published. */
  private readonly reasserting = new Set<number>();
  /** Latest registry entry of every route (all partitions), so a partition taken over loads without a read. */
  private readonly registryEntries = new Map<string, RegistryWatchEntry>();
  /** Hosts that registered themselves, merged into the admin entries. */
  private selfRegs!: SelfRegistry;
  /** The effective entries' revisions: one count for admin and self-registration changes. */
  private entrySeq = 0;
  /** The admin registry's initial values are in: self-registration changes are merged from here on. */
  private registryLoaded = false;
  /** The same entries by partition: taking a partition over looks at its own routes, not at every route. */
  private readonly registryByPartition = new Map<number, Map<string, RegistryWatchEntry>>();
  /** Restore reads done in bulk for a partition being taken over. */
  private readonly prefetched = new Map<string, { last: { state: RouteState; revision: number } | undefined; cp: CheckpointRecord | undefined; rev?: number }>();
  /** Partitions lost on a write conflict of a route restored from its checkpoint alone: the next takeover reads every route's state. */
  private readonly verifyNext = new Set<number>();
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
  /** One-pass checkpoint reads of partitions being taken over, a few at a time. */
  private readonly partitionReads = new Limiter(PARTITION_READS);
  /** Routes whose restore read failed, retried while their partition is owned. */
  private readonly retryKeys = new Set<string>();
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private statusLoop: Promise<void> | undefined;

  private constructor(opts: RouteNodeOptions) {
    this.nc = opts.nc;
    this.nodeId = opts.nodeId;
    this.names = makeNames(opts.prefix);
    this.partitions = opts.partitions ?? DEFAULT_PARTITIONS;
    this.log = (opts.log ?? silentLogger()).child({ mod: 'route-node' });
    this.lostLog = new PartitionLog(this.log, { level: 'warn', msg: 'partitions lost; their routes are dropped', eventMsg: 'partition lost; its routes are dropped', groupBy: 'why' });
    this.heldBackLog = new PartitionLog(this.log, {
      level: 'warn',
      msg: 'leases not renewed recently enough; route states held back until they are',
      eventMsg: 'lease not renewed recently enough; route states held back until it is',
    });
    this.clock = opts.clock ?? Date.now;
    this.ownership = opts.ownership ?? StaticOwnership.all(this.partitions);
    this.tickMs = opts.tickMs ?? 100;
    this.rejects = new RejectCounter(this.log, opts.rejectLogIntervalMs ?? 10_000, this.clock);
    this.dedup = new ReportDedup({ clock: this.clock });
  }

  /** Starts a node: loads the registry and last route states, then subscribes to its partitions. */
  static async start(opts: RouteNodeOptions): Promise<RouteNode> {
    const node = new RouteNode(opts);
    await opts.onStart?.(opts.nc, node.names);
    node.registry = await Registry.open(opts.nc, node.names);
    node.store = await RouteStore.open(opts.nc, node.names);
    node.checkpoints = await CheckpointStore.open(opts.nc, node.names.prefix);
    const initial = new Set(node.ownership.owned());
    for (const p of initial) node.active.add(p);
    await node.startRegistryWatch();
    for (const p of initial) node.subscribePartition(p);
    node.ownership.onChange((owned) => node.onOwnershipChange(owned));
    node.statusLoop = node.followConnection(opts.onStart);
    node.tickTimer = setInterval(() => node.tick(), node.tickMs);
    node.tickTimer.unref?.();
    await node.ownership.start?.({ handOver: (ps) => node.handOver(ps, node.closing === undefined), ingest: () => node.ingestFigures(), verify: (ps) => node.verify(ps) });
    // Changes that came while starting.
    node.onOwnershipChange(node.ownership.owned());
    node.log.info({ routes: node.routes.size, partitions: node.ownership.owned().size }, 'route node started');
    return node;
  }

  /**
   * After every reconnect, makes what the node needs on the bus again (its
   * streams and buckets): a server that came back on a fresh store has none
   * of them, and agents, sinks and the node itself would wait for them for
   * good. Existing ones are left as they are.
   */
  private async followConnection(onStart: RouteNodeOptions['onStart']): Promise<void> {
    try {
      for await (const s of this.nc.status()) {
        if (this.closed) break;
        if (s.type !== 'reconnect') continue;
        const ensure = async (): Promise<void> => {
          await onStart?.(this.nc, this.names);
          await Registry.open(this.nc, this.names);
          await RouteStore.open(this.nc, this.names);
          await CheckpointStore.open(this.nc, this.names.prefix);
          await openBucket(this.nc, this.names.selfRegBucket, 1, { ttlMs: SELF_BUCKET_MAX_AGE_MS });
        };
        // JetStream may answer only seconds after the connection (a server recovering its store, a leader election).
        await retry(ensure, { attempts: 20, minMs: 250, maxMs: 5000, retryIf: () => !this.closed }).catch((err: unknown) => {
          if (!this.closed) this.log.warn({ err: errText(err) }, 'streams and buckets could not be checked after the reconnect; the next reconnect tries again');
        });
      }
    } catch (err) {
      if (!this.closed) this.log.warn({ err: errText(err) }, 'connection status watch ended');
    }
  }

  // ---------------------------------------------------------------- registry

  private async startRegistryWatch(): Promise<void> {
    // Read in functions of their own: a map captured by a closure here would share this
    // function's context with the registry watch's callback, which lives as long as the node.
    this.preloaded = await this.readLastStates();
    this.preloadedCheckpoints = await this.readAllCheckpoints();
    // Self-registered hosts first: the admin entries are merged with them as they load.
    this.selfRegs = new SelfRegistry(this.clock, this.rejects);
    const selfKv = await openBucket(this.nc, this.names.selfRegBucket, 1, { ttlMs: SELF_BUCKET_MAX_AGE_MS });
    // Changes while the admin entries load are applied once they are in (the merge needs them).
    const changedWhileLoading = new Set<string>();
    await this.selfRegs.watch(selfKv, (routeKey) => {
      if (this.closed) return;
      if (this.registryLoaded) void this.setEffective(routeKey, KEEP_ADMIN);
      else changedWhileLoading.add(routeKey);
    });
    const w = await watchBucket(this.registry.kv, (kvEntry) => {
      if (this.closed) return undefined;
      // Kept for every route, owned or not (a partition taken over starts from them): the value
      // only, copied out of the message it arrived in, which is not kept.
      return this.setEffective(kvEntry.key, kvEntry.operation === 'PUT' ? kvEntry.value.slice() : undefined);
    }, {
      onError: (err) => {
        if (!this.closed) this.log.error({ err }, 'registry watch ended');
      },
    });
    this.watchStop = () => {
      w.stop();
      this.selfRegs.stop();
    };
    await w.initialized;
    this.registryLoaded = true;
    // Routes made of self-registered hosts alone, and self-registration changes that came meanwhile.
    for (const k of [...this.selfRegs.routeKeys()]) if (!this.registryEntries.has(k)) changedWhileLoading.add(k);
    for (const k of changedWhileLoading) void this.setEffective(k, KEEP_ADMIN);
    await this.regChain;
    this.preloaded = undefined;
    this.preloadedCheckpoints = undefined;
  }

  /** The last published state of every route, read in one pass, so that loading many routes costs no read per route. */
  private async readLastStates(): Promise<Map<string, { state: RouteState; revision: number }>> {
    const lastStates = new Map<string, { state: RouteState; revision: number }>();
    const routesWatch = await watchBucket(this.store.kv, (e) => {
      const st = RouteStore.decodeEntry(e);
      if (st) lastStates.set(e.key, { state: st, revision: e.revision });
      else lastStates.delete(e.key);
    });
    await routesWatch.initialized;
    routesWatch.stop();
    return lastStates;
  }

  /** Every route's checkpoint, read in one pass. */
  private async readAllCheckpoints(): Promise<Map<string, CheckpointRecord>> {
    const cps = new Map<string, CheckpointRecord>();
    const cn = clusterNames(this.names.prefix);
    const cpWatch = await watchBucket(this.checkpoints.kv, (e) => {
      const k = cn.checkpointRoute(e.key);
      if (!k) return;
      const cp = CheckpointStore.decodeEntry(e);
      if (cp) cps.set(k.routeKey, cp);
      else cps.delete(k.routeKey);
    });
    await cpWatch.initialized;
    cpWatch.stop();
    return cps;
  }

  /**
   * Recomputes a route's effective entry from its admin entry (`admin`: the
   * new value, undefined when deleted, or KEEP_ADMIN for the one held) and its
   * live self-registered hosts; keeps it and applies it.
   */
  private setEffective(key: string, admin: Uint8Array | undefined | typeof KEEP_ADMIN): Promise<void> {
    const prev = this.registryEntries.get(key);
    const adminValue = admin !== KEEP_ADMIN ? admin : prev === undefined ? undefined : prev.admin !== undefined ? (prev.admin ?? undefined) : prev.value;
    const parts = routeKeyParts(key);
    const self = parts ? this.selfRegs.live(key) : [];
    let value = adminValue;
    let merged = false;
    if (parts && self.length > 0) {
      const d = adminValue === undefined ? undefined : tryDecode(adminValue);
      const a = d?.ok ? validateRegistryEntry(d.value) : undefined;
      // An admin entry that does not decode goes through as it is (and is refused, logged, where it is applied).
      if (adminValue === undefined || a?.ok) {
        value = encode(mergeEntry(a?.ok ? a.value : undefined, self, parts.modid, parts.cmdid, Date.now()));
        merged = true;
      }
    }
    if (prev === undefined && value === undefined) return this.regChain;
    const e: RegistryWatchEntry = value === undefined ? { key, revision: ++this.entrySeq, operation: 'DEL', value: NO_VALUE } : { key, revision: ++this.entrySeq, operation: 'PUT', value };
    if (merged) e.admin = adminValue ?? null;
    const p = parts ? partitionOf(parts.modid, parts.cmdid, this.partitions) : -1;
    if (e.operation === 'PUT') {
      this.registryEntries.set(key, e);
      if (p >= 0) {
        let m = this.registryByPartition.get(p);
        if (m === undefined) this.registryByPartition.set(p, (m = new Map<string, RegistryWatchEntry>()));
        m.set(key, e);
      }
    } else {
      this.registryEntries.delete(key);
      this.registryByPartition.get(p)?.delete(key);
    }
    return this.enqueueRegistry(e);
  }

  /** Applies a registry entry after those before it; `ifLatest`: only if no newer one for its key has arrived meanwhile. */
  private enqueueRegistry(e: Pick<KvWatchEntry, 'key' | 'revision' | 'operation' | 'value'>, ifLatest = false): Promise<void> {
    const p = this.regChain.then(() => (ifLatest && this.registryEntries.get(e.key) !== e ? undefined : this.onRegistryEntry(e)));
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
    const partition = partitionOf(modid, cmdid, this.partitions);
    if (!this.active.has(partition)) return;
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
    if (entry?.params !== undefined && Object.keys(entry.params).length > 0) {
      const pr = resolveParams(entry.profile ?? 'default', entry.params);
      if (!pr.ok) this.log.error({ route: key, error: pr.error }, 'registry params rejected; using profile defaults');
    }
    if (!entry) {
      if (slot) {
        slot.registryRevision = e.revision;
        slot.actor.remove(now);
        this.reached(slot);
        this.markDirty(slot);
      }
      return;
    }
    if (slot && !slot.actor.isRemoved) {
      slot.registryRevision = e.revision;
      slot.actor.applyRegistry(entry, now);
      this.reached(slot);
      this.markDirty(slot);
      return;
    }
    // New route (or re-created after removal, or taken over): resume from the
    // checkpoint, else the last published state. A failed read leaves the
    // route unloaded and retried: a blank restart would publish a lower
    // version, or hosts the previous owner had ejected.
    let last: { state: RouteState; revision: number } | undefined;
    let cp: CheckpointRecord | undefined;
    let rev: number | undefined;
    const pre = this.prefetched.get(key);
    if (pre) {
      this.prefetched.delete(key);
      ({ last, cp, rev } = pre);
    } else if (this.preloaded) {
      last = this.preloaded.get(key);
      cp = this.preloadedCheckpoints?.get(key);
    } else {
      try {
        [last, cp] = await retry(() => Promise.all([this.store.get(modid, cmdid), this.checkpoints.get(partition, key)]), { attempts: 3, minMs: 50, retryIf: () => !this.closed });
      } catch (err) {
        this.log.warn({ err: errField(this.log, err), route: key }, 'route restore read failed; retrying later');
        this.retryLater(key);
        return;
      }
      if (!this.active.has(partition)) return;
      const again = this.routes.get(key);
      if (again && !again.actor.isRemoved) return;
    }
    // The checkpoint when it is as new as the published state; marked
    // changed, so the new owner publishes the route under its name at once.
    // A removed route comes back with fresh hosts, its version continuing.
    const fresh = cp && (!last || cp.checkpoint.version >= last.state.version) ? cp.checkpoint : undefined;
    // The previous owner may have published up to PUBLISH_LEAD versions beyond what it stored: this node's
    // versions start above all of them (restoreVersion), so that none goes backwards and none means two contents.
    const checkpoint = fresh && !fresh.removed ? { ...fresh, version: restoreVersion(fresh.version), dirty: true } : undefined;
    let restored = last?.state === undefined ? undefined : { ...last.state, version: restoreVersion(last.state.version) };
    if (restored?.removed || fresh?.removed) restored = { ...(restored ?? emptyState(modid, cmdid)), version: restoreVersion(Math.max(last?.state.version ?? 0, fresh?.version ?? 0)), hosts: [] };
    let actor = new RouteActor({ modid, cmdid, nodeId: this.nodeId, entry, now, checkpoint, restored });
    // Resumed from a checkpoint with nothing left unpublished: the publish under this node's name may wait (`republish`).
    let quiet = checkpoint !== undefined && !fresh!.dirty && fresh!.pending.length === 0;
    if (last && hasPickable(last.state) && !hasPickable(actor.snapshot(now))) {
      // The previous owner published pickable hosts: never replace them with none because the restore went wrong.
      const version = Math.max(restoreVersion(last.state.version), checkpoint?.version ?? 0);
      this.log.warn({ route: key, version }, 'restored route had no pickable host; host states start afresh');
      actor = new RouteActor({ modid, cmdid, nodeId: this.nodeId, entry, now, restored: { ...last.state, version, hosts: [] } });
      quiet = false;
    }
    const stored = Math.max(last?.state.version ?? 0, fresh?.version ?? 0);
    const ns: RouteSlot = { actor, partition, registryRevision: e.revision, kvRevision: last?.revision ?? rev ?? 0, ackedVersion: stored, storeFirst: true };
    if (quiet) ns.takeover = true;
    if (!last && rev !== undefined) ns.unverified = true;
    const replaced = this.routes.get(key);
    if (replaced) this.ticks.remove(replaced);
    this.routes.set(key, ns);
    this.ticks.touch(ns);
    this.markDirty(ns);
  }

  private retryLater(key: string): void {
    this.retryKeys.add(key);
    if (this.retryTimer || this.closed) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      const keys = [...this.retryKeys];
      this.retryKeys.clear();
      void this.loadKeys(keys);
    }, 1000);
    this.retryTimer.unref?.();
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

  private unsubscribePartition(p: number): void {
    this.subs.get(p)?.unsubscribe();
    this.subs.delete(p);
  }

  /** Stops serving a partition at once: no more reports, its actors and pending writes dropped. */
  private dropPartition(p: number): void {
    this.unsubscribePartition(p);
    this.active.delete(p);
    for (const [key, slot] of this.routes) {
      if (slot.partition !== p) continue;
      this.routes.delete(key);
      this.dirty.delete(slot);
      this.kvPending.delete(slot);
      this.republish.delete(slot);
      this.ticks.remove(slot);
    }
  }

  private onOwnershipChange(owned: ReadonlySet<number>): void {
    if (this.closed) return;
    // Handed-over partitions are gone already: what is left here was lost (the ownership logged why).
    for (const p of [...this.active]) if (!owned.has(p) && !this.closing?.has(p)) this.losePartition(p, 'the ownership no longer holds it', false);
    const added = [...owned].filter((p) => !this.active.has(p));
    if (added.length === 0) return;
    for (const p of added) this.active.add(p);
    void this.acquire(added).catch((err: unknown) => this.log.error({ err, partitions: added }, 'partition load failed'));
  }

  /** Loads the routes of newly owned partitions (restoring each), then subscribes to their reports; each partition as soon as its routes are in. */
  private async acquire(ps: number[]): Promise<void> {
    const byPartition = new Map<number, RegistryWatchEntry[]>(ps.map((p) => [p, [...(this.registryByPartition.get(p)?.values() ?? [])]]));
    await Promise.all(ps.map((p) => this.acquirePartition(p, byPartition.get(p)!)));
    const routes = [...byPartition.values()].reduce((a, l) => a + l.length, 0);
    this.log.info({ partitions: partitionRanges(ps), count: ps.length, routes }, `partitions acquired: ${ps.length} (${partitionRanges(ps)}), ${routes} routes`);
  }

  /** Restores one partition's routes; the last restore to end lets the routes waiting in `republish` go out. */
  private async acquirePartition(p: number, entries: RegistryWatchEntry[]): Promise<void> {
    this.acquiring++;
    try {
      await this.restorePartition(p, entries);
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
   * Restores one partition's routes from their checkpoints, read in bulk
   * (`readCheckpoints`); a route whose checkpoint carries the routes-bucket
   * revision it goes with needs nothing more. The others (no checkpoint, an
   * older record, a partition lost on a conflict with such a revision, every
   * route of a small partition without a handover) read their last
   * published state, and their checkpoint when the bulk read could not tell
   * that there is none, in parallel. The entries are then applied in order.
   */
  private async restorePartition(p: number, entries: RegistryWatchEntry[]): Promise<void> {
    const verify = this.verifyNext.delete(p);
    let cps: Map<string, Uint8Array> | undefined;
    let complete = false;
    if (!verify) {
      try {
        ({ cps, complete } = await this.partitionReads.run(() => this.readCheckpoints(p, entries.map((e) => e.key))));
      } catch (err) {
        this.log.warn({ err: errField(this.log, err), partition: p }, 'partition checkpoints read failed; reading route by route');
      }
    }
    // In slices, letting timers run between them (lease renewals: a long restore must not let the lease
    // lapse). Each slice's checkpoints are decoded just before its routes are restored: decoded all at
    // once, a partition's checkpoints would outlive many young-generation collections, each copying them.
    for (let i = 0; i < entries.length; i += RESTORE_SLICE) {
      const slice = entries.slice(i, i + RESTORE_SLICE);
      const reads: Array<{ e: RegistryWatchEntry; cp: CheckpointRecord | undefined }> = [];
      for (const e of slice) {
        const raw = cps?.get(e.key);
        const cp = raw === undefined ? undefined : CheckpointStore.decodeRecord(raw);
        if (cp?.rev !== undefined) this.prefetched.set(e.key, { last: undefined, cp, rev: cp.rev });
        else reads.push({ e, cp });
      }
      // A bounded number in flight: thousands of requests at once time out on a busy server.
      await pool(reads, RESTORE_READS, async ({ e, cp }) => {
        const parts = routeKeyParts(e.key)!;
        try {
          const [last, c] = await Promise.all([this.store.get(parts.modid, parts.cmdid), cp !== undefined || complete ? cp : this.checkpoints.get(p, e.key)]);
          this.prefetched.set(e.key, { last, cp: c });
        } catch {
          // read again, with retries, when the entry is applied
        }
      });
      await Promise.all(slice.map((e) => this.enqueueRegistry(e, true)));
      for (const e of slice) this.prefetched.delete(e.key);
      if (i + RESTORE_SLICE < entries.length) await new Promise<void>((r) => setImmediate(r));
    }
    if (!this.active.has(p) || this.closed) return;
    this.subscribePartition(p);
    this.emitPartition({ partition: p, kind: 'acquired', at: this.clock() });
  }

  /**
   * A partition's checkpoints in bulk, by route key. Its handover (see
   * CheckpointStore.putHandover) when no route checkpoint was stored after
   * it; otherwise, or with no handover and many routes, its route
   * checkpoints (in one pass when it has many routes, one read each when few),
   * the handover's record kept for a route where it is the newer.
   * `complete`: a route missing from them has no checkpoint.
   */
  private async readCheckpoints(p: number, keys: readonly string[]): Promise<{ cps: Map<string, Uint8Array> | undefined; complete: boolean }> {
    const h = await this.checkpoints.readHandover(p);
    if (h && !(await this.checkpoints.storedAfter(p, h.seq))) return { cps: h.records, complete: false };
    if (keys.length < BULK_RESTORE_MIN) {
      if (!h) return { cps: undefined, complete: false };
      const cps = new Map<string, Uint8Array>(h.records);
      await pool(keys, RESTORE_READS, async (k) => {
        const r = await this.checkpoints.getStored(p, k);
        if (r) keepNewer(cps, h.seq, k, r);
      });
      return { cps, complete: true };
    }
    const stored = await this.checkpoints.readPartition(p);
    const cps = new Map<string, Uint8Array>(h?.records);
    for (const [k, r] of stored) keepNewer(cps, h?.seq, k, r);
    return { cps, complete: true };
  }

  private async loadKeys(keys: string[]): Promise<void> {
    await Promise.all(
      keys.map(async (k) => {
        const parts = routeKeyParts(k);
        const e = this.registryEntries.get(k);
        if (!e || !parts || !this.active.has(partitionOf(parts.modid, parts.cmdid, this.partitions))) return;
        await this.enqueueRegistry(e, true);
      }),
    );
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
      this.unsubscribePartition(p);
      this.emitPartition({ partition: p, kind: 'released', at });
    }
    this.flush();
    // From here their changes go into the checkpoints (dirty, with pending events) for the next owner to publish.
    for (const p of ps) this.handing.add(p);
    try {
      const t0 = performance.now();
      await this.settledFor(set);
      const t1 = performance.now();
      const written = this.counters.handoverCheckpoints;
      await this.writeHandovers(set);
      if (drop) for (const p of ps) this.dropPartition(p);
      else for (const p of ps) this.closing?.add(p);
      this.log.debug({ partitions: ps, settleMs: Math.round(t1 - t0), checkpointsMs: Math.round(performance.now() - t1), checkpoints: this.counters.handoverCheckpoints - written }, 'partitions ready to hand over');
    } finally {
      for (const p of ps) this.handing.delete(p);
    }
  }

  /**
   * Stores each partition's handover: every route's checkpoint, together
   * (CheckpointStore.putHandover). Only while still holding the partition: the
   * write is not fenced by itself. A failed write is logged; the next owner
   * then restores from the route checkpoints, as after a crash.
   */
  private async writeHandovers(set: ReadonlySet<number>): Promise<void> {
    const now = this.clock();
    const ts = Date.now();
    const byPartition = new Map<number, Array<readonly [string, Uint8Array]>>();
    for (const p of set) if (this.ownership.holds?.(p) !== false) byPartition.set(p, []);
    for (const [key, s] of this.routes) {
      const records = byPartition.get(s.partition);
      if (records && !s.actor.isRemoved) records.push([key, CheckpointStore.encodeRecord(s.actor.checkpoint(now), ts, s.kvRevision)]);
    }
    await Promise.all(
      [...byPartition].map(async ([p, records]) => {
        try {
          await this.checkpoints.putHandover(p, records, this.nodeId);
          this.counters.handoverCheckpoints += records.length;
        } catch (err) {
          this.log.warn({ err: errField(this.log, err), partition: p }, 'handover checkpoints not stored; the next owner restores from the route checkpoints');
        }
      }),
    );
  }

  /** The partitions' leases had a gap: each route's next state is stored before it is published (see OwnershipHooks.verify). */
  private verify(ps: readonly number[]): void {
    const set = new Set(ps);
    for (const slot of this.routes.values()) if (set.has(slot.partition)) slot.storeFirst = true;
  }

  /** A fenced write or renewal failed: the partition belongs to someone else now. */
  private losePartition(p: number, why: string, log = true): void {
    if (!this.active.has(p)) return;
    this.heldBack.delete(p);
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
    const data = m.data;
    if (data.length > LIMITS.maxMessageBytes) {
      this.rejects.reject('oversize', `${data.length} bytes`, { subject: m.subject });
      return;
    }
    const msgId = m.headers?.get('Nats-Msg-Id');
    if (msgId && this.dedup.seeMsgId(msgId) === DedupVerdict.duplicate) {
      this.rejects.reject('duplicate', `batch ${msgId} ingested already`, { subject: m.subject });
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
    this.reached(slot);
    this.counters.reports += r.applied;
    if (r.unknownHost > 0) this.rejects.reject('unknown_host', `${r.unknownHost} reports for hosts not in ${b.modid}.${b.cmdid}`, { subject: m.subject }, r.unknownHost);
    if (slot.actor.isDirty) this.markDirty(slot);
  }

  /** A report batch or a registry entry reached the route: it is ticked next, and no longer waits to be republished after a takeover. */
  private reached(slot: RouteSlot): void {
    this.ticks.touch(slot);
    slot.takeover = false;
  }

  /** Ticks the routes that something reached since their last tick or whose next tick has come (TickSchedule). */
  private tick(): void {
    if (this.registryLoaded) for (const k of this.selfRegs.expire()) void this.setEffective(k, KEEP_ADMIN);
    const now = this.clock();
    // A route dropped or replaced has left the schedule (TickSchedule.remove).
    for (const slot of this.ticks.take(now)) {
      slot.actor.tick(now);
      if (slot.actor.isDirty) this.markDirty(slot);
      this.ticks.set(slot, slot.actor.nextTick());
    }
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

  /** Publishes the changed routes; at most `limit` of them, the rest in the next turn (a takeover of thousands of routes must not stall the lease renewals). */
  private flush(limit = Infinity): void {
    this.flushScheduled = false;
    const now = this.clock();
    let n = 0;
    for (const slot of this.dirty) {
      if (n++ >= limit) break;
      this.dirty.delete(slot);
      const a0 = slot.actor;
      if (this.routes.get(this.names.routeKey(a0.modid, a0.cmdid)) !== slot || this.handing.has(slot.partition)) continue;
      if (slot.takeover && this.acquiring > 0) {
        this.republish.add(slot);
        continue;
      }
      if (this.ownership.holds && !this.ownership.holds(slot.partition)) {
        // The lease may have expired (a stall, a slow renewal): publish nothing until it is renewed.
        this.counters.fenced++;
        this.reassert(slot.partition);
        continue;
      }
      slot.takeover = false;
      this.republish.delete(slot);
      const ch = a0.flush(now);
      if (!ch) continue;
      const a = slot.actor;
      const data = encode(ch.state);
      const prev = this.kvPending.get(slot);
      if (slot.storeFirst || ch.state.version > slot.ackedVersion + PUBLISH_LEAD) {
        // Stored first, published once the write is acknowledged; the events of a state it replaces go with it.
        if (!slot.storeFirst) this.counters.publishWaits++;
        this.kvPending.set(slot, { data, removed: ch.state.removed, version: ch.state.version, held: { state: ch.state, events: prev?.held ? [...prev.held.events, ...ch.events] : ch.events, at: this.dirtyAt } });
      } else {
        // Events of a state that waited for its write and is replaced by this one go out with this one.
        this.send(slot, ch.state, data, prev?.held ? [...prev.held.events, ...ch.events] : ch.events, this.dirtyAt);
        this.kvPending.set(slot, { data, removed: ch.state.removed, version: ch.state.version });
      }
      if (a.isRemoved) {
        this.routes.delete(this.names.routeKey(a.modid, a.cmdid));
        this.ticks.remove(slot);
      }
    }
    if (this.dirty.size > 0 && !this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush(FLUSH_SLICE));
    }
    this.pumpKv();
  }

  /** Publishes a route state and its events, and tells the change listeners. */
  private send(slot: RouteSlot, state: RouteState, data: Uint8Array, stateEvents: readonly RouteEvent[], dirtyAt: number): void {
    const a = slot.actor;
    const events = slot.carried ? [...slot.carried, ...stateEvents] : stateEvents;
    slot.carried = undefined;
    try {
      this.nc.publish(this.names.route(a.modid, a.cmdid), data);
      this.counters.published++;
      for (const e of events) {
        this.nc.publish(this.names.event(a.modid, a.cmdid), encode(e));
        this.counters.events++;
        this.log.info({ route: `${a.modid}.${a.cmdid}`, host: `${e.ip}:${e.port}`, from: e.from, to: e.to, reason: e.reason, version: e.version, figures: e.figures }, 'host state changed');
      }
    } catch (err) {
      // Disconnected: the KV write and the agents' re-read on reconnect carry the state.
      this.log.warn({ err: errField(this.log, err), route: `${a.modid}.${a.cmdid}` }, 'publish failed');
    }
    for (const l of this.listeners) {
      try {
        l(state, events as RouteEvent[], performance.now() - dirtyAt);
      } catch (err) {
        this.log.error({ err, route: `${a.modid}.${a.cmdid}` }, 'route change listener failed');
      }
    }
  }

  /** Renews a partition's lease before its held-back route states go out; drops the partition when that fails. */
  private reassert(p: number): void {
    if (this.reasserting.has(p) || !this.ownership.reassert) return;
    this.reasserting.add(p);
    if (!this.heldBack.has(p)) {
      this.heldBack.add(p);
      this.heldBackLog.add(p);
    }
    void this.ownership
      .reassert(p)
      .then((ok) => {
        if (this.closed) return;
        if (ok) {
          this.heldBack.delete(p);
          for (const slot of this.routes.values()) {
            if (slot.partition !== p) continue;
            if (slot.unsent) this.sendStored(slot, slot.unsent);
            if (slot.actor.isDirty) this.markDirty(slot);
          }
        } else if (!this.ownership.owned().has(p)) {
          // The renewal failed its compare-and-set: another node has the partition.
          this.losePartition(p, 'lease could not be renewed before publishing');
        }
        // Otherwise the lease store is out of reach: states stay held back and the next flush tries again.
      })
      .catch((err: unknown) => this.log.error({ err, partition: p }, 'lease renewal failed'))
      .finally(() => this.reasserting.delete(p));
  }

  private pumpKv(): void {
    if (this.kvActive >= KV_WRITES) return;
    for (const [slot, w] of this.kvPending) {
      if (this.kvActive >= KV_WRITES) break;
      if (this.kvWriting.has(slot)) continue;
      this.kvPending.delete(slot);
      this.kvWriting.add(slot);
      this.kvActive++;
      const p = slot.partition;
      this.kvActiveBy.set(p, (this.kvActiveBy.get(p) ?? 0) + 1);
      void this.writeKv(slot, w).finally(() => {
        this.kvWriting.delete(slot);
        this.kvActive--;
        const left = this.kvActiveBy.get(p)! - 1;
        if (left > 0) this.kvActiveBy.set(p, left);
        else this.kvActiveBy.delete(p);
        const done = this.kvDone;
        this.kvDone = [];
        for (const f of done) f();
        this.pumpKv();
        if (this.kvActive === 0 && this.kvPending.size === 0) {
          const w = this.kvIdle;
          this.kvIdle = [];
          for (const f of w) f();
        }
      });
    }
  }

  private isCurrent(slot: RouteSlot): boolean {
    return this.routes.get(this.names.routeKey(slot.actor.modid, slot.actor.cmdid)) === slot;
  }

  /**
   * Stores a route state with compare-and-set on the revision this node last
   * wrote (or read at takeover), then its checkpoint; a state that waited
   * for its write is published once stored. A conflict is read back: a write
   * of this node's own that timed out but was applied is adopted; any other
   * writer means another node owns the partition now: the partition is
   * dropped, never overwritten.
   */
  private async writeKv(slot: RouteSlot, w: PendingWrite): Promise<void> {
    const a = slot.actor;
    const route = `${a.modid}.${a.cmdid}`;
    // Taken now, with the state it goes with: a later flush would have replaced the pending write,
    // so the actor is at the version being written (changes since then go in as unpublished).
    const checkpoint = a.checkpoint(this.clock());
    let wrote = false;
    try {
      await retry(
        async () => {
          if (!this.isCurrent(slot) && !w.removed) return;
          try {
            slot.kvRevision = await this.store.putEncoded(a.modid, a.cmdid, w.data, slot.kvRevision);
          } catch (err) {
            if (!isConflict(err)) {
              // It may still be applied: a conflict on the next attempt is then this write, found below.
              (slot.uncertain ??= new Set()).add(w.version);
              throw err;
            }
            if (!(await this.ownWriteFound(slot, w))) throw err;
          }
          slot.unverified = false;
          wrote = true;
          this.counters.kvWrites++;
        },
        {
          attempts: 3,
          minMs: 250,
          retryIf: (err) => !isConflict(err) && !this.closed,
          onRetry: (err) => this.log.warn({ err: errText(err), route }, 'route state KV write failed; will retry'),
        },
      );
    } catch (err) {
      if (isConflict(err)) {
        this.counters.kvConflicts++;
        if (slot.unverified) this.verifyNext.add(slot.partition);
        if (this.isCurrent(slot)) this.losePartition(slot.partition, `route ${route} was written by another node`);
        return;
      }
      if (this.closed) return;
      // Keep the newest state for the next flush rather than losing it.
      if (!this.kvPending.has(slot) && this.isCurrent(slot)) this.kvPending.set(slot, w);
      else if (w.held) this.carryEvents(slot, w);
      return;
    }
    if (!wrote) return;
    if (w.version > slot.ackedVersion) slot.ackedVersion = w.version;
    slot.storeFirst = false;
    if (slot.uncertain) {
      for (const v of slot.uncertain) if (v <= w.version) slot.uncertain.delete(v);
      if (slot.uncertain.size === 0) slot.uncertain = undefined;
    }
    if (w.held) this.sendStored(slot, w);
    // A checkpoint goes only with a state this node stored (its write fenced): not for a route dropped meanwhile.
    await this.storeCheckpoint(slot, checkpoint, Date.now());
  }

  /**
   * A state write met a conflict: reads the route back. Stored under this
   * node's name at a version whose write timed out (or the very version
   * being written), it is this node's own write, applied after all: its
   * revision is adopted (and the state being written goes on it).
   */
  private async ownWriteFound(slot: RouteSlot, w: PendingWrite): Promise<boolean> {
    const a = slot.actor;
    let cur: { state: RouteState; revision: number } | undefined;
    try {
      cur = await this.store.get(a.modid, a.cmdid);
    } catch {
      return false;
    }
    if (!cur || cur.state.sender !== this.nodeId) return false;
    const v = cur.state.version;
    if (v !== w.version && !slot.uncertain?.has(v)) return false;
    this.counters.ownWritesFound++;
    slot.kvRevision = cur.revision;
    if (v > slot.ackedVersion) slot.ackedVersion = v;
    if (v === w.version) return true;
    slot.kvRevision = await this.store.putEncoded(a.modid, a.cmdid, w.data, slot.kvRevision);
    return true;
  }

  /** Publishes a state that waited for its write, now stored: while the partition is held and the route still this node's. */
  private sendStored(slot: RouteSlot, w: PendingWrite): void {
    const held = w.held!;
    slot.unsent = undefined;
    if (!this.isCurrent(slot) && !w.removed) return;
    if (this.handing.has(slot.partition)) return;
    if (this.ownership.holds && !this.ownership.holds(slot.partition)) {
      // Stored: it goes out once the lease is renewed (or the next owner publishes the route).
      slot.unsent = w;
      this.reassert(slot.partition);
      return;
    }
    this.send(slot, held.state, w.data, held.events, held.at);
  }

  /** Keeps the events of a state that was not published for the route's next publish. */
  private carryEvents(slot: RouteSlot, w: PendingWrite): void {
    if (!w.held || w.held.events.length === 0 || !this.isCurrent(slot)) return;
    slot.carried = [...(slot.carried ?? []), ...w.held.events];
  }

  /** Stores a route's checkpoint with the routes revision it goes with; a failed write is logged (the next handover stores it again). */
  private async storeCheckpoint(slot: RouteSlot, checkpoint: RouteCheckpoint, wall: number): Promise<void> {
    const record = CheckpointStore.encodeRecord(checkpoint, wall, slot.kvRevision);
    try {
      await this.checkpoints.putEncoded(slot.partition, this.names.routeKey(slot.actor.modid, slot.actor.cmdid), record);
    } catch (err) {
      this.log.warn({ err: errField(this.log, err), route: `${slot.actor.modid}.${slot.actor.cmdid}` }, 'checkpoint write failed');
    }
  }

  /** Resolves when every route state has been written to KV (those of partitions being restored now included). */
  async settled(): Promise<void> {
    if (this.acquiring > 0) await new Promise<void>((r) => this.restored.push(r));
    if (this.flushScheduled) this.flush();
    if (this.kvActive === 0 && this.kvPending.size === 0) return;
    await new Promise<void>((r) => this.kvIdle.push(r));
  }

  /** Resolves when the route states of these partitions have been written (other partitions' writes are not waited for). */
  private async settledFor(ps: ReadonlySet<number>): Promise<void> {
    if (this.flushScheduled) this.flush();
    // Their writes go first: a handover must not wait behind other partitions' backlog.
    const first = [...this.kvPending].filter(([s]) => ps.has(s.partition));
    if (first.length > 0 && first.length < this.kvPending.size) {
      const rest = [...this.kvPending].filter(([s]) => !ps.has(s.partition));
      this.kvPending.clear();
      for (const [k, v] of [...first, ...rest]) this.kvPending.set(k, v);
    }
    const busy = (): boolean => [...ps].some((p) => this.kvActiveBy.has(p)) || [...this.kvPending.keys()].some((s) => ps.has(s.partition));
    while (busy() && !this.closed) await new Promise<void>((r) => this.kvDone.push(r));
  }

  /** The self-registered hosts of a route as this node last heard them, live or not. */
  selfRegistered(modid: number, cmdid: number): HeardHost[] {
    return this.selfRegs?.all(this.names.routeKey(modid, cmdid)) ?? [];
  }

  /** Listener for partitions coming and going (handover timing, tests). Returns a remover. */
  onPartition(l: (e: PartitionEvent) => void): () => void {
    this.partitionListeners.add(l);
    return () => this.partitionListeners.delete(l);
  }

  /** Reports and batches ingested so far, and batches waiting in the partition subscriptions. */
  ingestFigures(): { reports: number; batches: number; pending: number } {
    let pending = 0;
    for (const s of this.subs.values()) pending += s.getPending();
    return { reports: this.counters.reports, batches: this.counters.batches, pending };
  }

  /** This node's share of the partitions and the partitions without a live owner, as its ownership sees them (undefined: an explicit assignment). */
  ownershipHealth(): OwnershipHealth | undefined {
    return this.ownership.health?.();
  }

  /** Partitions this node serves now: routes loaded and reports taken (from `acquired` until `released` or `lost`). */
  servedPartitions(): number[] {
    return [...this.subs.keys()].sort((x, y) => x - y);
  }

  /** Listener for every published route change (dev demo, tests, metrics: `publishMs` from the first dirty mark to the publish); one that throws is logged and ignored. Returns a remover. */
  onChange(l: (state: RouteState, events: RouteEvent[], publishMs: number) => void): () => void {
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

  /**
   * Graceful stop: announces leaving, then partition after partition (a few
   * at a time) stops taking its reports, publishes and stores its changes and
   * a checkpoint of each of its routes, and releases its lease (the successor
   * takes it over at once). The actors stay readable after the stop.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closing ??= new Set();
    if (this.tickTimer) clearInterval(this.tickTimer);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise((r) => (timer = setTimeout(r, 3000)));
    // A lease ownership hands its partitions over one after another here, each lease released once its checkpoints are stored.
    await Promise.race([this.ownership.leave?.().catch((err: unknown) => this.log.warn({ err: errField(this.log, err) }, 'leaving failed')), deadline]);
    // What is still served (an explicit assignment, or a handover that ran out of time) is handed over at once.
    await Promise.race([this.handOver([...this.active].filter((p) => !this.closing?.has(p)), false), deadline]);
    clearTimeout(timer);
    this.closed = true;
    this.watchStop?.();
    await this.ownership.close();
    this.lostLog.flush();
    this.heldBackLog.flush();
    this.log.info(this.stats(), 'route node stopped');
  }
}

/** A route state waiting for its KV write: its encoding as published (or to publish). */
interface PendingWrite {
  data: Uint8Array;
  removed: boolean;
  version: number;
  /** Not published yet: published, with these events, once stored. */
  held?: { state: RouteState; events: RouteEvent[]; at: number };
}

/**
 * Versions a route may publish beyond the last one the routes bucket
 * acknowledged. A node restoring a route from its stored state starts
 * PUBLISH_LEAD + 1 above it (restoreVersion): above every version the
 * previous owner may have published. Beyond the lead a route's states wait
 * for their writes (a routes bucket that stops answering holds them back
 * after PUBLISH_LEAD changes, not at once).
 */
export const PUBLISH_LEAD = 16;

/** The version a route restored from a stored (or checkpointed) `version` continues from. */
export function restoreVersion(version: number): number {
  return version === 0 ? 0 : version + PUBLISH_LEAD + 1;
}

/** `setEffective`: keep the admin entry the node holds. */
const KEEP_ADMIN = Symbol('keep the admin entry');
const NO_VALUE = new Uint8Array(0);
/** Max age of the self-registration bucket's messages: a host that died without deleting its key leaves no trace after this. */
const SELF_BUCKET_MAX_AGE_MS = 2 * LIMITS.maxSelfTtlMs;

/** Routes in a partition from which a takeover reads the partition's checkpoints in one pass. */
const BULK_RESTORE_MIN = 32;
/** Routes restored in one go before timers get a turn. */
const RESTORE_SLICE = 128;
/** Route-state writes in flight (each followed by its checkpoint's). */
const KV_WRITES = 16;
/** Changed routes published per event-loop turn. */
const FLUSH_SLICE = 1024;
/** Restore reads in flight per partition being taken over. */
const RESTORE_READS = 16;
/**
 * Partitions whose checkpoints are read at once: each read is a watch, and
 * nats-server 2.9 left most of twenty watches started together stalled
 * halfway (five at once read in 0.8 s).
 */
const PARTITION_READS = 4;

/**
 * Puts route checkpoint `r` of route `key` in `cps` unless `cps` holds the
 * route's record from the handover stored at `handoverSeq` and that handover
 * is the newer (stream sequences).
 */
function keepNewer(cps: Map<string, Uint8Array>, handoverSeq: number | undefined, key: string, r: StoredRecord): void {
  if (handoverSeq === undefined || r.seq > handoverSeq || !cps.has(key)) cps.set(key, r.value);
}

function hasPickable(s: RouteState): boolean {
  return s.hosts.some((h) => h.pick_weight > 0);
}

/** A placeholder published state carrying only a version to continue from. */
function emptyState(modid: number, cmdid: number): RouteState {
  return { v: 1, sender: '', modid, cmdid, version: 0, ts: 0, profile: 'default', panic: false, removed: true, probe_num: 0, hosts: [] };
}
