/**
 * Zone-aware picking: a wrapper around any strategy that keeps calls in the
 * caller's zone while that zone is healthy enough, and spills a share of them
 * to the other zones in proportion to what the local zone lacks.
 *
 * The rule follows Envoy's priority spill-over with its overprovisioning
 * factor (1.4 ≈ 1 / 0.7): with `h` the local zone's healthy share (0..1) and
 * `t` = minHealthyPercent / 100,
 *
 *   spill = 0            when h ≥ t   (every call stays local)
 *   spill = 1 − h / t    when h < t   (that fraction goes to the other zones)
 *
 * so at h = t nothing moves, at h = 0 everything does, and traffic comes back
 * smoothly as the local hosts recover (a probing host counts with its probe
 * fraction, a healthy one fully).
 *
 * The healthy share is by weight: Σ over the local non-draining hosts of
 * `weight` for a healthy host (whatever its pick weight: a load-driven or
 * slow-starting pick weight below `weight` says nothing of its health) and
 * `weight × min(1, pickWeight / weight)` for a probing one, over Σ `weight`.
 * An overloaded host counts 0 even in panic (where its pick weight is full).
 * Without `weight`, a healthy host counts 1 and others 0.
 * Hosts without a zone belong to "the other zones".
 *
 * Everything is computed on `update`; a pick is one draw (only when
 * 0 < spill < 1) and the inner strategy's pick, without allocation. With a key
 * the draw is the key's hash, so a key keeps its zone.
 */
import { fmix32, fnv1a32 } from './hash32.ts';
import { seededRandom } from './random.ts';
import type { PickableHost, Random, PickView, Strategy, StrategyOptions } from './types.ts';

/** A host that may say its zone and nominal weight (the agent's hosts do). */
export interface ZonedHost extends PickableHost {
  readonly zone?: string | null;
  /** Nominal weight from the registry (pickWeight is the effective one). */
  readonly weight?: number;
}

/** Default of `minHealthyPercent`: below 70 % healthy, the local zone starts to spill. */
export const ZONE_MIN_HEALTHY_PERCENT = 70;

export interface ZoneOptions extends StrategyOptions {
  /** The caller's zone. */
  readonly zone: string;
  /** Local healthy share under which calls spill to other zones, percent (default 70; 0 never spills while a local host is pickable, 100 spills at the first unhealthy host). */
  readonly minHealthyPercent?: number;
}

export interface ZoneAwareStrategy extends Strategy {
  /** The local zone's healthy share at the last update, 0..1 (0 when the zone has no host). */
  readonly localHealthy: number;
  /** The fraction of picks that go to other zones now, 0..1. */
  readonly spill: number;
}

/** The local zone's healthy share of `hosts`, 0..1 (see the module comment); 0 when the zone has no non-draining host. */
export function localHealthyShare(hosts: readonly ZonedHost[], zone: string): number {
  let total = 0;
  let healthy = 0;
  for (const h of hosts) {
    if (h.zone !== zone || h.state === 'draining') continue;
    const w = h.weight !== undefined && h.weight > 0 ? h.weight : 0;
    if (w > 0) {
      total += w;
      if (h.state === 'healthy' && h.pickWeight > 0) healthy += w;
      else if (h.state === 'probing' && h.pickWeight > 0) healthy += w * Math.min(1, h.pickWeight / w);
    } else {
      total += 1;
      if (h.state === 'healthy' && h.pickWeight > 0) healthy += 1;
    }
  }
  return total > 0 ? healthy / total : 0;
}

/** The fraction of calls to send to other zones for a local healthy share `h` (0..1) and a threshold in percent. */
export function spillFraction(h: number, minHealthyPercent: number): number {
  const t = minHealthyPercent / 100;
  if (h >= t) return 0;
  if (!(h > 0)) return 1;
  return 1 - h / t;
}

/** Wraps strategies made by `create` (one for the local zone, one for the others). */
export function createZoneAware(create: () => Strategy, opts: ZoneOptions): ZoneAwareStrategy {
  const pct = opts.minHealthyPercent ?? ZONE_MIN_HEALTHY_PERCENT;
  if (!(pct >= 0 && pct <= 100)) throw new RangeError(`zone: minHealthyPercent must be within 0-100, got ${pct}`);
  return new ZoneAware(create(), create(), opts.zone, pct, opts.random ?? seededRandom());
}

/** A key's draw in [0, 1), independent of its place on the hash ring (a different seed than hash32). */
function zoneDraw(key: string): number {
  return fmix32((fnv1a32(key) ^ 0x9e3779b9) >>> 0) / 4294967296;
}

function hasPickable(hosts: readonly PickableHost[]): boolean {
  for (const h of hosts) if (h.pickWeight > 0 && Number.isFinite(h.pickWeight)) return true;
  return false;
}

class ZoneAware implements ZoneAwareStrategy {
  readonly name: Strategy['name'];
  localHealthy = 0;
  spill = 1;
  private readonly local: Strategy;
  private readonly remote: Strategy;
  private readonly zone: string;
  private readonly pct: number;
  private readonly random: Random;
  /** Index in the route's hosts of each host of the local / remote view. */
  private localIdx = new Int32Array(0);
  private remoteIdx = new Int32Array(0);

  constructor(local: Strategy, remote: Strategy, zone: string, pct: number, random: Random) {
    this.name = local.name;
    this.local = local;
    this.remote = remote;
    this.zone = zone;
    this.pct = pct;
    this.random = random;
  }

  update(view: PickView): void {
    const hosts = view.hosts as readonly ZonedHost[];
    const localHosts: PickableHost[] = [];
    const remoteHosts: PickableHost[] = [];
    const li: number[] = [];
    const ri: number[] = [];
    for (let i = 0; i < hosts.length; i++) {
      const h = hosts[i]!;
      if (h.zone === this.zone) {
        localHosts.push(h);
        li.push(i);
      } else {
        remoteHosts.push(h);
        ri.push(i);
      }
    }
    this.localIdx = Int32Array.from(li);
    this.remoteIdx = Int32Array.from(ri);
    this.local.update({ hosts: localHosts, panic: view.panic, probeNum: view.probeNum });
    this.remote.update({ hosts: remoteHosts, panic: view.panic, probeNum: view.probeNum });
    this.localHealthy = localHealthyShare(hosts, this.zone);
    const localOk = hasPickable(localHosts);
    const remoteOk = hasPickable(remoteHosts);
    if (!remoteOk) this.spill = localHosts.length > 0 ? 0 : 1;
    else if (!localOk) this.spill = 1;
    else this.spill = spillFraction(this.localHealthy, this.pct);
  }

  pick(key?: string): number {
    const s = this.spill;
    let toRemote: boolean;
    if (s <= 0) toRemote = false;
    else if (s >= 1) toRemote = true;
    else toRemote = (key !== undefined ? zoneDraw(key) : this.random()) < s;
    if (toRemote) {
      const i = this.remote.pick(key);
      if (i >= 0) return this.remoteIdx[i]!;
      const j = this.localIdx.length > 0 ? this.local.pick(key) : -1;
      return j >= 0 ? this.localIdx[j]! : -1;
    }
    const i = this.local.pick(key);
    if (i >= 0) return this.localIdx[i]!;
    const j = this.remoteIdx.length > 0 ? this.remote.pick(key) : -1;
    return j >= 0 ? this.remoteIdx[j]! : -1;
  }
}
