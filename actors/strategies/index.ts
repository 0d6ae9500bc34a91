/** Pick strategies: one entry for the agent. See each module for its rules. */
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
export { notePick, noteReport, noteRelease, latencyAt, liveInflight, pickBounded, boundTrials, weighsLoad, type Now, FEEDBACK_DEFAULTS, DEFAULT_MAX_TRIALS, type FeedbackOptions } from './feedback.ts';
export { createHash, HASH_VNODES, type HashOptions } from './hash.ts';
export { hash32, fnv1a32, fmix32 } from './hash32.ts';
export { seededRandom, DEFAULT_SEED } from './random.ts';

/** The strategy agents use when a route or the config names none. */
export const DEFAULT_STRATEGY: StrategyName = StrategyName.p2c_ewma;

/** A new strategy instance (one per route). Throws RangeError on an unknown name. */
export function createStrategy(name: StrategyName, opts: { random?: Random; now?: () => number; decayMs?: number; timeoutMs?: number } = {}): Strategy {
  switch (name) {
    case StrategyName.lars:
      return createLars(opts);
    case StrategyName.swrr:
      return createSwrr(opts);
    case StrategyName.p2c:
      return createP2c(opts);
    case StrategyName.p2c_ewma:
      return createP2cEwma(opts);
    case StrategyName.hash:
      return createHash(opts);
    default: {
      const unknown: never = name;
      throw new RangeError(`unknown strategy: ${String(unknown)}`);
    }
  }
}
