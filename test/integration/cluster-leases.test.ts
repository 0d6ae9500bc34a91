import { expect } from 'chai';
import { rendezvousOwner } from '../../actors/ownership.ts';
import { partitionOf } from '../../schemas/subjects.ts';
import { TestCluster, PARTITIONS, hosts, useNatsServer } from '../helpers/cluster.ts';
import { startLeaseNode, leaseOwners, RouteRecorder, type LeaseNode } from '../helpers/nodes.ts';
import { waitFor } from '../helpers/wait.ts';
import type { PartitionEvent } from '../../src/node/route-node.ts';

const ROUTES: Array<[number, number]> = Array.from({ length: 24 }, (_, i) => [700 + i, 1]);
const ALL = Array.from({ length: PARTITIONS }, (_, p) => p);

describe('cluster - partitions shared by leases (in-process nodes)', function () {
  this.timeout(60_000);
  const server = useNatsServer();
  let c: TestCluster;
  let nodes: LeaseNode[] = [];

  beforeEach(async () => {
    c = await TestCluster.start(server());
    for (const [m, cmd] of ROUTES) await c.addRoute(m, cmd, hosts(3, `10.${m % 200}.0.`));
  });
  afterEach(async () => {
    for (const n of nodes) await n.stop().catch(() => undefined);
    nodes = [];
    await c.stop(true);
  });

  /** Every partition served by exactly one node, the one holding its lease, and that lease holder the rendezvous owner over `ids`. */
  async function settled(ids: string[]): Promise<Map<number, string>> {
    return waitFor(
      async () => {
        const leases = await leaseOwners(c.nc, c.prefix);
        const served = new Map<number, string[]>();
        for (const n of nodes) if (ids.includes(n.id)) for (const p of n.node.servedPartitions()) served.set(p, [...(served.get(p) ?? []), n.id]);
        for (const p of ALL) {
          const want = rendezvousOwner(p, ids);
          if (leases.get(p) !== want) return false;
          const s = served.get(p);
          if (!s || s.length !== 1 || s[0] !== want) return false;
        }
        return leases;
      },
      { timeoutMs: 20_000, what: 'every partition owned by exactly one node' },
    );
  }

  it('cluster - three nodes without --own: every partition is owned by exactly one node and the leases bucket agrees', async () => {
    const rec = await RouteRecorder.start(c.nc, c.n);
    for (const id of ['n-a', 'n-b', 'n-c']) nodes.push(await startLeaseNode(c.server.url, c.prefix, id));
    const leases = await settled(['n-a', 'n-b', 'n-c']);
    expect(new Set(leases.values())).to.deep.equal(new Set(['n-a', 'n-b', 'n-c']));
    // each route is hosted by the owner of its partition only, and published by it
    for (const [m, cmd] of ROUTES) {
      const owner = leases.get(partitionOf(m, cmd, PARTITIONS))!;
      for (const n of nodes) expect(n.node.route(m, cmd) !== undefined, `${m}.${cmd} on ${n.id}`).to.equal(n.id === owner);
      await waitFor(() => rec.of(m, cmd).some((s) => s.sender === owner), { what: `${m}.${cmd} published by ${owner}` });
    }
    expect(rec.backwards()).to.deep.equal([]);
  });

  it('cluster - graceful stop hands every partition over with a short gap, the new owner resumes each route exactly, no version goes backwards', async () => {
    for (const id of ['n-a', 'n-b', 'n-c']) nodes.push(await startLeaseNode(c.server.url, c.prefix, id));
    await settled(['n-a', 'n-b', 'n-c']);
    const rec = await RouteRecorder.start(c.nc, c.n);
    const events: Array<PartitionEvent & { node: string }> = [];
    for (const n of nodes) n.node.onPartition((e) => events.push({ ...e, node: n.id }));
    const leaving = nodes[1]!;
    const moved = leaving.node.servedPartitions();
    expect(moved.length).to.be.greaterThan(0);
    const lastBefore = new Map<string, number>();
    for (const [m, cmd] of ROUTES) {
      if (!moved.includes(partitionOf(m, cmd, PARTITIONS))) continue;
      lastBefore.set(`${m}.${cmd}`, leaving.node.route(m, cmd)!.currentVersion);
    }
    // a few failed calls on one moved route: counters the new owner must resume exactly
    const [rm, rc] = ROUTES.find(([m, cmd]) => moved.includes(partitionOf(m, cmd, PARTITIONS)))!;
    const agent = await c.agent();
    const h = hosts(3, `10.${rm % 200}.0.`)[1]!;
    for (let i = 0; i < 3; i++) agent.report(rm, rc, h, 1, 7);
    for (let i = 0; i < 5; i++) agent.report(rm, rc, hosts(3, `10.${rm % 200}.0.`)[0]!, 0, 4);
    agent.flushAll();
    await waitFor(() => leaving.node.route(rm, rc)!.host(`${h.ip}:${h.port}`)!.continErr === 3, { what: 'reports counted on the leaving node' });
    const storedBefore = leaving.node.stats().handoverCheckpoints;
    await leaving.stop();
    const oldHosts = leaving.node.route(rm, rc)!.checkpoint(Date.now()).hosts;
    // every route of the moved partitions went into their handover records
    expect(lastBefore.size, 'more than one route moved').to.be.greaterThan(1);
    expect(leaving.node.stats().handoverCheckpoints - storedBefore).to.equal(lastBefore.size);
    nodes = nodes.filter((n) => n !== leaving);
    await settled(['n-a', 'n-c']);
    const gaps: number[] = [];
    for (const p of moved) {
      const released = events.find((e) => e.node === leaving.id && e.partition === p && e.kind === 'released');
      const acquired = events.find((e) => e.node !== leaving.id && e.partition === p && e.kind === 'acquired');
      expect(released, `partition ${p} released`).to.not.equal(undefined);
      expect(acquired, `partition ${p} acquired`).to.not.equal(undefined);
      gaps.push(acquired!.at - released!.at);
    }
    const heir = nodes.find((n) => n.node.route(rm, rc))!;
    expect(heir.node.route(rm, rc)!.checkpoint(Date.now()).hosts, 'host counters resumed exactly').to.deep.equal(oldHosts);
    const maxGap = Math.max(...gaps);
    console.log(`      handover gap over ${moved.length} partitions: max ${maxGap} ms, mean ${(gaps.reduce((a, b) => a + b, 0) / gaps.length).toFixed(1)} ms`);
    expect(maxGap).to.be.below(500);
    // the new owners publish each moved route, continuing its version
    for (const [k, v] of lastBefore) {
      const [m, cmd] = k.split('.').map(Number) as [number, number];
      const first = await waitFor(() => rec.of(m, cmd).find((s) => s.sender !== leaving.id), { what: `${k} published by its new owner` });
      expect(first.version, k).to.be.greaterThan(v);
      expect(first.pickable, k).to.equal(3);
    }
    expect(rec.backwards()).to.deep.equal([]);
  });

  it('cluster - route checkpoints stored after a handover win over it: after a crash, the next owner resumes the newer counters', async () => {
    for (const id of ['n-a', 'n-b', 'n-c']) nodes.push(await startLeaseNode(c.server.url, c.prefix, id));
    await settled(['n-a', 'n-b', 'n-c']);
    const leaving = nodes[1]!;
    const moved = leaving.node.servedPartitions();
    await leaving.stop();
    nodes = nodes.filter((n) => n !== leaving);
    await settled(['n-a', 'n-c']);
    // a route that came with the handover, and the node that has it now
    const [rm, rc] = ROUTES.find(([m, cmd]) => moved.includes(partitionOf(m, cmd, PARTITIONS)))!;
    const heir = nodes.find((n) => n.node.route(rm, rc))!;
    const other = nodes.find((n) => n !== heir)!;
    const agent = await c.agent();
    // enough failures to eject a host: a new state, stored with its checkpoint (after the handover's)
    const h = hosts(3, `10.${rm % 200}.0.`)[2]!;
    for (let i = 0; i < 15; i++) agent.report(rm, rc, h, 1, 9);
    agent.flushAll();
    await waitFor(() => heir.node.route(rm, rc)!.host(`${h.ip}:${h.port}`)!.state === 'overloaded', { what: 'the host ejected by the heir' });
    // then the heir dies without a handover of its own
    await waitFor(
      async () => {
        await heir.node.settled();
        return heir.node.route(rm, rc)!.isDirty === false;
      },
      { what: 'the heir stored the route' },
    );
    const counted = heir.node.route(rm, rc)!.checkpoint(Date.now()).hosts;
    await heir.nc.close();
    const restored = await waitFor(() => other.node.route(rm, rc), { timeoutMs: 20_000, what: `${rm}.${rc} taken over after the crash` });
    expect(restored.checkpoint(Date.now()).hosts, 'the counters stored after the handover').to.deep.equal(counted);
  });
});
