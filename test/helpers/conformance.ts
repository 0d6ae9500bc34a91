/**
 * The conformance vectors every SDK runs (schemas/conformance/): built here
 * from the real contract, actors and agent code, written by
 * `npm run conformance`, and checked by test/unit/conformance.test.ts to be
 * what this code generates now. See schemas/conformance/README.md.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createStrategy, seededRandom } from '../../actors/strategies/index.ts';
import { AgentRoute } from '../../actors/agent-route.ts';
import { pickVectors, host, state } from './conformance-picks.ts';
import { wireVectors } from './conformance-wire.ts';
import { followVectors } from './conformance-follow.ts';
import { callVectors } from './conformance-calls.ts';

export const CONFORMANCE_DIR = join(import.meta.dirname, '..', '..', 'schemas', 'conformance');

/** A randomized strategy's long-run shares of picks on a route, for an SDK with its own random source. */
export interface ShareVector {
  name: string;
  strategy: 'p2c' | 'p2c_ewma';
  state: ReturnType<typeof state>;
  picks: number;
  /** Share of picks per `ip:port` the reference gives with a seeded source. */
  want: Record<string, number>;
  /** Largest allowed difference of a share (absolute). */
  tolerance: number;
}

function shareVectors(): ShareVector[] {
  const out: ShareVector[] = [];
  const s = state(1, [host(1, { pick_weight: 400 }), host(2, { pick_weight: 200 }), host(3, { pick_weight: 100 }), host(4, { state: 'probing', reason: 'timeout', pick_weight: 20 }), host(5, { state: 'overloaded', reason: 'timeout', pick_weight: 0 })]);
  for (const strategy of ['p2c', 'p2c_ewma'] as const) {
    const picks = 20_000;
    const route = new AgentRoute('agent-a', strategy, (n) => createStrategy(n, { random: seededRandom(99), now: () => 0 }));
    route.apply(s);
    const counts: Record<string, number> = {};
    for (const h of route.hosts) counts[`${h.ip}:${h.port}`] = 0;
    // no feedback: every call answered at once, so the draw alone decides (ties go to the first drawn)
    for (let k = 0; k < picks; k++) {
      const h = route.hosts[route.strategy.pick()]!;
      counts[`${h.ip}:${h.port}`]!++;
    }
    const want: Record<string, number> = {};
    for (const [k, c] of Object.entries(counts)) want[k] = Math.round((c / picks) * 1e4) / 1e4;
    out.push({ name: `${strategy} shares by pick weight`, strategy, state: s, picks, want, tolerance: 0.02 });
  }
  return out;
}

/** Every vector file: its name under schemas/conformance/ and its text. */
export function conformanceFiles(): Record<string, string> {
  const text = (v: unknown): string => `${JSON.stringify(v, null, 1)}\n`;
  return {
    'picks.json': text({ version: 1, picks: pickVectors(), shares: shareVectors() }),
    'wire.json': text({ version: 1, ...wireVectors() }),
    'follow.json': text({ version: 1, ...followVectors() }),
    'calls.json': text({ version: 1, ...callVectors() }),
  };
}

if (process.argv[1] !== undefined && import.meta.filename === process.argv[1]) {
  for (const [name, body] of Object.entries(conformanceFiles())) {
    writeFileSync(join(CONFORMANCE_DIR, name), body);
    console.log(`wrote schemas/conformance/${name} (${body.length} bytes)`);
  }
}
