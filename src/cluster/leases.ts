/**
 * The partition leases as this node sees them: a watch on the leases bucket
 * keeps, per partition, the holder, the revision and when that revision was
 * seen by the local clock (expiry is judged from that, never from
 * server-side aging: on nats-server 2.9 an aged-out key sends watchers
 * nothing).
 */
import type { KV, KvEntry } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { encode, tryDecode } from '../codec.ts';
import { bindBucket, watchBucket, type BucketWatch } from '../registry.ts';
import type { LeaseView } from '../../actors/ownership.ts';
import type { Logger } from '../log.ts';
import { clusterNames, type ClusterNames } from './names.ts';

export interface LeaseRecord {
  v: 1;
  node: string;
  /** Holder's wall clock at the write, ms (informational). */
  ts: number;
}

export function encodeLease(node: string, ts: number): Uint8Array {
  return encode({ v: 1, node, ts } satisfies LeaseRecord);
}

export function decodeLease(e: Pick<KvEntry, 'value' | 'operation'>): LeaseRecord | undefined {
  if (e.operation !== 'PUT') return undefined;
  const d = tryDecode(e.value);
  if (!d.ok || typeof d.value !== 'object' || d.value === null) return undefined;
  const r = d.value as Record<string, unknown>;
  if (r['v'] !== 1 || typeof r['node'] !== 'string' || r['node'].length === 0 || typeof r['ts'] !== 'number') return undefined;
  return { v: 1, node: r['node'], ts: r['ts'] };
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

export class LeaseTable {
  private readonly leases = new Map<number, LeaseView>();
  /** Highest revision seen per partition, deletes included. */
  private readonly revs = new Map<number, number>();
  private watch: BucketWatch | undefined;
  private stopped = false;
  private badLoggedAt = -Infinity;
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
    this.watch = await watchBucket(this.kv, (e) => this.onEntry(e), {
      // A partial view is safe (a write to a key missed here fails its compare-and-set and is read back): start soon.
      initTimeoutMs: 3000,
      onError: (err) => {
        if (!this.stopped) this.log.error({ err }, 'leases watch ended');
      },
    });
    await this.watch.initialized;
  }

  private onEntry(e: KvEntry): void {
    const p = this.names.leasePartition(e.key);
    if (p === undefined) return;
    if (e.revision <= (this.revs.get(p) ?? 0)) return;
    this.revs.set(p, e.revision);
    if (e.operation !== 'PUT') {
      this.leases.delete(p);
      this.onChange({ partition: p, owner: undefined, revision: e.revision });
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
    this.leases.set(p, { owner: r.node, revision: e.revision, seenAt: this.clock() - age });
    this.onChange({ partition: p, owner: r.node, revision: e.revision });
  }

  /** Records a lease revision learnt outside the watch (this node's own writes, a read after a failed takeover). */
  note(p: number, owner: string | undefined, revision: number): void {
    if (revision < (this.revs.get(p) ?? 0)) return;
    this.revs.set(p, revision);
    const cur = this.leases.get(p);
    if (owner === undefined) this.leases.delete(p);
    else this.leases.set(p, { owner, revision, seenAt: cur && cur.revision === revision ? cur.seenAt : this.clock() });
  }

  get(p: number): LeaseView | undefined {
    return this.leases.get(p);
  }

  view(): ReadonlyMap<number, LeaseView> {
    return this.leases;
  }

  stop(): void {
    this.stopped = true;
    this.watch?.stop();
  }
}
