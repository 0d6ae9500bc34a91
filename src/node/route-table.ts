/**
 * The routes a route node holds, one slot per route of the partitions it
 * serves: the effective registry's entries applied to them (an update, a
 * removal, or a route created and resumed from what was read of it,
 * actors/resume.ts), the tick schedule, and the restore reads retried.
 */
import { partitionOf, type Names } from '../../schemas/subjects.ts';
import type { RegistryEntry } from '../../schemas/messages.ts';
import { RouteActor } from '../../actors/route.ts';
import { resolveParams } from '../../actors/params.ts';
import { afreshState, hasPickable, planResume } from '../../actors/resume.ts';
import { Registry, routeKeyParts } from '../registry/registry.ts';
import { errField } from '../lib/ratelog.ts';
import type { Logger } from '../lib/log.ts';
import { TickSchedule } from './tick-schedule.ts';
import type { EffectiveRegistry, RegistryChange } from './effective-registry.ts';
import type { RestoreRead, RestoreReader } from './restore-reader.ts';
import type { RouteSlot } from './route-slot.ts';

export interface RouteTableOptions {
  names: Names;
  nodeId: string;
  partitions: number;
  clock: () => number;
  log: Logger;
  restore: RestoreReader;
  registry: EffectiveRegistry;
  /** The node holds the partition's routes (PartitionTable.isActive). */
  isActive: (p: number) => boolean;
  isClosed: () => boolean;
  /** The route changed: it is published at the next flush. */
  markDirty: (slot: RouteSlot) => void;
}

export class RouteTable {
  /** By route key `<modid>.<cmdid>`. */
  readonly routes = new Map<string, RouteSlot>();
  /** Which routes the next tick ticks. */
  private readonly ticks = new TickSchedule<RouteSlot>();
  private readonly o: RouteTableOptions;
  /** Routes whose restore read failed, retried while their partition is owned. */
  private readonly retryKeys = new Set<string>();
  private retryTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(o: RouteTableOptions) {
    this.o = o;
  }

  /** The slot is still the one held for its route (not dropped, replaced or removed). */
  isCurrent(slot: RouteSlot): boolean {
    return this.routes.get(this.o.names.routeKey(slot.actor.modid, slot.actor.cmdid)) === slot;
  }

  /** A report batch or a registry entry reached the route: it is ticked next, and no longer waits to be republished after a takeover. */
  reached(slot: RouteSlot): void {
    this.ticks.touch(slot);
    slot.takeover = false;
  }

  /** Ticks the routes that something reached since their last tick or whose next tick has come (TickSchedule). */
  tick(now: number): void {
    // A route dropped or replaced has left the schedule (TickSchedule.remove).
    for (const slot of this.ticks.take(now)) {
      slot.actor.tick(now);
      if (slot.actor.isDirty) this.o.markDirty(slot);
      this.ticks.set(slot, slot.actor.nextTick());
    }
  }

  /** The route is no longer held (removed, or its partition dropped). */
  delete(key: string, slot: RouteSlot): void {
    this.routes.delete(key);
    this.ticks.remove(slot);
  }

  /** The partitions' leases had a gap: each route's next state is stored before it is published (see OwnershipHooks.verify). */
  verify(ps: readonly number[]): void {
    const set = new Set(ps);
    for (const slot of this.routes.values()) if (set.has(slot.partition)) slot.storeFirst = true;
  }

  hosts(): number {
    let hosts = 0;
    for (const s of this.routes.values()) hosts += s.actor.hostCount;
    return hosts;
  }

  stop(): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
  }

  /** Applies an effective registry entry to its route (EffectiveRegistry's apply chain): updates, removes or restores it. */
  async apply(e: RegistryChange): Promise<void> {
    const { names, log } = this.o;
    const parts = routeKeyParts(e.key);
    if (!parts) {
      log.warn({ key: e.key }, 'registry key is not <modid>.<cmdid>; ignored');
      return;
    }
    const { modid, cmdid } = parts;
    const partition = partitionOf(modid, cmdid, this.o.partitions);
    if (!this.o.isActive(partition)) return;
    const key = names.routeKey(modid, cmdid);
    const slot = this.routes.get(key);
    if (slot && e.revision <= slot.registryRevision) return;
    let entry: RegistryEntry | undefined;
    try {
      entry = Registry.decode(e as never);
    } catch (err) {
      log.error({ err, key }, 'invalid registry entry; route left as it was');
      return;
    }
    const now = this.o.clock();
    if (entry?.params !== undefined && Object.keys(entry.params).length > 0) {
      const pr = resolveParams(entry.profile ?? 'default', entry.params);
      if (!pr.ok) log.error({ route: key, error: pr.error }, 'registry params rejected; using profile defaults');
    }
    if (!entry) {
      if (slot) {
        slot.registryRevision = e.revision;
        slot.actor.remove(now);
        this.reached(slot);
        this.o.markDirty(slot);
      }
      return;
    }
    if (slot && !slot.actor.isRemoved) {
      slot.registryRevision = e.revision;
      slot.actor.applyRegistry(entry, now);
      this.reached(slot);
      this.o.markDirty(slot);
      return;
    }
    // New route (or re-created after removal, or taken over): resume from the
    // checkpoint, else the last published state. A failed read leaves the
    // route unloaded and retried: a blank restart would publish a lower
    // version, or hosts the previous owner had ejected.
    let read: RestoreRead | undefined = this.o.restore.take(key);
    if (!read) {
      try {
        read = await this.o.restore.read(modid, cmdid, partition, key);
      } catch (err) {
        log.warn({ err: errField(log, err), route: key }, 'route restore read failed; retrying later');
        this.retryLater(key);
        return;
      }
      if (!this.o.isActive(partition)) return;
      const again = this.routes.get(key);
      if (again && !again.actor.isRemoved) return;
    }
    const { last } = read;
    const plan = planResume({ modid, cmdid, last, checkpoint: read.cp?.checkpoint, rev: read.rev });
    const nodeId = this.o.nodeId;
    let actor = new RouteActor({ modid, cmdid, nodeId, entry, now, checkpoint: plan.checkpoint, restored: plan.restored });
    let quiet = plan.quiet;
    if (plan.keepPickable && !hasPickable(actor.snapshot(now))) {
      const restored = afreshState(last!.state, plan);
      log.warn({ route: key, version: restored.version }, 'restored route had no pickable host; host states start afresh');
      actor = new RouteActor({ modid, cmdid, nodeId, entry, now, restored });
      quiet = false;
    }
    const ns: RouteSlot = { actor, partition, registryRevision: e.revision, kvRevision: plan.kvRevision, ackedVersion: plan.stored, storeFirst: true };
    // Resumed from a checkpoint with nothing left unpublished: the publish under this node's name may wait (`republish`).
    if (quiet) ns.takeover = true;
    if (plan.unverified) ns.unverified = true;
    const replaced = this.routes.get(key);
    if (replaced) this.ticks.remove(replaced);
    this.routes.set(key, ns);
    this.ticks.touch(ns);
    this.o.markDirty(ns);
  }

  private retryLater(key: string): void {
    this.retryKeys.add(key);
    if (this.retryTimer || this.o.isClosed()) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      const keys = [...this.retryKeys];
      this.retryKeys.clear();
      void this.loadKeys(keys);
    }, 1000);
    this.retryTimer.unref?.();
  }

  private async loadKeys(keys: string[]): Promise<void> {
    const { registry, partitions } = this.o;
    await Promise.all(
      keys.map(async (k) => {
        const parts = routeKeyParts(k);
        const e = registry.get(k);
        if (!e || !parts || !this.o.isActive(partitionOf(parts.modid, parts.cmdid, partitions))) return;
        await registry.enqueue(e, true);
      }),
    );
  }
}
