/**
 * Power of two choices: draw two distinct hosts at random, each with
 * probability proportional to its pick weight (hosts with weight 0 never), and
 * take the cheaper one, the first drawn on a tie. One candidate: it, without a
 * draw.
 *
 * cost = (latencyMs || 1) × (inflight + 1)
 *
 * i.e. the expected time to serve one more call if calls already in flight
 * queue ahead of it. A host with no latency estimate yet (0) counts as 1 ms, so
 * new hosts look cheap and get the calls that measure them. Latency and
 * in-flight are read from the live host objects at pick time: the agent
 * updates them without calling `update`.
 */
import { positiveHosts } from './hosts.ts';
import { seededRandom } from './random.ts';
import { StrategyName, type PickableHost, type Random, type RouteView, type Strategy, type StrategyOptions } from './types.ts';

export type P2cOptions = StrategyOptions;

/** The cost p2c compares; lower is better. */
export function p2cCost(h: PickableHost): number {
  return (h.latencyMs || 1) * (h.inflight + 1);
}

class P2c implements Strategy {
  readonly name = StrategyName.p2c;
  private readonly random: Random;
  private hosts: readonly PickableHost[] = [];
  private idx = new Int32Array(0);
  /** cum[j] = sum of the weights of candidates 0..j. */
  private cum = new Float64Array(0);
  private total = 0;

  constructor(opts: P2cOptions) {
    this.random = opts.random ?? seededRandom();
  }

  update(view: RouteView): void {
    const { idx, weights } = positiveHosts(view.hosts);
    const cum = new Float64Array(idx.length);
    let total = 0;
    for (let j = 0; j < idx.length; j++) {
      total += weights[j]!;
      cum[j] = total;
    }
    this.hosts = view.hosts;
    this.idx = idx;
    this.cum = cum;
    this.total = total;
  }

  pick(): number {
    const n = this.idx.length;
    if (n === 0) return -1;
    if (n === 1) return this.idx[0]!;
    const cum = this.cum;
    const a = this.find(this.random() * this.total);
    // Draw the second among the others: a point in [0, total - w_a) that skips
    // a's segment [lo, hi).
    const lo = a === 0 ? 0 : cum[a - 1]!;
    const hi = cum[a]!;
    let r = this.random() * (this.total - (hi - lo));
    if (r >= lo) r += hi - lo;
    let b = this.find(r);
    if (b === a) b = a + 1 < n ? a + 1 : a - 1; // rounding at a segment edge
    const ia = this.idx[a]!;
    const ib = this.idx[b]!;
    return p2cCost(this.hosts[ib]!) < p2cCost(this.hosts[ia]!) ? ib : ia;
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

/** Power of two choices on latency × in-flight; without `random`, a fixed-seed PRNG. */
export function createP2c(opts: P2cOptions = {}): Strategy {
  return new P2c(opts);
}
