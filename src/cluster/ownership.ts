/**
 * The seam between a route node and the cluster: which report partitions
 * this node owns. A single node owns them all, or an explicit set
 * (StaticOwnership); in a cluster, LeaseOwnership (src/cluster/) takes
 * per-partition leases in KV over the live members. The node asks the
 * ownership before publishing (`holds`), reports a fenced write it lost
 * (`lost`), and hands partitions over when told to (`OwnershipHooks`).
 */
export interface OwnershipHooks {
  /**
   * Hands partitions over before their leases are released: the node stops
   * taking their reports, publishes and checkpoints their routes, and drops
   * their actors.
   */
  handOver(partitions: readonly number[]): Promise<void>;
  /**
   * The partitions' leases were taken again after a gap (they aged out):
   * another node may have stored route states meanwhile, so each of their
   * routes stores its next state (compare-and-set) before publishing it.
   */
  verify?(partitions: readonly number[]): void;
  /** The node's report intake so far, announced with its heartbeats (`lars cluster status`). */
  ingest?(): { reports: number; batches: number; pending: number };
}

/** Ownership as readiness and the metrics tell it (LeaseOwnership.health). */
export interface OwnershipHealth {
  leaseMs: number;
  /** Partitions this node should own (rendezvous hashing over the live members). */
  desired: number;
  /** Partitions whose lease it holds. */
  held: number;
  /** Partitions without a live owner as this node sees the leases, and for how long each has had none, ms. */
  unowned: Array<{ partition: number; forMs: number }>;
  /** Of those, the ones this node should own (and so could take). */
  mineUnowned: number;
  /** The node is leaving the cluster (a graceful stop): it hands its partitions over and takes none. */
  leaving?: boolean;
}

export interface PartitionOwnership {
  /** Partitions owned now. */
  owned(): ReadonlySet<number>;
  /** Registers a listener for ownership changes; returns a function that removes it. */
  onChange(listener: (owned: ReadonlySet<number>) => void): () => void;
  /** Makes or binds what `start` needs on the bus (idempotent, may be retried); optional. */
  prepare?(): Promise<void>;
  /** Starts taking part (membership, leases); called once by the node before it reads `owned()`. */
  start?(hooks: OwnershipHooks): Promise<void>;
  /** Fencing: whether this node may still publish for `partition` now (its lease renewed recently enough by the local clock). */
  holds?(partition: number): boolean;
  /** Tries to renew the partition's lease at once; false when it is lost. */
  reassert?(partition: number): Promise<boolean>;
  /** The node found out it lost `partition` (a fenced write failed): stop counting it as owned. */
  lost?(partition: number): void;
  /** Announces that the node is stopping, so that successors are ready when the leases are released. */
  leave?(): Promise<void>;
  /** Releases everything held (after the node handed its partitions over). */
  close(): Promise<void>;
  /** This node's share and the partitions without a live owner (absent: an explicit assignment, always owned). */
  health?(): OwnershipHealth;
}

export class StaticOwnership implements PartitionOwnership {
  private readonly all: ReadonlySet<number>;
  private set: Set<number>;
  private readonly listeners = new Set<(owned: ReadonlySet<number>) => void>();
  private readonly timers = new Set<ReturnType<typeof setTimeout>>();
  private readonly retakeMs: number;

  /** `retakeMs`: after a lost write, how long until the partition is owned (and reloaded) again. */
  constructor(partitions: Iterable<number>, opts: { retakeMs?: number } = {}) {
    this.all = new Set(partitions);
    this.set = new Set(this.all);
    this.retakeMs = opts.retakeMs ?? 1000;
  }

  static all(partitions: number): StaticOwnership {
    return new StaticOwnership(Array.from({ length: partitions }, (_, i) => i));
  }

  owned(): ReadonlySet<number> {
    return this.set;
  }

  onChange(listener: (owned: ReadonlySet<number>) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * An explicit assignment has no lease to lose: the partition is dropped
   * and, after `retakeMs`, owned again and reloaded from what is stored
   * (never overwritten with the state this node had).
   */
  lost(partition: number): void {
    if (!this.set.delete(partition)) return;
    this.emit();
    const t = setTimeout(() => {
      this.timers.delete(t);
      if (!this.all.has(partition)) return;
      this.set.add(partition);
      this.emit();
    }, this.retakeMs);
    t.unref?.();
    this.timers.add(t);
  }

  private emit(): void {
    this.set = new Set(this.set);
    for (const l of this.listeners) l(this.set);
  }

  async close(): Promise<void> {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }
}
