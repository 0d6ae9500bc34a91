/** A node's lease settings: the options `LeaseOwnership` takes and the timings derived from them. */
import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from '../lib/log.ts';

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

/** Every timing of a node's leases, from its options and their defaults. */
export interface LeaseTimings {
  leaseMs: number;
  renewMs: number;
  safetyMs: number;
  heartbeatMs: number;
  memberTtlMs: number;
  opTimeoutMs: number;
  /** The members bucket's max age. */
  membersTtlMs: number;
  /** The leases bucket's max age. */
  leasesTtlMs: number;
}

export function leaseTimings(o: Omit<LeaseOwnershipOptions, 'nc' | 'nodeId'>): LeaseTimings {
  const leaseMs = o.leaseMs ?? LEASE_DEFAULTS.leaseMs;
  const renewMs = o.renewMs ?? Math.max(10, Math.floor(leaseMs / 4));
  const safetyMs = o.safetyMs ?? Math.floor(leaseMs / 4);
  const heartbeatMs = o.heartbeatMs ?? LEASE_DEFAULTS.heartbeatMs;
  const memberTtlMs = o.memberTtlMs ?? heartbeatMs * 3;
  const opTimeoutMs = o.opTimeoutMs ?? Math.min(1000, Math.max(200, Math.floor(leaseMs / 2)));
  if (renewMs + safetyMs >= leaseMs) throw new RangeError('lease renewal interval plus safety margin must be below the lease time');
  return {
    leaseMs,
    renewMs,
    safetyMs,
    heartbeatMs,
    memberTtlMs,
    opTimeoutMs,
    membersTtlMs: Math.max(memberTtlMs * 2, 1000),
    leasesTtlMs: Math.max(leaseMs * 5, 10_000),
  };
}
