/** Cluster ownership for route nodes: leases in KV over live members, or an explicit partition set. */
import type { NatsConnection } from '@nats-io/transport-node';
import { UsageError } from '../lib/errors.ts';
import type { Logger } from '../lib/log.ts';
import { StaticOwnership, type PartitionOwnership } from './ownership.ts';
import { LeaseOwnership } from './lease-ownership.ts';
import { LEASE_DEFAULTS } from './lease-config.ts';

export { LeaseOwnership } from './lease-ownership.ts';
export { LEASE_DEFAULTS, type LeaseOwnershipOptions } from './lease-config.ts';
export { clusterNames, type ClusterNames } from './names.ts';

/** The lease time of a `--lease-ms` flag value (the default when absent); a bad value is a UsageError. */
export function leaseMsOf(flag: string | boolean | string[] | undefined): number {
  if (flag === undefined) return LEASE_DEFAULTS.leaseMs;
  const n = typeof flag === 'string' && /^\d+$/.test(flag) ? Number(flag) : NaN;
  if (!(n >= 200 && n <= 600_000)) throw new UsageError(`--lease-ms takes milliseconds in 200..600000, got ${JSON.stringify(flag)}`);
  return n;
}

/**
 * The ownership of a `lars node`: the explicit `own` partitions when given
 * (StaticOwnership), else leases shared with the other nodes
 * (LeaseOwnership, lease time `leaseMs`, a flag value in ms).
 */
export function nodeOwnership(o: { nc: NatsConnection; nodeId: string; prefix: string; partitions: number; log: Logger; own?: number[]; leaseMs?: string | boolean | string[] }): PartitionOwnership {
  if (o.own) return new StaticOwnership(o.own);
  const leaseMs = leaseMsOf(o.leaseMs);
  return new LeaseOwnership({ nc: o.nc, nodeId: o.nodeId, prefix: o.prefix, partitions: o.partitions, log: o.log, leaseMs, heartbeatMs: Math.min(LEASE_DEFAULTS.heartbeatMs, Math.floor(leaseMs / 4)) });
}
