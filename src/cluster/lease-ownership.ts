/**
 * Partition ownership by leases in JetStream KV.
 *
 * - Membership (`<prefix>_members`): each node heartbeats; live members are
 *   those heard from within the member TTL by the local clock.
 * - Leases (`<prefix>_leases`, one key per partition): a node wants the
 *   partitions rendezvous hashing gives it over the live members. It takes a
 *   missing lease with `create`, renews its leases with `update` on their
 *   revision every `renewMs`, and takes over a lease nobody renewed for
 *   `leaseMs` with `update` on the stale revision it saw (the compare-and-set
 *   fails if the holder renewed meanwhile). It releases partitions that now
 *   belong to another live member: the node hands them over first, then the
 *   lease is deleted with compare-and-set and the successor, watching the
 *   bucket, takes it at once.
 * - Fencing: `holds(p)` is true only while the lease was renewed within
 *   `leaseMs - safetyMs` by the local clock; a lease revision written by
 *   another node drops the partition at once. A renewal that fails its
 *   compare-and-set reads the lease back first: a write of this node's own
 *   (same name and incarnation) that timed out but was applied is adopted;
 *   anything else drops the partition (another node's lease, or none: it may
 *   have been taken over and released while this node was stopped), which
 *   is then taken and restored afresh when it is still this node's.
 * - Healing: the views of the leases and members buckets are caches. Each
 *   starts over with a full read whenever its watch ends, when the
 *   connection comes back (and then nobody is taken as gone or expired for a
 *   lease time: they were cut off too), and when a partition this node
 *   should own stays unowned; buckets missing after a server came back on a
 *   fresh store are made again.
 */
import { randomBytes } from 'node:crypto';
import type { KV, KvEntry } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { planLeases, rendezvousOwner, type LeaseAction } from '../../actors/ownership.ts';
import { DEFAULT_PARTITIONS, DEFAULT_PREFIX } from '../../schemas/subjects.ts';
import { silentLogger, type Logger } from '../lib/log.ts';
import type { OwnershipHealth, OwnershipHooks, PartitionOwnership } from './ownership.ts';
import { clusterNames, type ClusterNames } from './names.ts';
import { bucketMissing, openTtlBucket } from '../nats/buckets.ts';
import { errField, errText, partitionRanges, PartitionLog } from '../lib/ratelog.ts';
import { isConflict } from '../nats/buckets.ts';
import { pool } from '../lib/pool.ts';
import { Membership } from './membership.ts';
import { LeaseTable, encodeLease, decodeLease, type LeaseChange } from './leases.ts';

export const LEASE_DEFAULTS = {
  leaseMs: 2000,
  heartbeatMs: 500,
} as const;

/**
 * Partitions handed over at once when several are released: each one's lease
 * goes as soon as it is done. One at a time: handovers running together share
 * the node's KV writes and wait on each other, and what a partition without an
 * owner costs is the time from its release to its successor's start
 * (`graceful_handover_gap_ms`: 59 ms one at a time, 102 ms two, 132 ms four, on
 * the benchmark machine); the whole stop takes longer, not a partition.
 */
export const HANDOVER_CONCURRENCY = 1;

export interface LeaseOwnershipOptions {
  nc: NatsConnection;
  nodeId: string;
  prefix?: string;
  partitions?: number;
  log?: Logger;
  /** Injected clock for every timing decision, ms. */
  clock?: () => number;
  /** Wall clock, to age KV entries by their server timestamp. */
  wall?: () => number;
  /** A lease not renewed for this long is taken over (default 2000). */
  leaseMs?: number;
  /** Renewal interval (default leaseMs / 4). */
  renewMs?: number;
  /** The holder stops publishing this long before others may take over (default leaseMs / 4). */
  safetyMs?: number;
  /** Membership heartbeat interval (default 500). */
  heartbeatMs?: number;
  /** A member not heard from for this long is dead (default 3 heartbeats). */
  memberTtlMs?: number;
  /**
   * How long one lease or heartbeat write waits for its answer, ms (default
   * leaseMs / 2, within 200..1000): a write cut off with its server fails in
   * time for the next renewal to go through another one.
   */
  opTimeoutMs?: number;
}

interface Held {
  revision: number;
  /** Local clock when the write that produced `revision` was sent. */
  renewedAt: number;
}

export class LeaseOwnership implements PartitionOwnership {
  readonly nodeId: string;
  readonly leaseMs: number;
  private readonly nc: NatsConnection;
  private readonly names: ClusterNames;
  private readonly partitions: number;
  private readonly log: Logger;
  private readonly clock: () => number;
  private readonly wall: () => number;
  private readonly renewMs: number;
  private readonly safetyMs: number;
  private readonly heartbeatMs: number;
  private readonly memberTtlMs: number;
  private readonly opTimeoutMs: number;
  /** This run of the node: tells its own lease writes from those of an earlier run under the same name. */
  readonly incarnation = randomBytes(6).toString('hex');
  private kv!: KV;
  private membership!: Membership;
  private table!: LeaseTable;
  private hooks: OwnershipHooks | undefined;
  private readonly held = new Map<number, Held>();
  private readonly releasing = new Set<number>();
  /** Handovers under way that an evaluation started. */
  private readonly releases = new Set<Promise<void>>();
  private readonly warnedAt = new Map<string, number>();
  /** One line per burst of takes and of losses (a start takes every lease; a node back from a pause loses them all). */
  private readonly takenLog: PartitionLog;
  private readonly retakenLog: PartitionLog;
  private readonly lostLog: PartitionLog;
  private readonly renewing = new Map<number, Promise<boolean>>();
  /** When each renewal in `renewing` began (local clock). */
  private readonly renewingSince = new Map<number, number>();
  private snapshot: ReadonlySet<number> = new Set();
  private readonly listeners = new Set<(owned: ReadonlySet<number>) => void>();
  private renewTimer: ReturnType<typeof setInterval> | undefined;
  private evalTimer: ReturnType<typeof setInterval> | undefined;
  private selfCheckTimer: ReturnType<typeof setInterval> | undefined;
  private statusLoop: Promise<void> | undefined;
  /** Partitions this node should own and does not hold, since when (local clock). */
  private readonly wantSince = new Map<number, number>();
  /** When each partition was last seen owned by a live node (local clock). */
  private readonly ownedAt: number[] = [];
  private lastResyncAt = -Infinity;
  private ensuring: Promise<void> | undefined;
  /** Since when lease writes have been failing (local clock), none having gone through since. */
  private writesFailingSince: number | undefined;
  private evaluating = false;
  private again = false;
  private leaving = false;
  private closed = false;
  private started = false;
  readonly counters = { taken: 0, takenOver: 0, released: 0, lost: 0, renewFailures: 0, resyncs: 0, ownWritesFound: 0, leasesGone: 0, bucketsMade: 0, renewalsAbandoned: 0 };

  constructor(o: LeaseOwnershipOptions) {
    this.nc = o.nc;
    this.nodeId = o.nodeId;
    this.names = clusterNames(o.prefix ?? DEFAULT_PREFIX);
    this.partitions = o.partitions ?? DEFAULT_PARTITIONS;
    this.log = (o.log ?? silentLogger()).child({ mod: 'leases' });
    this.takenLog = new PartitionLog(this.log, { level: 'info', msg: 'partitions taken', eventMsg: 'partition lease taken', groupBy: 'how' });
    this.retakenLog = new PartitionLog(this.log, {
      level: 'info',
      msg: 'partitions taken again after their leases aged out; routes verified before they publish',
      eventMsg: 'lease found aged out; taken again, routes verified before they publish',
    });
    this.lostLog = new PartitionLog(this.log, { level: 'warn', msg: 'partitions lost', eventMsg: 'partition lost', groupBy: 'why' });
    this.clock = o.clock ?? Date.now;
    this.wall = o.wall ?? Date.now;
    this.leaseMs = o.leaseMs ?? LEASE_DEFAULTS.leaseMs;
    this.renewMs = o.renewMs ?? Math.max(10, Math.floor(this.leaseMs / 4));
    this.safetyMs = o.safetyMs ?? Math.floor(this.leaseMs / 4);
    this.heartbeatMs = o.heartbeatMs ?? LEASE_DEFAULTS.heartbeatMs;
    this.memberTtlMs = o.memberTtlMs ?? this.heartbeatMs * 3;
    this.opTimeoutMs = o.opTimeoutMs ?? Math.min(1000, Math.max(200, Math.floor(this.leaseMs / 2)));
    for (let p = 0; p < this.partitions; p++) this.ownedAt.push(this.clock());
    if (this.renewMs + this.safetyMs >= this.leaseMs) throw new RangeError('lease renewal interval plus safety margin must be below the lease time');
  }

  /** Rendezvous hashing over the live members gives this node the partition. */
  private shouldOwn(p: number): boolean {
    return !this.leaving && !this.closed && rendezvousOwner(p, this.membership.live()) === this.nodeId;
  }

  /** Makes or binds the members and leases buckets (idempotent; start does it too): a process can wait for them while the servers settle. */
  async prepare(): Promise<void> {
    await openTtlBucket(this.nc, this.names.membersBucket, this.membersTtl(), this.opTimeoutMs);
    await openTtlBucket(this.nc, this.names.leasesBucket, this.leasesTtl(), this.opTimeoutMs);
  }

  async start(hooks: OwnershipHooks): Promise<void> {
    if (this.started) return;
    this.started = true;
    this.hooks = hooks;
    const membersKv = await openTtlBucket(this.nc, this.names.membersBucket, this.membersTtl(), this.opTimeoutMs);
    this.kv = await openTtlBucket(this.nc, this.names.leasesBucket, this.leasesTtl(), this.opTimeoutMs);
    this.membership = new Membership({
      kv: membersKv,
      nodeId: this.nodeId,
      key: this.names.memberKey(this.nodeId),
      log: this.log,
      clock: this.clock,
      wall: this.wall,
      heartbeatMs: this.heartbeatMs,
      ttlMs: this.memberTtlMs,
      partitions: () => [...this.held.keys()].sort((a, b) => a - b),
      leaseMs: this.leaseMs,
      ingest: hooks.ingest ? () => hooks.ingest!() : undefined,
    });
    this.table = new LeaseTable(this.kv, this.names, this.log, this.clock, this.wall, (c) => this.onLease(c));
    await this.table.start();
    await this.membership.start();
    this.membership.onChange(() => this.schedule());
    this.renewTimer = setInterval(() => this.renewAll(), this.renewMs);
    this.renewTimer.unref?.();
    this.evalTimer = setInterval(() => this.schedule(), Math.min(this.heartbeatMs, Math.max(10, Math.floor(this.leaseMs / 8))));
    this.evalTimer.unref?.();
    this.selfCheckTimer = setInterval(() => this.selfCheck(), Math.max(this.renewMs, Math.floor(this.leaseMs / 2)));
    this.selfCheckTimer.unref?.();
    this.statusLoop = this.watchConnection();
    this.schedule();
  }

  private membersTtl(): number {
    return Math.max(this.memberTtlMs * 2, 1000);
  }

  private leasesTtl(): number {
    return Math.max(this.leaseMs * 5, 10_000);
  }

  /** After every reconnect: the views are read again, and nobody is taken as gone for a while (they were cut off too). */
  private async watchConnection(): Promise<void> {
    try {
      for await (const s of this.nc.status()) {
        if (this.closed) break;
        if (s.type !== 'reconnect') continue;
        this.table.grace();
        this.membership.grace();
        this.resync('reconnected');
        void this.ensureBuckets();
      }
    } catch (err) {
      if (!this.closed) this.log.warn({ err: errText(err) }, 'connection status watch ended');
    }
  }

  private resync(why: string): void {
    this.lastResyncAt = this.clock();
    this.counters.resyncs++;
    this.log.info({ why }, 'reading leases and members again');
    this.table.resync(why);
    this.membership.resync(why);
    this.schedule();
  }

  /** Makes the leases and members buckets again when a server lost them (a fresh store); one attempt at a time. */
  private ensureBuckets(): Promise<void> {
    if (this.ensuring) return this.ensuring;
    const run = (async () => {
      try {
        await openTtlBucket(this.nc, this.names.membersBucket, this.membersTtl(), this.opTimeoutMs);
        await openTtlBucket(this.nc, this.names.leasesBucket, this.leasesTtl(), this.opTimeoutMs);
      } catch (err) {
        this.warnLimited('buckets', { err: errText(err) }, 'leases and members buckets could not be opened; will retry');
      }
    })().finally(() => {
      this.ensuring = undefined;
    });
    this.ensuring = run;
    return run;
  }

  /**
   * Runs a few times per lease time: a partition this node should own that
   * stayed unowned for over a lease time means its view is stale (a change
   * it never heard of): read everything again rather than wait.
   */
  private selfCheck(): void {
    if (this.closed || this.leaving) return;
    const now = this.clock();
    let stuck = false;
    for (const since of this.wantSince.values()) if (now - since > this.leaseMs + this.renewMs) stuck = true;
    if (stuck && now - this.lastResyncAt > this.leaseMs * 2) {
      this.resync('a partition of this node stayed unowned');
      void this.ensureBuckets();
    }
  }

  owned(): ReadonlySet<number> {
    return this.snapshot;
  }

  onChange(listener: (owned: ReadonlySet<number>) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Live members (not leaving) as this node sees them. */
  members(): string[] {
    return this.membership.live();
  }

  /** What readiness and the metrics tell of ownership: this node's share and the partitions without a live owner. */
  health(): OwnershipHealth {
    const now = this.clock();
    const live = this.started ? this.membership.live() : [this.nodeId];
    let desired = 0;
    let mineUnowned = 0;
    const unowned: Array<{ partition: number; forMs: number }> = [];
    for (let p = 0; p < this.partitions; p++) {
      const mine = !this.leaving && rendezvousOwner(p, live) === this.nodeId;
      if (mine) desired++;
      if (this.isOwned(p, now)) {
        this.ownedAt[p] = now;
        continue;
      }
      unowned.push({ partition: p, forMs: now - this.ownedAt[p]! });
      if (mine) mineUnowned++;
    }
    return { leaseMs: this.leaseMs, desired, held: this.held.size, unowned, mineUnowned };
  }

  /**
   * Owned now: held here, or leased to another node whose lease has not
   * expired in this node's view. A renewed lease is proof enough that its
   * holder is at work, whatever the members bucket says (it may be without
   * a leader while the leases bucket is fine).
   */
  private isOwned(p: number, now: number): boolean {
    if (this.held.has(p)) return true;
    const l = this.started ? this.table.get(p) : undefined;
    return l !== undefined && l.owner !== this.nodeId && now - l.seenAt < this.leaseMs;
  }

  holds(partition: number): boolean {
    const h = this.held.get(partition);
    return h !== undefined && this.clock() - h.renewedAt < this.leaseMs - this.safetyMs;
  }

  reassert(partition: number): Promise<boolean> {
    if (!this.held.has(partition)) return Promise.resolve(false);
    return this.renew(partition);
  }

  lost(partition: number): void {
    const h = this.held.get(partition);
    if (!h) return;
    // the node that found the fenced write failing logs the loss, with what failed
    this.drop(partition, 'a fenced write failed', false);
    // Free the lease if it is still ours, so that ownership is decided afresh.
    void this.deleteLease(partition, h)
      .catch(() => undefined)
      .finally(() => this.schedule());
  }

  /**
   * Announces leaving, then hands every held partition over and releases its
   * lease, partition after partition (see `release`): each successor takes a
   * partition as soon as that partition's checkpoints are stored.
   */
  async leave(): Promise<void> {
    if (this.leaving || !this.started) return;
    this.leaving = true;
    await this.membership.leave();
    await this.release([...this.held.keys()].sort((a, b) => a - b));
    await Promise.all(this.releases);
  }

  private track(p: Promise<void>): void {
    const t = p.catch((err: unknown) => this.log.error({ err }, 'partition handover failed')).finally(() => this.releases.delete(t));
    this.releases.add(t);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    if (!this.started) {
      this.closed = true;
      return;
    }
    await this.leave();
    this.closed = true;
    if (this.renewTimer) clearInterval(this.renewTimer);
    if (this.evalTimer) clearInterval(this.evalTimer);
    if (this.selfCheckTimer) clearInterval(this.selfCheckTimer);
    const held = [...this.held];
    await Promise.all(held.map(([p, h]) => this.deleteLease(p, h).catch((err: unknown) => this.log.warn({ err: errField(this.log, err), partition: p }, 'lease release failed'))));
    this.held.clear();
    this.emit();
    for (const l of [this.takenLog, this.retakenLog, this.lostLog]) l.flush();
    this.table.stop();
    await this.membership.stop();
    this.log.info({ released: held.length }, 'left the cluster');
  }

  // ---------------------------------------------------------------- internals

  /** Deletes a held lease with compare-and-set, after any renewal in flight (which moves the revision). */
  private async deleteLease(p: number, h: Held): Promise<void> {
    await this.renewing.get(p);
    await this.kv.delete(this.names.leaseKey(p), { previousSeq: h.revision });
  }

  /** One warning per kind per 10 s: an unreachable server fails every renewal of every partition. */
  private warnLimited(kind: string, obj: Record<string, unknown>, msg: string): void {
    const now = this.clock();
    const last = this.warnedAt.get(kind);
    if (last !== undefined && now - last < 10_000) return;
    this.warnedAt.set(kind, now);
    this.log.warn(obj, msg);
  }

  private emit(): void {
    this.snapshot = new Set([...this.held.keys()].sort((a, b) => a - b));
    for (const l of this.listeners) {
      try {
        l(this.snapshot);
      } catch (err) {
        this.log.error({ err }, 'ownership listener failed');
      }
    }
  }

  private drop(p: number, why: string, logged = true): void {
    if (!this.held.delete(p)) return;
    this.counters.lost++;
    if (logged) this.lostLog.add(p, { why });
    else this.log.debug({ partition: p, why }, 'partition lost');
    this.emit();
  }

  private onLease(c: LeaseChange): void {
    if (this.closed) return;
    const h = this.held.get(c.partition);
    if (h && c.revision > h.revision && c.owner !== this.nodeId && !this.releasing.has(c.partition)) {
      this.drop(c.partition, c.owner === undefined ? 'lease deleted' : `lease taken by ${c.owner}`);
    }
    if (c.owner === undefined || !h) this.schedule();
  }

  private renewAll(): void {
    if (this.closed) return;
    for (const p of this.held.keys()) void this.renew(p);
  }

  private renew(p: number): Promise<boolean> {
    const cur = this.renewing.get(p);
    // A renewal still out after several write timeouts is not waited for any longer (each of its requests is
    // bounded; this bounds their sum): the next one goes, on the revision held now.
    if (cur && this.clock() - (this.renewingSince.get(p) ?? 0) < 4 * this.opTimeoutMs) return cur;
    if (cur) {
      this.counters.renewalsAbandoned++;
      this.warnLimited('renew-stuck', { partition: p, ms: this.clock() - (this.renewingSince.get(p) ?? 0) }, 'a lease renewal has been out too long; renewing again');
    }
    this.renewingSince.set(p, this.clock());
    const run = (async (): Promise<boolean> => {
      const h = this.held.get(p);
      if (!h) return false;
      const t0 = this.clock();
      try {
        const rev = await this.kv.update(this.names.leaseKey(p), this.record(), h.revision);
        // Kept even when the partition is being released: the delete goes on this revision.
        h.revision = rev;
        h.renewedAt = t0;
        this.writesAnswer();
        if (this.held.get(p) !== h) return false;
        this.table.note(p, this.nodeId, rev);
        return true;
      } catch (err) {
        if (isConflict(err)) return await this.recheck(p, h);
        this.writeFailed(t0);
        this.counters.renewFailures++;
        if (bucketMissing(err)) void this.ensureBuckets();
        if (!this.closed) this.warnLimited('renew', { err: errText(err), partition: p, failures: this.counters.renewFailures }, 'lease renewal failed; will retry');
        return false;
      }
    })().finally(() => {
      if (this.renewing.get(p) === run) {
        this.renewing.delete(p);
        this.renewingSince.delete(p);
      }
    });
    this.renewing.set(p, run);
    return run;
  }

  /**
   * A lease write went through after writes had failed for longer than a
   * renewal interval (the bucket without a leader, a server lost): the other
   * nodes could not renew either, so nobody is taken as gone or expired for
   * a lease time from now, as after a reconnect. Taking their partitions
   * over the moment the bucket answers again would move partitions from
   * live nodes and back.
   */
  /**
   * A lease write failed without a conflict (the bucket without a leader,
   * the server away): while this node cannot write, neither may the others
   * be able to, so no lease of theirs is taken as expired meanwhile (their
   * clocks of expiry start again from now). Expiry is judged only on time
   * during which this node could have seen a renewal.
   */
  private writeFailed(at: number): void {
    this.writesFailingSince ??= at;
    this.table.grace();
  }

  private writesAnswer(): void {
    const since = this.writesFailingSince;
    if (since === undefined) return;
    this.writesFailingSince = undefined;
    const now = this.clock();
    if (now - since <= this.renewMs) return;
    this.log.info({ failingMs: now - since }, 'lease writes answer again; others get a lease time to renew');
    this.table.grace();
    this.membership.grace();
  }

  private record(): Uint8Array {
    return encodeLease(this.nodeId, this.wall(), this.incarnation);
  }

  /** The lease's record is this run's own (a write of its own, whatever this node believed of it). */
  private isMine(e: KvEntry | null): e is KvEntry {
    const r = e ? decodeLease(e) : undefined;
    return r !== undefined && r.node === this.nodeId && r.inc === this.incarnation;
  }

  /**
   * A renewal failed its compare-and-set: reads the lease and acts on what
   * is there, never on the failure alone. This run's own record: a write
   * that timed out was applied after all; its revision is adopted and the
   * lease renewed on it. No lease (it aged out while this node could not
   * renew, or was deleted): taken again when this node should still own the
   * partition. Another node's lease: the partition is lost.
   */
  private async recheck(p: number, h: Held): Promise<boolean> {
    const key = this.names.leaseKey(p);
    let e: KvEntry | null;
    try {
      e = await this.kv.get(key);
    } catch (err) {
      // Nothing learnt: the lease stays as it is (holds() lapses by time) and the next renewal asks again.
      this.warnLimited('recheck', { err: errText(err), partition: p }, 'lease could not be read back after a conflict; will retry');
      return false;
    }
    if (this.held.get(p) !== h) return false;
    this.table.observe(p, e);
    const t0 = this.clock();
    try {
      if (this.isMine(e)) {
        this.counters.ownWritesFound++;
        h.revision = await this.kv.update(key, this.record(), e.revision);
      } else if (e === null && this.shouldOwn(p)) {
        // Aged out (or a server back on a fresh store): taken again. Another node may have held it meanwhile (taken
        // over while this one was stopped, its lease aged out since) and stored route states this node never saw:
        // the node stores each route's next state before it publishes it, which a newer stored state refuses.
        h.revision = await this.kv.create(key, this.record());
        this.counters.leasesGone++;
        this.hooks?.verify?.([p]);
        this.retakenLog.add(p, { revision: h.revision });
      } else if (e === null || decodeLease(e) === undefined) {
        // Deleted: another node released it, so it held it meanwhile and may have published above what this node
        // holds. The partition is dropped, and taken and restored afresh when it is still this node's to own.
        this.counters.leasesGone++;
        this.drop(p, e === null ? 'lease aged out' : 'lease deleted');
        this.schedule();
        return false;
      } else {
        this.drop(p, `lease taken by ${decodeLease(e)!.node}`);
        this.schedule();
        return false;
      }
    } catch (err) {
      if (isConflict(err)) {
        // Moved again meanwhile: the next renewal reads it back again.
        const again = await this.kv.get(key).catch(() => undefined);
        if (again !== undefined) this.table.observe(p, again);
        if (again !== undefined && !this.isMine(again)) {
          this.drop(p, 'lease taken by another node');
          this.schedule();
        }
      }
      return false;
    }
    h.renewedAt = t0;
    if (this.held.get(p) !== h) return false;
    this.table.note(p, this.nodeId, h.revision);
    return true;
  }


  /** Runs one evaluation at a time; a trigger during one runs another after it. */
  private schedule(): void {
    if (this.closed || this.leaving || !this.started) return;
    if (this.evaluating) {
      this.again = true;
      return;
    }
    this.evaluating = true;
    void (async () => {
      try {
        do {
          this.again = false;
          await this.evaluate();
        } while (this.again && !this.closed && !this.leaving);
      } catch (err) {
        this.log.error({ err }, 'ownership evaluation failed');
      } finally {
        this.evaluating = false;
      }
    })();
  }

  private async evaluate(): Promise<void> {
    this.membership.check();
    const live = this.membership.live();
    const now = this.clock();
    for (let p = 0; p < this.partitions; p++) {
      if (this.held.has(p) || rendezvousOwner(p, live) !== this.nodeId) this.wantSince.delete(p);
      else if (!this.wantSince.has(p)) this.wantSince.set(p, now);
    }
    const actions = planLeases({
      self: this.nodeId,
      live,
      partitions: this.partitions,
      held: new Set(this.held.keys()),
      leases: this.table.view(),
      now: this.clock(),
      leaseMs: this.leaseMs,
    });
    if (actions.length === 0) return;
    const releases = actions.filter((a): a is Extract<LeaseAction, { kind: 'release' }> => a.kind === 'release');
    const takes = actions.filter((a) => a.kind !== 'release');
    const got = await Promise.all(takes.map((a) => this.take(a)));
    // the evaluation's takes in one line, before the node loads what they brought
    this.takenLog.flush();
    if (got.some(Boolean)) this.emit();
    // In the background: a long handover must not hold back the takes of the next evaluations.
    if (releases.length > 0) this.track(this.release(releases.map((a) => a.partition)));
  }

  private async take(a: LeaseAction): Promise<boolean> {
    const p = a.partition;
    const key = this.names.leaseKey(p);
    const t0 = this.clock();
    try {
      const rev = a.kind === 'takeover' ? await this.kv.update(key, this.record(), a.revision) : await this.kv.create(key, this.record());
      if (this.closed || this.leaving) {
        await this.kv.delete(key, { previousSeq: rev }).catch(() => undefined);
        return false;
      }
      this.hold(p, rev, t0);
      if (a.kind === 'takeover') this.counters.takenOver++;
      else this.counters.taken++;
      this.takenLog.add(p, { how: a.kind, revision: rev });
      return true;
    } catch (err) {
      if (!isConflict(err)) {
        this.writeFailed(t0);
        if (bucketMissing(err)) void this.ensureBuckets();
        this.warnLimited('take', { err: errText(err), partition: p }, 'lease write failed');
        return false;
      }
      // Someone renewed or took it meanwhile, the key aged out, or a write of this node's that timed out was applied: learn where it stands.
      const e = await this.kv.get(key).catch(() => undefined);
      if (e === undefined) return false;
      this.table.observe(p, e);
      if (!this.isMine(e) || this.closed || this.leaving) return false;
      // Ours since it was stored (server time, on this node's clock).
      const storedAt = this.clock() - Math.max(0, this.wall() - e.created.getTime());
      this.counters.ownWritesFound++;
      this.hold(p, e.revision, storedAt);
      this.takenLog.add(p, { how: 'own write found', revision: e.revision });
      return true;
    }
  }

  private hold(p: number, revision: number, renewedAt: number): void {
    this.held.set(p, { revision, renewedAt });
    this.table.note(p, this.nodeId, revision);
    this.wantSince.delete(p);
  }

  /**
   * Hands partitions over and releases their leases, pipelined: at most
   * `HANDOVER_CONCURRENCY` partitions at a time, each one's lease deleted as
   * soon as its own handover (last route writes, checkpoints) is done, so the
   * time a partition has no owner does not grow with the number of routes.
   */
  private async release(ps: number[]): Promise<void> {
    const queue = ps.filter((p) => this.held.has(p) && !this.releasing.has(p));
    for (const p of queue) this.releasing.add(p);
    const one = async (p: number): Promise<void> => {
      try {
        await this.hooks?.handOver([p]);
        const h = this.held.get(p);
        if (!h) return;
        this.held.delete(p);
        await this.deleteLease(p, h).catch((err: unknown) => this.log.warn({ err: errField(this.log, err), partition: p }, 'lease release failed'));
        this.counters.released++;
      } finally {
        this.releasing.delete(p);
        this.emit();
      }
    };
    await pool(queue, HANDOVER_CONCURRENCY, one);
    if (queue.length > 0) this.log.info({ partitions: partitionRanges(queue), count: queue.length }, `partitions handed over: ${queue.length} (${partitionRanges(queue)})`);
  }
}
