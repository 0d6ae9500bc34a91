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
