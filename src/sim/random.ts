/**
 * Seeded randomness for the simulator, on the strategies' own PRNG
 * (mulberry32 in actors/strategies/random.ts): no Math.random anywhere, so
 * the same seed gives the same run.
 */
import { seededRandom, type Random } from '../../actors/strategies/index.ts';

export type { Random };

/** A PRNG for stream `stream` of run `seed`: independent streams for arrivals, hosts and each agent. */
export function streamRandom(seed: number, stream: number): Random {
  // Mix seed and stream through one draw so nearby seeds give unrelated streams.
  const mix = seededRandom(((seed >>> 0) ^ Math.imul(stream + 1, 0x9e3779b1)) >>> 0);
  return seededRandom(Math.floor(mix() * 4294967296));
}

/** Exponential with the given mean. */
export function exponential(r: Random, mean: number): number {
  return -mean * Math.log(1 - r());
}

/** Standard normal (Box–Muller; one of the pair). */
export function standardNormal(r: Random): number {
  const u = 1 - r();
  const v = r();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}
