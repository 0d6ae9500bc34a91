/**
 * Puts route states and their events on the bus (the route and event
 * subjects) while the partition's lease holds, logs each host transition,
 * and tells the change listeners. A state stored while the lease was not
 * fresh is held back: the lease is renewed first (`reassert`), then the
 * partition's held-back states go out; a renewal refused means the
 * partition is someone else's.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import type { Names } from '../../schemas/subjects.ts';
import type { RouteState, RouteEvent } from '../../schemas/messages.ts';
import { encode } from '../../schemas/codec.ts';
import { errField, PartitionLog } from '../lib/ratelog.ts';
import type { Logger } from '../lib/log.ts';
import type { PartitionOwnership } from '../cluster/ownership.ts';
import type { PartitionTable } from './partition-table.ts';
import type { NodeCounters } from './counters.ts';
import type { PendingWrite, RouteSlot } from './route-slot.ts';

export type RouteChangeListener = (state: RouteState, events: RouteEvent[], publishMs: number) => void;

export interface PublisherOptions {
  nc: NatsConnection;
  names: Names;
  log: Logger;
  counters: NodeCounters;
  ownership: PartitionOwnership;
  table: PartitionTable;
  isClosed: () => boolean;
  /** The routes the node holds. */
  routes: () => Iterable<RouteSlot>;
  isCurrent: (slot: RouteSlot) => boolean;
  /** The partition is lost (its lease renewal was refused). */
  lose: (p: number, why: string) => void;
  markDirty: (slot: RouteSlot) => void;
}

export class Publisher {
  private readonly listeners = new Set<RouteChangeListener>();
  private readonly o: PublisherOptions;
  /** One line per burst of partitions held back. */
  private readonly heldBackLog: PartitionLog;

  constructor(o: PublisherOptions) {
    this.o = o;
    this.heldBackLog = new PartitionLog(o.log, {
      level: 'warn',
      msg: 'leases not renewed recently enough; route states held back until they are',
      eventMsg: 'lease not renewed recently enough; route states held back until it is',
    });
  }

  /** Adds a listener for every published route change; returns a remover. */
  onChange(l: RouteChangeListener): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  /** Writes the pending held-back log line (at stop). */
  flushLogs(): void {
    this.heldBackLog.flush();
  }

  /** Publishes a route state (`data`: its encoding) with the route's carried events and `stateEvents`; `dirtyAt` is when the change was first marked (performance.now()). */
  send(slot: RouteSlot, state: RouteState, data: Uint8Array, stateEvents: readonly RouteEvent[], dirtyAt: number): void {
    const { nc, names, log, counters } = this.o;
    const a = slot.actor;
    const events = slot.carried ? [...slot.carried, ...stateEvents] : stateEvents;
    slot.carried = undefined;
    try {
      nc.publish(names.route(a.modid, a.cmdid), data);
      counters.published++;
      for (const e of events) {
        nc.publish(names.event(a.modid, a.cmdid), encode(e));
        counters.events++;
        log.info({ route: `${a.modid}.${a.cmdid}`, host: `${e.ip}:${e.port}`, from: e.from, to: e.to, reason: e.reason, version: e.version, figures: e.figures }, 'host state changed');
      }
    } catch (err) {
      // Disconnected: the KV write and the agents' re-read on reconnect carry the state.
      log.warn({ err: errField(log, err), route: `${a.modid}.${a.cmdid}` }, 'publish failed');
    }
    for (const l of this.listeners) {
      try {
        l(state, events as RouteEvent[], performance.now() - dirtyAt);
      } catch (err) {
        log.error({ err, route: `${a.modid}.${a.cmdid}` }, 'route change listener failed');
      }
    }
  }

  /** Publishes a state that waited for its write, now stored: while the partition is held and the route still this node's. */
  sendStored(slot: RouteSlot, w: PendingWrite): void {
    const held = w.held!;
    slot.unsent = undefined;
    if (!this.o.isCurrent(slot) && !w.removed) return;
    if (this.o.table.isHanding(slot.partition)) return;
    const ownership = this.o.ownership;
    if (ownership.holds && !ownership.holds(slot.partition)) {
      // Stored: it goes out once the lease is renewed (or the next owner publishes the route).
      slot.unsent = w;
      this.reassert(slot.partition);
      return;
    }
    this.send(slot, held.state, w.data, held.events, held.at);
  }

  /** Renews a partition's lease before its held-back route states go out; drops the partition when that fails. */
  reassert(p: number): void {
    const ownership = this.o.ownership;
    const rec = this.o.table.get(p);
    if (rec.reasserting || !ownership.reassert) return;
    rec.reasserting = true;
    if (!rec.heldBack) {
      rec.heldBack = true;
      this.heldBackLog.add(p);
    }
    void ownership
      .reassert(p)
      .then((ok) => {
        if (this.o.isClosed()) return;
        if (ok) {
          rec.heldBack = false;
          for (const slot of this.o.routes()) {
            if (slot.partition !== p) continue;
            if (slot.unsent) this.sendStored(slot, slot.unsent);
            if (slot.actor.isDirty) this.o.markDirty(slot);
          }
        } else if (!ownership.owned().has(p)) {
          // The renewal failed its compare-and-set: another node has the partition.
          this.o.lose(p, 'lease could not be renewed before publishing');
        }
        // Otherwise the lease store is out of reach: states stay held back and the next flush tries again.
      })
      .catch((err: unknown) => this.o.log.error({ err, partition: p }, 'lease renewal failed'))
      .finally(() => (rec.reasserting = false));
  }
}
