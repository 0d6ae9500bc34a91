import { expect } from 'chai';
import { partitionOf } from '../../schemas/subjects.ts';
import { LeaseOwnership, clusterNames } from '../../src/cluster/index.ts';
import { encodeLease } from '../../src/cluster/leases.ts';
import { RouteStore } from '../../src/registry/route-store.ts';
import { bindBucket } from '../../src/nats/buckets.ts';
import { TestCluster, PARTITIONS, hosts, useNatsServer } from '../helpers/cluster.ts';
import { startLeaseNode, RouteRecorder, type LeaseNode } from '../helpers/nodes.ts';
import { waitFor } from '../helpers/wait.ts';

const M = 611;
const C = 3;

describe('cluster - fencing', function () {
  this.timeout(60_000);
  const server = useNatsServer();
  let c: TestCluster;
  const cleanup: Array<() => Promise<void>> = [];

  beforeEach(async () => {
    c = await TestCluster.start(server());
  });
  afterEach(async () => {
    for (const f of cleanup.splice(0).reverse()) await f().catch(() => undefined);
    await c.stop(true);
  });

  it('cluster - a lease is held only while renewed within the lease time by the local clock; a renewal after a takeover fails and drops the partition', async () => {
    let offset = 0;
    const nc = await c.connection();
    const own = new LeaseOwnership({ nc, nodeId: 'solo', prefix: c.prefix, partitions: PARTITIONS, leaseMs: 1000, heartbeatMs: 100, clock: () => Date.now() + offset });
    cleanup.push(() => own.close());
    await own.start({ handOver: async () => {} });
    await waitFor(() => own.owned().size === PARTITIONS, { what: 'all partitions leased' });
    expect(own.holds(0)).to.equal(true);
    offset += 1000; // a stall as the node's clock sees it
    expect(own.holds(0)).to.equal(false);
    expect(await own.reassert(0)).to.equal(true); // nobody took it: renewed, held again
    expect(own.holds(0)).to.equal(true);
    // another node takes partition 1 over on its current revision
    const cn = clusterNames(c.prefix);
    const kv = (await bindBucket(c.nc, cn.leasesBucket))!;
    const e = (await kv.get(cn.leaseKey(1)))!;
    await kv.update(cn.leaseKey(1), encodeLease('intruder', Date.now()), e.revision);
    const renewed = await own.reassert(1);
    expect(renewed).to.equal(false);
    await waitFor(() => !own.owned().has(1), { what: 'partition 1 dropped' });
    expect(own.owned().has(0)).to.equal(true);
  });

  it('cluster - a node whose clock passed its lease publishes nothing until it renewed the lease', async () => {
    let offset = 0;
    await c.addRoute(M, C, hosts(3));
    const rec = await RouteRecorder.start(c.nc, c.n);
    // renewals every 2 s: the clock jump below lands between two of them
    const n: LeaseNode = await startLeaseNode(c.server.url, c.prefix, 'clocked', { leaseMs: 3000, renewMs: 2000, clock: () => Date.now() + offset });
    cleanup.push(() => n.stop());
    await waitFor(() => rec.of(M, C).length > 0, { what: 'route published' });
    offset += 5000; // a stall as the node's clock sees it
    await c.registry.addHosts(M, C, hosts(4), 'test');
    const after = await waitFor(() => rec.of(M, C).find((s) => s.version > 1 && s.pickable === 4), { what: 'route with the new host published' });
    expect(n.node.stats().fenced, 'held back first').to.be.greaterThan(0);
    expect(after.sender).to.equal('clocked');
    expect(n.node.stats().partitionsLost).to.equal(0);
  });

  it('cluster - a route-state write conflict drops the partition; the node re-takes it and continues from the stored state, never overwriting it with its own', async () => {
    await c.addRoute(M, C, hosts(3));
    const rec = await RouteRecorder.start(c.nc, c.n);
    const n = await startLeaseNode(c.server.url, c.prefix, 'writer', { leaseMs: 1000 });
    cleanup.push(() => n.stop());
    await waitFor(() => rec.of(M, C).length > 0, { what: 'route published' });
    await n.node.settled();
    // another writer stores a newer version of the route behind the node's back
    const store = await RouteStore.open(c.nc, c.n);
    const cur = (await store.get(M, C))!;
    await store.put({ ...cur.state, sender: 'other', version: cur.state.version + 50 });
    await c.registry.addHosts(M, C, hosts(4), 'test');
    await waitFor(() => n.node.stats().partitionsLost > 0, { what: 'the partition dropped on the conflict' });
    expect(n.node.stats().kvConflicts).to.be.greaterThan(0);
    const p = partitionOf(M, C, PARTITIONS);
    await waitFor(() => n.node.servedPartitions().includes(p) && n.node.route(M, C), { what: 'the partition taken again' });
    const next = await waitFor(() => rec.of(M, C).find((s) => s.sender === 'writer' && s.version > cur.state.version + 50), { what: 'the route published again above the stored version' });
    expect(next.pickable).to.equal(4);
    await n.node.settled();
    expect((await store.get(M, C))!.state.version).to.be.at.least(next.version);
  });
});
