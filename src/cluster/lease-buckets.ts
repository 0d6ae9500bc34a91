/**
 * The members and leases buckets of a node's leases: opened (made when
 * missing) at start, and made again when a server came back on a fresh store
 * without them, one attempt at a time.
 */
import type { KV } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { openTtlBucket } from '../nats/buckets.ts';
import type { LeaseTimings } from './lease-config.ts';
import type { ClusterNames } from './names.ts';

export class LeaseBuckets {
  private readonly nc: NatsConnection;
  private readonly names: ClusterNames;
  private readonly t: LeaseTimings;
  /** Told when `ensure` could not open them (it is tried again on the next trigger). */
  private readonly onFailure: (err: unknown) => void;
  private ensuring: Promise<void> | undefined;

  constructor(nc: NatsConnection, names: ClusterNames, t: LeaseTimings, onFailure: (err: unknown) => void) {
    this.nc = nc;
    this.names = names;
    this.t = t;
    this.onFailure = onFailure;
  }

  /** Makes or binds both buckets (idempotent, safe from many processes at once). */
  async open(): Promise<{ members: KV; leases: KV }> {
    const members = await openTtlBucket(this.nc, this.names.membersBucket, this.t.membersTtlMs, this.t.opTimeoutMs);
    const leases = await openTtlBucket(this.nc, this.names.leasesBucket, this.t.leasesTtlMs, this.t.opTimeoutMs);
    return { members, leases };
  }

  /** Makes them again when a server lost them; a call while one runs shares it. Never rejects. */
  ensure(): Promise<void> {
    if (this.ensuring) return this.ensuring;
    const run = (async () => {
      try {
        await this.open();
      } catch (err) {
        this.onFailure(err);
      }
    })().finally(() => {
      this.ensuring = undefined;
    });
    this.ensuring = run;
    return run;
  }
}
