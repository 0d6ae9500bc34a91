/**
 * The route node's view of the self-registration bucket (`<prefix>_selfreg`):
 * every registered host by route, as last heard, and which routes' member
 * sets changed (a heartbeat that changes nothing changes no route). The
 * merge rules are actors/self-registration.ts'.
 */
import type { KV } from '@nats-io/kv';
import type { RegistryHost } from '../../schemas/messages.ts';
import { decodeSelfRegistration } from '../../schemas/records.ts';
import { isLive, liveHosts, nextExpiry, type HeardHost } from '../../actors/self-registration.ts';
import type { RejectCounter } from '../lib/rejects.ts';
import { watchBucket } from '../nats/buckets.ts';

export class SelfRegistry {
  /** route key `<modid>.<cmdid>` → bucket key → host. */
  private readonly byRoute = new Map<string, Map<string, HeardHost>>();
  /** When the next live host expires (node clock); Infinity: none. */
  private expiresAt = Infinity;
  private stopWatch: (() => void) | undefined;

  private readonly clock: () => number;
  private readonly rejects: RejectCounter;

  constructor(clock: () => number, rejects: RejectCounter) {
    this.clock = clock;
    this.rejects = rejects;
  }

  /**
   * Watches the bucket; `onChange(routeKey)` is called for every route whose
   * members changed (after `initialized`, and for the initial values only
   * when `replay` is asked for them).
   */
  async watch(kv: KV, onChange: (routeKey: string) => void): Promise<void> {
    const w = await watchBucket(kv, (e) => {
      const routeKey = routeOfKey(e.key);
      if (routeKey === undefined) {
        this.rejects.reject('malformed', `self-registration key ${e.key} is not <modid>.<cmdid>.<ip>_<port>`, { subject: e.key });
        return undefined;
      }
      if (e.operation !== 'PUT') {
        if (this.remove(routeKey, e.key)) onChange(routeKey);
        return undefined;
      }
      const v = decodeSelfRegistration(e.value);
      if (!v.ok) {
        this.rejects.reject(v.kind, v.detail, { subject: e.key });
        return undefined;
      }
      if (`${v.value.modid}.${v.value.cmdid}` !== routeKey) {
        this.rejects.reject('subject_mismatch', `self-registration of ${v.value.modid}.${v.value.cmdid} under key ${e.key}`, { subject: e.key });
        return undefined;
      }
      if (this.put(routeKey, e.key, { rec: v.value, heardAt: this.clock() })) onChange(routeKey);
      return undefined;
    });
    this.stopWatch = () => w.stop();
    await w.initialized;
  }

  stop(): void {
    this.stopWatch?.();
  }

  /** Route keys with at least one registered host (live or not). */
  routeKeys(): IterableIterator<string> {
    return this.byRoute.keys();
  }

  /** The live hosts of a route now, sorted by ip:port. */
  live(routeKey: string): RegistryHost[] {
    const m = this.byRoute.get(routeKey);
    return m ? liveHosts(m.values(), this.clock()) : [];
  }

  /** Every registered host of a route, live or not (`lars route ls`). */
  all(routeKey: string): HeardHost[] {
    return [...(this.byRoute.get(routeKey)?.values() ?? [])];
  }

  /** Drops the hosts whose time to live ran out; returns the routes whose members changed. Cheap when nothing is due. */
  expire(): string[] {
    const now = this.clock();
    if (now < this.expiresAt) return [];
    const changed: string[] = [];
    for (const [routeKey, m] of this.byRoute) {
      let gone = false;
      for (const [k, h] of m) {
        // a draining host left the route already; it is forgotten when its TTL runs out too (a service that died while draining)
        if (now - h.heardAt > h.rec.ttl_ms) {
          m.delete(k);
          if (h.rec.state === 'up') gone = true;
        }
      }
      if (m.size === 0) this.byRoute.delete(routeKey);
      if (gone) changed.push(routeKey);
    }
    this.recomputeExpiry(now);
    return changed;
  }

  /** Records a heartbeat; true when the route's members changed (a new host, a state, weight or zone that differs). */
  private put(routeKey: string, key: string, h: HeardHost): boolean {
    let m = this.byRoute.get(routeKey);
    if (m === undefined) this.byRoute.set(routeKey, (m = new Map<string, HeardHost>()));
    const prev = m.get(key);
    m.set(key, h);
    const end = h.heardAt + h.rec.ttl_ms + 1;
    if (end < this.expiresAt) this.expiresAt = end; // draining hosts too: they are forgotten at the end of their TTL
    if (prev === undefined) return true;
    const a = prev.rec;
    const b = h.rec;
    return !isLive(prev, h.heardAt) || a.state !== b.state || a.weight !== b.weight || (a.zone ?? null) !== (b.zone ?? null);
  }

  private remove(routeKey: string, key: string): boolean {
    const m = this.byRoute.get(routeKey);
    const had = m?.delete(key) ?? false;
    if (m !== undefined && m.size === 0) this.byRoute.delete(routeKey);
    return had;
  }

  private recomputeExpiry(now: number): void {
    let t = Infinity;
    for (const m of this.byRoute.values()) {
      t = Math.min(t, nextExpiry(m.values(), now));
      for (const h of m.values()) if (h.rec.state !== 'up') t = Math.min(t, h.heardAt + h.rec.ttl_ms + 1);
    }
    this.expiresAt = t;
  }
}

/** `<modid>.<cmdid>` of a self-registration key `<modid>.<cmdid>.<ip>_<port>`. */
export function routeOfKey(key: string): string | undefined {
  const m = /^(\d{1,10})\.(\d{1,10})\.[0-9-]{7,15}_\d{1,5}$/.exec(key);
  if (!m) return undefined;
  const modid = Number(m[1]);
  const cmdid = Number(m[2]);
  if (modid > 0xffffffff || cmdid > 0xffffffff) return undefined;
  return `${modid}.${cmdid}`;
}
