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
import type { KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { planLeases, rendezvousOwner, type LeaseAction } from '../../actors/ownership.ts';
import { DEFAULT_PARTITIONS, DEFAULT_PREFIX } from '../../schemas/subjects.ts';
import { silentLogger, type Logger } from '../lib/log.ts';
import type { OwnershipHealth, OwnershipHooks, PartitionOwnership } from './ownership.ts';
import { clusterNames, type ClusterNames } from './names.ts';
import { bucketMissing, isConflict } from '../nats/buckets.ts';
import { errField, errText, PartitionLog, RateLimitedLog } from '../lib/ratelog.ts';
import { LeaseBuckets } from './lease-buckets.ts';
import { UnownedPartitions } from './unowned-partitions.ts';
import { LeaseWrites } from './lease-writes.ts';
import { Handovers, type Held } from './handovers.ts';
import { Renewals } from './renewals.ts';
import { Membership } from './membership.ts';
import { leaseTimings, type LeaseOwnershipOptions } from './lease-config.ts';
import { LeaseTable, type LeaseChange } from './leases.ts';

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
  private readonly buckets: LeaseBuckets;
  private readonly unowned: UnownedPartitions;
  private readonly writes: LeaseWrites;
  /** This run of the node: tells its own lease writes from those of an earlier run under the same name. */
  readonly incarnation = randomBytes(6).toString('hex');
  private kv!: KV;
  private membership!: Membership;
  private table!: LeaseTable;
  private hooks: OwnershipHooks | undefined;
  private readonly held = new Map<number, Held>();
  private readonly handovers: Handovers;
  /** One warning per kind per 10 s: an unreachable server fails every renewal of every partition. */
  private readonly warnings: RateLimitedLog;
  /** One line per burst of takes and of losses (a start takes every lease; a node back from a pause loses them all). */
  private readonly takenLog: PartitionLog;
  private readonly retakenLog: PartitionLog;
  private readonly lostLog: PartitionLog;
  private readonly renewals: Renewals;
  private snapshot: ReadonlySet<number> = new Set();
  private readonly listeners = new Set<(owned: ReadonlySet<number>) => void>();
  private renewTimer: ReturnType<typeof setInterval> | undefined;
  private evalTimer: ReturnType<typeof setInterval> | undefined;
  private selfCheckTimer: ReturnType<typeof setInterval> | undefined;
  private statusLoop: Promise<void> | undefined;
  private lastResyncAt = -Infinity;
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
    this.warnings = new RateLimitedLog(this.log, 10_000, this.clock);
    this.wall = o.wall ?? Date.now;
    const t = leaseTimings(o);
    ({ leaseMs: this.leaseMs, renewMs: this.renewMs, safetyMs: this.safetyMs, heartbeatMs: this.heartbeatMs, memberTtlMs: this.memberTtlMs, opTimeoutMs: this.opTimeoutMs } = t);
    this.buckets = new LeaseBuckets(this.nc, this.names, t, (err) => this.warnings.warn('buckets', { err: errText(err) }, 'leases and members buckets could not be opened; will retry'));
    this.unowned = new UnownedPartitions(this.partitions, this.clock);
    this.handovers = new Handovers({
      held: this.held,
      log: this.log,
      handOver: (ps) => this.hooks?.handOver(ps),
      deleteLease: (p, h) => this.deleteLease(p, h),
      released: (left) => {
        if (left) this.counters.released++;
        this.emit();
      },
    });
    this.renewals = new Renewals({
      nodeId: this.nodeId,
      held: this.held,
      clock: this.clock,
      opTimeoutMs: this.opTimeoutMs,
      counters: this.counters,
      warnings: this.warnings,
      kv: () => this.kv,
      key: (p) => this.names.leaseKey(p),
      writes: () => this.writes,
      table: () => this.table,
      ensureBuckets: () => void this.buckets.ensure(),
      closed: () => this.closed,
      shouldOwn: (p) => this.shouldOwn(p),
      verify: (ps) => this.hooks?.verify?.(ps),
      retaken: (p, revision) => this.retakenLog.add(p, { revision }),
      lost: (p, why) => {
        this.drop(p, why);
        this.schedule();
      },
    });
    this.writes = new LeaseWrites({
      nodeId: this.nodeId,
      incarnation: this.incarnation,
      clock: this.clock,
      wall: this.wall,
      renewMs: this.renewMs,
      log: this.log,
      onFailing: () => this.table.grace(),
      onAnswerAgain: () => {
        this.table.grace();
        this.membership.grace();
      },
    });
  }

  /** Rendezvous hashing over the live members gives this node the partition. */
  private shouldOwn(p: number): boolean {
    return !this.leaving && !this.closed && rendezvousOwner(p, this.membership.live()) === this.nodeId;
  }

  /** Makes or binds the members and leases buckets (idempotent; start does it too): a process can wait for them while the servers settle. */
  async prepare(): Promise<void> {
    await this.buckets.open();
  }

  async start(hooks: OwnershipHooks): Promise<void> {
    if (this.started) return;
    this.started = true;
    this.hooks = hooks;
    const { members: membersKv, leases } = await this.buckets.open();
    this.kv = leases;
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

  /** After every reconnect: the views are read again, and nobody is taken as gone for a while (they were cut off too). */
  private async watchConnection(): Promise<void> {
    try {
      for await (const s of this.nc.status()) {
        if (this.closed) break;
        if (s.type !== 'reconnect') continue;
        this.table.grace();
        this.membership.grace();
        this.resync('reconnected');
        void this.buckets.ensure();
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

  /**
   * Runs a few times per lease time: a partition this node should own that
   * stayed unowned for over a lease time means its view is stale (a change
   * it never heard of): read everything again rather than wait.
   */
  private selfCheck(): void {
    if (this.closed || this.leaving) return;
    const now = this.clock();
    if (this.unowned.wantedLongerThan(now, this.leaseMs + this.renewMs) && now - this.lastResyncAt > this.leaseMs * 2) {
      this.resync('a partition of this node stayed unowned');
      void this.buckets.ensure();
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
    const counts = this.unowned.count(now, (p) => !this.leaving && rendezvousOwner(p, live) === this.nodeId, (p) => this.isOwned(p, now));
    return { leaseMs: this.leaseMs, held: this.held.size, ...counts, leaving: this.leaving };
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
    return this.renewals.renew(partition);
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
    await this.handovers.release([...this.held.keys()].sort((a, b) => a - b));
    await this.handovers.settled();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    if (!this.started) {
      this.closed = true;
      return;
    }
    // A start that failed part way (the bus settling) left no membership or lease table, or no timers: stop what there is.
    if (this.membership === undefined || this.table === undefined) {
      this.closed = true;
      this.table?.stop();
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
    await this.renewals.inFlight(p);
    await this.kv.delete(this.names.leaseKey(p), { previousSeq: h.revision });
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
    if (h && c.revision > h.revision && c.owner !== this.nodeId && !this.handovers.releasing(c.partition)) {
      this.drop(c.partition, c.owner === undefined ? 'lease deleted' : `lease taken by ${c.owner}`);
    }
    if (c.owner === undefined || !h) this.schedule();
  }

  private renewAll(): void {
    if (this.closed) return;
    for (const p of this.held.keys()) void this.renewals.renew(p);
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
    this.unowned.want(now, (p) => !this.held.has(p) && rendezvousOwner(p, live) === this.nodeId);
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
    if (releases.length > 0) this.handovers.start(releases.map((a) => a.partition));
  }

  private async take(a: LeaseAction): Promise<boolean> {
    const p = a.partition;
    const key = this.names.leaseKey(p);
    const t0 = this.clock();
    try {
      const rev = a.kind === 'takeover' ? await this.kv.update(key, this.writes.record(), a.revision) : await this.kv.create(key, this.writes.record());
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
        this.writes.failed(t0);
        if (bucketMissing(err)) void this.buckets.ensure();
        this.warnings.warn('take', { err: errText(err), partition: p }, 'lease write failed');
        return false;
      }
      // Someone renewed or took it meanwhile, the key aged out, or a write of this node's that timed out was applied: learn where it stands.
      const e = await this.kv.get(key).catch(() => undefined);
      if (e === undefined) return false;
      this.table.observe(p, e);
      if (!this.writes.isMine(e) || this.closed || this.leaving) return false;
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
    this.unowned.held(p);
  }
}
