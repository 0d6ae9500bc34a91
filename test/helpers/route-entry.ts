/** The registry entry the route actor unit tests build on: route 1.2 with `n` hosts 10.0.0.1..n:8000 of weight 100. */
import type { Profile, RegistryEntry } from '../../schemas/messages.ts';

export function entry(n: number, profile: Profile, params: Record<string, number> = {}): RegistryEntry {
  return {
    v: 1,
    modid: 1,
    cmdid: 2,
    profile,
    params,
    hosts: Array.from({ length: n }, (_, i) => ({ ip: `10.0.0.${i + 1}`, port: 8000, weight: 100 })),
    updated_by: 'test',
    ts: 0,
  };
}
