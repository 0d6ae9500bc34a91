/**
 * Consistent hash by key (ketama-style ring). Every host with a positive pick
 * weight owns `round(vnodes × weight / max weight)` points (at least 1, at
 * most `vnodes`, default 160), at `hash32("ip:port#i")` for i = 0, 1, …; a key
 * goes to the owner of the first point at or after `hash32(key)`, wrapping
 * round. Points depend only on a host's own address and its weight relative to
 * the heaviest host, so a host dropping to weight 0 only moves the keys it
 * owned (unless it was the only heaviest one, which rescales the others).
 * Two points on the same hash go to the host listed first.
 *
 * A call without a key (undefined or '') is balanced by smooth weighted round
 * robin instead.
 */
import { hash32 } from './hash32.ts';
import { hostKeys, positiveHosts, sameHostSet, sameWeights } from './hosts.ts';
import { createSwrr } from './swrr.ts';
import { StrategyName, type PickView, type Strategy, type StrategyOptions } from './types.ts';

export const HASH_VNODES = 160;
const MAX_VNODES = 1000;
/** Ring entries are sorted as hash × 2^21 + host index: exact below 2^53. */
const OWNER_BITS = 2 ** 21;

export interface HashOptions extends StrategyOptions {
  /** Ring points of the heaviest host (1..1000); lighter hosts get proportionally fewer. Default 160. */
  readonly vnodes?: number;
}

class Hash implements Strategy {
  readonly name = StrategyName.hash;
  private readonly vnodes: number;
  private readonly fallback: Strategy;
  private keys: string[] = [];
  private idx = new Int32Array(0);
  private weights = new Float64Array(0);
  /** Sorted ring points and the view index owning each. */
  private points = new Uint32Array(0);
  private owners = new Int32Array(0);

  constructor(opts: HashOptions) {
    this.vnodes = Math.min(MAX_VNODES, Math.max(1, Math.floor(opts.vnodes ?? HASH_VNODES)));
    this.fallback = createSwrr(opts.random ? { random: opts.random } : {});
  }

  update(view: PickView): void {
    this.fallback.update(view);
    const { idx, weights } = positiveHosts(view.hosts);
    if (sameHostSet(this.keys, view.hosts) && sameWeights(this.idx, this.weights, idx, weights)) return;
    this.keys = hostKeys(view.hosts);
    this.idx = idx;
    this.weights = weights;
    this.build();
  }

  pick(key?: string): number {
    if (key === undefined || key === '') return this.fallback.pick();
    const pts = this.points;
    const n = pts.length;
    if (n === 0) return -1;
    const h = hash32(key);
    let lo = 0;
    let hi = n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (pts[mid]! < h) lo = mid + 1;
      else hi = mid;
    }
    return this.owners[lo === n ? 0 : lo]!;
  }

  private build(): void {
    const { idx, weights, keys } = this;
    let maxW = 0;
    for (const w of weights) if (w > maxW) maxW = w;
    const counts = new Int32Array(idx.length);
    let total = 0;
    for (let j = 0; j < idx.length; j++) {
      const c = Math.min(this.vnodes, Math.max(1, Math.round((this.vnodes * weights[j]!) / maxW)));
      counts[j] = c;
      total += c;
    }
    const packed = new Float64Array(total);
    let k = 0;
    for (let j = 0; j < idx.length; j++) {
      const vi = idx[j]!;
      const base = `${keys[vi]!}#`;
      for (let i = 0; i < counts[j]!; i++) packed[k++] = hash32(base + i) * OWNER_BITS + vi;
    }
    packed.sort();
    this.points = new Uint32Array(total);
    this.owners = new Int32Array(total);
    for (let p = 0; p < total; p++) {
      const v = packed[p]!;
      const owner = v % OWNER_BITS;
      this.points[p] = (v - owner) / OWNER_BITS;
      this.owners[p] = owner;
    }
  }
}

/** Consistent hash on `pick(key)`; keyless picks fall back to smooth weighted round robin. */
export function createHash(opts: HashOptions = {}): Strategy {
  return new Hash(opts);
}
