/**
 * The route registry (Lars' DNS data) and the last-route-state store, both
 * JetStream KV buckets. Values are msgpack (schemas/messages.ts).
 */
import { Kvm, type KV, type KvEntry } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { JetStreamApiCodes, JetStreamApiError, StorageType, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { validateRegistryEntry, validateRouteState, LIMITS, type RegistryEntry, type RegistryHost, type RouteState, type Profile } from '../schemas/messages.ts';
import type { PickStrategy } from '../schemas/contract.ts';
import { isUint32, type Names } from '../schemas/subjects.ts';
import { encode, tryDecode } from './codec.ts';
import { RegistryError, LarsError, ErrorCode, JetStreamDisabledError } from './errors.ts';
import { silentLogger, type Logger } from './log.ts';
import { retry } from './retry.ts';
import { infoOrUndefined, placementPending, replicasFor, setReplicas, type Replicas } from './streams.ts';

export interface RegistryRecord {
  entry: RegistryEntry;
  revision: number;
}

export interface OpenBucketOptions {
  /** Replicas of the bucket's stream; default `auto` (3 on a cluster, 1 on a single server). */
  replicas?: Replicas;
  /** The bucket's max_age, ms (nats-server 2.9 has no per-key TTL); 0 or absent = none. */
  ttlMs?: number;
  /**
   * How long each operation on the bucket waits for its answer, ms (default:
   * the client's, 5 s). A short one lets a write cut off with its server
   * fail soon and go again on the next server; such a write may still have
   * been applied, which its caller must tell from a conflict (read back).
   */
  timeoutMs?: number;
  log?: Logger;
}

/** A KV manager whose operations wait `timeoutMs` at most (the client's default when absent). */
function kvManager(nc: NatsConnection, timeoutMs: number | undefined): Kvm {
  return new Kvm(timeoutMs === undefined ? nc : jetstream(nc, { timeout: timeoutMs }));
}

/** The server a connection is on, as a URL. */
const serverUrl = (nc: NatsConnection): string => `nats://${nc.getServer()}`;

/**
 * Opens (creating when missing) a KV bucket. Safe to call from many processes
 * at once. An existing bucket with another replica count is brought to the
 * one asked for, when the servers can hold it.
 */
export async function openBucket(nc: NatsConnection, bucket: string, history = 5, opts: OpenBucketOptions = {}): Promise<KV> {
  const kvm = kvManager(nc, opts.timeoutMs);
  const replicas = replicasFor(nc, opts.replicas);
  let kv: KV;
  try {
    // On a cluster still forming, the replicas may not be placeable yet: wait for it (a while).
    kv = await retry(() => kvm.create(bucket, { history, storage: StorageType.File, replicas, ...(opts.ttlMs ? { ttl: opts.ttlMs } : {}) }), { attempts: 100, minMs: 50, maxMs: 250, randomize: true, retryIf: placementPending() });
  } catch (err) {
    // A concurrent creator with another config, or a server that refuses: try to bind to what exists.
    const bound = await bindBucket(nc, bucket, opts.timeoutMs).catch(() => undefined);
    if (bound === undefined && JetStreamDisabledError.matches(err)) throw new JetStreamDisabledError(serverUrl(nc), { cause: err });
    if (bound === undefined) throw new RegistryError(`cannot open KV bucket ${bucket}: ${(err as Error).message}`, { cause: err });
    kv = bound;
  }
  const status = await kv.status();
  if (status.replicas !== replicas) {
    const jsm = await jetstreamManager(nc);
    await setReplicas(jsm, await jsm.streams.info(status.streamInfo.config.name), replicas, (opts.log ?? silentLogger()).child({ mod: 'registry', bucket }));
  }
  return kv;
}

/**
 * Binds to an existing KV bucket without creating it; undefined when there is
 * no such bucket. Reads go through direct get when the bucket allows it (every
 * bucket this project creates does), never through the stream's MSG.GET API
 * by default: nats-server 2.9.10 crashes (nil dereference in jsMsgGetRequest)
 * on a MSG.GET that meets a stream still being created, which is what a reader
 * starting next to a node that creates the bucket would send.
 */
export async function bindBucket(nc: NatsConnection, bucket: string, timeoutMs?: number): Promise<KV | undefined> {
  const jsm = await jetstreamManager(nc).catch((err: unknown) => {
    throw JetStreamDisabledError.matches(err) ? new JetStreamDisabledError(serverUrl(nc), { cause: err }) : err;
  });
  const info = await infoOrUndefined(jsm, `KV_${bucket}`);
  if (info === undefined) return undefined;
  return kvManager(nc, timeoutMs).open(bucket, { allow_direct: info.config.allow_direct === true });
}

/** Every key's latest entry (deletions included), read once; none for an absent bucket. */
export async function readBucket(kv: KV | undefined): Promise<KvEntry[]> {
  if (!kv) return [];
  const out = new Map<string, KvEntry>();
  const w = await watchBucket(kv, (e) => {
    out.set(e.key, e);
  }, { initTimeoutMs: 5000 });
  await w.initialized;
  w.stop();
  return [...out.values()];
}

export function routeKeyParts(key: string): { modid: number; cmdid: number } | undefined {
  const m = /^(\d{1,10})\.(\d{1,10})$/.exec(key);
  if (!m) return undefined;
  const modid = Number(m[1]);
  const cmdid = Number(m[2]);
  return isUint32(modid) && isUint32(cmdid) ? { modid, cmdid } : undefined;
}

export class Registry {
  readonly kv: KV;
  readonly names: Names;

  private constructor(kv: KV, names: Names) {
    this.kv = kv;
    this.names = names;
  }

  static async open(nc: NatsConnection, names: Names, opts: OpenBucketOptions = {}): Promise<Registry> {
    return new Registry(await openBucket(nc, names.registryBucket, 5, opts), names);
  }

  /** Decodes and validates a KV entry; undefined for deletes, throws RegistryError for bad values. */
  static decode(e: KvEntry): RegistryEntry | undefined {
    if (e.operation !== 'PUT') return undefined;
    const d = tryDecode(e.value);
    if (!d.ok) throw new RegistryError(`registry value ${e.key} is not msgpack`);
    const v = validateRegistryEntry(d.value);
    if (!v.ok) throw new RegistryError(`registry value ${e.key} is invalid: ${v.detail}`);
    return v.value;
  }

  async get(modid: number, cmdid: number): Promise<RegistryRecord | undefined> {
    const e = await this.kv.get(this.names.routeKey(modid, cmdid));
    if (!e) return undefined;
    const entry = Registry.decode(e);
    return entry ? { entry, revision: e.revision } : undefined;
  }

  /**
   * Read-modify-write with compare-and-set on the key's revision, retried on
   * conflict. `fn` returns the new entry, or null to delete the route.
   */
  async update(modid: number, cmdid: number, fn: (cur: RegistryEntry | undefined) => RegistryEntry | null): Promise<RegistryEntry | null> {
    const key = this.names.routeKey(modid, cmdid);
    const attempts = 10;
    try {
      return await retry(
        async () => {
          const e = await this.kv.get(key);
          const cur = e && e.operation === 'PUT' ? Registry.decode(e) : undefined;
          const next = fn(cur);
          // `fn` gave the entry back as it was: nothing to write
          if (next !== null && next === cur) return cur;
          try {
            if (next === null) {
              if (e && e.operation === 'PUT') await this.kv.delete(key, { previousSeq: e.revision });
              return null;
            }
            const check = validateRegistryEntry(next);
            if (!check.ok) throw new RegistryError(`invalid registry entry: ${check.detail}`);
            const data = encode(next);
            if (e) await this.kv.put(key, data, { previousSeq: e.revision });
            else await this.kv.create(key, data);
            return next;
          } catch (err) {
            if (err instanceof RegistryError || isConflict(err)) throw err;
            throw new RegistryError(`registry write failed: ${(err as Error).message}`, { cause: err });
          }
        },
        // Someone else wrote the key between our read and write: read again at once.
        { attempts, minMs: 0, retryIf: isConflict },
      );
    } catch (err) {
      if (isConflict(err)) throw new LarsError(ErrorCode.registryConflict, `registry key ${key} kept changing; gave up after ${attempts} attempts`, { cause: err });
      throw err;
    }
  }

  /** Adds hosts (or updates their weight/zone) to a route, creating it when missing. */
  addHosts(modid: number, cmdid: number, hosts: RegistryHost[], by: string, opts: { profile?: Profile; params?: Record<string, number>; strategy?: PickStrategy } = {}): Promise<RegistryEntry | null> {
    return this.update(modid, cmdid, (cur) => {
      const map = new Map<string, RegistryHost>();
      for (const h of cur?.hosts ?? []) map.set(`${h.ip}:${h.port}`, h);
      for (const h of hosts) map.set(`${h.ip}:${h.port}`, h);
      if (map.size > LIMITS.maxRouteHosts) throw new RegistryError(`a route holds at most ${LIMITS.maxRouteHosts} hosts`);
      const entry: RegistryEntry = { v: 1, modid, cmdid, hosts: [...map.values()], updated_by: by, ts: Date.now() };
      const profile = opts.profile ?? cur?.profile;
      if (profile) entry.profile = profile;
      const params = { ...(cur?.params ?? {}), ...(opts.params ?? {}) };
      if (Object.keys(params).length > 0) entry.params = params;
      const strategy = opts.strategy ?? cur?.strategy;
      if (strategy) entry.strategy = strategy;
      return entry;
    });
  }

  /** Removes hosts (`ip:port`) from a route; with no hosts given, deletes the route. */
  removeHosts(modid: number, cmdid: number, keys: string[], by: string): Promise<RegistryEntry | null> {
    return this.update(modid, cmdid, (cur) => {
      if (!cur) throw new RegistryError(`route ${modid}.${cmdid} is not registered`);
      if (keys.length === 0) return null;
      const drop = new Set(keys);
      const unknown = keys.filter((k) => !cur.hosts.some((h) => `${h.ip}:${h.port}` === k));
      if (unknown.length > 0) throw new RegistryError(`route ${modid}.${cmdid} has no host ${unknown.join(', ')}`);
      return { ...cur, hosts: cur.hosts.filter((h) => !drop.has(`${h.ip}:${h.port}`)), updated_by: by, ts: Date.now() };
    });
  }

  async list(): Promise<RegistryEntry[]> {
    const out: RegistryEntry[] = [];
    const keys = await this.kv.keys();
    const all: string[] = [];
    for await (const k of keys) all.push(k);
    for (const k of all) {
      const p = routeKeyParts(k);
      if (!p) continue;
      const r = await this.get(p.modid, p.cmdid);
      if (r) out.push(r.entry);
    }
    out.sort((a, b) => a.modid - b.modid || a.cmdid - b.cmdid);
    return out;
  }
}

/** The last published state per route (`<prefix>_routes`). */
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

/** A compare-and-set write lost: the key is no longer at the revision the write expected. */
export function isConflict(err: unknown): boolean {
  return (
    err instanceof JetStreamApiError &&
    (err.code === JetStreamApiCodes.StreamWrongLastSequence || err.code === JetStreamApiCodes.StreamWrongLastSequenceUnknown)
  );
}

export interface BucketWatch {
  /** Resolves once every key that existed when the watch started has been delivered (or after `initTimeoutMs`). */
  initialized: Promise<void>;
  stop(): void;
}

/**
 * Watches every key of a bucket (last values, then updates) and tells when
 * the initial values are all in, by the watcher's own marker: each entry
 * carries how many messages are still pending for the watch (`delta`), and
 * the last of the initial values is the first one with none left. An empty
 * bucket has no initial values.
 */
export async function watchBucket(
  kv: KV,
  onEntry: (e: KvEntry) => void | Promise<void>,
  opts: { initTimeoutMs?: number; onError?: (err: unknown) => void; onEnd?: () => void } = {},
): Promise<BucketWatch> {
  const watch = await kv.watch({ key: '>' });
  let resolveInit!: () => void;
  const initialized = new Promise<void>((r) => (resolveInit = r));
  let stopped = false;
  void (async () => {
    for await (const e of watch) {
      await onEntry(e);
      if (e.delta === 0) resolveInit();
    }
    // The watch's consumer went away (not stopped here): nothing more will come.
    if (!stopped) opts.onEnd?.();
  })().catch((err: unknown) => opts.onError?.(err));
  // Nothing stored (the watch then delivers no initial value at all).
  try {
    if ((await kv.status()).values === 0) resolveInit();
  } catch (err) {
    stopped = true;
    watch.stop();
    throw err;
  }
  const timer = setTimeout(resolveInit, opts.initTimeoutMs ?? 30_000);
  timer.unref?.();
  void initialized.then(() => clearTimeout(timer));
  return {
    initialized,
    stop: () => {
      stopped = true;
      watch.stop();
    },
  };
}
