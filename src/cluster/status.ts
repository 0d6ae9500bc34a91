/**
 * The cluster as the buckets tell it (`lars cluster status`): members from
 * their heartbeats, partitions from their leases, and each node's report
 * intake as it announces it.
 *
 * Ages are judged from the server's timestamp of each KV entry against the
 * reader's wall clock (one machine, or NTP-synchronised ones).
 *
 * Report lag of a node: the batches waiting in its partition subscriptions
 * at its last heartbeat (received, not yet processed: with core
 * subscriptions there is no other backlog), and the time that takes to
 * drain at the rate it ingested since the heartbeat before. A node that
 * falls behind shows a growing queue; one that stopped shows a growing
 * heartbeat age. Reports that no node receives (a partition without an
 * owner) are in the REPORTS stream only: they show as an unowned partition.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { bindBucket, readBucket } from '../nats/buckets.ts';
import { clusterNames } from './names.ts';
import { decodeLease } from './leases.ts';
import { decodeMember, type IngestFigures, type MemberRecord } from './membership.ts';
import { LEASE_DEFAULTS } from './lease-config.ts';

export interface MemberStatus {
  node: string;
  /** Wall clock at start, ms since the epoch. */
  started: number;
  /** Since its last heartbeat was stored, ms. */
  heartbeatAgeMs: number;
  /** Heard from within 3 heartbeat intervals and not leaving. */
  live: boolean;
  leaving: boolean;
  /** Partitions whose lease it holds. */
  partitions: number[];
  /** Age of its least recently renewed lease, ms (undefined: it holds none). */
  oldestRenewalAgeMs: number | undefined;
  leaseMs: number;
  ingest: IngestFigures | undefined;
  /** Time to drain the batches waiting at its last heartbeat at its current rate, ms; undefined when unknown. */
  lagMs: number | undefined;
}

export const PartitionProblem = {
  /** No lease: nobody takes its reports. */
  noOwner: 'no_owner',
  /** The lease was not renewed within its lease time: the holder is gone or stalled. */
  expired: 'expired',
  /** The holder is not a live member (no recent heartbeat, or leaving). */
  ownerNotLive: 'owner_not_live',
} as const;
export type PartitionProblem = (typeof PartitionProblem)[keyof typeof PartitionProblem];

export interface PartitionStatus {
  partition: number;
  owner: string | undefined;
  /** Since the lease was last written (taken or renewed), ms. */
  leaseAgeMs: number | undefined;
  problem: PartitionProblem | undefined;
}

export interface ClusterStatus {
  prefix: string;
  partitions: number;
  /** Reader's wall clock, ms since the epoch. */
  at: number;
  members: MemberStatus[];
  partitionStates: PartitionStatus[];
  /** Partitions with a problem. */
  problems: PartitionStatus[];
  /** Every partition held by a live member with a lease renewed in time. */
  healthy: boolean;
}

export interface ClusterSnapshot {
  /** Member entries with the server's time of their last write, ms. */
  members: Array<{ record: MemberRecord; storedAt: number }>;
  /** Lease holder per partition with the server's time of the last write, ms. */
  leases: Map<number, { node: string; storedAt: number }>;
}

/** Judges a snapshot of the buckets at `now` (pure). */
export function summarizeCluster(snap: ClusterSnapshot, o: { prefix: string; partitions: number; now: number }): ClusterStatus {
  const byNode = new Map<string, MemberStatus>();
  for (const { record: r, storedAt } of snap.members) {
    const age = Math.max(0, o.now - storedAt);
    const ttl = 3 * (r.heartbeatMs ?? LEASE_DEFAULTS.heartbeatMs);
    const prev = byNode.get(r.node);
    if (prev && prev.heartbeatAgeMs <= age) continue;
    const ing = r.ingest;
    const lagMs = ing === undefined ? undefined : ing.pending === 0 ? 0 : ing.batchesPerSec > 0 ? Math.round((ing.pending / ing.batchesPerSec) * 1000) : undefined;
    byNode.set(r.node, {
      node: r.node,
      started: r.started,
      heartbeatAgeMs: age,
      live: age <= ttl && !r.leaving,
      leaving: r.leaving === true,
      partitions: [],
      oldestRenewalAgeMs: undefined,
      leaseMs: r.leaseMs ?? LEASE_DEFAULTS.leaseMs,
      ingest: ing,
      lagMs,
    });
  }
  const partitionStates: PartitionStatus[] = [];
  for (let p = 0; p < o.partitions; p++) {
    const l = snap.leases.get(p);
    if (!l) {
      partitionStates.push({ partition: p, owner: undefined, leaseAgeMs: undefined, problem: PartitionProblem.noOwner });
      continue;
    }
    const age = Math.max(0, o.now - l.storedAt);
    const m = byNode.get(l.node);
    if (m) {
      m.partitions.push(p);
      m.oldestRenewalAgeMs = Math.max(m.oldestRenewalAgeMs ?? 0, age);
    }
    const leaseMs = m?.leaseMs ?? LEASE_DEFAULTS.leaseMs;
    const problem = age > leaseMs ? PartitionProblem.expired : !m?.live ? PartitionProblem.ownerNotLive : undefined;
    partitionStates.push({ partition: p, owner: l.node, leaseAgeMs: age, problem });
  }
  const problems = partitionStates.filter((s) => s.problem !== undefined);
  const members = [...byNode.values()].sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : 0));
  return { prefix: o.prefix, partitions: o.partitions, at: o.now, members, partitionStates, problems, healthy: problems.length === 0 };
}


/** Reads the members and leases buckets once. */
export async function readClusterSnapshot(nc: NatsConnection, prefix: string): Promise<ClusterSnapshot> {
  const cn = clusterNames(prefix);
  const [membersKv, leasesKv] = await Promise.all([bindBucket(nc, cn.membersBucket), bindBucket(nc, cn.leasesBucket)]); // undefined: no node with leases ever ran under this prefix
  const [memberEntries, leaseEntries] = await Promise.all([readBucket(membersKv), readBucket(leasesKv)]);
  const members: ClusterSnapshot['members'] = [];
  for (const e of memberEntries) {
    const r = decodeMember(e);
    if (r) members.push({ record: r, storedAt: e.created.getTime() });
  }
  const leases: ClusterSnapshot['leases'] = new Map();
  for (const e of leaseEntries) {
    const p = cn.leasePartition(e.key);
    const r = decodeLease(e);
    if (p !== undefined && r) leases.set(p, { node: r.node, storedAt: e.created.getTime() });
  }
  return { members, leases };
}

/**
 * The cluster's status under `prefix` now. Ages are taken from when the
 * read began (a slow read would age every lease by its own length), and the
 * leases of partitions that look unowned are read once more, one by one,
 * before they are reported: the bulk read may come from a replica a moment
 * behind.
 */
export async function clusterStatus(nc: NatsConnection, o: { prefix: string; partitions: number; now?: () => number }): Promise<ClusterStatus> {
  const now = o.now ?? Date.now;
  const at = now();
  const snap = await readClusterSnapshot(nc, o.prefix);
  const first = summarizeCluster(snap, { prefix: o.prefix, partitions: o.partitions, now: at });
  if (first.problems.length === 0) return first;
  const cn = clusterNames(o.prefix);
  const kv = await bindBucket(nc, cn.leasesBucket).catch(() => undefined);
  if (kv === undefined) return first;
  await Promise.all(
    first.problems.map(async ({ partition: p }) => {
      const e = await kv.get(cn.leaseKey(p)).catch(() => null);
      const r = e ? decodeLease(e) : undefined;
      if (e && r && e.created.getTime() > (snap.leases.get(p)?.storedAt ?? -Infinity)) snap.leases.set(p, { node: r.node, storedAt: e.created.getTime() });
    }),
  );
  return summarizeCluster(snap, { prefix: o.prefix, partitions: o.partitions, now: at });
}
