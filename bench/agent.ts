/**
 * Benchmark group `agent`: `npm run bench -- agent [--quick]`. The sidecar
 * (`lars agent`) under load, in a process of its own; every load generator
 * in another process. docs/benchmarks.md (section "agent group") describes
 * each measurement.
 *
 *  - sidecar_udp_qps: GetHost + Report pairs per second through Lars' UDP
 *    protocol; 4 sockets × 16 requests in flight over 10 routes (and, for
 *    comparison with Lars' qps tool with one thread, 1 in flight);
 *  - sidecar_http_qps: GET /v1/host per second over keep-alive connections;
 *  - sidecar_route_update_cpu_us: sidecar CPU per route update with 100
 *    local callers following the route: 100 UDP clients polling it
 *    (10 GetHost/s each), CPU with updates less CPU without; and the same
 *    with 100 server-sent event streams (`_sse`).
 *
 * Starts its own nats-server and a route node in this process (it ingests
 * the reports), on a fresh subject prefix. BENCH_AGENT_ONLY=udp|http|updates
 * (comma separated) runs only those.
 */
import { randomBytes } from 'node:crypto';
import { cpus, loadavg } from 'node:os';
import type { ChildProcess } from 'node:child_process';
import { startNatsServer, connectNats, RouteNode, Registry, names as makeNames, type RouteState } from '../src/index.ts';
import { ensureStreams } from '../src/nats/streams.ts';
import { encode } from '../schemas/codec.ts';
import { benchHosts, epochMs, sleep } from './_common.ts';
import { QUICK, envInt, logger, nextMessage, onTeardown, runGroup, spawnChild, stopChild, waitFor } from './_harness.ts';
import { record, type Metric } from './lib.ts';
import type { FromLoad, FromSidecar, HttpLoadConfig, SidecarChildConfig, SseConfig, UdpLoadConfig } from './agent/messages.ts';

const log = logger('agent');
const P = 64;
const WINDOW_MS = QUICK ? 1000 : 5000;
const WINDOWS = QUICK ? 1 : 3;
/** Trials of the route-update measurement: its figures swing with the machine's other work, so five, and the median. */
const UPDATE_TRIALS = QUICK ? 1 : 5;
/** Updates published before the route-update trials, ms. */
const SETTLE_MS = QUICK ? 500 : 30_000;
const ROUTES: Array<[number, number]> = Array.from({ length: 10 }, (_, i) => [i + 1, 1]);
const UPDATE_ROUTE: [number, number] = [500, 1];
const CALLERS = 100;
const UPDATES_PER_SEC = 200;
/** UDP load: sockets × requests in flight per socket (BENCH_UDP_SOCKETS, BENCH_UDP_INFLIGHT). */
const UDP_SOCKETS = envInt('BENCH_UDP_SOCKETS', 4);
const UDP_INFLIGHT = envInt('BENCH_UDP_INFLIGHT', 16);

const only = process.env['BENCH_AGENT_ONLY']?.split(',');
const runs = (name: string): boolean => !only || only.includes(name);

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function sidecarCpuUs(sc: ChildProcess): Promise<number> {
  const r = nextMessage<FromSidecar, 'cpu'>(sc, 'cpu', 5000);
  sc.send({ type: 'cpu' });
  return (await r).us;
}

/** Runs `WINDOWS` measuring windows of a load child (after a warm-up one) and returns each result. */
async function measure(child: ChildProcess, windows = WINDOWS): Promise<Array<Extract<FromLoad, { type: 'result' }>>> {
  const out: Array<Extract<FromLoad, { type: 'result' }>> = [];
  for (let i = -1; i < windows; i++) {
    const r = nextMessage<FromLoad, 'result'>(child, 'result', WINDOW_MS + 10_000);
    child.send({ type: 'run', ms: i < 0 ? Math.min(1000, WINDOW_MS) : WINDOW_MS });
    const res = await r;
    if (i >= 0) out.push(res);
  }
  return out;
}

async function udpPairs(sc: ChildProcess, ports: number[], sockets: number, inflight: number): Promise<{ qps: number; lost: number; loadCpuPct: number; sidecarCpuPct: number }> {
  const cfg: UdpLoadConfig = { ports, routes: ROUTES, mode: 'pairs', sockets, inflight, pollEveryMs: 0 };
  const c = spawnChild('agent/udp-load.ts', cfg);
  await nextMessage<FromLoad, 'ready'>(c, 'ready', 20_000);
  const t0 = performance.now();
  const cpu0 = await sidecarCpuUs(sc);
  const rs = await measure(c);
  const sidecarCpuPct = ((await sidecarCpuUs(sc)) - cpu0) / 10 / (performance.now() - t0);
  await stopChild(c, { type: 'stop' });
  const qps = median(rs.map((r) => (r.done * 1000) / r.ms));
  const lost = rs.reduce((a, r) => a + r.lost, 0);
  const loadCpuPct = median(rs.map((r) => (r.cpuUs / 1000 / r.ms) * 100));
  return { qps, lost, loadCpuPct, sidecarCpuPct };
}

await runGroup('agent', async () => {
  const tStart = epochMs();
  const loadStart = loadavg()[0]!;
  const server = await startNatsServer();
  onTeardown(() => server.stop());
  const n = makeNames(`ba${randomBytes(3).toString('hex')}`);
  const nc = await connectNats({ url: server.url, name: 'bench-agent' });
  onTeardown(() => nc.close());
  const nodeNc = await connectNats({ url: server.url, name: 'bench-agent-node' });
  onTeardown(() => nodeNc.close());
  await ensureStreams(nc, n);
  const registry = await Registry.open(nc, n);
  for (const [m, c] of ROUTES) await registry.addHosts(m, c, benchHosts(5, m, 10), 'bench-agent');
  const node = await RouteNode.start({ nc: nodeNc, nodeId: 'bench-agent-node', prefix: n.prefix, partitions: P, tickMs: 100 });
  onTeardown(() => node.close());
  if (!(await waitFor(() => node.stats().routes === ROUTES.length, 30_000, 20))) throw new Error('route node did not load the routes');
  await node.settled();
  log(`nats-server ${server.url}, route node with ${ROUTES.length} routes (prefix ${n.prefix})${QUICK ? ', quick mode' : ''}`);

  const scCfg: SidecarChildConfig = { url: server.url, prefix: n.prefix, partitions: P, strategy: 'swrr' };
  const sc = spawnChild('agent/sidecar.ts', scCfg);
  const ready = await nextMessage<FromSidecar, 'ready'>(sc, 'ready', 30_000);
  log(`sidecar pid ${sc.pid}: UDP ${ready.udpPorts.join(',')}, HTTP ${ready.httpPort}`);
  const metrics: Metric[] = [];

  // ---------------------------------------------------------------- UDP pairs
  if (runs('udp')) {
    const many = await udpPairs(sc, ready.udpPorts, UDP_SOCKETS, UDP_INFLIGHT);
    log(`UDP pairs, ${UDP_SOCKETS * UDP_INFLIGHT} in flight: ${Math.round(many.qps)}/s (sidecar ${many.sidecarCpuPct.toFixed(0)}% of a core, load generator ${many.loadCpuPct.toFixed(0)}%, ${many.lost} lost)`);
    const one = await udpPairs(sc, ready.udpPorts, 1, 1);
    log(`UDP pairs, 1 in flight: ${Math.round(one.qps)}/s (sidecar ${one.sidecarCpuPct.toFixed(0)}% of a core, load generator ${one.loadCpuPct.toFixed(0)}%)`);
    metrics.push(
      { name: 'sidecar_udp_qps', value: many.qps, unit: 'pairs/s', target: '>= 50000', note: `GetHost + Report per s, Lars UDP, ${UDP_SOCKETS} sockets × ${UDP_INFLIGHT} in flight, load generator in another process` },
      { name: 'sidecar_udp_qps_1_inflight', value: one.qps, unit: 'pairs/s', note: 'one request in flight (Lars qps tool with one thread)' },
      { name: 'sidecar_udp_lost', value: many.lost, unit: 'requests', note: 'requests resent after 200 ms without reply' },
    );
  }

  // ---------------------------------------------------------------- HTTP
  if (runs('http')) {
    const httpRun = async (connections: number, pipelining: number): Promise<number> => {
      const cfg: HttpLoadConfig = { port: ready.httpPort, path: '/v1/host?modid=1&cmdid=1', connections, pipelining };
      const c = spawnChild('agent/http-load.ts', cfg);
      await nextMessage<FromLoad, 'ready'>(c, 'ready', 20_000);
      const rs = await measure(c);
      await stopChild(c, { type: 'stop' });
      if (rs.some((r) => r.failed > 0)) log(`HTTP: ${rs.reduce((a, r) => a + r.failed, 0)} failed requests`);
      return median(rs.map((r) => (r.done * 1000) / r.ms));
    };
    const http = await httpRun(8, 1);
    log(`HTTP host look-ups, 8 keep-alive connections: ${Math.round(http)}/s`);
    const httpPipe = await httpRun(4, 8);
    log(`HTTP host look-ups, 4 connections × 8 pipelined: ${Math.round(httpPipe)}/s`);
    metrics.push(
      { name: 'sidecar_http_qps', value: http, unit: 'req/s', target: '>= 20000', note: 'GET /v1/host, 8 keep-alive connections, one request each in flight' },
      { name: 'sidecar_http_qps_pipelined', value: httpPipe, unit: 'req/s', note: '4 connections, 8 pipelined requests each' },
    );
  }

  // ---------------------------------------------------------------- route updates
  if (runs('updates')) {
    const [um, uc] = UPDATE_ROUTE;
    let version = 1;
    const hostsOf = benchHosts(6, 1, 10);
    const state = (): RouteState => ({
      v: 1,
      sender: 'bench-agent',
      modid: um,
      cmdid: uc,
      version: version++,
      ts: Date.now(),
      profile: 'default',
      panic: false,
      removed: false,
      probe_num: 10,
      // a real change every time: the first host's weight alternates
      hosts: hostsOf.map((h, i) => ({ ip: h.ip, port: h.port, weight: 100, zone: null, state: 'healthy', reason: 'registered', since: 0, pick_weight: i === 0 && version % 2 === 0 ? 50 : 100 })),
    });
    const publishFor = async (ms: number): Promise<number> => {
      let sent = 0;
      const t0 = performance.now();
      while (performance.now() - t0 < ms) {
        const due = Math.floor(((performance.now() - t0) * UPDATES_PER_SEC) / 1000);
        while (sent < due) {
          nc.publish(n.route(um, uc), encode(state()));
          sent++;
        }
        await sleep(2);
      }
      await nc.flush();
      return sent;
    };
    // The floor: a bare subscriber of the same subject, measured over the same windows.
    const bare = spawnChild('agent/bare-subscriber.ts', { url: server.url, subject: n.route(um, uc) });
    await nextMessage<FromSidecar, 'ready'>(bare, 'ready', 30_000);
    /**
     * CPU per update of the sidecar and of the bare subscriber: CPU over a
     * window with updates, less the mean of the windows without before and after.
     */
    const updateCost = async (): Promise<{ us: number; floorUs: number; ownUs: number; updates: number }> => {
      const costs: number[] = [];
      const floors: number[] = [];
      let updates = 0;
      const both = async (): Promise<[number, number]> => [await sidecarCpuUs(sc), await sidecarCpuUs(bare)];
      for (let w = 0; w < UPDATE_TRIALS; w++) {
        const a0 = await both();
        await sleep(WINDOW_MS);
        const a1 = await both();
        const sent = await publishFor(WINDOW_MS);
        await sleep(100);
        const b1 = await both();
        await sleep(WINDOW_MS);
        const c1 = await both();
        const per = (i: 0 | 1): number => {
          const idle = (a1[i] - a0[i] + (c1[i] - b1[i])) / 2;
          return (b1[i] - a1[i] - idle * ((WINDOW_MS + 100) / WINDOW_MS)) / sent;
        };
        costs.push(per(0));
        floors.push(per(1));
        updates += sent;
      }
      log(`  trials: sidecar ${costs.map((c) => c.toFixed(0)).join(', ')} µs; bare subscriber ${floors.map((c) => c.toFixed(0)).join(', ')} µs per update`);
      return { us: median(costs), floorUs: median(floors), ownUs: median(costs.map((c, i) => c - floors[i]!)), updates };
    };

    // 100 UDP callers polling the route (Lars' clients ask per call)
    const pollCfg: UdpLoadConfig = { ports: ready.udpPorts, routes: [UPDATE_ROUTE], mode: 'poll', sockets: CALLERS, inflight: 1, pollEveryMs: 100 };
    const pollers = spawnChild('agent/udp-load.ts', pollCfg);
    await nextMessage<FromLoad, 'ready'>(pollers, 'ready', 20_000);
    // Settle first: on this VM the first ~30 s of a new stream of updates cost every receiving
    // process (the bare subscriber as much as the sidecar) up to twice the steady figure.
    await publishFor(SETTLE_MS);
    await sleep(500);
    const polled = await updateCost();
    await stopChild(pollers, { type: 'stop' });
    log(`route updates with ${CALLERS} UDP callers polling: ${polled.us.toFixed(1)} µs sidecar CPU per update, a bare subscriber ${polled.floorUs.toFixed(1)} µs (${polled.updates} updates)`);

    // 100 event streams following the route
    const sseCfg: SseConfig = { port: ready.httpPort, path: `/v1/routes/stream?modid=${um}&cmdid=${uc}`, streams: CALLERS };
    const sse = spawnChild('agent/sse-followers.ts', sseCfg);
    await nextMessage<FromLoad, 'ready'>(sse, 'ready', 20_000);
    const evR = nextMessage<FromLoad, 'result'>(sse, 'result', 3 * UPDATE_TRIALS * WINDOW_MS + 30_000);
    sse.send({ type: 'run', ms: 3 * UPDATE_TRIALS * (WINDOW_MS + 500) + 5000 });
    const streamed = await updateCost();
    const ev = await evR;
    await stopChild(sse, { type: 'stop' });
    const missed = streamed.updates * CALLERS - (ev.events ?? 0);
    await stopChild(bare, { type: 'stop' });
    log(`route updates with ${CALLERS} event streams: ${streamed.us.toFixed(1)} µs sidecar CPU per update, a bare subscriber ${streamed.floorUs.toFixed(1)} µs (${streamed.updates} updates, ${ev.events} events, ${missed} missed)`);
    metrics.push(
      { name: 'sidecar_route_update_cpu_us', value: polled.us, unit: 'µs', target: '<= 100', note: `sidecar CPU per route update, ${CALLERS} UDP callers polling the route 10/s each` },
      { name: 'sidecar_route_update_own_us', value: polled.ownUs, unit: 'µs', note: 'per trial, the sidecar less the bare subscriber in the same windows; the median: what the sidecar adds to receiving the message' },
      { name: 'sidecar_route_update_floor_us', value: polled.floorUs, unit: 'µs', note: 'CPU per message of a process with a bare NATS subscription to the same subject (no decoding), same windows' },
      { name: 'sidecar_route_update_cpu_us_sse', value: streamed.us, unit: 'µs', note: `the same with ${CALLERS} server-sent event streams following the route (one write per stream per update)` },
      { name: 'sidecar_route_update_sse_missed', value: missed, unit: 'events', note: 'route updates a stream did not receive' },
    );
  }

  await stopChild(sc, { type: 'stop' });
  metrics.push({ name: 'agent_machine_load_1m_start', value: loadStart, unit: 'load', note: `1-min load average at start (${cpus().length} cores, shared)` });
  metrics.push({ name: 'agent_machine_load_1m_end', value: loadavg()[0]!, unit: 'load', note: '1-min load average at the end' });
  metrics.push({ name: 'agent_bench_seconds', value: Math.round((epochMs() - tStart) / 1000), unit: 's', note: 'whole group' });
  record('agent', metrics);
});
