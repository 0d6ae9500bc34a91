/**
 * Graceful scale-out from one route node to three and back to one, under
 * load: agents pick continuously on a timer and report; not one pick fails,
 * no route version goes backwards at any agent (every state each agent
 * applies is recorded through watchRoute), and after each step every
 * partition is owned by exactly one node, the one holding its lease.
 */
import { expect } from 'chai';
import { rendezvousOwner } from '../../actors/ownership.ts';
import { partitionOf } from '../../schemas/subjects.ts';
import type { Agent } from '../../src/agent/agent.ts';
import { TestCluster, PARTITIONS, hosts, useNatsServer } from '../helpers/cluster.ts';
import { startLeaseNode, leaseOwners, RouteRecorder, type LeaseNode } from '../helpers/nodes.ts';
import { agentTotals, startReportLoad, type ReportLoad } from '../helpers/cluster-load.ts';
import { waitFor } from '../helpers/wait.ts';

const ROUTES: Array<[number, number]> = Array.from({ length: 16 }, (_, i) => [980 + i, 5]);
const ALL = Array.from({ length: PARTITIONS }, (_, p) => p);
const AGENTS = 4;
const LEASE_MS = 1000;

describe('cluster - graceful scale-out 1 → 3 → 1 under load (in-process nodes)', function () {
  this.timeout(120_000);
  const server = useNatsServer();
  let c: TestCluster;
  let nodes: LeaseNode[] = [];
  let load: ReportLoad | undefined;
  const stops: Array<() => void> = [];

  beforeEach(async () => {
    c = await TestCluster.start(server());
    for (const [m, cmd] of ROUTES) await c.addRoute(m, cmd, hosts(3, `10.${m % 200}.0.`));
  });
  afterEach(async () => {
    load?.stop();
    load = undefined;
    for (const s of stops.splice(0)) s();
    for (const nd of nodes) await nd.stop().catch(() => undefined);
    nodes = [];
    await c.stop(true);
  });

  /** Every partition served by exactly one of `ids`, the holder of its lease, the rendezvous owner over `ids`. */
  async function settled(ids: string[]): Promise<void> {
    let last = '';
    await waitFor(
      async () => {
        const leases = await leaseOwners(c.nc, c.prefix);
        const served = new Map<number, string[]>();
        for (const nd of nodes) for (const p of nd.node.servedPartitions()) served.set(p, [...(served.get(p) ?? []), nd.id]);
        for (const p of ALL) {
          const want = rendezvousOwner(p, ids);
          const s = served.get(p) ?? [];
          if (leases.get(p) !== want || s.length !== 1 || s[0] !== want) {
            last = `partition ${p}: lease ${leases.get(p)}, served by [${s.join(',')}], want ${want}`;
            return false;
          }
        }
        return true;
      },
      { timeoutMs: 20_000, what: `every partition owned by exactly one of ${ids.join(', ')}`, intervalMs: 25 },
    ).catch((err: unknown) => {
      throw new Error(`${(err as Error).message}: ${last}`);
    });
  }

  it('scale - 1 → 3 → 1 nodes, each step graceful, under load: every pick succeeds, no version goes backwards at any agent, every partition owned by exactly one node after each step', async () => {
    const rec = await RouteRecorder.start(c.nc, c.n);
    nodes.push(await startLeaseNode(c.server.url, c.prefix, 'sc-a', { leaseMs: LEASE_MS }));
    await settled(['sc-a']);

    const agents: Agent[] = [];
    for (let i = 0; i < AGENTS; i++) agents.push(await c.agent({ agentId: `sc-agent-${i}`, batchMaxDelayMs: 20 }));
    await Promise.all(agents.map((a) => a.prepare(ROUTES)));
    // every version each agent applies, per route, in order
    const applied = new Map<string, number[]>();
    agents.forEach((a, i) => {
      for (const [m, cmd] of ROUTES) {
        const k = `${i}/${m}.${cmd}`;
        applied.set(k, []);
        stops.push(a.watchRoute(m, cmd, (s) => applied.get(k)!.push(s.version)));
      }
    });
    // 4 agents × 8 routes, 2 picks per route every 20 ms: 3,200 picks/s
    load = startReportLoad(agents, ROUTES, () => ({ retcode: 0, latencyMs: 2 }), { perAgent: 8, callsPerTick: 2, tickMs: 20 });
    await waitFor(() => load!.calls() >= 1000, { timeoutMs: 20_000, what: 'picks under one node' });

    const steps: Array<{ what: string; run: () => Promise<void>; ids: string[] }> = [
      { what: 'b joins', run: async () => void nodes.push(await startLeaseNode(c.server.url, c.prefix, 'sc-b', { leaseMs: LEASE_MS })), ids: ['sc-a', 'sc-b'] },
      { what: 'c joins', run: async () => void nodes.push(await startLeaseNode(c.server.url, c.prefix, 'sc-c', { leaseMs: LEASE_MS })), ids: ['sc-a', 'sc-b', 'sc-c'] },
      { what: 'c leaves', run: () => stopNode('sc-c'), ids: ['sc-a', 'sc-b'] },
      { what: 'b leaves', run: () => stopNode('sc-b'), ids: ['sc-a'] },
    ];
    async function stopNode(id: string): Promise<void> {
      const nd = nodes.find((x) => x.id === id)!;
      await nd.stop();
      nodes = nodes.filter((x) => x !== nd);
    }
    let idsBefore = ['sc-a'];
    for (const step of steps) {
      const seenBefore = rec.seen.length;
      const calls = load.calls();
      await step.run();
      await settled(step.ids);
      // every route that moved is published by its new owner
      for (const [m, cmd] of ROUTES) {
        const p = partitionOf(m, cmd, PARTITIONS);
        const owner = rendezvousOwner(p, step.ids)!;
        if (owner === rendezvousOwner(p, idsBefore)) continue;
        await waitFor(() => rec.seen.slice(seenBefore).some((s) => s.modid === m && s.cmdid === cmd && s.sender === owner), { timeoutMs: 10_000, what: `${m}.${cmd} published by ${owner} after ${step.what}` });
      }
      await waitFor(() => load!.calls() >= calls + 3000, { timeoutMs: 20_000, what: `picks after ${step.what}` });
      console.log(`      ${step.what}: settled; ${rec.seen.length - seenBefore} route states published meanwhile, failed picks so far ${load.failedPicks()}`);
      expect(load.failedPicks(), `failed picks after ${step.what}`).to.equal(0);
      idsBefore = step.ids;
    }

    load.stop();
    await Promise.all(agents.map((a) => a.flush({ timeoutMs: 30_000 })));
    expect(agentTotals(agents).dropped).to.equal(0);
    expect(load.failedPicks(), 'failed picks').to.equal(0);
    console.log(`      ${load.calls()} picks, all ok; ${[...applied.values()].reduce((s, v) => s + v.length, 0)} route states applied by the agents`);

    const backwards: string[] = [];
    for (const [k, vs] of applied) {
      expect(vs.length, `${k} states applied`).to.be.above(0);
      for (let i = 1; i < vs.length; i++) if (vs[i]! < vs[i - 1]!) backwards.push(`${k}: ${vs[i - 1]} then ${vs[i]}`);
    }
    expect(backwards, 'versions going backwards at an agent').to.deep.equal([]);
    expect(rec.backwards(), 'versions going backwards on the wire').to.deep.equal([]);
  });
});
