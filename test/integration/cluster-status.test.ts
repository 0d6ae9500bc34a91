import { expect } from 'chai';
import { startNatsServer, type NatsServer } from '../../src/nats/natsd.ts';
import { partitionOf } from '../../schemas/subjects.ts';
import { clusterNames } from '../../src/cluster/names.ts';
import { bindBucket } from '../../src/nats/buckets.ts';
import { encodeLease } from '../../src/cluster/leases.ts';
import type { ClusterStatus } from '../../src/cluster/status.ts';
import { TestCluster, PARTITIONS, hosts } from '../helpers/cluster.ts';
import { startLeaseNode, leaseOwners, type LeaseNode } from '../helpers/nodes.ts';
import { lars } from '../helpers/cli.ts';
import { waitFor } from '../helpers/wait.ts';

const ROUTES: Array<[number, number]> = Array.from({ length: 12 }, (_, i) => [810 + i, 1]);

describe('cluster - lars cluster status', function () {
  this.timeout(60_000);
  let server: NatsServer;
  let c: TestCluster;
  const nodes: LeaseNode[] = [];

  before(async () => {
    server = await startNatsServer();
    c = await TestCluster.start(server);
    for (const [m, cmd] of ROUTES) await c.addRoute(m, cmd, hosts(3, `10.${m % 200}.1.`));
    // a long lease, so a lease written under another name stays there while the command looks
    for (const id of ['st-a', 'st-b']) nodes.push(await startLeaseNode(server.url, c.prefix, id, { leaseMs: 5000, heartbeatMs: 500 }));
    await waitFor(
      async () => {
        const owners = await leaseOwners(c.nc, c.prefix);
        const served = nodes.reduce((n, x) => n + x.node.servedPartitions().length, 0);
        return owners.size === PARTITIONS && new Set(owners.values()).size === 2 && served === PARTITIONS;
      },
      { timeoutMs: 20_000, what: 'both nodes holding partitions' },
    );
  });
  after(async () => {
    for (const n of nodes) await n.stop().catch(() => undefined);
    await c.stop(true);
    await server.stop();
  });

  const env = () => ({ LARS_NATS_URL: server.url, LARS_PREFIX: c.prefix, LARS_PARTITIONS: String(PARTITIONS) });

  it('cluster - two nodes: the table and the JSON list both members, their partitions add up to P, reports per second are shown', async () => {
    const agent = await c.agent();
    const [m, cmd] = ROUTES[0]!;
    const owner = (await leaseOwners(c.nc, c.prefix)).get(partitionOf(m, cmd, PARTITIONS))!;
    const ownerNode = nodes.find((n) => n.id === owner)!;
    await waitFor(() => ownerNode.node.route(m, cmd), { what: 'route loaded' });
    // steady reports until a heartbeat of the owner announces a rate
    const h = hosts(3, `10.${m % 200}.1.`)[0]!;
    const timer = setInterval(() => {
      for (let i = 0; i < 50; i++) agent.report(m, cmd, h, 0, 3);
      agent.flushAll();
    }, 20);
    let json: ClusterStatus;
    try {
      json = await waitFor(
        async () => {
          const r = await lars(['cluster', 'status', '--json'], env());
          expect(r.code, r.stderr).to.equal(0);
          const s = JSON.parse(r.stdout) as ClusterStatus;
          return s.members.find((x) => x.node === owner)?.ingest?.reportsPerSec ? s : false;
        },
        { timeoutMs: 20_000, intervalMs: 100, what: 'a report rate in the status' },
      );
    } finally {
      clearInterval(timer);
    }
    expect(json.healthy).to.equal(true);
    expect(json.partitions).to.equal(PARTITIONS);
    expect(json.members.map((x) => x.node)).to.deep.equal(['st-a', 'st-b']);
    for (const x of json.members) {
      expect(x.live, x.node).to.equal(true);
      expect(x.leaving).to.equal(false);
      expect(x.heartbeatAgeMs).to.be.below(3000);
      expect(x.oldestRenewalAgeMs).to.be.a('number').and.below(5000);
      expect(x.leaseMs).to.equal(5000);
      expect(x.lagMs).to.be.a('number');
    }
    const all = json.members.flatMap((x) => x.partitions).sort((a, b) => a - b);
    expect(all, 'every partition once').to.deep.equal(Array.from({ length: PARTITIONS }, (_, p) => p));
    expect(json.members.find((x) => x.node === owner)!.ingest!.reports).to.be.greaterThan(0);

    const text = await lars(['cluster', 'status'], env());
    expect(text.code, text.stderr).to.equal(0);
    const lines = text.stdout.trim().split('\n');
    expect(lines[0]).to.equal(`cluster ${c.prefix}: 2 live members of 2, ${PARTITIONS} of ${PARTITIONS} partitions leased, every partition owned`);
    expect(lines[1]).to.match(/^node\s+state\s+started\s+last heartbeat\s+partitions\s+oldest lease renewal\s+reports\/s\s+pending batches\s+lag$/);
    const counts = lines.slice(3).map((l) => {
      const cols = l.split(/\s{2,}/);
      expect(cols[1], l).to.equal('live');
      return Number(cols[4]);
    });
    expect(counts).to.have.length(2);
    expect(counts.reduce((a, b) => a + b, 0), 'partitions add up to P').to.equal(PARTITIONS);
  });

  it('cluster - a partition leased to a node that is not a member is flagged and the command exits 1', async () => {
    const cn = clusterNames(c.prefix);
    const kv = (await bindBucket(c.nc, cn.leasesBucket))!;
    const p = 3;
    const cur = await kv.get(cn.leaseKey(p));
    await kv.update(cn.leaseKey(p), encodeLease('ghost', Date.now()), cur!.revision);
    const r = await lars(['cluster', 'status', '--json'], env());
    expect(r.code).to.equal(1);
    const s = JSON.parse(r.stdout) as ClusterStatus;
    expect(s.healthy).to.equal(false);
    expect(s.problems).to.deep.include({ partition: p, owner: 'ghost', leaseAgeMs: s.problems.find((x) => x.partition === p)?.leaseAgeMs, problem: 'owner_not_live' });
    // written again: a second command start can take longer than the lease time on a busy machine, and an expired lease is another problem
    const again = await kv.get(cn.leaseKey(p));
    await kv.update(cn.leaseKey(p), encodeLease('ghost', Date.now()), again!.revision);
    const text = await lars(['cluster', 'status'], env());
    expect(text.code).to.equal(1);
    expect(text.stdout, text.stdout).to.match(/partitions? without a live owner/);
    expect(text.stdout, text.stdout).to.match(new RegExp(`\\n\\s+${p}\\s+ghost\\s+.*owner_not_live`));
    // the rightful owner takes it back once the lease time passes
    await waitFor(async () => (await leaseOwners(c.nc, c.prefix)).get(p) !== 'ghost', { timeoutMs: 20_000, what: 'partition taken back' });
  });
});
