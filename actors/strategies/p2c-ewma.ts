/**
 * Power of two choices over a peak-EWMA latency estimate (Finagle's and
 * Linkerd's default balancer): draw two distinct hosts at random, each with
 * probability proportional to its pick weight (hosts with weight 0, i.e.
 * ejected, never; a probing host with its reduced weight), and take the
 * cheaper one, the first drawn on a tie. One candidate: it, without a draw.
 *
 * cost = latencyAt(host, now) × (liveInflight(host, now) × scale + 1)
 *
 * where `scale` is the pick-weighted mean weight over the host's (./pair.ts): calls in
 * flight count per unit of weight, so hosts weighted for their capacity (the
 * route node's load weights) are loaded in proportion to it; with equal
 * weights it is 1; and `latencyAt` (./feedback.ts) is the peak EWMA the agent's feedback
 * keeps (a failure counts as at least the caller's timeout), decayed for the
 * time since its last sample, and at least twice the mean age of the host's
 * calls in flight (while that age is within the callers' timeout); calls
 * in flight on a host silent for longer than the timeout count as never
 * reported (see `liveInflight`). A host with no estimate yet counts as 1 ms, so new hosts
 * get the calls that measure them. Time comes from the injected `now`; the
 * estimate and in-flight count are read from the live host objects at pick
 * time. No allocation per pick.
 */
import { FEEDBACK_DEFAULTS, latencyAt, liveInflight } from './feedback.ts';
import { WeightedPairs } from './pair.ts';
import { seededRandom } from './random.ts';
import { StrategyName, type PickableHost, type Random, type PickView, type Strategy, type StrategyOptions } from './types.ts';

export interface P2cEwmaOptions extends StrategyOptions {
  /** The clock, ms; default a clock stuck at 0 (no decay: tests). The agent and the simulator inject theirs. */
  readonly now?: () => number;
  /** Time constant of the estimate's decay, ms (default 10000, as the feedback's). */
  readonly decayMs?: number;
  /** The callers' timeout, ms (default 1000): calls in flight longer than this are taken as never reported. */
  readonly timeoutMs?: number;
}

const ZERO = (): number => 0;

/** The cost p2c_ewma compares at `now`; lower is better. `scale`: the pick-weighted mean weight over the host's (1 with equal weights). */
export function p2cEwmaCost(h: PickableHost, now: number, decayMs: number = FEEDBACK_DEFAULTS.decayMs, timeoutMs: number = FEEDBACK_DEFAULTS.timeoutMs, scale = 1): number {
  return (latencyAt(h, now, decayMs, timeoutMs) || 1) * (liveInflight(h, now, timeoutMs) * scale + 1);
}

class P2cEwma implements Strategy {
  readonly name = StrategyName.p2c_ewma;
  private readonly random: Random;
  private readonly now: () => number;
  private readonly decayMs: number;
  private readonly timeoutMs: number;
  private readonly pairs = new WeightedPairs();

  constructor(opts: P2cEwmaOptions) {
    this.random = opts.random ?? seededRandom();
    this.now = opts.now ?? ZERO;
    this.decayMs = opts.decayMs ?? FEEDBACK_DEFAULTS.decayMs;
    this.timeoutMs = opts.timeoutMs ?? FEEDBACK_DEFAULTS.timeoutMs;
  }

  update(view: PickView): void {
    this.pairs.update(view);
  }

  pick(): number {
    const p = this.pairs;
    if (p.draw(this.random) < 2) return p.first;
    const ia = p.first;
    const ib = p.second;
    const now = this.now();
    const d = this.decayMs;
    const to = this.timeoutMs;
    const sc = p.scale;
    return p2cEwmaCost(p.hosts[ib]!, now, d, to, sc[ib]) < p2cEwmaCost(p.hosts[ia]!, now, d, to, sc[ia]) ? ib : ia;
  }
}

/** Power of two choices on peak-EWMA latency × (in-flight + 1); without `random`, a fixed-seed PRNG. */
export function createP2cEwma(opts: P2cEwmaOptions = {}): Strategy {
  return new P2cEwma(opts);
}
