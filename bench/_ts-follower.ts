/**
 * One TypeScript agent following route 1.1, the same way the Go SDK's
 * TestLiveFollowCPU does (clients/go/bench_test.go), for `npm run bench --
 * go` to measure both on the same route updates in one run:
 *  - its process CPU per route update, between the first update it holds
 *    and update `updates`;
 *  - then, for the `ejections` updates after those (each ejecting one host:
 *    overloaded, pick weight 0), the time from the publish (the state's ts,
 *    epoch ms with a fraction) to the agent holding the state, and how many
 *    of 100 picks then still went to the ejected host.
 */
import { createAgent, type RouteState } from '../src/index.ts';
import { childConfig, epochMs, exitWithParent, toParent } from './_common.ts';

export interface FollowerConfig {
  url: string;
  prefix: string;
  updates: number;
  ejections: number;
}

export type FromFollower =
  | { type: 'ready' }
  | { type: 'cpu'; updates: number; cpuUsPerUpdate: number }
  | { type: 'eject'; lagMs: number[]; picked: number };

const cfg = childConfig<FollowerConfig>();
const agent = await createAgent({ servers: cfg.url, prefix: cfg.prefix, agentId: 'bench-ts-follower' });
exitWithParent(() => agent.close());
await agent.prepare([[1, 1]]);
let first: { updates: number; cpu: NodeJS.CpuUsage } | undefined;
let applied = 0;
const lagMs: number[] = [];
let picked = 0;
let cpuSent = false;
let ejectSent = false;
agent.watchRoute(1, 1, (s: RouteState) => {
  applied++;
  if (s.version <= cfg.updates) {
    if (first === undefined) first = { updates: applied, cpu: process.cpuUsage() };
    if (s.version === cfg.updates && !cpuSent) {
      cpuSent = true;
      const used = process.cpuUsage(first.cpu);
      const updates = applied - first.updates;
      toParent({ type: 'cpu', updates, cpuUsPerUpdate: (used.user + used.system) / updates } satisfies FromFollower);
    }
    return;
  }
  lagMs.push(epochMs() - s.ts);
  const out = s.hosts.find((h) => h.state === 'overloaded' && h.pick_weight === 0);
  for (let i = 0; i < 100 && out !== undefined; i++) {
    const p = agent.pick(1, 1);
    if (p.ok && p.ip === out.ip && p.port === out.port) picked++;
  }
  if (s.version >= cfg.updates + cfg.ejections && !ejectSent) {
    ejectSent = true;
    toParent({ type: 'eject', lagMs, picked } satisfies FromFollower);
  }
});
await agent.flush();
toParent({ type: 'ready' } satisfies FromFollower);
