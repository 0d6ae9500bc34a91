/**
 * The route node's state writer: stores route states in the routes bucket,
 * a bounded number at a time, each with compare-and-set on the revision the
 * node last wrote (or read at takeover), then the route's checkpoint; and,
 * at a handover, each partition's checkpoints together. It tells when the
 * writes are done (`whenIdle`, `settledFor`).
 */
import type { RouteState } from '../../schemas/messages.ts';
import type { RouteCheckpoint } from '../../actors/checkpoint.ts';
import type { Names } from '../../schemas/subjects.ts';
import type { RouteStore } from '../registry/route-store.ts';
import { isConflict } from '../nats/buckets.ts';
import { retry } from '../lib/retry.ts';
import { CheckpointStore } from '../cluster/checkpoints.ts';
import { errField, errText } from '../lib/ratelog.ts';
import type { Logger } from '../lib/log.ts';
import type { NodeCounters } from './counters.ts';
import type { PendingWrite, RouteSlot } from './route-slot.ts';

export interface StateWriterOptions {
  store: RouteStore;
  checkpoints: CheckpointStore;
  names: Names;
  nodeId: string;
  clock: () => number;
  log: Logger;
  counters: NodeCounters;
  isClosed: () => boolean;
  /** The route is still the node's (not dropped, replaced or removed). */
  isCurrent: (slot: RouteSlot) => boolean;
  /** A state that waited for its write (`held`) is stored: publish it. */
  onStored: (slot: RouteSlot, w: PendingWrite) => void;
  /** Another node wrote the route: the partition is someone else's. */
  onConflict: (slot: RouteSlot, route: string) => void;
}

export class StateWriter {
  private readonly o: StateWriterOptions;
  /** Route states waiting for their KV write, as published (the newest of each route). */
  private readonly pendingWrites = new Map<RouteSlot, PendingWrite>();
  /** Routes with a state write in flight: their next one waits for it (both would expect the same revision). */
  private readonly writing = new Set<RouteSlot>();
  private active = 0;
  private idleWaiters: Array<() => void> = [];
  /** Route-state writes in flight per partition, and who waits for any write to end (a partition's handover). */
  private readonly activeBy = new Map<number, number>();
  private doneWaiters: Array<() => void> = [];

  constructor(o: StateWriterOptions) {
    this.o = o;
  }

  /** The route's state waiting for its write. */
  pending(slot: RouteSlot): PendingWrite | undefined {
    return this.pendingWrites.get(slot);
  }

  /** `w` is the route's next state to write, replacing the one waiting. */
  set(slot: RouteSlot, w: PendingWrite): void {
    this.pendingWrites.set(slot, w);
  }

  /** The route is dropped: its waiting state is not written. */
  forget(slot: RouteSlot): void {
    this.pendingWrites.delete(slot);
  }

  /** Nothing written now and nothing waiting. */
  isIdle(): boolean {
    return this.active === 0 && this.pendingWrites.size === 0;
  }

  /** Resolves when nothing is written and nothing waits. */
  async whenIdle(): Promise<void> {
    if (this.isIdle()) return;
    await new Promise<void>((r) => this.idleWaiters.push(r));
  }

  /** Resolves when the route states of these partitions have been written (other partitions' writes are not waited for). */
  async settledFor(ps: ReadonlySet<number>): Promise<void> {
    // Their writes go first: a handover must not wait behind other partitions' backlog.
    const first = [...this.pendingWrites].filter(([s]) => ps.has(s.partition));
    if (first.length > 0 && first.length < this.pendingWrites.size) {
      const rest = [...this.pendingWrites].filter(([s]) => !ps.has(s.partition));
      this.pendingWrites.clear();
      for (const [k, v] of [...first, ...rest]) this.pendingWrites.set(k, v);
    }
    const busy = (): boolean => [...ps].some((p) => this.activeBy.has(p)) || [...this.pendingWrites.keys()].some((s) => ps.has(s.partition));
    while (busy() && !this.o.isClosed()) await new Promise<void>((r) => this.doneWaiters.push(r));
  }

  /** Starts the waiting writes, up to KV_WRITES in flight. */
  pump(): void {
    if (this.active >= KV_WRITES) return;
    for (const [slot, w] of this.pendingWrites) {
      if (this.active >= KV_WRITES) break;
      if (this.writing.has(slot)) continue;
      this.pendingWrites.delete(slot);
      this.writing.add(slot);
      this.active++;
      const p = slot.partition;
      this.activeBy.set(p, (this.activeBy.get(p) ?? 0) + 1);
      void this.write(slot, w).finally(() => {
        this.writing.delete(slot);
        this.active--;
        const left = this.activeBy.get(p)! - 1;
        if (left > 0) this.activeBy.set(p, left);
        else this.activeBy.delete(p);
        const done = this.doneWaiters;
        this.doneWaiters = [];
        for (const f of done) f();
        this.pump();
        if (this.active === 0 && this.pendingWrites.size === 0) {
          const w = this.idleWaiters;
          this.idleWaiters = [];
          for (const f of w) f();
        }
      });
    }
  }

  /**
   * Stores each partition's handover: every route's checkpoint, together
   * (CheckpointStore.putHandover). Only while still holding the partition
   * (`holds`): the write is not fenced by itself. A failed write is logged;
   * the next owner then restores from the route checkpoints, as after a crash.
   */
  async writeHandovers(set: ReadonlySet<number>, routes: ReadonlyMap<string, RouteSlot>, holds: (p: number) => boolean): Promise<void> {
    const now = this.o.clock();
    const ts = Date.now();
    const byPartition = new Map<number, Array<readonly [string, Uint8Array]>>();
    for (const p of set) if (holds(p)) byPartition.set(p, []);
    for (const [key, s] of routes) {
      const records = byPartition.get(s.partition);
      if (records && !s.actor.isRemoved) records.push([key, CheckpointStore.encodeRecord(s.actor.checkpoint(now), ts, s.kvRevision)]);
    }
    await Promise.all(
      [...byPartition].map(async ([p, records]) => {
        try {
          await this.o.checkpoints.putHandover(p, records, this.o.nodeId);
          this.o.counters.handoverCheckpoints += records.length;
        } catch (err) {
          this.o.log.warn({ err: errField(this.o.log, err), partition: p }, 'handover checkpoints not stored; the next owner restores from the route checkpoints');
        }
      }),
    );
  }

  /**
   * Stores a route state with compare-and-set on the revision this node last
   * wrote (or read at takeover), then its checkpoint; a state that waited
   * for its write is published once stored. A conflict is read back: a write
   * of this node's own that timed out but was applied is adopted; any other
   * writer means another node owns the partition now: the partition is
   * dropped, never overwritten.
   */
  private async write(slot: RouteSlot, w: PendingWrite): Promise<void> {
    const { store, counters } = this.o;
    const a = slot.actor;
    const route = `${a.modid}.${a.cmdid}`;
    // Taken now, with the state it goes with: a later flush would have replaced the pending write,
    // so the actor is at the version being written (changes since then go in as unpublished).
    const checkpoint = a.checkpoint(this.o.clock());
    let wrote = false;
    try {
      await retry(
        async () => {
          if (!this.o.isCurrent(slot) && !w.removed) return;
          try {
            slot.kvRevision = await store.putEncoded(a.modid, a.cmdid, w.data, slot.kvRevision);
          } catch (err) {
            if (!isConflict(err)) {
              // It may still be applied: a conflict on the next attempt is then this write, found below.
              (slot.uncertain ??= new Set()).add(w.version);
              throw err;
            }
            if (!(await this.ownWriteFound(slot, w))) throw err;
          }
          slot.unverified = false;
          wrote = true;
          counters.kvWrites++;
        },
        {
          attempts: 3,
          minMs: 250,
          retryIf: (err) => !isConflict(err) && !this.o.isClosed(),
          onRetry: (err) => this.o.log.warn({ err: errText(err), route }, 'route state KV write failed; will retry'),
        },
      );
    } catch (err) {
      if (isConflict(err)) {
        counters.kvConflicts++;
        this.o.onConflict(slot, route);
        return;
      }
      if (this.o.isClosed()) return;
      // Keep the newest state for the next flush rather than losing it.
      if (!this.pendingWrites.has(slot) && this.o.isCurrent(slot)) this.pendingWrites.set(slot, w);
      else if (w.held) this.carryEvents(slot, w);
      return;
    }
    if (!wrote) return;
    if (w.version > slot.ackedVersion) slot.ackedVersion = w.version;
    slot.storeFirst = false;
    if (slot.uncertain) {
      for (const v of slot.uncertain) if (v <= w.version) slot.uncertain.delete(v);
      if (slot.uncertain.size === 0) slot.uncertain = undefined;
    }
    if (w.held) this.o.onStored(slot, w);
    // A checkpoint goes only with a state this node stored (its write fenced): not for a route dropped meanwhile.
    await this.storeCheckpoint(slot, checkpoint, Date.now());
  }

  /**
   * A state write met a conflict: reads the route back. Stored under this
   * node's name at a version whose write timed out (or the very version
   * being written), it is this node's own write, applied after all: its
   * revision is adopted (and the state being written goes on it).
   */
  private async ownWriteFound(slot: RouteSlot, w: PendingWrite): Promise<boolean> {
    const a = slot.actor;
    let cur: { state: RouteState; revision: number } | undefined;
    try {
      cur = await this.o.store.get(a.modid, a.cmdid);
    } catch {
      return false;
    }
    if (!cur || cur.state.sender !== this.o.nodeId) return false;
    const v = cur.state.version;
    if (v !== w.version && !slot.uncertain?.has(v)) return false;
    this.o.counters.ownWritesFound++;
    slot.kvRevision = cur.revision;
    if (v > slot.ackedVersion) slot.ackedVersion = v;
    if (v === w.version) return true;
    slot.kvRevision = await this.o.store.putEncoded(a.modid, a.cmdid, w.data, slot.kvRevision);
    return true;
  }

  /** Keeps the events of a state that was not published for the route's next publish. */
  private carryEvents(slot: RouteSlot, w: PendingWrite): void {
    if (!w.held || w.held.events.length === 0 || !this.o.isCurrent(slot)) return;
    slot.carried = [...(slot.carried ?? []), ...w.held.events];
  }

  /** Stores a route's checkpoint with the routes revision it goes with; a failed write is logged (the next handover stores it again). */
  private async storeCheckpoint(slot: RouteSlot, checkpoint: RouteCheckpoint, wall: number): Promise<void> {
    const record = CheckpointStore.encodeRecord(checkpoint, wall, slot.kvRevision);
    try {
      await this.o.checkpoints.putEncoded(slot.partition, this.o.names.routeKey(slot.actor.modid, slot.actor.cmdid), record);
    } catch (err) {
      this.o.log.warn({ err: errField(this.o.log, err), route: `${slot.actor.modid}.${slot.actor.cmdid}` }, 'checkpoint write failed');
    }
  }
}

/** Route-state writes in flight (each followed by its checkpoint's). */
const KV_WRITES = 16;
