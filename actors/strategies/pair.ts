/**
 * The draw both power-of-two-choices strategies make: two distinct hosts at
 * random, each with probability proportional to its pick weight (hosts with
 * weight 0 never). Prepared on `update` (cumulative weights in a typed
 * array); a draw is two random numbers and two binary searches, and
 * allocates nothing: the pair is left in `first` and `second`.
 *
 * Also prepared: each host's in-flight scale (`scale`, by view index): the
 * weight of the host an average call goes to (Σw² / Σw, the mean weighted
 * by picks, so a probing host's small weight hardly moves it) over the
 * host's own. A host with twice the weight of another is meant to carry
 * twice its calls, so the strategies compare calls in flight per unit of
 * weight: `inflight × scale`. With equal weights every scale is 1 and the
 * comparison is the plain one.
 */
import { positiveHosts } from './hosts.ts';
import type { PickableHost, Random, PickView } from './types.ts';

export class WeightedPairs {
  hosts: readonly PickableHost[] = [];
  /** Host indexes of the pair drawn last; `second` is -1 when fewer than two hosts may be picked. */
  first = -1;
  second = -1;
  /** The pick-weighted mean weight over the host's, by view index (1 for a host that may not be picked). */
  scale = new Float64Array(0);
  private idx = new Int32Array(0);
  /** cum[j] = sum of the weights of candidates 0..j. */
  private cum = new Float64Array(0);
  private total = 0;

  update(view: PickView): void {
    const { idx, weights } = positiveHosts(view.hosts);
    const cum = new Float64Array(idx.length);
    let total = 0;
    for (let j = 0; j < idx.length; j++) {
      total += weights[j]!;
      cum[j] = total;
    }
    const scale = new Float64Array(view.hosts.length).fill(1);
    let squares = 0;
    for (let j = 0; j < idx.length; j++) squares += weights[j]! * weights[j]!;
    const mean = total > 0 ? squares / total : 0;
    for (let j = 0; j < idx.length; j++) scale[idx[j]!] = weights[j] === mean ? 1 : mean / weights[j]!;
    this.hosts = view.hosts;
    this.idx = idx;
    this.cum = cum;
    this.total = total;
    this.scale = scale;
  }

  /** Draws a pair; returns how many hosts may be picked (0: none, `first` -1; 1: only `first`, no draw). */
  draw(random: Random): number {
    const n = this.idx.length;
    if (n === 0) {
      this.first = this.second = -1;
      return 0;
    }
    if (n === 1) {
      this.first = this.idx[0]!;
      this.second = -1;
      return 1;
    }
    const cum = this.cum;
    const a = this.find(random() * this.total);
    // Draw the second among the others: a point in [0, total - w_a) that skips
    // a's segment [lo, hi).
    const lo = a === 0 ? 0 : cum[a - 1]!;
    const hi = cum[a]!;
    let r = random() * (this.total - (hi - lo));
    if (r >= lo) r += hi - lo;
    let b = this.find(r);
    if (b === a) b = a + 1 < n ? a + 1 : a - 1; // rounding at a segment edge
    this.first = this.idx[a]!;
    this.second = this.idx[b]!;
    return n;
  }

  /** First candidate whose cumulative weight exceeds `r`; the last one if none (rounding). */
  private find(r: number): number {
    const cum = this.cum;
    let lo = 0;
    let hi = cum.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (cum[mid]! > r) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }
}
