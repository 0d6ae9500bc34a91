import { expect } from 'chai';
import { useCluster, hosts, type TestCluster } from '../helpers/cluster.ts';
import { startTraffic, samplePicks, type Traffic } from '../helpers/traffic.ts';
import { waitFor, waitForEvent } from '../helpers/wait.ts';
import { startGarbageFlood } from '../helpers/garbage.ts';
import type { RouteEvent } from '../../schemas/messages.ts';

const M = 1;
const C = 1;
const SICK = '10.0.0.3:8000';

/**
 * Five hosts, three agents picking and reporting under load. One host fails
 * 100% → every agent stops picking it; it recovers → it comes back through
 * probing. Returns the events of the sick host.
 */
async function faultScenario(c: TestCluster): Promise<RouteEvent[]> {
  await c.addRoute(M, C, hosts(5), 'default', { base_ejection_time: 1, probe_succ_limit: 5 });
  await waitFor(() => c.node!.route(M, C), { what: 'route loaded on the node' });
  // traffic spread by weight, so the node judges the host (p2c_ewma would avoid it by itself)
  const agents = await Promise.all([c.agent({ strategy: 'swrr' }), c.agent({ strategy: 'swrr' }), c.agent({ strategy: 'swrr' })]);
  for (const a of agents) expect((await a.getHost(M, C)).ok).to.equal(true);
  let failing = false;
  const traffic: Traffic[] = agents.map((a) =>
    startTraffic(a, M, C, (k) => ({ retcode: failing && k === SICK ? 1 : 0, latencyMs: 5 }), { callsPerTick: 25, tickMs: 5 }),
  );
  try {
    await waitFor(() => traffic.every((t) => (t.picks.get(SICK) ?? 0) > 20), { what: 'traffic reaching every host' });

    failing = true;
    const ejected = await waitForEvent(c.events.subscribe, (e) => `${e.ip}:${e.port}` === SICK && e.to === 'overloaded', { what: 'ejection event', timeoutMs: 10_000 });
    expect(ejected.from).to.equal('healthy');
    expect(['consecutive_errors', 'error_rate']).to.include(ejected.reason);
    // every agent holds a route without the sick host and stops picking it
    for (const a of agents) {
      await waitFor(async () => (await a.getRoute(M, C))!.version >= ejected.version, { what: 'agent has the ejection' });
      const route = (await a.getRoute(M, C))!;
      const h = route.hosts.find((x) => `${x.ip}:${x.port}` === SICK)!;
      if (h.state === 'overloaded') {
        const picks = samplePicks(a, M, C, 5000);
        expect(picks.get(SICK) ?? 0, 'picks of an ejected host').to.equal(0);
        expect(picks.size).to.equal(4);
      }
    }

    failing = false;
    const back = await waitForEvent(c.events.subscribe, (e) => `${e.ip}:${e.port}` === SICK && e.to === 'healthy' && e.version > ejected.version, { what: 'recovery event', timeoutMs: 15_000 });
    expect(back.from).to.equal('probing');
    expect(back.reason).to.equal('probe_success');
    for (const t of traffic) t.reset();
    await waitFor(() => traffic.every((t) => (t.picks.get(SICK) ?? 0) > 20), { what: 'every agent picking the host again' });
    return c.events.items.filter((e) => `${e.ip}:${e.port}` === SICK);
  } finally {
    for (const t of traffic) t.stop();
  }
}

describe('fault scenario (real nats-server)', function () {
  this.timeout(60_000);
  const cluster = useCluster();
  let c: TestCluster;
  beforeEach(() => {
    c = cluster();
  });

  it('fault - a failing host is ejected by every agent and comes back through probing', async () => {
    const events = await faultScenario(c);
    const path = events.map((e) => `${e.from}>${e.to}`);
    expect(path[0]).to.equal('none>healthy');
    expect(path).to.include('healthy>overloaded');
    expect(path).to.include('overloaded>probing');
    expect(path.at(-1)).to.equal('probing>healthy');
    for (const e of events) expect(e.reason).to.be.a('string').and.not.equal('');
  });

  it('fault - the scenario passes while garbage floods every subject, and every kind is counted', async () => {
    // a second, healthy route that must keep serving
    await c.addRoute(2, 2, hosts(3, '10.1.0.'));
    const flood = await startGarbageFlood(await c.connection(), c.n, { modid: M, cmdid: C });
    try {
      await faultScenario(c);
    } finally {
      await flood.stop();
    }
    const rejects = c.node!.stats().rejects;
    for (const kind of ['malformed', 'wrong_type', 'out_of_range', 'oversize', 'unknown_route', 'subject_mismatch', 'bad_version', 'unknown_host']) {
      expect(rejects[kind] ?? 0, `node rejects of kind ${kind}`).to.be.greaterThan(0);
    }
    // agents dropped the garbage published on route subjects
    const agentRejects = c.agents.map((a) => a.stats().rejects);
    expect(agentRejects.some((r) => (r['malformed'] ?? 0) > 0)).to.equal(true);
    // the other route still answers
    const a = await c.agent();
    const h = await a.getHost(2, 2);
    expect(h.ok).to.equal(true);
    expect(c.node!.route(2, 2)!.hosts().every((x) => x.state === 'healthy')).to.equal(true);
  });
});
