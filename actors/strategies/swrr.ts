/**
 * Smooth weighted round robin (nginx's algorithm, ngx_http_upstream_round_robin):
 * on every pick each host's `current` grows by its weight, the largest wins
 * (first on a tie) and pays back the total. Over one period (the sum of the
 * weights) every host is picked exactly `weight` times, spread as evenly as
 * the weights allow: weights 5,1,1 give a a b a c a a.
 *
 * The hot path of every agent. When the weights are decimals with at most
 * three fraction digits and the reduced period (sum / gcd after scaling to
 * integers) is at most `maxPeriod`, `update` precomputes one period into an
 * Int32Array and `pick` is an array read and a wrap check: no allocation, no
 * loop. Scaling every weight by the same factor does not change SWRR's choices,
 * and after one period all `current` are back to 0, so the precomputed
 * sequence repeated is exactly what live SWRR returns. Other weights run live.
 */
import { hostKeys, positiveHosts, sameHostSet, sameWeights } from './hosts.ts';
import { StrategyName, type PickView, type Strategy, type StrategyOptions } from './types.ts';

export const SWRR_MAX_PERIOD = 4096;
/** Largest decimal scale tried to turn fractional (probing) weights into integers. */
const MAX_SCALE = 1000;

export interface SwrrOptions extends StrategyOptions {
  /**
   * Picks to skip at start and after each change of weights, when no `random`
   * is given (with `random`, a random point of the period is used instead), so
   * that agents do not all hit the same host first. Default 0.
   */
  readonly offset?: number;
  /** Longest period precomputed; longer periods run live. Default 4096; 0 forces live. */
  readonly maxPeriod?: number;
}

/**
 * Reference live SWRR over `weights` (indices into it; non-positive weights
 * never picked), `length` picks from the all-zero start. Used to build the
 * precomputed sequence and by tests.
 */
export function swrrSequence(weights: ArrayLike<number>, length: number): Int32Array {
  const n = weights.length;
  const cur = new Float64Array(n);
  let total = 0;
  for (let i = 0; i < n; i++) if (weights[i]! > 0) total += weights[i]!;
  const out = new Int32Array(length).fill(-1);
  if (total <= 0) return out;
  for (let k = 0; k < length; k++) {
    let best = -1;
    let bestCur = -Infinity;
    for (let i = 0; i < n; i++) {
      const w = weights[i]!;
      if (!(w > 0)) continue;
      const c = cur[i]! + w;
      cur[i] = c;
      if (c > bestCur) {
        bestCur = c;
        best = i;
      }
    }
    cur[best] = bestCur - total;
    out[k] = best;
  }
  return out;
}

/**
 * The weights as small integers giving the same SWRR sequence (scaled to
 * integers, divided by their gcd), or null when they are not decimals with at
 * most three fraction digits or their sum exceeds `maxPeriod`.
 */
export function integerWeights(weights: Float64Array, maxPeriod: number): Int32Array | null {
  for (let scale = 1; scale <= MAX_SCALE; scale *= 10) {
    const ints = new Int32Array(weights.length);
    let ok = true;
    for (let i = 0; i < weights.length; i++) {
      const x = weights[i]! * scale;
      const r = Math.round(x);
      if (Math.abs(x - r) > 1e-9 * Math.max(1, x) || r < 1 || r > 0x3fffffff) {
        ok = false;
        break;
      }
      ints[i] = r;
    }
    if (!ok) continue;
    let g = 0;
    for (const v of ints) g = gcd(g, v);
    let sum = 0;
    for (let i = 0; i < ints.length; i++) {
      ints[i] = ints[i]! / g;
      sum += ints[i]!;
    }
    // A larger scale only makes the period longer.
    return sum <= maxPeriod ? ints : null;
  }
  return null;
}

function gcd(a: number, b: number): number {
  while (b !== 0) [a, b] = [b, a % b];
  return a;
}

/** Returned by `pick` from the precomputed path when no host has a weight. */
const EMPTY_SEQ = Int32Array.of(-1);

class Swrr implements Strategy {
  readonly name = StrategyName.swrr;
  private readonly random: (() => number) | undefined;
  private readonly offset: number;
  private readonly maxPeriod: number;

  private keys: string[] = [];
  private idx = new Int32Array(0);
  private weights = new Float64Array(0);

  // Precomputed mode: view indices for one period, and the next position.
  private seq: Int32Array = EMPTY_SEQ;
  private pos = 0;

  // Live mode.
  private live = false;
  private current = new Float64Array(0);
  private total = 0;

  constructor(opts: SwrrOptions) {
    this.random = opts.random;
    this.offset = Math.max(0, Math.floor(opts.offset ?? 0));
    this.maxPeriod = Math.max(0, Math.floor(opts.maxPeriod ?? SWRR_MAX_PERIOD));
  }

  update(view: PickView): void {
    const { idx, weights } = positiveHosts(view.hosts);
    if (sameHostSet(this.keys, view.hosts) && sameWeights(this.idx, this.weights, idx, weights)) return;
    this.keys = hostKeys(view.hosts);
    this.idx = idx;
    this.weights = weights;
    this.rebuild();
  }

  pick(): number {
    if (this.live) return this.pickLive();
    const s = this.seq;
    const i = this.pos;
    const r = s[i]!;
    this.pos = i + 1 === s.length ? 0 : i + 1;
    return r;
  }

  private rebuild(): void {
    const n = this.idx.length;
    const ints = n === 0 ? null : integerWeights(this.weights, this.maxPeriod);
    if (n === 0 || ints !== null) {
      this.live = false;
      this.current = new Float64Array(0);
      if (n === 0) {
        this.seq = EMPTY_SEQ;
      } else {
        const local = swrrSequence(ints!, ints!.reduce((a, b) => a + b, 0));
        for (let k = 0; k < local.length; k++) local[k] = this.idx[local[k]!]!;
        this.seq = local;
      }
      this.pos = this.startSteps(this.seq.length) % this.seq.length;
      return;
    }
    this.live = true;
    this.seq = EMPTY_SEQ;
    this.current = new Float64Array(n);
    let total = 0;
    let minW = Infinity;
    for (const w of this.weights) {
      total += w;
      if (w < minW) minW = w;
    }
    this.total = total;
    // The period is at least total / min weight; a random point within the
    // first (bounded) stretch of it is spread enough.
    const span = Math.max(n, Math.min(SWRR_MAX_PERIOD, Math.ceil(total / minW)));
    const skip = this.startSteps(span) % span;
    for (let k = 0; k < skip; k++) this.pickLive();
  }

  private startSteps(span: number): number {
    return this.random ? Math.floor(this.random() * span) : this.offset;
  }

  private pickLive(): number {
    const w = this.weights;
    const cur = this.current;
    const n = w.length;
    let best = -1;
    let bestCur = -Infinity;
    for (let i = 0; i < n; i++) {
      const c = cur[i]! + w[i]!;
      cur[i] = c;
      if (c > bestCur) {
        bestCur = c;
        best = i;
      }
    }
    if (best < 0) return -1;
    cur[best] = bestCur - this.total;
    return this.idx[best]!;
  }
}

/** Smooth weighted round robin on `pickWeight`; hosts with weight 0 are never picked. */
export function createSwrr(opts: SwrrOptions = {}): Strategy {
  return new Swrr(opts);
}
