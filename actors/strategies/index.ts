/**
 * Pick strategies: one table for the agent, one entry per strategy. A new
 * strategy is its module and its entry in `STRATEGIES` (its name is the
 * contract's, schemas/contract.ts `PickStrategy`: a route state may name it).
 * See each module for its rules.
 */
import { createHash } from './hash.ts';
import { createLars } from './lars.ts';
import { createP2c } from './p2c.ts';
import { createP2cEwma } from './p2c-ewma.ts';
import { createSwrr } from './swrr.ts';
import { StrategyName, type Random, type Strategy } from './types.ts';

export * from './types.ts';
export { createLars, type LarsOptions } from './lars.ts';
export { createSwrr, swrrSequence, integerWeights, SWRR_MAX_PERIOD, type SwrrOptions } from './swrr.ts';
export { createP2c, p2cCost, type P2cOptions } from './p2c.ts';
export { createP2cEwma, p2cEwmaCost, type P2cEwmaOptions } from './p2c-ewma.ts';
export { notePick, noteReport, noteRelease, latencyAt, liveInflight, pickBounded, boundTrials, type Now, FEEDBACK_DEFAULTS, DEFAULT_MAX_TRIALS, type FeedbackOptions } from './feedback.ts';
export { createHash, HASH_VNODES, type HashOptions } from './hash.ts';
export { hash32, fnv1a32, fmix32 } from './hash32.ts';
export { seededRandom, DEFAULT_SEED } from './random.ts';

/** What an agent hands every strategy it creates; each takes the part it uses. */
export interface CreateStrategyOptions {
  readonly random?: Random;
  /** The clock, ms (the latency-aware strategies). */
  readonly now?: () => number;
  /** Time constant of the latency estimate's decay, ms. */
  readonly decayMs?: number;
  /** The callers' timeout, ms. */
  readonly timeoutMs?: number;
}

/** A strategy as the agent knows it. */
export interface StrategyEntry {
  /** A new instance (one per route). */
  readonly create: (opts: CreateStrategyOptions) => Strategy;
  /**
   * Its picks read the hosts' calls in flight, their age or latency: those
   * need feedback.ts' `notePick` to keep the in-flight ages exact (and read
   * the clock). The others need them only on probing hosts (the trial bound).
   */
  readonly weighsLoad: boolean;
}

/** Every strategy, by its contract name. */
export const STRATEGIES: { readonly [N in StrategyName]: StrategyEntry } = {
  [StrategyName.lars]: { create: createLars, weighsLoad: false },
  [StrategyName.swrr]: { create: createSwrr, weighsLoad: false },
  [StrategyName.p2c]: { create: createP2c, weighsLoad: true },
  [StrategyName.p2c_ewma]: { create: createP2cEwma, weighsLoad: true },
  [StrategyName.hash]: { create: createHash, weighsLoad: false },
};

/** The strategy agents use when a route or the config names none. */
export const DEFAULT_STRATEGY: StrategyName = StrategyName.p2c_ewma;

function entryOf(name: string): StrategyEntry | undefined {
  return Object.hasOwn(STRATEGIES, name) ? STRATEGIES[name as StrategyName] : undefined;
}

/** A new strategy instance (one per route). Throws RangeError on an unknown name. */
export function createStrategy(name: StrategyName, opts: CreateStrategyOptions = {}): Strategy {
  const e = entryOf(name);
  if (e === undefined) throw new RangeError(`unknown strategy: ${String(name)}`);
  return e.create(opts);
}

/** Whether picks of strategy `name` weigh load (its entry's `weighsLoad`); false for an unknown name. */
export function weighsLoad(name: string): boolean {
  return entryOf(name)?.weighsLoad === true;
}
