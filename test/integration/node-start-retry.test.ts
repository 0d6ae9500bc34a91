/**
 * A route node whose start fails part way (a request timing out while the
 * servers settle) stops what it had started, so that the process can start
 * a node again: `lars node` retries with a fresh ownership. Real nats-server.
 */
import { expect } from 'chai';
import { TimeoutError } from '@nats-io/transport-node';
import { startNatsServer, type NatsServer } from '../../src/nats/natsd.ts';
import { connectNats, type NatsConnection } from '../../src/nats/connect.ts';
import { LeaseOwnership } from '../../src/cluster/lease-ownership.ts';
import type { OwnershipHooks } from '../../src/cluster/ownership.ts';
import { RouteNode } from '../../src/node/route-node.ts';
import { TestCluster, PARTITIONS, hosts } from '../helpers/cluster.ts';
import { leaseOwners } from '../helpers/nodes.ts';
import { waitFor } from '../helpers/wait.ts';

/** Starts for real (leases taken, timers running), then fails as a request timing out would. */
class TimesOutAtStart extends LeaseOwnership {
  override async start(hooks: OwnershipHooks): Promise<void> {
    await super.start(hooks);
    await waitFor(() => this.owned().size > 0, { what: 'a lease taken before the failure' });
    throw new TimeoutError();
  }
}

describe('route node - a start that fails part way', function () {
  this.timeout(60_000);
  let server: NatsServer;
  let c: TestCluster;
  let nc: NatsConnection;

  before(async () => {
    server = await startNatsServer();
    c = await TestCluster.start(server);
    await c.addRoute(931, 1, hosts(3, '10.93.1.'));
    nc = await connectNats({ url: server.url, name: 'n1' });
  });
  after(async () => {
    await nc?.drain().catch(() => undefined);
    await c.stop(true);
    await server.stop();
  });

  it('start - a start that times out after taking leases stops its timers and watches and gives the leases up; the next start owns every partition', async () => {
    const opts = { nc, nodeId: 'n1', prefix: c.prefix, partitions: PARTITIONS, tickMs: 25 };
    const flaky = new TimesOutAtStart({ nc, nodeId: 'n1', prefix: c.prefix, partitions: PARTITIONS, leaseMs: 1000, heartbeatMs: 250 });
    let failed: unknown;
    await RouteNode.start({ ...opts, ownership: flaky }).catch((err: unknown) => (failed = err));
    expect(failed).to.be.instanceOf(TimeoutError);
    expect(flaky.owned().size, 'the failed start holds no partition').to.equal(0);
    await waitFor(async () => (await leaseOwners(c.nc, c.prefix)).size === 0, { what: 'the failed start’s leases given up' });
    const ownership = new LeaseOwnership({ nc, nodeId: 'n1', prefix: c.prefix, partitions: PARTITIONS, leaseMs: 1000, heartbeatMs: 250 });
    const node = await RouteNode.start({ ...opts, ownership });
    try {
      await waitFor(async () => (await leaseOwners(c.nc, c.prefix)).size === PARTITIONS && node.servedPartitions().length === PARTITIONS, { what: 'every partition owned and served' });
      expect(node.route(931, 1), 'the route loaded').to.not.equal(undefined);
    } finally {
      await node.close();
    }
  });
});
