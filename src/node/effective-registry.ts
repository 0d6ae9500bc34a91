/**
 * A route node's effective registry: every route's admin entry (the
 * registry bucket) merged with the route's live self-registered hosts
 * (actors/self-registration.ts), kept for every route, owned or not (a
 * partition taken over starts from them), also by partition; each change
 * applied, one at a time in arrival order, by the node's `apply`.
 */
import type { KvWatchEntry } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { partitionOf, type Names } from '../../schemas/subjects.ts';
import { LIMITS, validateRegistryEntry } from '../../schemas/messages.ts';
import { mergeEntry, type HeardHost } from '../../actors/self-registration.ts';
import { encode, tryDecode } from '../../schemas/codec.ts';
import { routeKeyParts, type Registry } from '../registry/registry.ts';
import { openBucket, watchBucket } from '../nats/buckets.ts';
import type { RejectCounter } from '../lib/rejects.ts';
import type { Logger } from '../lib/log.ts';
import { SelfRegistry } from './self-registry.ts';

/** A registry change as applied: key, revision, operation and value of a registry bucket watch entry. */
export type RegistryChange = Pick<KvWatchEntry, 'key' | 'revision' | 'operation' | 'value'>;

/**
 * A route's effective registry entry as the node keeps it: the admin entry
 * merged with the route's self-registered hosts. `revision` is the node's
 * own count of changes, one sequence for both sources. `admin` is the admin
 * entry's value when the value is a merge (null: no admin entry); absent,
 * the value is the admin entry's own.
 */
export type RegistryWatchEntry = RegistryChange & { admin?: Uint8Array | null };

/** Max age of the self-registration bucket's messages: a host that died without deleting its key leaves no trace after this. */
export const SELF_BUCKET_MAX_AGE_MS = 2 * LIMITS.maxSelfTtlMs;

export interface EffectiveRegistryOptions {
  names: Names;
  partitions: number;
  clock: () => number;
  rejects: RejectCounter;
  log: Logger;
  /** Applies one change to the node's routes (called in order, one at a time). */
  apply: (e: RegistryChange) => Promise<void>;
  /** The node has stopped: changes are no longer taken. */
  isClosed: () => boolean;
}

export class EffectiveRegistry {
  private readonly o: EffectiveRegistryOptions;
  /** Latest entry of every route (all partitions), so a partition taken over loads without a read. */
  private readonly entries = new Map<string, RegistryWatchEntry>();
  /** The same entries by partition: taking a partition over looks at its own routes, not at every route. */
  private readonly byPartition = new Map<number, Map<string, RegistryWatchEntry>>();
  /** Hosts that registered themselves, merged into the admin entries. */
  private selfRegs: SelfRegistry | undefined;
  /** The effective entries' revisions: one count for admin and self-registration changes. */
  private entrySeq = 0;
  /** The admin registry's initial values are in: self-registration changes are merged from here on. */
  private loaded = false;
  /** Entries are applied one at a time, in arrival order. */
  private chain: Promise<void> = Promise.resolve();
  private stopWatch: (() => void) | undefined;

  constructor(o: EffectiveRegistryOptions) {
    this.o = o;
  }

  /** Watches the self-registrations and the admin registry; resolves once the initial entries are applied. */
  async start(nc: NatsConnection, registry: Registry): Promise<void> {
    const selfRegs = (this.selfRegs = new SelfRegistry(this.o.clock, this.o.rejects));
    const selfKv = await openBucket(nc, this.o.names.selfRegBucket, 1, { ttlMs: SELF_BUCKET_MAX_AGE_MS });
    // Changes while the admin entries load are applied once they are in (the merge needs them).
    const changedWhileLoading = new Set<string>();
    await selfRegs.watch(selfKv, (routeKey) => {
      if (this.o.isClosed()) return;
      if (this.loaded) void this.setEffective(routeKey, KEEP_ADMIN);
      else changedWhileLoading.add(routeKey);
    });
    const w = await watchBucket(registry.kv, (kvEntry) => {
      if (this.o.isClosed()) return undefined;
      // The value only, copied out of the message it arrived in, which is not kept.
      return this.setEffective(kvEntry.key, kvEntry.operation === 'PUT' ? kvEntry.value.slice() : undefined);
    }, {
      onError: (err) => {
        if (!this.o.isClosed()) this.o.log.error({ err }, 'registry watch ended');
      },
    });
    this.stopWatch = () => {
      w.stop();
      selfRegs.stop();
    };
    await w.initialized;
    this.loaded = true;
    // Routes made of self-registered hosts alone, and self-registration changes that came meanwhile.
    for (const k of [...selfRegs.routeKeys()]) if (!this.entries.has(k)) changedWhileLoading.add(k);
    for (const k of changedWhileLoading) void this.setEffective(k, KEEP_ADMIN);
    await this.chain;
  }

  stop(): void {
    this.stopWatch?.();
  }

  /** The route's effective entry. */
  get(key: string): RegistryWatchEntry | undefined {
    return this.entries.get(key);
  }

  /** The effective entries of a partition's routes. */
  ofPartition(p: number): RegistryWatchEntry[] {
    return [...(this.byPartition.get(p)?.values() ?? [])];
  }

  /** Re-merges the routes whose self-registered hosts expired (called on every tick). */
  expire(): void {
    if (this.loaded && this.selfRegs) for (const k of this.selfRegs.expire()) void this.setEffective(k, KEEP_ADMIN);
  }

  /** The self-registered hosts of a route as last heard, live or not. */
  selfRegistered(key: string): HeardHost[] {
    return this.selfRegs?.all(key) ?? [];
  }

  /** Applies a change after those before it; `ifLatest`: only if no newer one for its key has arrived meanwhile. */
  enqueue(e: RegistryChange, ifLatest = false): Promise<void> {
    const p = this.chain.then(() => (ifLatest && this.entries.get(e.key) !== e ? undefined : this.o.apply(e)));
    this.chain = p.catch((err: unknown) => this.o.log.error({ err, key: e.key }, 'registry entry failed'));
    return this.chain;
  }

  /**
   * Recomputes a route's effective entry from its admin entry (`admin`: the
   * new value, undefined when deleted, or KEEP_ADMIN for the one held) and its
   * live self-registered hosts; keeps it and applies it.
   */
  private setEffective(key: string, admin: Uint8Array | undefined | typeof KEEP_ADMIN): Promise<void> {
    const prev = this.entries.get(key);
    const adminValue = admin !== KEEP_ADMIN ? admin : prev === undefined ? undefined : prev.admin !== undefined ? (prev.admin ?? undefined) : prev.value;
    const parts = routeKeyParts(key);
    const self = parts && this.selfRegs ? this.selfRegs.live(key) : [];
    let value = adminValue;
    let merged = false;
    if (parts && self.length > 0) {
      const d = adminValue === undefined ? undefined : tryDecode(adminValue);
      const a = d?.ok ? validateRegistryEntry(d.value) : undefined;
      // An admin entry that does not decode goes through as it is (and is refused, logged, where it is applied).
      if (adminValue === undefined || a?.ok) {
        value = encode(mergeEntry(a?.ok ? a.value : undefined, self, parts.modid, parts.cmdid, Date.now()));
        merged = true;
      }
    }
    if (prev === undefined && value === undefined) return this.chain;
    const e: RegistryWatchEntry = value === undefined ? { key, revision: ++this.entrySeq, operation: 'DEL', value: NO_VALUE } : { key, revision: ++this.entrySeq, operation: 'PUT', value };
    if (merged) e.admin = adminValue ?? null;
    const p = parts ? partitionOf(parts.modid, parts.cmdid, this.o.partitions) : -1;
    if (e.operation === 'PUT') {
      this.entries.set(key, e);
      if (p >= 0) {
        let m = this.byPartition.get(p);
        if (m === undefined) this.byPartition.set(p, (m = new Map<string, RegistryWatchEntry>()));
        m.set(key, e);
      }
    } else {
      this.entries.delete(key);
      this.byPartition.get(p)?.delete(key);
    }
    return this.enqueue(e);
  }
}

/** `setEffective`: keep the admin entry the node holds. */
const KEEP_ADMIN = Symbol('keep the admin entry');
const NO_VALUE = new Uint8Array(0);
