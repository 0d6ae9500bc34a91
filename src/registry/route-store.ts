/** The last published state per route (`<prefix>_routes`), a JetStream KV bucket of msgpack RouteStates. */
import type { KV, KvEntry } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { validateRouteState, type RouteState } from '../../schemas/messages.ts';
import type { Names } from '../../schemas/subjects.ts';
import { encode, tryDecode } from '../../schemas/codec.ts';
import { bindBucket, openBucket, type OpenBucketOptions } from '../nats/buckets.ts';

export class RouteStore {
  readonly kv: KV;
  readonly names: Names;

  private constructor(kv: KV, names: Names) {
    this.kv = kv;
    this.names = names;
  }

  static async open(nc: NatsConnection, names: Names, opts: OpenBucketOptions = {}): Promise<RouteStore> {
    return new RouteStore(await openBucket(nc, names.routesBucket, 1, opts), names);
  }

  /** Binds to the bucket without creating it; undefined when it does not exist yet (or cannot be read now). */
  static async bind(nc: NatsConnection, names: Names): Promise<RouteStore | undefined> {
    const kv = await bindBucket(nc, names.routesBucket).catch(() => undefined);
    return kv === undefined ? undefined : new RouteStore(kv, names);
  }

  async get(modid: number, cmdid: number): Promise<{ state: RouteState; revision: number } | undefined> {
    const e = await this.kv.get(this.names.routeKey(modid, cmdid));
    const state = e ? RouteStore.decodeEntry(e) : undefined;
    return e && state ? { state, revision: e.revision } : undefined;
  }

  /** The valid RouteState of a KV entry, or undefined (deleted, not msgpack, invalid). */
  static decodeEntry(e: KvEntry): RouteState | undefined {
    if (e.operation !== 'PUT') return undefined;
    const d = tryDecode(e.value);
    if (!d.ok) return undefined;
    const v = validateRouteState(d.value);
    return v.ok ? v.value : undefined;
  }

  /** Writes a state; with `previousRevision`, only when the key is still at that revision (fencing). */
  put(state: RouteState, previousRevision?: number): Promise<number> {
    return this.putEncoded(state.modid, state.cmdid, encode(state), previousRevision);
  }

  /** `put` of a state already encoded (as it was published). */
  async putEncoded(modid: number, cmdid: number, data: Uint8Array, previousRevision?: number): Promise<number> {
    const key = this.names.routeKey(modid, cmdid);
    if (previousRevision === undefined) return this.kv.put(key, data);
    if (previousRevision === 0) return this.kv.create(key, data);
    return this.kv.put(key, data, { previousSeq: previousRevision });
  }
}
