import { expect } from 'chai';
import { useCluster, hosts, type TestCluster } from '../helpers/cluster.ts';
import { samplePicks } from '../helpers/traffic.ts';
import { waitFor, waitForEvent } from '../helpers/wait.ts';
import { CutProxy } from '../helpers/proxy.ts';

describe('agents and route nodes come and go (real nats-server)', function () {
  this.timeout(60_000);
  const cluster = useCluster();
  let c: TestCluster;
  beforeEach(() => {
    c = cluster();
  });

  /** Ejects host `ip` of route (m, c) by reporting 15 errors through `agent`. */
  async function eject(m: number, cmd: number, ip: string): Promise<number> {
    const a = await c.agent();
    await a.getRoute(m, cmd);
    for (let i = 0; i < 15; i++) a.report(m, cmd, { ip, port: 8000 }, 1, 1);
    await a.flush();
    const e = await waitForEvent(c.events.subscribe, (x) => x.ip === ip && x.modid === m && x.cmdid === cmd && x.to === 'overloaded', { what: `${ip} ejected` });
    return e.version;
  }

  it('agent - an agent started late has the current route at once', async () => {
    await c.addRoute(5, 1, hosts(4), 'default', { base_ejection_time: 60 });
    await waitFor(() => c.node!.route(5, 1));
    const version = await eject(5, 1, '10.0.0.2');
    await c.node!.settled();
    const late = await c.agent();
    const route = await late.getRoute(5, 1);
    expect(route, 'route state on first use').to.not.equal(undefined);
    expect(route!.version).to.be.at.least(version);
    expect(route!.hosts.find((h) => h.ip === '10.0.0.2')!.state).to.equal('overloaded');
    const picks = samplePicks(late, 5, 1, 1000);
    expect(picks.get('10.0.0.2:8000') ?? 0).to.equal(0);
    expect([...picks.keys()].sort()).to.deep.equal(['10.0.0.1:8000', '10.0.0.3:8000', '10.0.0.4:8000']);
  });

  it('agent - an unknown route answers NO_ROUTE, and a route registered later is picked up', async () => {
    const a = await c.agent({ loadTimeoutMs: 500 });
    const h = await a.getHost(77, 1);
    expect(h).to.include({ ok: false, code: 'NO_ROUTE' });
    await c.addRoute(77, 1, hosts(2));
    await waitFor(() => a.pick(77, 1).ok, { what: 'route reaching the agent' });
  });

  it('agent - cut off from NATS it keeps picking from its cache and catches up after reconnect', async () => {
    await c.addRoute(6, 1, hosts(3), 'default', { drain_time: 60 });
    await waitFor(() => c.node!.route(6, 1));
    const proxy = await new CutProxy(c.server.port).start();
    try {
      const a = await c.agent({ servers: proxy.url });
      const before = await a.getRoute(6, 1);
      expect(before!.hosts).to.have.length(3);
      proxy.cut();
      await waitFor(() => !a.isConnected(), { what: 'agent disconnected', timeoutMs: 5000 });
      // the route changes while the agent cannot hear it
      await c.registry.removeHosts(6, 1, ['10.0.0.1:8000'], 'test');
      const drained = await waitForEvent(c.states.subscribe, (s) => s.modid === 6 && s.hosts.some((h) => h.ip === '10.0.0.1' && h.state === 'draining'), { what: 'drain published' });
      // still picking from the cache, all three hosts
      const cached = samplePicks(a, 6, 1, 300);
      expect(cached.size).to.equal(3);
      expect((await a.getRoute(6, 1))!.version).to.be.lessThan(drained.version);
      proxy.restore();
      await waitFor(async () => (await a.getRoute(6, 1))!.version >= drained.version, { what: 'agent caught up', timeoutMs: 15_000 });
      const after = samplePicks(a, 6, 1, 300);
      expect(after.get('10.0.0.1:8000') ?? 0, 'drained host picked after reconnect').to.equal(0);
      expect(a.stats().resyncs).to.be.at.least(1);
    } finally {
      await proxy.stop();
    }
  });

  it('node - a restarted route node restores routes from the registry and resumes their state', async () => {
    await c.addRoute(7, 1, hosts(4), 'default', { base_ejection_time: 60 });
    await waitFor(() => c.node!.route(7, 1));
    const version = await eject(7, 1, '10.0.0.4');
    const watcher = await c.agent();
    await waitFor(async () => (await watcher.getRoute(7, 1))!.version >= version);
    await c.node!.settled();
    await c.stopNode();
    // agents keep serving while no node runs
    expect(samplePicks(watcher, 7, 1, 100).get('10.0.0.4:8000') ?? 0).to.equal(0);
    await c.startNode();
    const restored = c.node!.route(7, 1);
    expect(restored, 'route restored from the registry').to.not.equal(undefined);
    expect(restored!.host('10.0.0.4:8000')!.state, 'ejection survives the restart').to.equal('overloaded');
    await waitFor(async () => (await watcher.getRoute(7, 1))!.version > version, { what: 'new node publishing' });
    const st = (await watcher.getRoute(7, 1))!;
    expect(st.hosts.find((h) => h.ip === '10.0.0.4')!.state).to.equal('overloaded');
    expect(st.sender).to.equal(c.node!.nodeId);
    // and the new node takes reports
    const a = await c.agent();
    await a.getRoute(7, 1);
    for (let i = 0; i < 15; i++) a.report(7, 1, { ip: '10.0.0.1', port: 8000 }, 1, 1);
    await a.flush();
    await waitForEvent(c.events.subscribe, (x) => x.modid === 7 && x.ip === '10.0.0.1' && x.to === 'overloaded', { what: 'ejection by the new node' });
  });
});
