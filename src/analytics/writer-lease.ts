/**
 * A stream's writer lease: one key in a KV bucket whose max_age is the
 * lease time. The sink that creates the key is the writer until it stops
 * renewing it (it died, was paused, or lost the servers for a lease time);
 * then the key expires and a standby sink creates it. The key's revision at
 * creation is the writer's epoch: revisions only grow, so a later writer
 * always has the higher fence (fence.ts).
 */
import type { KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { bindBucket, isConflict, readBucket } from '../nats/buckets.ts';

/** Keys of the bucket: `writer_<pipeline>`. */
export const KEY_PREFIX = 'writer_';

export interface LeaseHolder {
  /** Unique per sink instance (two sinks may share an id in tests). */
  owner: string;
  sink: string;
  since: number;
}

export interface WriterLeaseOptions {
  kv: KV;
  /** The lease's key: one per stream (`writer_reports`, `writer_events`). */
  key: string;
  owner: string;
  sink: string;
  /** The bucket's max_age, ms: how long a lease outlives its last renewal. */
  ttlMs: number;
  now: () => number;
}

/** Default lease time, ms: a dead writer's messages wait about this long for the next one. */
export const DEFAULT_WRITER_TTL_MS = 6_000;

export class WriterLease {
  private readonly o: WriterLeaseOptions;
  private revision = 0;
  private renewedAt = 0;
  /** The epoch of the lease held, 0 when none. */
  private held = 0;

  constructor(o: WriterLeaseOptions) {
    this.o = o;
  }

  private value(): Uint8Array {
    const h: LeaseHolder = { owner: this.o.owner, sink: this.o.sink, since: this.o.now() };
    return new TextEncoder().encode(JSON.stringify(h));
  }

  /** Takes the lease when no one holds it (or it is this sink's own, left from before); resolves with the new epoch or 0. */
  async acquire(): Promise<number> {
    const { kv } = this.o;
    const at = this.o.now();
    try {
      this.revision = await kv.create(this.o.key, this.value());
    } catch (err) {
      if (!isConflict(err)) throw err;
      const e = await kv.get(this.o.key);
      if (!e || e.operation !== 'PUT' || holder(e.value)?.owner !== this.o.owner) return 0;
      // Our own lease from before a lost renewal: take it again, as a new epoch.
      try {
        this.revision = await kv.update(this.o.key, this.value(), e.revision);
      } catch (err2) {
        if (isConflict(err2)) return 0;
        throw err2;
      }
    }
    this.renewedAt = at;
    this.held = this.revision;
    return this.held;
  }

  /** Renews the lease; false when another sink holds it now. Throws when the servers cannot be reached (see `expired`). */
  async renew(): Promise<boolean> {
    const at = this.o.now();
    try {
      this.revision = await this.o.kv.update(this.o.key, this.value(), this.revision);
    } catch (err) {
      if (isConflict(err)) {
        this.held = 0;
        return false;
      }
      throw err;
    }
    this.renewedAt = at;
    return true;
  }

  /** The epoch of the lease held, 0 when none. */
  get epoch(): number {
    return this.held;
  }

  /** This sink stopped writing under the lease (lost, or fenced out): it no longer counts it as held. */
  forget(): void {
    this.held = 0;
  }

  /** Whether the lease may have expired on the servers (not renewed for a lease time, less a margin): stop writing. */
  expired(): boolean {
    return this.held !== 0 && this.o.now() - this.renewedAt >= this.o.ttlMs - Math.min(1_000, this.o.ttlMs / 4);
  }

  /** Gives the lease up (a graceful stop): a standby takes over at once. */
  async release(): Promise<void> {
    if (this.held === 0) return;
    this.held = 0;
    try {
      await this.o.kv.delete(this.o.key, { previousSeq: this.revision });
    } catch (err) {
      if (!isConflict(err)) throw err;
    }
  }

  /** Who holds the lease now (undefined: no one). */
  async holder(): Promise<LeaseHolder | undefined> {
    const e = await this.o.kv.get(this.o.key);
    return e && e.operation === 'PUT' ? holder(e.value) : undefined;
  }
}

function holder(bytes: Uint8Array): LeaseHolder | undefined {
  try {
    const v = JSON.parse(new TextDecoder().decode(bytes)) as Partial<LeaseHolder>;
    return typeof v.owner === 'string' && typeof v.sink === 'string' ? { owner: v.owner, sink: v.sink, since: Number(v.since) } : undefined;
  } catch {
    return undefined;
  }
}

/** A stream's writer as the lease bucket tells it. */
export interface SinkWriter {
  /** The stream's pipeline: `reports` or `events`. */
  stream: string;
  sink: string;
  /** Since the lease was last renewed, ms (by the reader's clock against the server's timestamp). */
  renewedAgoMs: number;
}

/** The lease bucket of the sinks under a prefix. */
export const sinkLeaseBucket = (prefix: string): string => `${prefix}_sink_writer`;

/** The sink writing each stream now (a stream with no entry has no writer); undefined when no sink ever ran under the prefix. */
export async function sinkWriters(nc: NatsConnection, prefix: string, now: () => number = Date.now): Promise<SinkWriter[] | undefined> {
  const kv = await bindBucket(nc, sinkLeaseBucket(prefix));
  if (kv === undefined) return undefined;
  const out: SinkWriter[] = [];
  for (const e of await readBucket(kv)) {
    if (e.operation !== 'PUT' || !e.key.startsWith(KEY_PREFIX)) continue;
    const h = holder(e.value);
    if (h) out.push({ stream: e.key.slice(KEY_PREFIX.length), sink: h.sink, renewedAgoMs: Math.max(0, now() - e.created.getTime()) });
  }
  return out.sort((a, b) => a.stream.localeCompare(b.stream));
}
