/**
 * Route versions across a loss of the JetStream quorum (three real
 * nats-servers, two of them killed): a node keeps publishing route changes
 * on core NATS while its KV writes cannot be stored, then dies; the node
 * that takes its partitions over restores the older stored state. Every
 * version it publishes must be above every version the dead node published
 * (agents keep the highest they have seen and would ignore the rest), and a
 * version number must never carry two contents.
 */
import { expect } from 'chai';
import type { NatsConnection } from '../../src/nats/connect.ts';
import { tryDecode } from '../../schemas/codec.ts';
import { validateRouteState } from '../../schemas/messages.ts';
import { names } from '../../schemas/subjects.ts';
import { Registry } from '../../src/registry/registry.ts';
import { bindBucket } from '../../src/nats/buckets.ts';
import { clusterNames } from '../../src/cluster/names.ts';
import { createAgent, type Agent } from '../../src/agent/agent.ts';
import { NatsCluster } from '../helpers/nats-cluster.ts';
import { createNodeBuckets, ensureStreamsOnCluster } from '../helpers/cluster-load.ts';
import { PARTITIONS, TEST_CLUSTER_STREAM_LIMITS, hosts, uniquePrefix } from '../helpers/cluster.ts';
import { startLeaseNode, leaseOwners, type LeaseNode } from '../helpers/nodes.ts';
import { startTraffic, type Traffic } from '../helpers/traffic.ts';
import { waitFor } from '../helpers/wait.ts';

const LEASE_MS = 2000;
const ROUTE: [number, number] = [77, 1];
const key = (h: { ip: string; port: number }): string => `${h.ip}:${h.port}`;

interface Published {
  version: number;
  sender: string;
  /** The state without its timestamp: what a version means. */
  content: string;
  ejected: string[];
}

/** Every state of ROUTE published on its subject, in arrival order. */
function recordRoute(nc: NatsConnection, subject: string): Published[] {
  const seen: Published[] = [];
  nc.subscribe(subject, {
    callback: (_e, m) => {
      const d = tryDecode(m.data);
      const v = d.ok ? validateRouteState(d.value) : undefined;
      if (!v?.ok) return;
      const s = v.value;
      seen.push({ version: s.version, sender: s.sender, content: JSON.stringify({ ...s, ts: 0 }), ejected: s.hosts.filter((h) => h.state === 'overloaded' || h.state === 'probing').map(key) });
    },
  });
  return seen;
}

describe('cluster - route versions across a lost JetStream quorum (three real nats-servers)', function () {
  this.timeout(180_000);
  let cluster: NatsCluster;
  const nodes: LeaseNode[] = [];
  let agent: Agent | undefined;
  let traffic: Traffic | undefined;
  let nc: NatsConnection | undefined;
  let recorderNc: NatsConnection | undefined;

  before(async () => {
    cluster = await NatsCluster.start(3);
  });
  after(async () => {
    traffic?.stop();
    await agent?.close().catch(() => undefined);
    for (const n of nodes) await n.stop().catch(() => undefined);
    await nc?.close().catch(() => undefined);
    await recorderNc?.close().catch(() => undefined);
    await cluster.close();
  });

  it('versions - a node publishing while its writes cannot be stored dies; its successor publishes only versions above all of its, and no version carries two contents', async () => {
    const prefix = uniquePrefix();
    const n = names(prefix);
    nc = await cluster.connect('versions-test');
    await ensureStreamsOnCluster(nc, n, TEST_CLUSTER_STREAM_LIMITS);
    await createNodeBuckets(nc, n, LEASE_MS);
    const registry = await Registry.open(nc, n);
    await registry.addHosts(ROUTE[0], ROUTE[1], hosts(4, '10.77.0.'), 'test', { profile: 'default', params: { base_ejection_time: 60, max_ejection_percent: 75 } });

    // Node A, the agent and the recorder all on server 0: the one that stays up.
    const url0 = cluster.urlOf(0);
    const a = await startLeaseNode(url0, prefix, 'va', { leaseMs: LEASE_MS });
    nodes.push(a);
    recorderNc = await cluster.connect('versions-recorder');
    const seen = recordRoute(recorderNc, n.route(ROUTE[0], ROUTE[1]));
    await waitFor(async () => (await leaseOwners(nc!, prefix)).size === PARTITIONS && seen.length > 0, { timeoutMs: 30_000, what: 'node A owning every partition and the route published' });

    const failing = new Set<string>();
    // swrr: the node, not the agent, is what judges the failing hosts
    agent = await createAgent({ servers: url0, prefix, partitions: PARTITIONS, batchMaxDelayMs: 5, strategy: 'swrr' });
    traffic = startTraffic(agent, ROUTE[0], ROUTE[1], (h) => ({ retcode: failing.has(h) ? 1 : 0, latencyMs: 2 }), { callsPerTick: 8, tickMs: 20 });
    await waitFor(() => traffic!.calls > 300, { timeoutMs: 20_000, what: 'traffic flowing' });

    // The quorum goes: core NATS still carries reports and route states, JetStream stores nothing.
    cluster.kill(1);
    cluster.kill(2);
    const before = seen.length;
    failing.add('10.77.0.1:8000');
    await waitFor(() => seen.slice(before).some((s) => s.sender === 'va' && s.ejected.includes('10.77.0.1:8000')), { timeoutMs: 10_000, what: 'A ejecting a host without its quorum' });
    const maxA = Math.max(...seen.filter((s) => s.sender === 'va').map((s) => s.version));

    // A dies before anything it published since could be stored.
    traffic.stop();
    await a.nc.close();
    await Promise.all([cluster.restart(1), cluster.restart(2)]);
    await cluster.waitReady();
    const stored = await waitFor(async () => {
      try {
        const e = await (await Registry.open(nc!, n)).kv.status();
        // the leases bucket has its leader again too (B's start opens it)
        const leases = await (await bindBucket(nc!, clusterNames(prefix).leasesBucket, 2000))?.status();
        return e !== undefined && leases !== undefined ? true : undefined;
      } catch {
        return undefined;
      }
    }, { timeoutMs: 60_000, what: 'JetStream answering again', intervalMs: 200 });
    expect(stored).to.equal(true);

    const b = await startLeaseNode(cluster.urlOf(1), prefix, 'vb', { leaseMs: LEASE_MS });
    nodes.push(b);
    traffic = startTraffic(agent, ROUTE[0], ROUTE[1], (h) => ({ retcode: failing.has(h) ? 1 : 0, latencyMs: 2 }), { callsPerTick: 8, tickMs: 20 });
    const firstB = await waitFor(() => seen.find((s) => s.sender === 'vb'), { timeoutMs: 60_000, what: 'B publishing the route' });
    // B goes on judging: a further change of B's must follow.
    failing.delete('10.77.0.1:8000');
    failing.add('10.77.0.3:8000');
    await waitFor(() => seen.some((s) => s.sender === 'vb' && s.ejected.includes('10.77.0.3:8000')), { timeoutMs: 30_000, what: 'B ejecting a host' });

    const ofB = seen.filter((s) => s.sender === 'vb').map((s) => s.version);
    console.log(`      A published up to v${maxA} (stored: less); B's first version v${firstB.version}, B published ${ofB.length} versions`);
    expect(Math.min(...ofB), 'the lowest version B published, against the highest of A').to.be.greaterThan(maxA);
    const contents = new Map<number, Set<string>>();
    for (const s of seen) {
      const c = contents.get(s.version) ?? new Set<string>();
      c.add(s.content);
      contents.set(s.version, c);
    }
    const forked = [...contents].filter(([, c]) => c.size > 1).map(([v]) => v);
    expect(forked, 'versions published with two contents').to.deep.equal([]);
  });
});
