import { expect } from 'chai';
import { startNatsServer, type NatsServer } from '../../src/nats/natsd.ts';
import { bindBucket } from '../../src/nats/buckets.ts';
import { rendezvousOwner } from '../../actors/ownership.ts';
import { partitionOf } from '../../schemas/subjects.ts';
import { clusterNames } from '../../src/cluster/index.ts';
import { decodeLease } from '../../src/cluster/leases.ts';
import { TestCluster, PARTITIONS, hosts } from '../helpers/cluster.ts';
import { startChildNode, leaseOwners, RouteRecorder, type ChildNode } from '../helpers/nodes.ts';
import { startTraffic, type Traffic } from '../helpers/traffic.ts';
import { waitFor } from '../helpers/wait.ts';

const LEASE_MS = 1000;
/** Member TTL (3 heartbeats of 250 ms), evaluation period and process scheduling. */
const MARGIN_MS = 1500;
const ROUTES: Array<[number, number]> = Array.from({ length: 12 }, (_, i) => [900 + i, 2]);
const ALL = Array.from({ length: PARTITIONS }, (_, p) => p);
const IDS = ['fo-a', 'fo-b', 'fo-c'];
const SICK_HOST = (m: number): string => `10.${m % 200}.0.3:8000`;

interface LeaseSeen {
  partition: number;
  owner: string | undefined;
  revision: number;
  /** Index into the route recorder's list when this lease revision arrived. */
  at: number;
  /** When the server stored it (its clock; the nodes run on the same machine). */
  created: number;
}

describe('cluster - failover between `lars node` processes', function () {
  this.timeout(90_000);
  let server: NatsServer;
  let c: TestCluster;
  let children: ChildNode[] = [];
  let traffic: Traffic[] = [];
  const failing = new Set<string>();

  before(async () => {
    server = await startNatsServer();
  });
  after(async () => {
    await server.stop();
  });
  beforeEach(async () => {
    failing.clear();
    const proc = server.process;
    if (proc.exitCode !== null || proc.signalCode !== null) {
      // The suite's nats-server died between tests (seen once in a full run, cause not found): say so, start it again.
      console.warn(`      the suite's nats-server exited (code ${String(proc.exitCode)}, signal ${String(proc.signalCode)}); restarting it. Its log ends:\n${server.log().slice(-6000)}`);
      server = await server.restart();
    }
    c = await TestCluster.start(server);
    for (const [m, cmd] of ROUTES) await c.addRoute(m, cmd, hosts(3, `10.${m % 200}.0.`), 'default', { base_ejection_time: 30 });
  });
  afterEach(async () => {
    for (const t of traffic) t.stop();
    traffic = [];
    for (const ch of children) {
      ch.kill('SIGCONT');
      ch.kill('SIGKILL');
      await ch.exited;
    }
    children = [];
    await c.stop(true);
  });

  async function startAll(): Promise<{ rec: RouteRecorder; leases: LeaseSeen[] }> {
    const rec = await RouteRecorder.start(c.nc, c.n);
    children = IDS.map((id) => startChildNode(c.server.url, c.prefix, id, LEASE_MS));
    await waitFor(
      async () => {
        for (const ch of children) if (ch.child.exitCode !== null) throw new Error(`${ch.id} exited: ${ch.output()}`);
        const owners = await leaseOwners(c.nc, c.prefix).catch(() => new Map<number, string>());
        return ALL.every((p) => owners.get(p) === rendezvousOwner(p, IDS));
      },
      {
        timeoutMs: 30_000,
        what: 'three nodes sharing the partitions',
        explain: async () => {
          const owners = await leaseOwners(c.nc, c.prefix).catch((e: unknown) => String(e));
          const held = typeof owners === 'string' ? owners : ALL.map((p) => `${p}:${owners.get(p) ?? '-'}/${rendezvousOwner(p, IDS) ?? '?'}`).join(' ');
          return `leases (held/wanted) ${held}; nats-server ${server.process.exitCode === null ? 'up' : `exited ${String(server.process.exitCode)}`}\n${children.map((ch) => `--- ${ch.id}:\n${ch.output().slice(-3000)}`).join('\n')}`;
        },
      },
    );
    // Lease revisions in arrival order on the same connection as the route states.
    const cn = clusterNames(c.prefix);
    const kv = (await bindBucket(c.nc, cn.leasesBucket))!;
    const leases: LeaseSeen[] = [];
    const w = await kv.watch({ key: '>' });
    void (async () => {
      for await (const e of w) {
        const p = cn.leasePartition(e.key);
        if (p !== undefined) leases.push({ partition: p, owner: decodeLease(e)?.node, revision: e.revision, at: rec.seen.length, created: e.created.getTime() });
      }
    })();
    // steady load on every route from one agent (swrr: the node, not the agent, is what judges the failing host)
    const agent = await c.agent({ strategy: 'swrr' });
    await agent.prepare(ROUTES);
    for (const [m, cmd] of ROUTES) traffic.push(startTraffic(agent, m, cmd, (k) => ({ retcode: failing.has(k) ? 1 : 0, latencyMs: 3 }), { callsPerTick: 5, tickMs: 20 }));
    for (const [m, cmd] of ROUTES) {
      const owner = rendezvousOwner(partitionOf(m, cmd, PARTITIONS), IDS);
      await waitFor(() => rec.of(m, cmd).some((s) => s.sender === owner), { timeoutMs: 15_000, what: `${m}.${cmd} published by ${owner}` });
    }
    return { rec, leases };
  }

  /** The route whose partition's owner is the victim, the victim, and the partitions it owns. */
  function pickVictim(): { route: [number, number]; victim: ChildNode; parts: number[] } {
    const route = ROUTES[0]!;
    const owner = rendezvousOwner(partitionOf(route[0], route[1], PARTITIONS), IDS)!;
    return { route, victim: children.find((ch) => ch.id === owner)!, parts: ALL.filter((p) => rendezvousOwner(p, IDS) === owner) };
  }

  function lastVersions(rec: RouteRecorder, parts: number[]): Map<string, number> {
    const out = new Map<string, number>();
    for (const [m, cmd] of ROUTES) {
      if (!parts.includes(partitionOf(m, cmd, PARTITIONS))) continue;
      out.set(`${m}.${cmd}`, Math.max(...rec.of(m, cmd).map((s) => s.version)));
    }
    return out;
  }

  it('cluster - kill -9 of a node under load: its partitions are owned again within the lease time, its routes continue their versions, and a host failing after the kill is ejected', async () => {
    const { rec } = await startAll();
    const { route, victim, parts } = pickVictim();
    const survivors = IDS.filter((id) => id !== victim.id);
    const before = lastVersions(rec, parts);
    const t0 = Date.now();
    victim.kill('SIGKILL');
    await victim.exited;
    await waitFor(
      async () => {
        const owners = await leaseOwners(c.nc, c.prefix);
        return parts.every((p) => owners.get(p) === rendezvousOwner(p, survivors));
      },
      { timeoutMs: LEASE_MS + MARGIN_MS + 5000, what: 'the dead node partitions owned again', intervalMs: 20 },
    );
    const takeoverMs = Date.now() - t0;
    console.log(`      kill -9: ${parts.length} partitions owned again after ${takeoverMs} ms (lease ${LEASE_MS} ms)`);
    expect(takeoverMs).to.be.below(LEASE_MS + MARGIN_MS);
    for (const [k, v] of before) {
      const [m, cmd] = k.split('.').map(Number) as [number, number];
      const first = await waitFor(() => rec.of(m, cmd).find((s) => s.sender !== victim.id && s.at >= t0), { timeoutMs: 10_000, what: `${k} published by its new owner` });
      expect(first.sender).to.equal(rendezvousOwner(partitionOf(m, cmd, PARTITIONS), survivors));
      expect(first.version, `${k} continues after ${v}`).to.be.greaterThan(v);
      expect(first.pickable, `${k} pickable hosts`).to.equal(3);
    }
    // a host failing now is ejected by the new owner
    const sick = SICK_HOST(route[0]);
    failing.add(sick);
    const ejected = await waitFor(() => rec.of(route[0], route[1]).find((s) => s.at >= t0 && s.ejected.includes(sick)), { timeoutMs: 10_000, what: 'the failing host ejected' });
    expect(ejected.sender).to.not.equal(victim.id);
    expect(rec.backwards()).to.deep.equal([]);
  });

  it('cluster - a stalled owner (SIGSTOP past its lease) is taken over and, woken, publishes no stale route state', async () => {
    const { rec, leases } = await startAll();
    const { route, victim, parts } = pickVictim();
    const survivors = IDS.filter((id) => id !== victim.id);
    const t0 = Date.now();
    victim.kill('SIGSTOP');
    await waitFor(
      async () => {
        const owners = await leaseOwners(c.nc, c.prefix);
        return parts.every((p) => owners.get(p) === rendezvousOwner(p, survivors));
      },
      { timeoutMs: LEASE_MS + MARGIN_MS + 5000, what: 'the stalled node partitions taken over', intervalMs: 20 },
    );
    // the new owners publish; the first version each publishes is the bar
    const firstNew = new Map<string, number>();
    for (const [m, cmd] of ROUTES) {
      if (!parts.includes(partitionOf(m, cmd, PARTITIONS))) continue;
      const s = await waitFor(() => rec.of(m, cmd).find((x) => x.sender !== victim.id && x.at >= t0), { timeoutMs: 10_000, what: `${m}.${cmd} published by its new owner` });
      firstNew.set(`${m}.${cmd}`, s.version);
    }
    const takeoverIdx = rec.seen.length;
    // reports arriving while it sleeps would eject a host on the stalled node: it has something to publish when it wakes
    failing.add(SICK_HOST(route[0]));
    await waitFor(() => rec.of(route[0], route[1]).some((s) => s.ejected.includes(SICK_HOST(route[0])) && s.sender !== victim.id), { timeoutMs: 10_000, what: 'the new owner ejecting the host' });
    victim.kill('SIGCONT');
    // woken, it finds out it lost the leases, rejoins and gets its partitions back by handover
    await waitFor(() => /partitions? lost/.test(victim.output()), { timeoutMs: 10_000, what: 'the woken node dropping its partitions' });
    await waitFor(
      async () => {
        const owners = await leaseOwners(c.nc, c.prefix);
        return ALL.every((p) => owners.get(p) === rendezvousOwner(p, IDS));
      },
      { timeoutMs: 15_000, what: 'the woken node owning its partitions again' },
    );
    await waitFor(() => rec.of(route[0], route[1]).some((s) => s.sender === victim.id && s.at > t0), { timeoutMs: 10_000, what: 'the woken node publishing as the owner again' });
    const stale: string[] = [];
    for (let i = takeoverIdx; i < rec.seen.length; i++) {
      const s = rec.seen[i]!;
      if (s.sender !== victim.id) continue;
      const k = `${s.modid}.${s.cmdid}`;
      const p = partitionOf(s.modid, s.cmdid, PARTITIONS);
      // Taken back before this state was published: the node publishes only once its lease write is stored. (Arrival order
      // says nothing: the lease reaches this watch through a consumer, the state straight from the node.)
      const reacquired = leases.find((l) => l.partition === p && l.owner === victim.id && l.revision > 0 && l.at >= takeoverIdx && l.created <= s.ts);
      const bar = firstNew.get(k);
      if (bar !== undefined && s.version > bar && !reacquired) stale.push(`${k} v${s.version} before the node took the lease back`);
      const newer = rec.seen.slice(takeoverIdx, i).filter((x) => x.modid === s.modid && x.cmdid === s.cmdid && x.sender !== victim.id);
      if (newer.some((x) => x.version >= s.version)) stale.push(`${k} v${s.version} not above the new owner's`);
    }
    expect(stale).to.deep.equal([]);
    expect(rec.backwards()).to.deep.equal([]);
  });
});
