/**
 * Handing partitions over: each released partition's routes are handed over
 * (last route writes, checkpoints) and then its lease is deleted, pipelined
 * at most `HANDOVER_CONCURRENCY` partitions at a time, so the time a
 * partition has no owner does not grow with the number of routes.
 */
import { pool } from '../lib/pool.ts';
import type { Logger } from '../lib/log.ts';
import { errField, partitionRanges } from '../lib/ratelog.ts';
import { HANDOVER_CONCURRENCY } from './lease-config.ts';

/** A lease this node holds. */
export interface Held {
  revision: number;
  /** Local clock when the write that produced `revision` was sent. */
  renewedAt: number;
}

export interface HandoversOptions {
  /** The node's held leases (shared: a handed-over partition leaves it before its lease is deleted). */
  held: Map<number, Held>;
  log: Logger;
  /** Hands the partitions' routes over (the route node's hook). */
  handOver: (partitions: number[]) => Promise<void> | undefined;
  /** Deletes a held lease with compare-and-set. */
  deleteLease: (p: number, h: Held) => Promise<void>;
  /** A partition's handover ended; `left`: it left `held` (its lease deleted, or the deletion failed and was logged). */
  released: (left: boolean) => void;
}

export class Handovers {
  private readonly o: HandoversOptions;
  private readonly inProgress = new Set<number>();
  /** Handovers under way that an evaluation started. */
  private readonly running = new Set<Promise<void>>();

  constructor(o: HandoversOptions) {
    this.o = o;
  }

  /** The partition is being handed over (a lease change seen meanwhile is not a loss). */
  releasing(p: number): boolean {
    return this.inProgress.has(p);
  }

  /** Starts releasing in the background: a long handover must not hold back the next takes. */
  start(ps: number[]): void {
    const t = this.release(ps)
      .catch((err: unknown) => this.o.log.error({ err }, 'partition handover failed'))
      .finally(() => this.running.delete(t));
    this.running.add(t);
  }

  /** Every handover started in the background has ended. */
  async settled(): Promise<void> {
    await Promise.all(this.running);
  }

  /** Hands the partitions over and releases their leases, one partition's lease as soon as its own handover is done. */
  async release(ps: number[]): Promise<void> {
    const { held, log } = this.o;
    const queue = ps.filter((p) => held.has(p) && !this.inProgress.has(p));
    for (const p of queue) this.inProgress.add(p);
    const one = async (p: number): Promise<void> => {
      let left = false;
      try {
        await this.o.handOver([p]);
        const h = held.get(p);
        if (!h) return;
        held.delete(p);
        left = true;
        await this.o.deleteLease(p, h).catch((err: unknown) => log.warn({ err: errField(log, err), partition: p }, 'lease release failed'));
      } finally {
        this.inProgress.delete(p);
        this.o.released(left);
      }
    };
    await pool(queue, HANDOVER_CONCURRENCY, one);
    if (queue.length > 0) log.info({ partitions: partitionRanges(queue), count: queue.length }, `partitions handed over: ${queue.length} (${partitionRanges(queue)})`);
  }
}
