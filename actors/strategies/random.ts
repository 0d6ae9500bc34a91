/**
 * A small deterministic PRNG (mulberry32) for tests and as the fallback when
 * no `Random` is injected: `actors/` must not touch `Math.random`.
 */
import type { Random } from './types.ts';

export const DEFAULT_SEED = 0x9e3779b9;

/** mulberry32: 32-bit state, full period 2^32, uniform in [0, 1). */
export function seededRandom(seed: number = DEFAULT_SEED): Random {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
