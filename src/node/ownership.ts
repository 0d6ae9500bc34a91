/**
 * The seam between a route node and the cluster: which report partitions
 * this node owns. A single node owns them all (StaticOwnership); a cluster
 * implementation (membership heartbeats and per-partition leases in KV,
 * rendezvous hashing in actors/ownership.ts) plugs in behind the same
 * interface without changing subjects or messages.
 */
export interface PartitionOwnership {
  /** Partitions owned now. */
  owned(): ReadonlySet<number>;
  /** Registers a listener for ownership changes; returns a function that removes it. */
  onChange(listener: (owned: ReadonlySet<number>) => void): () => void;
  close(): Promise<void>;
}

export class StaticOwnership implements PartitionOwnership {
  private readonly set: ReadonlySet<number>;

  constructor(partitions: Iterable<number>) {
    this.set = new Set(partitions);
  }

  static all(partitions: number): StaticOwnership {
    return new StaticOwnership(Array.from({ length: partitions }, (_, i) => i));
  }

  owned(): ReadonlySet<number> {
    return this.set;
  }

  onChange(): () => void {
    return () => {};
  }

  async close(): Promise<void> {}
}
