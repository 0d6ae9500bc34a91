/**
 * The partitions as a route node sees them: one record per partition with
 * its phase and flags.
 *
 *   released ──take──▶ restoring ──serve──▶ serving ──hand──▶ handing
 *      ▲                                                         │
 *      └───────────── drop (lost, or handed over) ◀──────────────┘
 *
 * restoring: its routes are being loaded, reports not yet taken; serving:
 * routes loaded and reports subscribed; handing: being handed over (reports
 * no longer taken, nothing more published); released: not this node's. A
 * partition is dropped from any phase when it is lost. At a graceful stop a
 * partition handed over keeps its routes (`kept`: readable after the stop).
 * No I/O: the node subscribes and gives the table the subscription.
 */

export const PartitionPhase = {
  restoring: 'restoring',
  serving: 'serving',
  handing: 'handing',
  released: 'released',
} as const;
export type PartitionPhase = (typeof PartitionPhase)[keyof typeof PartitionPhase];

/** What the table needs of a report subscription. */
export interface PartitionSub {
  unsubscribe(): void;
  getPending(): number;
}

export interface PartitionRecord<S extends PartitionSub = PartitionSub> {
  readonly partition: number;
  phase: PartitionPhase;
  /** The partition's report subscription (from `serve` until its reports are no longer taken). */
  sub: S | undefined;
  /** Handed over at a graceful stop: released, its routes kept readable. */
  kept: boolean;
  /** Route states are held back until the lease is renewed (logged once until then). */
  heldBack: boolean;
  /** The lease is being renewed before held-back states are published. */
  reasserting: boolean;
  /** Lost on a write conflict of a route restored from its checkpoint alone: the next takeover reads every route's state. */
  verifyNext: boolean;
}

export class PartitionTable<S extends PartitionSub = PartitionSub> {
  /** By partition (0 … partitions - 1 made at once; any other number an ownership names, when first named). */
  private readonly records = new Map<number, PartitionRecord<S>>();

  constructor(partitions: number) {
    for (let p = 0; p < partitions; p++) this.records.set(p, released(p));
  }

  /** The record of partition `p`. */
  get(p: number): PartitionRecord<S> {
    let r = this.records.get(p);
    if (r === undefined) this.records.set(p, (r = released(p)));
    return r;
  }

  /** The node holds the partition's routes (loaded or loading): from `take` until dropped. */
  isActive(p: number): boolean {
    const r = this.records.get(p);
    return r !== undefined && (r.phase !== PartitionPhase.released || r.kept);
  }

  /** The partition is being handed over: nothing more is published for it. */
  isHanding(p: number): boolean {
    return this.records.get(p)?.phase === PartitionPhase.handing;
  }

  /** Partitions whose routes the node holds, ascending. */
  active(): number[] {
    const out: number[] = [];
    for (const r of this.records.values()) if (r.phase !== PartitionPhase.released || r.kept) out.push(r.partition);
    return out.sort(ascending);
  }

  /** Partitions whose reports are subscribed, ascending. */
  subscribed(): number[] {
    const out: number[] = [];
    for (const r of this.records.values()) if (r.sub !== undefined) out.push(r.partition);
    return out.sort(ascending);
  }

  /** Report batches waiting in the subscriptions. */
  pending(): number {
    let n = 0;
    for (const r of this.records.values()) if (r.sub !== undefined) n += r.sub.getPending();
    return n;
  }

  /** The partition comes to this node: its routes are being loaded. */
  take(p: number): void {
    const r = this.get(p);
    r.phase = PartitionPhase.restoring;
    r.kept = false;
  }

  /** Its routes are in and its reports subscribed (a partition being handed over stays so). */
  serve(p: number, sub: S): void {
    const r = this.get(p);
    r.sub = sub;
    if (r.phase === PartitionPhase.restoring) r.phase = PartitionPhase.serving;
  }

  /** Stops taking its reports. */
  unsubscribe(p: number): void {
    const r = this.get(p);
    r.sub?.unsubscribe();
    r.sub = undefined;
  }

  /** Its handover begins: nothing more is published for it. */
  hand(p: number): void {
    const r = this.get(p);
    if (r.phase !== PartitionPhase.released) r.phase = PartitionPhase.handing;
  }

  /** Handed over at a graceful stop: released, its routes kept readable. */
  keep(p: number): void {
    const r = this.get(p);
    if (r.phase === PartitionPhase.released && !r.kept) return;
    r.phase = PartitionPhase.released;
    r.kept = true;
  }

  /** A handover that did not end in `drop` or `keep` (it failed): the partition is served again, nothing more. */
  endHanding(p: number): void {
    const r = this.get(p);
    if (r.phase === PartitionPhase.handing) r.phase = PartitionPhase.serving;
  }

  /** No longer this node's (lost, or handed over): unsubscribed, released. */
  drop(p: number): void {
    this.unsubscribe(p);
    const r = this.get(p);
    r.phase = PartitionPhase.released;
    r.kept = false;
  }

  /** Whether the next takeover must verify every route's state; the flag is cleared. */
  takeVerify(p: number): boolean {
    const r = this.get(p);
    const v = r.verifyNext;
    r.verifyNext = false;
    return v;
  }
}

function released<S extends PartitionSub>(partition: number): PartitionRecord<S> {
  return { partition, phase: PartitionPhase.released, sub: undefined, kept: false, heldBack: false, reasserting: false, verifyNext: false };
}

function ascending(a: number, b: number): number {
  return a - b;
}
