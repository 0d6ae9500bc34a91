/**
 * How long partitions go without an owner, as a node sees it: since when
 * each partition this node should own has gone unheld (a stale view when
 * that lasts), and when each partition was last seen owned by a live node
 * (readiness and the `lars_cluster_partition_unowned_seconds` metric).
 */
export class UnownedPartitions {
  /** Partitions this node should own and does not hold, since when (local clock). */
  private readonly wantSince = new Map<number, number>();
  /** When each partition was last seen owned by a live node (local clock). */
  private readonly ownedAt: number[] = [];

  private readonly partitions: number;

  constructor(partitions: number, clock: () => number) {
    this.partitions = partitions;
    for (let p = 0; p < partitions; p++) this.ownedAt.push(clock());
  }

  /** Notes, for every partition, whether this node wants it and does not hold it (`wanted`). */
  want(now: number, wanted: (p: number) => boolean): void {
    for (let p = 0; p < this.partitions; p++) {
      if (!wanted(p)) this.wantSince.delete(p);
      else if (!this.wantSince.has(p)) this.wantSince.set(p, now);
    }
  }

  /** This node holds the partition now. */
  held(p: number): void {
    this.wantSince.delete(p);
  }

  /** Some partition this node wants has gone unheld for longer than `ms`. */
  wantedLongerThan(now: number, ms: number): boolean {
    for (const since of this.wantSince.values()) if (now - since > ms) return true;
    return false;
  }

  /**
   * This node's share (`mine`) and the partitions not owned now (`owned`),
   * each with how long since it last was; marks the owned ones as seen now.
   */
  count(
    now: number,
    mine: (p: number) => boolean,
    owned: (p: number) => boolean,
  ): { desired: number; unowned: Array<{ partition: number; forMs: number }>; mineUnowned: number } {
    let desired = 0;
    let mineUnowned = 0;
    const unowned: Array<{ partition: number; forMs: number }> = [];
    for (let p = 0; p < this.partitions; p++) {
      const m = mine(p);
      if (m) desired++;
      if (owned(p)) {
        this.ownedAt[p] = now;
        continue;
      }
      unowned.push({ partition: p, forMs: now - this.ownedAt[p]! });
      if (m) mineUnowned++;
    }
    return { desired, unowned, mineUnowned };
  }
}
