/**
 * Benchmark group `agent`: `npm run bench -- agent [--quick]`. The sidecar
 * (`lars agent`) under load, in a process of its own; every load generator
 * in another process. docs/benchmarks.md (section "agent group") describes
 * each measurement.
 *
 *  - sidecar_udp_qps: GetHost + Report pairs per second through Lars' UDP
 *    protocol; 4 sockets × 16 requests in flight over 10 routes;
 *  - sidecar_udp_pairs_per_sec_1inflight_t1/_t4/_t16: shaped like Lars' qps
 *    tool, T workers with one request in flight each (GetHost, then Report),
 *    and the GetHost round trip's p50/p99 at T = 1;
 *  - sidecar_reports_acked_pct: after each UDP load point, the reports
 *    JetStream acknowledged, of those the generators sent;
 *  - sidecar_http_qps: GET /v1/host per second over keep-alive connections;
 *  - sidecar_route_update_cpu_us: sidecar CPU per route update with 100
 *    local callers following the route: 100 UDP clients polling it
 *    (10 GetHost/s each), CPU with updates less CPU without; and the same
 *    with 100 server-sent event streams (`_sse`).
 *
 * Starts its own nats-server and a route node in this process (it ingests
 * the reports), on a fresh subject prefix. BENCH_AGENT_ONLY=udp|lars|http|updates
 * (comma separated) runs only those.
 */
import { randomBytes } from 'node:crypto';
import { availableParallelism, cpus, loadavg } from 'node:os';
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
/** Lars' qps tool: T threads, one request in flight each. */
const LARS_THREADS = [1, 4, 16] as const;
/** Generator processes for T = 16 (BENCH_LARS_PROCS): one Node process would be the bottleneck. */
const LARS_PROCS_T16 = envInt('BENCH_LARS_PROCS', 2);

const only = process.env['BENCH_AGENT_ONLY']?.split(',');
/** UDP threads of the sidecar, one run each (BENCH_AGENT_THREADS, comma separated): the cores, then 1; the first run's figures carry the plain names, each later run's `_threads<n>`. */
const THREADS = (process.env['BENCH_AGENT_THREADS'] ?? `${availableParallelism()},1`).split(',').map(Number);
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

type LoadResult = Extract<FromLoad, { type: 'result' }>;

/** `measure` over several load children at once: each window is run by all of them together; per window, their results summed. */
async function measureAll(children: ChildProcess[], windows = WINDOWS): Promise<LoadResult[][]> {
  const out: LoadResult[][] = [];
  for (let i = -1; i < windows; i++) {
    const rs = children.map((c) => nextMessage<FromLoad, 'result'>(c, 'result', WINDOW_MS + 10_000));
    for (const c of children) c.send({ type: 'run', ms: i < 0 ? Math.min(1000, WINDOW_MS) : WINDOW_MS });
    const res = await Promise.all(rs);
    if (i >= 0) out.push(res);
  }
  return out;
}

/** Reports the sidecar acknowledged so far, less what it had before (`base`). */
interface AckCount {
  reports: number;
  pending: number;
  dropped: number;
  udpReports: number;
}

/**
 * Stops the load children (they send nothing more and say how many Reports they sent), waits
 * until the sidecar has received them all (or 3 s passed: a datagram the kernel dropped never
 * comes), flushes its agent and reads its report counters.
 */
async function settleReports(sc: ChildProcess, children: ChildProcess[], before: AckCount): Promise<{ sent: number; after: AckCount; ackedPct: number }> {
  const sents = await Promise.all(children.map((c) => {
    const r = nextMessage<FromLoad, 'sent'>(c, 'sent', 5000);
    c.send({ type: 'sent' });
    return r;
  }));
  const sent = sents.reduce((a, s) => a + (s.reports ?? 0), 0);
  const udpReports = async (): Promise<number> => {
    const r = nextMessage<FromSidecar, 'cpu'>(sc, 'cpu', 5000);
    sc.send({ type: 'cpu' });
    const st = (await r).stats as { udp?: { reports: number } };
    return st.udp?.reports ?? 0;
  };
  const deadline = performance.now() + 3000;
  while ((await udpReports()) - before.udpReports < sent && performance.now() < deadline) await sleep(20);
  const r = nextMessage<FromSidecar, 'settled'>(sc, 'settled', 40_000);
  sc.send({ type: 'settle', timeoutMs: 30_000 });
  const s = await r;
  if (s.flushError) log(`  flush: ${s.flushError}`);
  const after: AckCount = { reports: s.reports, pending: s.pending, dropped: s.dropped, udpReports: s.udpReports };
  const acked = after.reports - after.pending - after.dropped - (before.reports - before.pending - before.dropped);
  if (after.dropped > before.dropped || after.reports - before.reports < sent) {
    log(`  of ${sent} reports sent: ${after.udpReports - before.udpReports} received, ${after.reports - before.reports} taken by the agent, ${after.dropped - before.dropped} dropped by it, ${after.pending} pending`);
  }
  return { sent, after, ackedPct: sent === 0 ? 100 : (acked / sent) * 100 };
}

interface UdpRun {
  qps: number;
  lost: number;
  loadCpuPct: number;
  sidecarCpuPct: number;
  p50Us: number;
  p99Us: number;
  sent: number;
  ackedPct: number;
  after: AckCount;
}

/**
 * GetHost + Report pairs from `procs` generator processes, `sockets` sockets each with `inflight`
 * requests in flight per socket. The latency quantiles are the median over windows of each window's
 * (of the first process: with one process, of every request).
 */
async function udpPairs(sc: ChildProcess, ports: number[], sockets: number, inflight: number, before: AckCount, procs = 1): Promise<UdpRun> {
  const cfg: UdpLoadConfig = { ports, routes: ROUTES, mode: 'pairs', sockets, inflight, pollEveryMs: 0 };
  const cs = Array.from({ length: procs }, () => spawnChild('agent/udp-load.ts', cfg));
  await Promise.all(cs.map((c) => nextMessage<FromLoad, 'ready'>(c, 'ready', 20_000)));
  const t0 = performance.now();
  const cpu0 = await sidecarCpuUs(sc);
  const ws = await measureAll(cs);
  const sidecarCpuPct = ((await sidecarCpuUs(sc)) - cpu0) / 10 / (performance.now() - t0);
  const settled = await settleReports(sc, cs, before);
  await Promise.all(cs.map((c) => stopChild(c, { type: 'stop' })));
  const qps = median(ws.map((w) => w.reduce((a, r) => a + (r.done * 1000) / r.ms, 0)));
  const lost = ws.reduce((a, w) => a + w.reduce((b, r) => b + r.lost, 0), 0);
  const loadCpuPct = median(ws.map((w) => w.reduce((a, r) => a + (r.cpuUs / 1000 / r.ms) * 100, 0)));
  const p50Us = median(ws.map((w) => w[0]!.p50Us ?? 0));
  const p99Us = median(ws.map((w) => w[0]!.p99Us ?? 0));
  return { qps, lost, loadCpuPct, sidecarCpuPct, p50Us, p99Us, sent: settled.sent, ackedPct: settled.ackedPct, after: settled.after };
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

  /** Every load point against a sidecar with `threads` UDP threads; its figures. */
  const runSidecar = async (threads: number): Promise<Metric[]> => {
    const scCfg: SidecarChildConfig = { url: server.url, prefix: n.prefix, partitions: P, strategy: 'swrr', threads };
    const sc = spawnChild('agent/sidecar.ts', scCfg);
    const ready = await nextMessage<FromSidecar, 'ready'>(sc, 'ready', 30_000);
    log(`sidecar pid ${sc.pid}: UDP ${ready.udpPorts.join(',')} (${threads} thread${threads > 1 ? 's' : ''}), HTTP ${ready.httpPort}`);
    const metrics: Metric[] = [];
    metrics.push({ name: 'sidecar_udp_threads', value: threads, unit: 'threads', note: `threads serving the UDP ports (${cpus().length} cores)` });

    // ---------------------------------------------------------------- UDP pairs
    let acks: AckCount = { reports: 0, pending: 0, dropped: 0, udpReports: 0 };
    const ackedPcts: number[] = [];
    const udpRun = async (label: string, sockets: number, inflight: number, procs = 1): Promise<UdpRun> => {
      const r = await udpPairs(sc, ready.udpPorts, sockets, inflight, acks, procs);
      acks = r.after;
      ackedPcts.push(r.ackedPct);
      log(
        `UDP pairs, ${label}: ${Math.round(r.qps)}/s, GetHost p50 ${r.p50Us} µs p99 ${r.p99Us} µs (sidecar ${r.sidecarCpuPct.toFixed(0)}% of a core, ` +
          `load generator${procs > 1 ? `s (${procs} processes)` : ''} ${r.loadCpuPct.toFixed(0)}%, ${r.lost} lost; ${r.sent} reports sent, ${r.ackedPct.toFixed(3)}% acknowledged)`,
      );
      return r;
    };

    // ---------------------------------------------------------------- UDP pairs
    if (runs('udp')) {
      const many = await udpRun(`${UDP_SOCKETS} sockets × ${UDP_INFLIGHT} in flight`, UDP_SOCKETS, UDP_INFLIGHT);
      metrics.push(
        { name: 'sidecar_udp_qps', value: many.qps, unit: 'pairs/s', target: '>= 150000', note: `GetHost + Report per s, Lars UDP, ${UDP_SOCKETS} sockets × ${UDP_INFLIGHT} in flight, load generator in another process` },
        { name: 'sidecar_udp_lost', value: many.lost, unit: 'requests', note: 'requests resent after 200 ms without reply' },
      );
    }

    // ---------------------------------------------------------------- UDP as Lars' qps tool: T workers, one request in flight each
    if (runs('lars')) {
      for (const t of LARS_THREADS) {
        const procs = t >= 16 ? LARS_PROCS_T16 : 1;
        const r = await udpRun(`T = ${t}, one in flight each`, t / procs, 1, procs);
        const target = t === 1 ? '>= 12600' : t === 16 ? '>= 70000' : undefined;
        metrics.push({ name: `sidecar_udp_pairs_per_sec_1inflight_t${t}`, value: r.qps, unit: 'pairs/s', ...(target ? { target } : {}), note: `${t} workers (sockets) × 1 in flight, GetHost then Report, as Lars' qps tool; ${procs} generator process${procs > 1 ? 'es' : ''} using ${r.loadCpuPct.toFixed(0)}% of a core, sidecar ${r.sidecarCpuPct.toFixed(0)}%` });
        if (t === 1) {
          metrics.push(
            { name: 'sidecar_udp_gethost_p50_us_t1', value: r.p50Us, unit: 'µs', target: '<= 50', note: 'GetHost round trip in the generator (send to reply), median over windows of the window median' },
            { name: 'sidecar_udp_gethost_p99_us_t1', value: r.p99Us, unit: 'µs', target: '<= 155', note: 'the same, 99th percentile' },
          );
        }
      }
    }
    if (ackedPcts.length > 0) {
      metrics.push({ name: 'sidecar_reports_acked_pct', value: Math.min(...ackedPcts), unit: '%', target: '>= 100', note: `reports acknowledged by JetStream after each UDP load point (${ackedPcts.map((p) => p.toFixed(2)).join(', ')}), the lowest; nothing pending after the flush` });
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
        { name: 'sidecar_http_qps', value: http, unit: 'req/s', target: '>= 60000', note: 'GET /v1/host, 8 keep-alive connections, one request each in flight' },
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
    return metrics;
  };

  // threads = cores (the default of `lars agent`), then one thread (the main thread serves UDP), in one run
  const metrics: Metric[] = [];
  for (const [i, threads] of THREADS.entries()) {
    log(`---- sidecar with ${threads} UDP thread${threads > 1 ? 's' : ''}`);
    const ms = await runSidecar(threads);
    const what = threads === 1 ? 'one thread (the main thread serves UDP)' : `${threads} UDP threads`;
    // the later runs: for comparison, without targets
    metrics.push(...(i === 0 ? ms : ms.map((m) => ({ name: `${m.name}_threads${threads}`, value: m.value, unit: m.unit, note: `${what}, for comparison: ${m.note ?? ''}` }))));
  }
  metrics.push({ name: 'agent_machine_load_1m_start', value: loadStart, unit: 'load', note: `1-min load average at start (${cpus().length} cores, shared)` });
  metrics.push({ name: 'agent_machine_load_1m_end', value: loadavg()[0]!, unit: 'load', note: '1-min load average at the end' });
  metrics.push({ name: 'agent_bench_seconds', value: Math.round((epochMs() - tStart) / 1000), unit: 's', note: 'whole group' });
  record('agent', metrics);
});
