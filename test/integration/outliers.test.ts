import { expect } from 'chai';
import { useCluster, hosts, type TestCluster } from '../helpers/cluster.ts';
import { startTraffic, samplePicks } from '../helpers/traffic.ts';
import { waitFor, waitForEvent } from '../helpers/wait.ts';
import type { RouteState } from '../../schemas/messages.ts';

describe('latency outliers, ejection cap and panic (real nats-server)', function () {
  this.timeout(60_000);
  const cluster = useCluster();
  let c: TestCluster;
  beforeEach(() => {
    c = cluster();
  });

  it('outlier - a host 20x slower than its peers is ejected in the default profile, not in lars', async () => {
    await c.addRoute(10, 1, hosts(5), 'default');
    await c.addRoute(10, 2, hosts(5), 'lars');
    await waitFor(() => c.node!.route(10, 1) && c.node!.route(10, 2));
    // the node's rules under traffic spread by weight (p2c_ewma would avoid the slow host by itself)
    const a = await c.agent({ strategy: 'swrr' });
    await a.prepare([[10, 1], [10, 2]]);
    const slow = (k: string) => ({ retcode: 0, latencyMs: k === '10.0.0.1:8000' ? 200 : 10 });
    const t1 = startTraffic(a, 10, 1, slow, { callsPerTick: 20 });
    const t2 = startTraffic(a, 10, 2, slow, { callsPerTick: 20 });
    try {
      const e = await waitForEvent(c.events.subscribe, (x) => x.modid === 10 && x.cmdid === 1 && x.to === 'overloaded', { what: 'latency ejection', timeoutMs: 15_000 });
      expect(e).to.include({ ip: '10.0.0.1', reason: 'latency_outlier' });
      expect(e.figures.latency_ms).to.be.greaterThan(100);
      expect(e.figures.peer_latency_ms).to.be.lessThan(20);
      // the lars route saw at least as many slow calls and did nothing
      const larsRoute = c.node!.route(10, 2)!;
      await waitFor(() => larsRoute.host('10.0.0.1:8000')!.latCalls >= 100, { what: 'lars route taking reports' });
      expect(larsRoute.hosts().every((h) => h.state === 'healthy')).to.equal(true);
      expect(c.events.items.filter((x) => x.modid === 10 && x.cmdid === 2 && x.from !== 'none')).to.have.length(0);
      // agents stop sending to the slow host on the default route
      await waitFor(async () => (await a.getRoute(10, 1))!.version >= e.version);
      const picks = samplePicks(a, 10, 1, 1000);
      const st = (await a.getRoute(10, 1))!;
      if (st.hosts.find((h) => h.ip === '10.0.0.1')!.state === 'overloaded') expect(picks.get('10.0.0.1:8000') ?? 0).to.equal(0);
    } finally {
      t1.stop();
      t2.stop();
    }
  });

  it('panic - with 4 of 5 hosts failing, at most max_ejection_percent are ejected and traffic spreads over all', async () => {
    await c.addRoute(11, 1, hosts(5), 'default', { max_ejection_percent: 40, panic_threshold: 50, base_ejection_time: 30 });
    await waitFor(() => c.node!.route(11, 1));
    // spreading by weight in panic is swrr's (p2c_ewma still prefers the hosts that answer)
    const a = await c.agent({ strategy: 'swrr' });
    await a.getRoute(11, 1);
    const t = startTraffic(a, 11, 1, (k) => ({ retcode: k === '10.0.0.5:8000' ? 0 : 1, latencyMs: 3 }), { callsPerTick: 30 });
    try {
      await waitForEvent<RouteState>(c.states.subscribe, (s) => s.modid === 11 && s.panic, { what: 'panic', timeoutMs: 15_000 });
      // keep the failures flowing a while longer: the cap must hold throughout
      const callsAtPanic = t.calls;
      await waitFor(() => t.calls > callsAtPanic + 3000, { what: 'calls under panic' });
      const states = c.states.items.filter((s) => s.modid === 11 && s.cmdid === 1);
      expect(states.length).to.be.greaterThan(1);
      for (const s of states) {
        const ejected = s.hosts.filter((h) => h.state === 'overloaded' || h.state === 'probing').length;
        expect(ejected, `ejected hosts in version ${s.version}`).to.be.at.most(2); // floor(5 * 40%)
      }
      const maxEjected = Math.max(...states.map((s) => s.hosts.filter((h) => h.state === 'overloaded').length));
      expect(maxEjected).to.equal(2);
      // panic: every host has its full weight and agents spread evenly
      const st = (await a.getRoute(11, 1))!;
      expect(st.panic).to.equal(true);
      expect(st.hosts.map((h) => h.pick_weight)).to.deep.equal([100, 100, 100, 100, 100]);
      const picks = samplePicks(a, 11, 1, 5000);
      expect(picks.size).to.equal(5);
      for (const [k, n] of picks) expect(n / 5000, `share of ${k}`).to.be.within(0.15, 0.25);
    } finally {
      t.stop();
    }
  });
});
