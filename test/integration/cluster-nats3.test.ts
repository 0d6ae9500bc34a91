/**
 * The cluster on a real 3-server NATS cluster (Debian's nats-server 2.9.10,
 * clustered JetStream on loopback), under steady report load from agents:
 * - kill -9 of one of three `lars node` processes: its partitions are owned
 *   again within the lease time, its routes continue their versions, and
 *   ClickHouse holds exactly the reports the agents made;
 * - kill -9 of one of the three NATS servers: clients reconnect, no report
 *   is lost, the registry is intact and routes keep reacting; streams and
 *   buckets are R3.
 */
import { expect } from 'chai';
import { rendezvousOwner } from '../../actors/ownership.ts';
import { jetstreamManager } from '@nats-io/jetstream';
import { partitionOf, names, type Names } from '../../schemas/subjects.ts';
import type { NatsConnection } from '../../src/nats/connect.ts';
import { Registry } from '../../src/registry/registry.ts';
import { openBucket } from '../../src/nats/buckets.ts';
import { ensureStream } from '../../src/nats/streams.ts';
import { createAgent, type Agent } from '../../src/agent/agent.ts';
import { NatsCluster } from '../helpers/nats-cluster.ts';
import { PARTITIONS, TEST_CLUSTER_STREAM_LIMITS, hosts, uniquePrefix } from '../helpers/cluster.ts';
import { startChildNode, startLeaseNode, leaseOwners, RouteRecorder, type ChildNode, type LeaseNode } from '../helpers/nodes.ts';
import { agentTotals, createNodeBuckets, ensureStreamsOnCluster, readStoredReports, replicaCounts, startChdbSink, startReportLoad, type ChdbSink, type ReportLoad } from '../helpers/cluster-load.ts';
import { countRows } from '../helpers/clickhouse-server.ts';
import { startTraffic, type Traffic } from '../helpers/traffic.ts';
import { waitFor } from '../helpers/wait.ts';

const LEASE_MS = 1000;
/** The strict bound of the takeover: the lease time plus one second. */
const TAKEOVER_MARGIN_MS = 1000;
const ROUTES: Array<[number, number]> = Array.from({ length: 12 }, (_, i) => [950 + i, 3]);
const ALL = Array.from({ length: PARTITIONS }, (_, p) => p);
const AGENTS = 10;
const SICK_HOST = (m: number): string => `10.${m % 200}.0.2:8000`;

describe('cluster - 3-server NATS cluster (real nats-servers)', function () {
  this.timeout(120_000);
  let cluster: NatsCluster;
  let admin: NatsConnection;
  let n: Names;
  let registry: Registry;
  let agents: Agent[] = [];
  let load: ReportLoad | undefined;
  let burst: Traffic | undefined;
  let children: ChildNode[] = [];
  let nodes: LeaseNode[] = [];
  let sink: ChdbSink | undefined;
  const failing = new Set<string>();

  beforeEach(async () => {
    failing.clear();
    cluster = await NatsCluster.start(3);
    n = names(uniquePrefix());
    admin = await cluster.connect('admin');
    // Small R3 streams first: the nodes' ensureStreams then leaves their limits alone.
    await ensureStreamsOnCluster(admin, n, TEST_CLUSTER_STREAM_LIMITS);
    registry = await Registry.open(admin, n);
    // the nodes' buckets exist before three nodes start at once (racing creates on a cluster are not what is tested here)
    await createNodeBuckets(admin, n, LEASE_MS);
    for (const [m, cmd] of ROUTES) await registry.addHosts(m, cmd, hosts(3, `10.${m % 200}.0.`), 'test', { params: { base_ejection_time: 30 } });
  });

  afterEach(async () => {
    load?.stop();
    load = undefined;
    burst?.stop();
    burst = undefined;
    for (const a of agents) await a.close().catch(() => undefined);
    agents = [];
    await sink?.close();
    sink = undefined;
    for (const ch of children) {
      ch.kill('SIGKILL');
      await ch.exited;
    }
    children = [];
    for (const nd of nodes) await nd.stop().catch(() => undefined);
    nodes = [];
    await admin.close().catch(() => undefined);
    await cluster.close();
  });

  async function startAgents(): Promise<void> {
    for (let i = 0; i < AGENTS; i++) {
      agents.push(await createAgent({ servers: cluster.url, prefix: n.prefix, partitions: PARTITIONS, agentId: `n3-agent-${i}`, strategy: 'swrr', batchMaxDelayMs: 20, ackTimeoutMs: 2000 }));
    }
    await Promise.all(agents.map((a) => a.prepare(ROUTES)));
    // 10 agents × 3 routes × 10 calls/s: about 300 reports/s
    load = startReportLoad(agents, ROUTES, (k) => ({ retcode: failing.has(k) ? 1 : 0, latencyMs: 3 }), { perAgent: 3, callsPerTick: 1, tickMs: 100 });
    await waitFor(() => agents.every((a) => a.stats().ackedBatches >= 5), { timeoutMs: 20_000, what: 'acknowledged report batches from every agent' });
  }

  async function ownedBy(ids: string[], timeoutMs: number): Promise<void> {
    await waitFor(
      async () => {
        const owners = await leaseOwners(admin, n.prefix).catch(() => new Map<number, string>());
        return ALL.every((p) => owners.get(p) === rendezvousOwner(p, ids));
      },
      { timeoutMs, what: `partitions owned by ${ids.join(', ')}`, intervalMs: 20 },
    );
  }

  /** Stops the load, waits for every agent's batches to be acknowledged; the reports made. */
  async function stopAndFlush(): Promise<number> {
    load!.stop();
    await Promise.all(agents.map((a) => a.flush({ timeoutMs: 30_000 })));
    const t = agentTotals(agents);
    expect(t.dropped, 'dropped reports').to.equal(0);
    expect(t.pending, 'pending reports').to.equal(0);
    return t.reports;
  }

  it('nats3 - kill -9 of one of three route nodes under load: its partitions are owned again within the lease time, its routes continue, ClickHouse holds every report made', async () => {
    const ids = ['n3-a', 'n3-b', 'n3-c'];
    const rec = await RouteRecorder.start(admin, n);
    sink = await startChdbSink(await cluster.connect('sink'), n);
    children = ids.map((id) => startChildNode(cluster.url, n.prefix, id, LEASE_MS));
    await waitFor(
      async () => {
        for (const ch of children) if (ch.child.exitCode !== null) throw new Error(`${ch.id} exited: ${ch.output()}`);
        const owners = await leaseOwners(admin, n.prefix).catch(() => new Map<number, string>());
        return ALL.every((p) => owners.get(p) === rendezvousOwner(p, ids));
      },
      { timeoutMs: 30_000, what: 'three nodes sharing the partitions' },
    );
    await startAgents();
    for (const [m, cmd] of ROUTES) {
      const owner = rendezvousOwner(partitionOf(m, cmd, PARTITIONS), ids);
      await waitFor(() => rec.of(m, cmd).some((s) => s.sender === owner), { timeoutMs: 15_000, what: `${m}.${cmd} published by ${owner}` });
    }

    const victimId = rendezvousOwner(partitionOf(ROUTES[0]![0], ROUTES[0]![1], PARTITIONS), ids)!;
    const victim = children.find((ch) => ch.id === victimId)!;
    const survivors = ids.filter((id) => id !== victimId);
    const parts = ALL.filter((p) => rendezvousOwner(p, ids) === victimId);
    const victimRoutes = ROUTES.filter(([m, cmd]) => parts.includes(partitionOf(m, cmd, PARTITIONS)));
    const before = new Map(victimRoutes.map(([m, cmd]) => [`${m}.${cmd}`, Math.max(...rec.of(m, cmd).map((s) => s.version))]));

    const t0 = Date.now();
    victim.kill('SIGKILL');
    await victim.exited;
    await ownedBy(survivors, LEASE_MS + TAKEOVER_MARGIN_MS + 10_000);
    const takeoverMs = Date.now() - t0;
    console.log(`      kill -9 of ${victimId}: ${parts.length} partitions owned again after ${takeoverMs} ms (lease ${LEASE_MS} ms)`);
    expect(takeoverMs, 'takeover, ms').to.be.at.most(LEASE_MS + TAKEOVER_MARGIN_MS);

    // every route of the dead node's partitions: a newer version from its new owner
    for (const [m, cmd] of victimRoutes) {
      const k = `${m}.${cmd}`;
      const s = await waitFor(() => rec.of(m, cmd).find((x) => x.at >= t0 && x.sender !== victimId && x.version > before.get(k)!), { timeoutMs: 10_000, what: `${k} updated by its new owner` });
      expect(s.sender).to.equal(rendezvousOwner(partitionOf(m, cmd, PARTITIONS), survivors));
      expect(s.pickable, `${k} pickable hosts`).to.equal(3);
    }
    // the load goes on after the takeover, acknowledged
    const ackedAfter = agents.map((a) => a.stats().ackedBatches);
    await waitFor(() => agents.every((a, i) => a.stats().ackedBatches >= ackedAfter[i]! + 10), { timeoutMs: 20_000, what: 'acknowledged reports after the takeover' });
    expect(load!.failedPicks(), 'failed picks').to.equal(0);

    const made = await stopAndFlush();
    let rows = 0;
    await waitFor(
      async () => {
        rows = await countRows(sink!.engine, 'reports');
        return rows >= made;
      },
      { timeoutMs: 30_000, what: 'every report in ClickHouse', intervalMs: 200 },
    ).catch((err: unknown) => {
      throw new Error(`${(err as Error).message}: ${rows} rows of ${made} reports`);
    });
    console.log(`      ${made} reports made, ${rows} rows stored`);
    expect(rows, 'rows in ClickHouse').to.equal(made);
    expect(rec.backwards()).to.deep.equal([]);
  });

  it('nats3 - kill -9 of one of three NATS servers under load: clients reconnect, no report is lost, the registry is intact, routes keep reacting; streams and buckets are R3', async () => {
    const ids = ['s3-a', 's3-b', 's3-c'];
    const rec = await RouteRecorder.start(admin, n);
    for (const id of ids) nodes.push(await startLeaseNode(cluster.url, n.prefix, id, { leaseMs: LEASE_MS }));
    await ownedBy(ids, 30_000);
    await startAgents();
    for (const [m, cmd] of ROUTES) await waitFor(() => rec.of(m, cmd).length > 0, { timeoutMs: 15_000, what: `${m}.${cmd} published` });

    const replicas = await replicaCounts(admin, n);
    expect(Object.keys(replicas)).to.have.length(7);
    expect(replicas, 'replicas of every stream and bucket').to.deep.equal(Object.fromEntries(Object.keys(replicas).map((k) => [k, 3])));

    // the server leading the reports stream: the hardest one to lose
    const jsm = await jetstreamManager(admin);
    const leader = (await jsm.streams.info(n.reportsStream)).cluster?.leader ?? '';
    const victim = Math.max(0, Array.from({ length: cluster.size }, (_, i) => i).findIndex((i) => leader.endsWith(`-n${i}`)));
    const acked = agents.map((a) => a.stats().ackedBatches);
    const versionsAt = new Map(ROUTES.map(([m, cmd]) => [`${m}.${cmd}`, Math.max(...rec.of(m, cmd).map((s) => s.version))]));
    const t0 = Date.now();
    cluster.kill(victim);
    console.log(`      killed nats-server ${victim} (reports stream leader ${leader})`);

    // every agent acknowledged again: reconnected (where it was on the dead server) and the stream has a leader
    await waitFor(() => agents.every((a, i) => a.isConnected() && a.stats().ackedBatches >= acked[i]! + 10), { timeoutMs: 30_000, what: 'acknowledgements after the kill', intervalMs: 50 });
    console.log(`      every agent acknowledged again ${Date.now() - t0} ms after the kill`);

    // a host failing now is ejected: the nodes still judge reports
    const [m0, c0] = ROUTES[0]!;
    const sick = SICK_HOST(m0);
    failing.add(sick);
    // enough calls on that route for consecutive errors within a second
    burst = startTraffic(agents[0]!, m0, c0, (k) => ({ retcode: failing.has(k) ? 1 : 0, latencyMs: 3 }), { callsPerTick: 5, tickMs: 20 });
    const ej = await waitFor(() => rec.of(m0, c0).find((s) => s.at >= t0 && s.ejected.includes(sick) && s.version > versionsAt.get(`${m0}.${c0}`)!), { timeoutMs: 20_000, what: 'the failing host ejected after the kill' }).catch(async (err: unknown) => {
      const owners = await leaseOwners(admin, n.prefix).catch(() => new Map<number, string>());
      const last = rec.of(m0, c0).slice(-5).map((s) => `v${s.version} ${s.sender} ejected [${s.ejected.join(' ')}] +${s.at - t0} ms`);
      throw new Error(`${(err as Error).message}; leases ${JSON.stringify([...owners])}; last states ${last.join('; ')}; served ${nodes.map((nd) => `${nd.id}:${nd.node.servedPartitions().join(',')}`).join(' ')}`);
    });
    burst.stop();
    expect(ids).to.include(ej.sender);

    const made = await stopAndFlush();
    expect(burst.noHost + load!.failedPicks(), 'failed picks').to.equal(0);
    const stored = await readStoredReports(admin, n);
    console.log(`      ${made} reports made, ${stored.reports} in the stream (${stored.batches.size} batches, ${stored.messages} messages)`);
    expect(stored.reports, 'reports in the stream').to.equal(made);
    expect(stored.batches.size).to.equal(agentTotals(agents).batches);
    expect(stored.messages, 'each batch stored once').to.equal(stored.batches.size);

    // the registry is intact: every route readable with its hosts
    for (const [m, cmd] of ROUTES) {
      const r = await registry.get(m, cmd);
      expect(r?.entry.hosts.map((h) => `${h.ip}:${h.port}`).sort(), `${m}.${cmd} in the registry`).to.deep.equal(hosts(3, `10.${m % 200}.0.`).map((h) => `${h.ip}:${h.port}`).sort());
    }
    expect(rec.backwards()).to.deep.equal([]);
  });

  it('nats3 - a bucket or stream asked for while a server is still missing from the cluster is created once it is back (no suitable peers is waited out)', async () => {
    await cluster.stop(2);
    // the JetStream meta leader may have been the stopped server: wait for the other two to elect one
    await cluster.waitReady();
    const jsm = await jetstreamManager(admin);
    // what a node starting first would hear
    const refused = await jsm.streams.add({ name: `${n.prefix}_probe`, subjects: [`${n.prefix}.probe`], num_replicas: 3 }).catch((e: unknown) => e as { code?: number; message?: string });
    expect(refused, 'an R3 create with a server missing must be refused').to.have.property('code', 10005);
    const bucket = openBucket(admin, `${n.prefix}_late`, 1, { replicas: 3 });
    const stream = ensureStream(jsm, { name: `${n.prefix}_LATE`, subjects: [`${n.prefix}.late`], num_replicas: 3 });
    let settled = false;
    void Promise.allSettled([bucket, stream]).then(() => (settled = true));
    await jsm.streams.info(`${n.prefix}_LATE`).catch(() => undefined); // a round trip: a create that gave up has settled by now
    expect(settled, 'still waiting for the missing server').to.equal(false);
    await cluster.restart(2);
    const [kv, info] = await Promise.all([bucket, stream]);
    expect((await kv.status()).replicas).to.equal(3);
    expect(info.config.num_replicas).to.equal(3);
  });
});
