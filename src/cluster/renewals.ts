/**
 * Renewing a node's held leases: one renewal per partition at a time (one
 * out for longer than four write timeouts is no longer waited for), and,
 * when a renewal fails its compare-and-set, the lease read back and acted
 * on (see `recheck`).
 */
import type { KV, KvEntry } from '@nats-io/kv';
import { bucketMissing, isConflict } from '../nats/buckets.ts';
import { errText, type RateLimitedLog } from '../lib/ratelog.ts';
import type { Held } from './handovers.ts';
import { decodeLease, type LeaseTable } from './leases.ts';
import type { LeaseWrites } from './lease-writes.ts';

/** What renewals read and change of the node's leases. */
export interface RenewalsOptions {
  nodeId: string;
  held: Map<number, Held>;
  clock: () => number;
  opTimeoutMs: number;
  counters: { renewFailures: number; ownWritesFound: number; leasesGone: number; renewalsAbandoned: number };
  warnings: RateLimitedLog;
  kv: () => KV;
  key: (p: number) => string;
  writes: () => LeaseWrites;
  table: () => LeaseTable;
  /** Makes the buckets again (a server back on a fresh store). */
  ensureBuckets: () => void;
  closed: () => boolean;
  /** Rendezvous hashing over the live members gives this node the partition. */
  shouldOwn: (p: number) => boolean;
  /** The partition was taken again after its lease aged out: its routes are verified before they publish. */
  verify: (partitions: number[]) => void;
  retaken: (p: number, revision: number) => void;
  /** The partition is lost (dropped, ownership evaluated again). */
  lost: (p: number, why: string) => void;
}

export class Renewals {
  private readonly o: RenewalsOptions;
  private readonly running = new Map<number, Promise<boolean>>();
  /** When each renewal in `running` began (local clock). */
  private readonly since = new Map<number, number>();

  constructor(o: RenewalsOptions) {
    this.o = o;
  }

  /** The partition's renewal in flight, if any (a lease delete waits for it: it moves the revision). */
  inFlight(p: number): Promise<boolean> | undefined {
    return this.running.get(p);
  }

  renew(p: number): Promise<boolean> {
    const cur = this.running.get(p);
    // A renewal still out after several write timeouts is not waited for any longer (each of its requests is
    // bounded; this bounds their sum): the next one goes, on the revision held now.
    if (cur && this.o.clock() - (this.since.get(p) ?? 0) < 4 * this.o.opTimeoutMs) return cur;
    if (cur) {
      this.o.counters.renewalsAbandoned++;
      this.o.warnings.warn('renew-stuck', { partition: p, ms: this.o.clock() - (this.since.get(p) ?? 0) }, 'a lease renewal has been out too long; renewing again');
    }
    this.since.set(p, this.o.clock());
    const run = (async (): Promise<boolean> => {
      const h = this.o.held.get(p);
      if (!h) return false;
      const t0 = this.o.clock();
      try {
        const rev = await this.o.kv().update(this.o.key(p), this.o.writes().record(), h.revision);
        // Kept even when the partition is being released: the delete goes on this revision.
        h.revision = rev;
        h.renewedAt = t0;
        this.o.writes().answered();
        if (this.o.held.get(p) !== h) return false;
        this.o.table().note(p, this.o.nodeId, rev);
        return true;
      } catch (err) {
        if (isConflict(err)) return await this.recheck(p, h);
        this.o.writes().failed(t0);
        this.o.counters.renewFailures++;
        if (bucketMissing(err)) this.o.ensureBuckets();
        if (!this.o.closed()) this.o.warnings.warn('renew', { err: errText(err), partition: p, failures: this.o.counters.renewFailures }, 'lease renewal failed; will retry');
        return false;
      }
    })().finally(() => {
      if (this.running.get(p) === run) {
        this.running.delete(p);
        this.since.delete(p);
      }
    });
    this.running.set(p, run);
    return run;
  }

  /**
   * A renewal failed its compare-and-set: reads the lease and acts on what
   * is there, never on the failure alone. This run's own record: a write
   * that timed out was applied after all; its revision is adopted and the
   * lease renewed on it. No lease (it aged out while this node could not
   * renew, or was deleted): taken again when this node should still own the
   * partition. Another node's lease: the partition is lost.
   */
  private async recheck(p: number, h: Held): Promise<boolean> {
    const key = this.o.key(p);
    let e: KvEntry | null;
    try {
      e = await this.o.kv().get(key);
    } catch (err) {
      // Nothing learnt: the lease stays as it is (holds() lapses by time) and the next renewal asks again.
      this.o.warnings.warn('recheck', { err: errText(err), partition: p }, 'lease could not be read back after a conflict; will retry');
      return false;
    }
    if (this.o.held.get(p) !== h) return false;
    this.o.table().observe(p, e);
    const t0 = this.o.clock();
    try {
      if (this.o.writes().isMine(e)) {
        this.o.counters.ownWritesFound++;
        h.revision = await this.o.kv().update(key, this.o.writes().record(), e.revision);
      } else if (e === null && this.o.shouldOwn(p)) {
        // Aged out (or a server back on a fresh store): taken again. Another node may have held it meanwhile (taken
        // over while this one was stopped, its lease aged out since) and stored route states this node never saw:
        // the node stores each route's next state before it publishes it, which a newer stored state refuses.
        h.revision = await this.o.kv().create(key, this.o.writes().record());
        this.o.counters.leasesGone++;
        this.o.verify([p]);
        this.o.retaken(p, h.revision);
      } else if (e === null || decodeLease(e) === undefined) {
        // Deleted: another node released it, so it held it meanwhile and may have published above what this node
        // holds. The partition is dropped, and taken and restored afresh when it is still this node's to own.
        this.o.counters.leasesGone++;
        this.o.lost(p, e === null ? 'lease aged out' : 'lease deleted');
        return false;
      } else {
        this.o.lost(p, `lease taken by ${decodeLease(e)!.node}`);
        return false;
      }
    } catch (err) {
      if (isConflict(err)) {
        // Moved again meanwhile: the next renewal reads it back again.
        const again = await this.o.kv().get(key).catch(() => undefined);
        if (again !== undefined) this.o.table().observe(p, again);
        if (again !== undefined && !this.o.writes().isMine(again)) {
          this.o.lost(p, 'lease taken by another node');
        }
      }
      return false;
    }
    h.renewedAt = t0;
    if (this.o.held.get(p) !== h) return false;
    this.o.table().note(p, this.o.nodeId, h.revision);
    return true;
  }
}
