/**
 * Power of two choices: draw two distinct hosts at random, each with
 * probability proportional to its pick weight (hosts with weight 0 never), and
 * take the cheaper one, the first drawn on a tie. One candidate: it, without a
 * draw.
 *
 * cost = (latencyMs || 1) × (inflight × scale + 1)
 *
 * i.e. the expected time to serve one more call if calls already in flight
 * queue ahead of it, with the calls in flight counted per unit of pick weight
 * (`scale`: the pick-weighted mean weight over the host's, see ./pair.ts), so that a
 * host weighted for twice the capacity is expected to hold twice the calls.
 * A host with no latency estimate yet (0) counts as 1 ms, so
 * new hosts look cheap and get the calls that measure them. Latency and
 * in-flight are read from the live host objects at pick time: the agent
 * updates them without calling `update`.
 */
import { WeightedPairs } from './pair.ts';
import { seededRandom } from './random.ts';
import { StrategyName, type PickableHost, type Random, type PickView, type Strategy, type StrategyOptions } from './types.ts';

export type P2cOptions = StrategyOptions;

/** The cost p2c compares; lower is better. `scale`: the pick-weighted mean weight over the host's (1 with equal weights). */
export function p2cCost(h: PickableHost, scale = 1): number {
  return (h.latencyMs || 1) * (h.inflight * scale + 1);
}

class P2c implements Strategy {
  readonly name = StrategyName.p2c;
  private readonly random: Random;
  private readonly pairs = new WeightedPairs();

  constructor(opts: P2cOptions) {
    this.random = opts.random ?? seededRandom();
  }

  update(view: PickView): void {
    this.pairs.update(view);
  }

  pick(): number {
    const p = this.pairs;
    if (p.draw(this.random) < 2) return p.first;
    const ia = p.first;
    const ib = p.second;
    const sc = p.scale;
    return p2cCost(p.hosts[ib]!, sc[ib]) < p2cCost(p.hosts[ia]!, sc[ia]) ? ib : ia;
  }
}

/** Power of two choices on latency × in-flight; without `random`, a fixed-seed PRNG. */
export function createP2c(opts: P2cOptions = {}): Strategy {
  return new P2c(opts);
}
