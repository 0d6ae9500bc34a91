/**
 * Cluster membership: every route node heartbeats its entry in the members
 * bucket and watches the bucket. A member is live while its last update was
 * seen within the member TTL by this node's clock; server-side expiry is not
 * relied on (on nats-server 2.9 an aged-out key sends watchers nothing).
 */
import type { KV, KvEntry } from '@nats-io/kv';
import { encode } from '../../schemas/codec.ts';
import { decodeMemberRecord } from '../../schemas/records.ts';
import type { IngestFigures, MemberRecord } from '../../schemas/cluster-records.ts';
import { LiveWatch } from '../nats/live-watch.ts';
import { noResponders } from '../nats/buckets.ts';
import { errField, errText } from '../lib/ratelog.ts';
import type { Logger } from '../lib/log.ts';
import { retry } from '../lib/retry.ts';

/** The contract's MemberRecord and IngestFigures (schemas/cluster-records.ts). */
export type { IngestFigures, MemberRecord };

/** A member entry's record; undefined for a delete or a value that is not a valid MemberRecord (figures that are not valid are left out). */
export function decodeMember(e: Pick<KvEntry, 'value' | 'operation'>): MemberRecord | undefined {
  if (e.operation !== 'PUT') return undefined;
  const r = decodeMemberRecord(e.value);
  return r.ok ? r.value : undefined;
}

interface Seen {
  record: MemberRecord;
  seenAt: number;
}

export interface MembershipOptions {
  kv: KV;
  nodeId: string;
  /** Key of this node in the bucket. */
  key: string;
  log: Logger;
  clock: () => number;
  /** Wall clock used to age entries by their server timestamp. */
  wall?: () => number;
  heartbeatMs: number;
  /** A member not heard from for this long is dead. */
  ttlMs: number;
  /** Partitions to announce with each heartbeat. */
  partitions?: () => number[];
  /** Lease time to announce with each heartbeat, ms. */
  leaseMs?: number;
  /** Report intake to announce with each heartbeat (totals; the rates are computed here). */
  ingest?: () => { reports: number; batches: number; pending: number };
}

export class Membership {
  private readonly o: MembershipOptions;
  private readonly wall: () => number;
  /** By KV key. */
  private readonly members = new Map<string, Seen>();
  private readonly listeners = new Set<() => void>();
  private timer: ReturnType<typeof setInterval> | undefined;
  private watch: LiveWatch | undefined;
  /** Members are not taken as gone before a TTL from here, local clock (set when this node was cut off from the bus). */
  private graceFrom = -Infinity;
  private readonly started: number;
  private leaving = false;
  private stopped = false;
  private lastLive = '';
  private badLoggedAt = -Infinity;
  private beatWarnedAt = -Infinity;
  private prevIngest: { reports: number; batches: number; at: number } | undefined;
  badEntries = 0;

  constructor(o: MembershipOptions) {
    this.o = o;
    this.wall = o.wall ?? Date.now;
    this.started = this.wall();
  }

  /** Writes the first heartbeat, then watches the bucket until every current member is in. */
  async start(): Promise<void> {
    // On a NATS cluster, a bucket another node created a moment ago through another server may have no
    // responders on this server for up to about a second (nats-server 2.9): the first heartbeat waits for it.
    await retry(() => this.beat(), { attempts: 12, minMs: 50, maxMs: 500, retryIf: noResponders });
    this.watch = new LiveWatch({
      kv: this.o.kv,
      what: 'members',
      log: this.o.log,
      // A partial view is safe (a write to a key missed here fails its compare-and-set and is read back): start soon.
      initTimeoutMs: 3000,
      onSnapshot: (entries) => this.onSnapshot(entries),
      onEntry: (e) => this.onEntry(e),
    });
    await this.watch.start();
    this.timer = setInterval(() => {
      void this.beat().catch((err: unknown) => {
        // Nobody's heartbeat gets through while this one does not: no member is taken as gone meanwhile.
        this.holdOthers();
        const now = this.o.clock();
        if (now - this.beatWarnedAt < 10_000) return;
        this.beatWarnedAt = now;
        this.o.log.warn({ err: errText(err) }, 'member heartbeat failed; will retry');
      });
      this.check();
    }, this.o.heartbeatMs);
    this.timer.unref?.();
    this.check();
  }

  private record(): MemberRecord {
    const r: MemberRecord = { v: 1, node: this.o.nodeId, started: this.started, ts: this.wall() };
    const parts = this.o.partitions?.();
    if (parts) r.partitions = parts;
    if (this.leaving) r.leaving = true;
    if (this.o.leaseMs !== undefined) r.leaseMs = this.o.leaseMs;
    r.heartbeatMs = this.o.heartbeatMs;
    const ing = this.o.ingest?.();
    if (ing) {
      const at = this.o.clock();
      const prev = this.prevIngest;
      const dt = prev ? (at - prev.at) / 1000 : 0;
      const rate = (now: number, before: number | undefined): number => (dt > 0 && before !== undefined ? Math.max(0, Math.round((now - before) / dt)) : 0);
      r.ingest = { ...ing, reportsPerSec: rate(ing.reports, prev?.reports), batchesPerSec: rate(ing.batches, prev?.batches) };
      this.prevIngest = { reports: ing.reports, batches: ing.batches, at };
    }
    return r;
  }

  private async beat(): Promise<void> {
    if (this.stopped) return;
    await this.o.kv.put(this.o.key, encode(this.record()));
  }

  /** A full view of the bucket: members absent from it are gone. */
  private onSnapshot(entries: ReadonlyMap<string, KvEntry>): void {
    for (const k of [...this.members.keys()]) if (!entries.has(k)) this.members.delete(k);
    for (const e of entries.values()) this.onEntry(e, false);
    this.check();
  }

  /** Reads the members again (after a reconnect, or when the view looks stale). */
  resync(why: string): void {
    this.watch?.restart(why);
  }

  /**
   * This node was cut off from the bus until now: no member is taken as gone
   * for a member TTL from here (their heartbeats could not reach it either),
   * and its own heartbeat goes at once.
   */
  grace(): void {
    this.holdOthers();
    void this.beat().catch(() => undefined);
  }

  /** Every member counts as heard from now (see grace). */
  private holdOthers(): void {
    this.graceFrom = this.o.clock();
    for (const s of this.members.values()) if (s.seenAt < this.graceFrom) s.seenAt = this.graceFrom;
  }

  private onEntry(e: KvEntry, check = true): void {
    if (e.operation !== 'PUT') {
      this.members.delete(e.key);
      if (check) this.check();
      return;
    }
    const r = decodeMember(e);
    if (!r) {
      this.badEntries++;
      const now = this.o.clock();
      if (now - this.badLoggedAt > 10_000) {
        this.badLoggedAt = now;
        this.o.log.warn({ key: e.key, bad: this.badEntries }, 'invalid member entry ignored');
      }
      return;
    }
    const age = Math.max(0, this.wall() - e.created.getTime());
    this.members.set(e.key, { record: r, seenAt: Math.max(this.o.clock() - age, this.graceFrom) });
    if (check) this.check();
  }

  /** Live members that are not leaving, sorted; this node is one of them until it leaves. */
  live(): string[] {
    const now = this.o.clock();
    const out = new Set<string>();
    for (const s of this.members.values()) {
      if (s.record.leaving) continue;
      if (now - s.seenAt <= this.o.ttlMs) out.add(s.record.node);
    }
    if (!this.leaving) out.add(this.o.nodeId);
    else out.delete(this.o.nodeId);
    return [...out].sort();
  }

  /** Listener called when the live set changes. */
  onChange(l: () => void): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  /** Re-evaluates the live set (heartbeats stop arriving silently) and tells listeners when it moved. */
  check(): void {
    const live = this.live().join('\n');
    if (live === this.lastLive) return;
    this.lastLive = live;
    for (const l of this.listeners) {
      try {
        l();
      } catch (err) {
        this.o.log.error({ err }, 'membership listener failed');
      }
    }
  }

  /** Announces that this node is stopping; it no longer counts itself as a member. */
  async leave(): Promise<void> {
    this.leaving = true;
    this.check();
    await this.beat().catch((err: unknown) => this.o.log.warn({ err: errField(this.o.log, err) }, 'leaving announcement failed'));
  }

  /** Stops heartbeating and removes this node's entry. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.watch?.stop();
    await this.o.kv.delete(this.o.key).catch(() => undefined);
  }
}
