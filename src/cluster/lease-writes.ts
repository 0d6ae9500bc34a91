/**
 * A node's lease writes as such: the record each write carries (node name,
 * time, this run's incarnation), telling a stored lease of this run's own
 * from any other, and what a run of failed writes means for the other
 * nodes' leases.
 */
import type { KvEntry } from '@nats-io/kv';
import type { Logger } from '../lib/log.ts';
import { decodeLease, encodeLease } from './leases.ts';

export interface LeaseWritesOptions {
  nodeId: string;
  incarnation: string;
  clock: () => number;
  wall: () => number;
  renewMs: number;
  log: Logger;
  /** A write failed without a conflict: no other lease may be taken as expired meanwhile. */
  onFailing: () => void;
  /** Writes answer again after failing for longer than a renewal interval: the others get a lease time to renew. */
  onAnswerAgain: () => void;
}

export class LeaseWrites {
  private readonly o: LeaseWritesOptions;
  /** Since when lease writes have been failing (local clock), none having gone through since. */
  private failingSince: number | undefined;

  constructor(o: LeaseWritesOptions) {
    this.o = o;
  }

  /** The record a lease write stores now. */
  record(): Uint8Array {
    return encodeLease(this.o.nodeId, this.o.wall(), this.o.incarnation);
  }

  /** The lease's record is this run's own (a write of its own, whatever this node believed of it). */
  isMine(e: KvEntry | null): e is KvEntry {
    const r = e ? decodeLease(e) : undefined;
    return r !== undefined && r.node === this.o.nodeId && r.inc === this.o.incarnation;
  }

  /**
   * A lease write failed without a conflict (the bucket without a leader,
   * the server away): while this node cannot write, neither may the others
   * be able to, so no lease of theirs is taken as expired meanwhile (their
   * clocks of expiry start again from now). Expiry is judged only on time
   * during which this node could have seen a renewal.
   */
  failed(at: number): void {
    this.failingSince ??= at;
    this.o.onFailing();
  }

  /**
   * A lease write went through. After writes had failed for longer than a
   * renewal interval (the bucket without a leader, a server lost) the other
   * nodes could not renew either, so nobody is taken as gone or expired for
   * a lease time from now, as after a reconnect: taking their partitions
   * over the moment the bucket answers again would move partitions from
   * live nodes and back.
   */
  answered(): void {
    const since = this.failingSince;
    if (since === undefined) return;
    this.failingSince = undefined;
    const now = this.o.clock();
    if (now - since <= this.o.renewMs) return;
    this.o.log.info({ failingMs: now - since }, 'lease writes answer again; others get a lease time to renew');
    this.o.onAnswerAgain();
  }
}
