import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { startNatsServer, type NatsServer } from '../../src/nats/natsd.ts';
import { connectNats, type NatsConnection } from '../../src/nats/connect.ts';
import { RouteNode } from '../../src/node/route-node.ts';
import { closeConnection } from '../../src/lib/lifecycle.ts';
import { createRegistry, registerAgentMetrics, serveNodeHttp, OTHER_ROUTES, type ProcessHttp } from '../../src/cli/metrics.ts';
import { parsePrometheusText, sampleValue, type ParsedFamily } from '../helpers/metrics-parse.ts';
import { silentLogger } from '../../src/lib/log.ts';
import { partitionOf } from '../../schemas/subjects.ts';
import { TestCluster, PARTITIONS, hosts } from '../helpers/cluster.ts';
import { startTraffic } from '../helpers/traffic.ts';
import { waitFor, waitForEvent } from '../helpers/wait.ts';

async function get(port: number, path: string): Promise<{ status: number; type: string; body: string }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: res.status, type: res.headers.get('content-type') ?? '', body: await res.text() };
}

async function scrape(port: number): Promise<Map<string, ParsedFamily>> {
  const r = await get(port, '/metrics');
  expect(r.status).to.equal(200);
  expect(r.type).to.match(/^text\/plain; version=0\.0\.4/);
  return parsePrometheusText(r.body);
}

describe('metrics - route node /metrics, /healthz and /readyz (real nats-server)', function () {
  this.timeout(60_000);
  let server: NatsServer;
  let c: TestCluster;
  let nodeNc: NatsConnection;
  let node: RouteNode | undefined;
  let web: ProcessHttp<RouteNode> | undefined;

  before(async () => {
    server = await startNatsServer();
  });
  after(async () => {
    await server.stop();
  });
  beforeEach(async () => {
    c = await TestCluster.start(server);
    nodeNc = await connectNats({ url: server.url, name: 'metrics-node' });
  });
  afterEach(async () => {
    await web?.close();
    web = undefined;
    await node?.close();
    node = undefined;
    await closeConnection(nodeNc);
    await c.stop(true);
  });

  async function startNode(metrics: boolean, topRoutes?: number): Promise<number> {
    web = await serveNodeHttp({ settings: { port: 0, metrics }, nc: nodeNc, log: silentLogger(), labels: { node: 'n1' }, topRoutes });
    // Served before the node runs: alive, not ready.
    expect((await get(web.port, '/healthz')).status).to.equal(200);
    const early = await get(web.port, '/readyz');
    expect(early.status).to.equal(503);
    expect(JSON.parse(early.body)).to.deep.include({ reason: 'routes loading' });
    node = await RouteNode.start({ nc: nodeNc, nodeId: `node-${randomBytes(2).toString('hex')}`, prefix: c.prefix, partitions: PARTITIONS, tickMs: 25, log: silentLogger() });
    await web.attach(node);
    return web.port;
  }

  it('metrics - /metrics parses as Prometheus text and its counters follow reports, rejections, transitions and ejections', async () => {
    await c.addRoute(20, 1, hosts(4));
    await c.addRoute(20, 2, hosts(2));
    const port = await startNode(true);
    await waitFor(() => node!.route(20, 1) && node!.route(20, 2), { what: 'routes loaded' });
    expect((await get(port, '/readyz')).status).to.equal(200);

    const before = await scrape(port);
    expect(sampleValue(before, 'lars_partitions_owned', { node: 'n1' })).to.equal(PARTITIONS);
    expect(sampleValue(before, 'lars_partitions_total')).to.equal(PARTITIONS);
    expect(sampleValue(before, 'lars_nats_connected')).to.equal(1);
    expect(sampleValue(before, 'lars_routes')).to.equal(2);
    expect(sampleValue(before, 'lars_route_hosts', { state: 'healthy' })).to.equal(6);
    expect(sampleValue(before, 'lars_route_hosts', { state: 'overloaded' })).to.equal(0);
    expect(before.get('nodejs_eventloop_lag_seconds')?.type).to.equal('gauge');
    expect(before.get('lars_route_publish_latency_seconds')?.type).to.equal('histogram');
    const reports0 = sampleValue(before, 'lars_reports_total') ?? -1;
    expect(reports0).to.equal(0);

    // swrr: the node, not the agent, is what judges the failing host
    const agent = await c.agent({ strategy: 'swrr' });
    const agentRegistry = createRegistry({ defaultMetrics: false });
    registerAgentMetrics(agentRegistry, agent);
    await agent.getRoute(20, 1);
    // 10.0.0.1 fails every call: the route actor ejects it.
    const t = startTraffic(agent, 20, 1, (k) => ({ retcode: k === '10.0.0.1:8000' ? 1 : 0, latencyMs: 2 }), { callsPerTick: 20 });
    try {
      const ejection = await waitForEvent(c.events.subscribe, (e) => e.modid === 20 && e.cmdid === 1 && e.ip === '10.0.0.1' && e.to === 'overloaded', { what: 'ejection', timeoutMs: 15_000 });
      // Bad input on a served partition: counted by kind.
      const p = partitionOf(20, 1, PARTITIONS);
      for (let i = 0; i < 3; i++) c.nc.publish(c.n.report(p, 20, 1), new Uint8Array([0xc1, 0xc1, 0xc1]));
      await c.nc.flush();
      await waitFor(() => (node!.stats().rejects['malformed'] ?? 0) >= 3, { what: 'rejections counted' });

      const after = await waitFor(
        async () => {
          const m = await scrape(port);
          return (sampleValue(m, 'lars_route_ejected_hosts', { route: '20.1' }) ?? 0) >= 1 ? m : undefined;
        },
        { what: 'ejected gauge' },
      );
      expect(sampleValue(after, 'lars_reports_total')).to.be.greaterThan(0);
      expect(sampleValue(after, 'lars_report_batches_total')).to.be.greaterThan(0);
      expect(sampleValue(after, 'lars_reports_rejected_total', { kind: 'malformed' })).to.equal(3);
      expect(sampleValue(after, 'lars_route_transitions_total', { reason: ejection.reason, to: 'overloaded' })).to.be.at.least(1);
      expect(sampleValue(after, 'lars_route_hosts', { state: 'healthy' })! + sampleValue(after, 'lars_route_hosts', { state: 'overloaded' })! + sampleValue(after, 'lars_route_hosts', { state: 'probing' })!).to.equal(6);
      expect(sampleValue(after, 'lars_route_ejected_longest_seconds', { route: '20.1' })).to.be.at.least(0);
      expect(sampleValue(after, 'lars_route_panic', { route: '20.1' })).to.equal(0);
      // The healthy route has no per-route series at all.
      expect(after.get('lars_route_ejected_hosts')!.samples.map((s) => s.labels['route'])).to.deep.equal(['20.1']);
      const published = sampleValue(after, 'lars_route_publish_latency_seconds', {}, 'lars_route_publish_latency_seconds_count');
      expect(published).to.be.greaterThan(0);
      expect(sampleValue(after, 'lars_route_states_published_total')).to.be.at.least(published!);

      // Counters keep moving under load.
      const r1 = sampleValue(after, 'lars_reports_total')!;
      await waitFor(async () => (sampleValue(await scrape(port), 'lars_reports_total') ?? 0) > r1, { what: 'reports counter moving' });

      const am = parsePrometheusText(await agentRegistry.metrics());
      expect(sampleValue(am, 'lars_agent_picks_total')).to.be.greaterThan(0);
      expect(sampleValue(am, 'lars_agent_reports_total')).to.be.greaterThan(0);
      expect(sampleValue(am, 'lars_agent_route_updates_total')).to.be.at.least(1);
    } finally {
      t.stop();
    }
  });

  it('metrics - per-route series are bounded: the worst routes by name, the rest under route="_other"', async () => {
    for (let cmd = 1; cmd <= 3; cmd++) await c.addRoute(21, cmd, hosts(6));
    const port = await startNode(true, 1);
    await waitFor(() => node!.route(21, 1) && node!.route(21, 2) && node!.route(21, 3), { what: 'routes loaded' });
    // swrr: the node, not the agent, is what judges the failing hosts
    const agent = await c.agent({ strategy: 'swrr' });
    for (let cmd = 1; cmd <= 3; cmd++) await agent.getRoute(21, cmd);
    // Route 21.1 loses two hosts, 21.2 and 21.3 one each.
    const bad = (cmd: number) => (k: string) => ({ retcode: k === '10.0.0.1:8000' || (cmd === 1 && k === '10.0.0.2:8000') ? 1 : 0, latencyMs: 2 });
    const ts = [1, 2, 3].map((cmd) => startTraffic(agent, 21, cmd, bad(cmd), { callsPerTick: 20 }));
    try {
      const m = await waitFor(
        async () => {
          const s = await scrape(port);
          return sampleValue(s, 'lars_route_ejected_hosts', { route: '21.1' }) === 2 && sampleValue(s, 'lars_route_ejected_hosts', { route: OTHER_ROUTES }) === 2 ? s : undefined;
        },
        { what: 'top route and the rest', timeoutMs: 20_000 },
      );
      expect(m.get('lars_route_ejected_hosts')!.samples.map((s) => s.labels['route']).sort()).to.deep.equal(['21.1', OTHER_ROUTES]);
    } finally {
      for (const t of ts) t.stop();
    }
  });

  it('metrics - /readyz turns 503 when the NATS server goes away and 200 again after it is back', async () => {
    await c.addRoute(22, 1, hosts(2));
    const port = await startNode(true);
    expect((await get(port, '/readyz')).status).to.equal(200);
    await server.stop();
    const down = await waitFor(
      async () => {
        const r = await get(port, '/readyz');
        return r.status === 503 ? r : undefined;
      },
      { what: '/readyz 503' },
    );
    expect(JSON.parse(down.body)).to.deep.equal({ status: 'not ready', reason: 'not connected to NATS' });
    expect((await get(port, '/healthz')).status).to.equal(200);
    expect(sampleValue(await scrape(port), 'lars_nats_connected')).to.equal(0);
    server = await server.restart();
    await waitFor(async () => (await get(port, '/readyz')).status === 200, { what: '/readyz 200 after restart', timeoutMs: 20_000 });
    const m = await scrape(port);
    expect(sampleValue(m, 'lars_nats_connected')).to.equal(1);
    expect(sampleValue(m, 'lars_nats_reconnects_total')).to.be.at.least(1);
  });

  it('metrics - turned off: /metrics is 404, health and readiness still served, no listener on the node', async () => {
    await c.addRoute(23, 1, hosts(2));
    const port = await startNode(false);
    expect((await get(port, '/metrics')).status).to.equal(404);
    expect((await get(port, '/healthz')).status).to.equal(200);
    expect((await get(port, '/readyz')).status).to.equal(200);
    expect(web!.registry).to.equal(undefined);
  });
});
