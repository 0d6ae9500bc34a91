/**
 * Healing after the bus goes away: a `lars node` (a child process, as an
 * operator runs it) on one nats-server that is stopped and started again on
 * its store 6 s later. Every partition must have an owner again within the
 * lease time + 1 s after JetStream is writable, readiness must agree with
 * ownership at every sample, and a host that starts failing afterwards must
 * be ejected.
 */
import { expect } from 'chai';
import { startNatsServer, type NatsServer } from '../../src/nats/natsd.ts';
import { connectNats, type NatsConnection } from '../../src/nats/connect.ts';
import { openTtlBucket } from '../../src/nats/buckets.ts';
import { parsePrometheusText, sampleValue } from '../helpers/metrics-parse.ts';
import { createAgent, type Agent } from '../../src/agent/agent.ts';
import { Registry } from '../../src/registry/registry.ts';
import { ensureStreams } from '../../src/nats/streams.ts';
import { ConsoleBackend } from '../../src/console/backend.ts';
import { names } from '../../schemas/subjects.ts';
import { PARTITIONS, TEST_CLUSTER_STREAM_LIMITS, hosts, uniquePrefix } from '../helpers/cluster.ts';
import { startChildNode, leaseOwners, type ChildNode } from '../helpers/nodes.ts';
import { freePort } from '../helpers/clickhouse-server.ts';
import { startTraffic, type Traffic } from '../helpers/traffic.ts';
import { waitFor } from '../helpers/wait.ts';

const LEASE_MS = 2000;
/** The outage of the issue's report: long enough for renewals sent meanwhile to time out and land on reconnect. */
const OUTAGE_MS = 6000;
const NODE_ID = 'heal-1';
const ROUTE: [number, number] = [41, 7];

interface Sample {
  at: number;
  ready: boolean;
  owned: number;
}

async function scrape(port: number): Promise<{ ready: boolean; owned: number; lost: number } | undefined> {
  try {
    const [r, m] = await Promise.all([fetch(`http://127.0.0.1:${port}/readyz`), fetch(`http://127.0.0.1:${port}/metrics`)]);
    const metrics = parsePrometheusText(await m.text());
    const value = (name: string): number => sampleValue(metrics, name) ?? NaN;
    return { ready: r.status === 200, owned: value('lars_partitions_owned'), lost: value('lars_partitions_lost_total') };
  } catch {
    return undefined;
  }
}

/** When a write first succeeds (JetStream answers again). */
function writableAt(write: () => Promise<unknown>, what: string): Promise<number> {
  return waitFor(
    async () => {
      try {
        await write();
        return Date.now();
      } catch {
        return undefined;
      }
    },
    { timeoutMs: 30_000, what, intervalMs: 20 },
  );
}

/** When every partition is leased to the node, served by it, and its /readyz says ready. */
function ownedAt(nc: NatsConnection, prefix: string, httpPort: number, node: ChildNode, what: string): Promise<number> {
  return waitFor(
    async () => {
      const o = await leaseOwners(nc, prefix).catch(() => new Map<number, string>());
      const s = await scrape(httpPort);
      return o.size === PARTITIONS && [...o.values()].every((id) => id === NODE_ID) && s?.owned === PARTITIONS && s.ready ? Date.now() : undefined;
    },
    { timeoutMs: 30_000, what, intervalMs: 50, explain: () => node.output().slice(-3000) },
  );
}

describe('cluster - healing after a NATS outage (a `lars node` process, one nats-server)', function () {
  this.timeout(120_000);
  let server: NatsServer | undefined;
  let nc: NatsConnection | undefined;
  let agent: Agent | undefined;
  let node: ChildNode | undefined;
  let traffic: Traffic | undefined;
  let sampler: ReturnType<typeof setInterval> | undefined;
  let console_: ConsoleBackend | undefined;

  afterEach(async () => {
    if (sampler) clearInterval(sampler);
    await console_?.close();
    console_ = undefined;
    traffic?.stop();
    await agent?.close().catch(() => undefined);
    node?.kill('SIGKILL');
    if (node) await node.exited;
    await nc?.close().catch(() => undefined);
    await server?.stop();
  });

  it('heal - a 6 s outage: every partition owned again within the lease time + 1 s after JetStream is writable, readiness agrees at every sample, and a host failing afterwards is ejected', async () => {
    server = await startNatsServer();
    const prefix = uniquePrefix();
    const n = names(prefix);
    nc = await connectNats({ url: server.url, name: 'heal-test' });
    await ensureStreams(nc, n, TEST_CLUSTER_STREAM_LIMITS);
    const registry = await Registry.open(nc, n);
    await registry.addHosts(ROUTE[0], ROUTE[1], hosts(3, '10.41.0.'), 'test', { profile: 'default', params: { base_ejection_time: 30 } });
    const probe = await openTtlBucket(nc, `${prefix}_heal_probe`, 0, 500);

    const httpPort = await freePort();
    node = startChildNode(server.url, prefix, NODE_ID, LEASE_MS, ['--http', String(httpPort)]);
    await waitFor(async () => (await leaseOwners(nc!, prefix)).size === PARTITIONS && (await scrape(httpPort))?.ready, { timeoutMs: 30_000, what: 'the node owning every partition and ready', explain: () => node!.output().slice(-2000) });

    const failing = new Set<string>();
    // swrr: the node, not the agent, is what judges the failing host
    agent = await createAgent({ servers: server.url, prefix, partitions: PARTITIONS, batchMaxDelayMs: 5, strategy: 'swrr' });
    traffic = startTraffic(agent, ROUTE[0], ROUTE[1], (h) => (failing.has(h) ? { retcode: 1, latencyMs: 2 } : { retcode: 0, latencyMs: 2 }), { callsPerTick: 5, tickMs: 20 });
    await waitFor(() => traffic!.calls > 200, { timeoutMs: 20_000, what: 'traffic flowing' });

    const samples: Sample[] = [];
    sampler = setInterval(() => {
      void scrape(httpPort).then((s) => {
        if (s) samples.push({ at: Date.now(), ready: s.ready, owned: s.owned });
      });
    }, 100);

    await server.stop();
    const stoppedAt = Date.now();
    await new Promise((r) => setTimeout(r, OUTAGE_MS)); // the fault itself: the server stays away this long
    server = await server.restart();
    const writable = await writableAt(() => probe.put('k', new Uint8Array([1])), 'JetStream writable again');
    const owned = await ownedAt(nc, prefix, httpPort, node, 'every partition owned again and the node ready');
    console.log(`      outage ${writable - stoppedAt} ms until JetStream writable; every partition owned and the node ready ${owned - writable} ms after that`);
    expect(owned - writable, 'from JetStream writable to every partition owned').to.be.at.most(LEASE_MS + 1000);

    // A host that fails from now on is ejected: routes are judged again.
    failing.add('10.41.0.2:8000');
    const failFrom = Date.now();
    await waitFor(async () => (await agent!.getRoute(ROUTE[0], ROUTE[1]))?.hosts.some((h) => `${h.ip}:${h.port}` === '10.41.0.2:8000' && h.state === 'overloaded'), {
      timeoutMs: 20_000,
      what: 'the failing host ejected after the outage',
      explain: async () => `metrics ${(await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text()).split('\n').filter((l) => /^lars_(reports_total|route_states|route_kv|partitions)/.test(l)).join(' | ')} agent ${JSON.stringify(agent!.stats())} route ${JSON.stringify(await agent!.getRoute(ROUTE[0], ROUTE[1]))}; node: ${node!.output().slice(-3000)}`,
    });
    console.log(`      host failing after the outage ejected ${Date.now() - failFrom} ms after it began to fail`);

    // Nothing was lost for good, and readiness never said ready while the node served no partition.
    const after = (await scrape(httpPort))!;
    expect(after.lost, 'partitions the node dropped').to.equal(0);
    const lying = samples.filter((s) => s.ready && s.owned === 0);
    expect(lying, 'samples where /readyz said ready with no partition served').to.deep.equal([]);
    expect(samples.some((s) => s.at > writable), 'samples taken after the outage').to.equal(true);
  });

  it('heal - a server back on a fresh store: the node makes its streams and buckets again and owns every partition, reports flow again, and a route registered anew is followed by the agent despite its lower version and shown by the console', async () => {
    server = await startNatsServer();
    const prefix = uniquePrefix();
    const n = names(prefix);
    nc = await connectNats({ url: server.url, name: 'heal-test' });
    await ensureStreams(nc, n, TEST_CLUSTER_STREAM_LIMITS);
    const entry = async (): Promise<void> => {
      const registry = await Registry.open(nc!, n);
      await registry.addHosts(ROUTE[0], ROUTE[1], hosts(3, '10.41.0.'), 'test', { profile: 'default', params: { base_ejection_time: 30 } });
    };
    await entry();
    const httpPort = await freePort();
    node = startChildNode(server.url, prefix, NODE_ID, LEASE_MS, ['--http', String(httpPort)]);
    await waitFor(async () => (await leaseOwners(nc!, prefix)).size === PARTITIONS && (await scrape(httpPort))?.ready, { timeoutMs: 30_000, what: 'the node owning every partition and ready', explain: () => node!.output().slice(-2000) });

    const failing = new Set<string>();
    // swrr: the node, not the agent, is what judges the failing host
    agent = await createAgent({ servers: server.url, prefix, partitions: PARTITIONS, batchMaxDelayMs: 5, strategy: 'swrr' });
    traffic = startTraffic(agent, ROUTE[0], ROUTE[1], (h) => (failing.has(h) ? { retcode: 1, latencyMs: 2 } : { retcode: 0, latencyMs: 2 }), { callsPerTick: 5, tickMs: 20 });
    // A few versions before the outage: the host fails and is ejected, then recovers.
    failing.add('10.41.0.3:8000');
    await waitFor(async () => (await agent!.getRoute(ROUTE[0], ROUTE[1]))?.hosts.some((h) => h.ip === '10.41.0.3' && h.state === 'overloaded'), { timeoutMs: 20_000, what: 'a host ejected before the outage' });
    failing.clear();
    const held = (await agent.getRoute(ROUTE[0], ROUTE[1]))!.version;
    // The console's view of the routes, made before the outage.
    console_ = await ConsoleBackend.start({ nc, prefix });
    expect((await console_.routes()).map((r) => r.route)).to.deep.equal([`${ROUTE[0]}.${ROUTE[1]}`]);

    await server.stop();
    server = await startNatsServer({ port: server.port });
    const writable = await writableAt(async () => (await openTtlBucket(nc!, `${prefix}_heal_probe`, 0, 500)).put('k', new Uint8Array([1])), 'JetStream writable on the fresh store');
    const owned = await ownedAt(nc, prefix, httpPort, node, 'every partition owned again on the fresh store');
    console.log(`      fresh store: every partition owned and the node ready ${owned - writable} ms after JetStream was writable`);
    expect(owned - writable, `from JetStream writable to every partition owned; the node's log ends: ${node.output().slice(-4000)}`).to.be.at.most(LEASE_MS + 1000);
    // The node made the reports stream again: the agent's held reports are acknowledged.
    await waitFor(() => agent!.stats().pendingReports === 0 && agent!.stats().ackedBatches > 0, { timeoutMs: 30_000, what: "the agent's outbox drained into the new stream", explain: () => JSON.stringify(agent!.stats()) });

    // The registry went with the store: the route is registered again; its versions start again below what the agent holds.
    const registeredAgain = Date.now();
    await entry();
    failing.add('10.41.0.2:8000');
    const r = await waitFor(
      async () => {
        const cur = await agent!.getRoute(ROUTE[0], ROUTE[1]);
        return cur && cur.hosts.some((h) => h.ip === '10.41.0.2' && h.state === 'overloaded') ? cur : undefined;
      },
      { timeoutMs: 30_000, what: 'the agent following the route registered anew (a host ejected on it)', explain: async () => `agent ${JSON.stringify(agent!.stats())} route ${JSON.stringify(await agent!.getRoute(ROUTE[0], ROUTE[1]))}` },
    );
    console.log(`      the agent held v${held} before; it follows the new route at v${r.version}`);
    // The console sees the route as the new store has it, with the host just ejected.
    await waitFor(async () => (await console_!.routes()).find((x) => x.route === `${ROUTE[0]}.${ROUTE[1]}` && x.ts >= registeredAgain && x.states.overloaded === 1), {
      timeoutMs: 20_000,
      what: 'the console showing the route of the new store',
      explain: async () => JSON.stringify(await console_!.routes()),
    });
  });
});
