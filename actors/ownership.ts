/**
 * Partition ownership by rendezvous (highest random weight) hashing: each
 * partition goes to the live member with the highest hash of (member,
 * partition). When a member joins or leaves, only the partitions it wins or
 * held move. Pure; the runtime supplies the live member list.
 */

import { fmix32, fnv1a32 } from '../schemas/fnv.ts';

/** The member that owns `partition`, or undefined when there are no members. */
export function rendezvousOwner(partition: number, members: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestScore = -1;
  for (const m of members) {
    // FNV-1a with a final avalanche so near-equal member names spread.
    const score = fmix32(fnv1a32(`${m}#${partition}`));
    if (score > bestScore || (score === bestScore && best !== undefined && m < best)) {
      best = m;
      bestScore = score;
    }
  }
  return best;
}

/** The partitions `member` owns among `partitions` partitions. */
export function ownedPartitions(member: string, members: readonly string[], partitions: number): number[] {
  const out: number[] = [];
  for (let p = 0; p < partitions; p++) if (rendezvousOwner(p, members) === member) out.push(p);
  return out;
}

/** What a node knows of one partition's lease. */
export interface LeaseView {
  /** Node holding the lease. */
  owner: string;
  /** KV revision of the lease as last seen (the compare-and-set base of a takeover). */
  revision: number;
  /** When that revision was seen, by the viewer's clock, ms. */
  seenAt: number;
}

export interface LeasePlanInput {
  self: string;
  /** Live members that are not leaving (heartbeat seen within the member TTL). */
  live: readonly string[];
  partitions: number;
  /** Partitions whose lease this node holds. */
  held: ReadonlySet<number>;
  /** Leases present in the bucket (absent or deleted ones are not in the map). */
  leases: ReadonlyMap<number, LeaseView>;
  now: number;
  leaseMs: number;
}

export type LeaseAction =
  | { kind: 'create'; partition: number }
  | { kind: 'takeover'; partition: number; revision: number }
  | { kind: 'release'; partition: number; to: string };

/**
 * The lease moves a node makes now: take the free or expired leases of the
 * partitions rendezvous hashing gives it (create a missing key; take over an
 * expired one with compare-and-set on the revision seen), and release the
 * partitions it holds that now belong to another live member. A lease held
 * by another node is expired when no new revision of it has been seen for
 * `leaseMs`; a lease under this node's own name that it does not hold is
 * left over from an earlier run of the same id and is taken over at once.
 */
export function planLeases(i: LeasePlanInput): LeaseAction[] {
  const out: LeaseAction[] = [];
  for (let p = 0; p < i.partitions; p++) {
    const desired = rendezvousOwner(p, i.live);
    if (desired === undefined) continue;
    if (desired === i.self) {
      if (i.held.has(p)) continue;
      const l = i.leases.get(p);
      if (!l) out.push({ kind: 'create', partition: p });
      else if (l.owner === i.self || i.now - l.seenAt >= i.leaseMs) out.push({ kind: 'takeover', partition: p, revision: l.revision });
    } else if (i.held.has(p)) {
      out.push({ kind: 'release', partition: p, to: desired });
    }
  }
  return out;
}
