/**
 * The route registry (Lars' DNS data): a JetStream KV bucket of msgpack
 * RegistryEntries (schemas/messages.ts), one key per route.
 */
import type { KV, KvEntry } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { validateRegistryEntry, LIMITS, type RegistryEntry, type RegistryHost, type Profile } from '../../schemas/messages.ts';
import type { PickStrategy } from '../../schemas/contract.ts';
import { isUint32, type Names } from '../../schemas/subjects.ts';
import { encode, tryDecode } from '../../schemas/codec.ts';
import { RegistryError, LarsError, ErrorCode } from '../lib/errors.ts';
import { retry } from '../lib/retry.ts';
import { isConflict, openBucket, type OpenBucketOptions } from '../nats/buckets.ts';

export interface RegistryRecord {
  entry: RegistryEntry;
  revision: number;
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
