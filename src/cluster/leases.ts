/**
 * The partition leases as this node sees them: a watch on the leases bucket
 * keeps, per partition, the holder, the revision and when that revision was
 * seen by the local clock (expiry is judged from that, never from
 * server-side aging: on nats-server 2.9 an aged-out key sends watchers
 * nothing).
 */
import type { KV, KvEntry } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { encode } from '../../schemas/codec.ts';
import { decodeLeaseRecord } from '../../schemas/records.ts';
import type { LeaseRecord } from '../../schemas/cluster-records.ts';
import { bindBucket } from '../nats/buckets.ts';
import { LiveWatch } from '../nats/live-watch.ts';
import type { LeaseView } from '../../actors/ownership.ts';
import type { Logger } from '../lib/log.ts';
import { clusterNames, type ClusterNames } from './names.ts';

/** The contract's LeaseRecord (schemas/cluster-records.ts). */
export type { LeaseRecord };

export function encodeLease(node: string, ts: number, inc?: string): Uint8Array {
  const r: LeaseRecord = { v: 1, node, ts };
  if (inc !== undefined) r.inc = inc;
  return encode(r);
}

/** A lease entry's record; undefined for a delete or a value that is not a valid LeaseRecord. */
export function decodeLease(e: Pick<KvEntry, 'value' | 'operation'>): LeaseRecord | undefined {
  if (e.operation !== 'PUT') return undefined;
  const r = decodeLeaseRecord(e.value);
  return r.ok ? r.value : undefined;
}

/**
 * Partition → lease holder now, read once (one read per partition key; no
 * key listing); empty when no node with leases ever ran under the prefix.
 */
export async function readLeaseHolders(nc: NatsConnection, prefix: string, partitions: number): Promise<Map<number, string>> {
  const cn = clusterNames(prefix);
  const out = new Map<number, string>();
  const kv = await bindBucket(nc, cn.leasesBucket);
  if (kv === undefined) return out;
  await Promise.all(
    Array.from({ length: partitions }, async (_, p) => {
      const e = await kv.get(cn.leaseKey(p));
      const r = e ? decodeLease(e) : undefined;
      if (r) out.set(p, r.node);
    }),
  );
  return out;
}

export interface LeaseChange {
  partition: number;
  /** Holder after the change; undefined when the lease was deleted. */
  owner: string | undefined;
  revision: number;
}

/**
 * The leases as this node sees them, kept by a watch that starts over with a
 * full view whenever it ends or the connection comes back (LiveWatch), and
 * corrected by every read this node makes (`observe`).
 */
export class LeaseTable {
  private readonly leases = new Map<number, LeaseView>();
  /** Highest revision seen per partition, deletes included (reset by a full view: a bucket made anew starts again at 1). */
  private readonly revs = new Map<number, number>();
  private watch: LiveWatch | undefined;
  private badLoggedAt = -Infinity;
  /** Leases of others are not taken as expired before this, local clock (set when this node was cut off from the bus). */
  private graceFrom = -Infinity;
  badEntries = 0;

  private readonly kv: KV;
  private readonly names: ClusterNames;
  private readonly log: Logger;
  private readonly clock: () => number;
  private readonly wall: () => number;
  private readonly onChange: (c: LeaseChange) => void;

  constructor(kv: KV, names: ClusterNames, log: Logger, clock: () => number, wall: () => number, onChange: (c: LeaseChange) => void) {
    this.kv = kv;
    this.names = names;
    this.log = log;
    this.clock = clock;
    this.wall = wall;
    this.onChange = onChange;
  }

  async start(): Promise<void> {
    this.watch = new LiveWatch({
      kv: this.kv,
      what: 'leases',
      log: this.log,
      // A partial view is safe (a write to a key missed here fails its compare-and-set and is read back): start soon.
      initTimeoutMs: 3000,
      onSnapshot: (entries) => this.onSnapshot(entries),
      onEntry: (e) => this.onEntry(e),
    });
    await this.watch.start();
  }

  /** Reads the whole table again (after a reconnect, or when it looks stale). */
  resync(why: string): void {
    this.watch?.restart(why);
  }

  /**
   * This node was cut off from the bus until now: no lease of another node
   * is taken as expired for a lease time from here, since its holder may
   * have been cut off too and renews as soon as it can.
   */
  grace(): void {
    this.graceFrom = this.clock();
    for (const [p, l] of this.leases) if (l.seenAt < this.graceFrom) this.leases.set(p, { ...l, seenAt: this.graceFrom });
  }

  get restarts(): number {
    return this.watch?.restarts ?? 0;
  }

  private onSnapshot(entries: ReadonlyMap<string, KvEntry>): void {
    const seen = new Set<number>();
    for (const e of entries.values()) {
      const p = this.names.leasePartition(e.key);
      if (p === undefined) continue;
      seen.add(p);
      this.apply(p, e, true);
    }
    for (const p of [...this.leases.keys()]) {
      if (seen.has(p)) continue;
      this.leases.delete(p);
      this.revs.delete(p);
      this.onChange({ partition: p, owner: undefined, revision: 0 });
    }
  }

  private onEntry(e: KvEntry): void {
    const p = this.names.leasePartition(e.key);
    if (p !== undefined) this.apply(p, e, false);
  }

  /** `fresh`: the entry comes from a full view or a read, newer than anything held whatever its revision. */
  private apply(p: number, e: KvEntry, fresh: boolean): void {
    if (!fresh && e.revision <= (this.revs.get(p) ?? 0)) return;
    const cur = this.leases.get(p);
    if (fresh && cur !== undefined && cur.revision === e.revision && e.operation === 'PUT') return;
    this.revs.set(p, e.revision);
    if (e.operation !== 'PUT') {
      const had = this.leases.delete(p);
      if (had || !fresh) this.onChange({ partition: p, owner: undefined, revision: e.revision });
      return;
    }
    const r = decodeLease(e);
    if (!r) {
      this.badEntries++;
      const now = this.clock();
      if (now - this.badLoggedAt > 10_000) {
        this.badLoggedAt = now;
        this.log.warn({ key: e.key, bad: this.badEntries }, 'invalid lease entry ignored');
      }
      return;
    }
    const age = Math.max(0, this.wall() - e.created.getTime());
    this.leases.set(p, { owner: r.node, revision: e.revision, seenAt: Math.max(this.clock() - age, this.graceFrom) });
    this.onChange({ partition: p, owner: r.node, revision: e.revision });
  }

  /** Records a lease revision learnt outside the watch (this node's own writes). */
  note(p: number, owner: string | undefined, revision: number): void {
    if (revision < (this.revs.get(p) ?? 0)) return;
    this.revs.set(p, revision);
    const cur = this.leases.get(p);
    if (owner === undefined) this.leases.delete(p);
    else this.leases.set(p, { owner, revision, seenAt: cur && cur.revision === revision ? cur.seenAt : this.clock() });
  }

  /** What a read of the partition's key returned now (null: no such key): the truth, whatever was held before. */
  observe(p: number, e: KvEntry | null): void {
    if (e === null || e.operation !== 'PUT') {
      this.leases.delete(p);
      this.revs.set(p, e?.revision ?? 0);
      return;
    }
    this.apply(p, e, true);
  }

  get(p: number): LeaseView | undefined {
    return this.leases.get(p);
  }

  view(): ReadonlyMap<number, LeaseView> {
    return this.leases;
  }

  stop(): void {
    this.watch?.stop();
  }
}
