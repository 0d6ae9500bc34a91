/** A route node's counters, shared by its parts (ingress, publishing, the state writer), and the figures `RouteNode.stats()` reports. */

export interface RouteNodeStats {
  routes: number;
  hosts: number;
  batches: number;
  reports: number;
  published: number;
  events: number;
  kvWrites: number;
  kvConflicts: number;
  /** Route states held back because the partition's lease was not fresh enough. */
  fenced: number;
  /** Partitions dropped because a fenced write or a lease renewal failed. */
  partitionsLost: number;
  /** Route checkpoints stored at handovers (in the partitions' handover records). */
  handoverCheckpoints: number;
  rejects: Record<string, number>;
}

/** The counters the node's parts count. */
export interface NodeCounters {
  batches: number;
  reports: number;
  published: number;
  events: number;
  kvWrites: number;
  kvConflicts: number;
  fenced: number;
  partitionsLost: number;
  handoverCheckpoints: number;
  /** Route states that waited for their write because the route was PUBLISH_LEAD versions ahead of the bucket. */
  publishWaits: number;
  /** Conflicts found to be this node's own write, applied after it timed out. */
  ownWritesFound: number;
}

/** All at zero, in the order `stats()` reports them. */
export function newCounters(): NodeCounters {
  return { batches: 0, reports: 0, published: 0, events: 0, kvWrites: 0, kvConflicts: 0, fenced: 0, partitionsLost: 0, handoverCheckpoints: 0, publishWaits: 0, ownWritesFound: 0 };
}
