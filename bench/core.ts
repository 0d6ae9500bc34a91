/**
 * Benchmark group `core` (issue 2): `npm run bench -- core`.
 *
 * Starts its own nats-server (loopback, JetStream in a temp dir), uses a fresh
 * subject prefix per run, and measures:
 *  1. picks: agent.pick (sync) and getHost (async) on a 10-host route, per strategy;
 *  2. report ingest: one route node in this process, publishers in separate processes;
 *  3. route propagation: node publishes a new version → 100 agents (2 processes) hold it;
 *  4. ejection: report batch crossing the threshold published → 100 agents stop picking the host;
 *  5. heap of a route node holding 10,000 routes × 10 hosts (a fresh process).
 * docs/benchmarks-core.md describes each measurement. Every child process and
 * the nats-server are stopped at the end, also on failure or Ctrl-C.
 *
 * Environment knobs (defaults in brackets): BENCH_TRIALS [100] trials per
 * latency metric, BENCH_PUBLISHERS [auto: 1, 2 when the publisher is the
 * bottleneck], BENCH_HEAP_ROUTES [10000].
 */
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { cpus, loadavg } from 'node:os';
import { startNatsServer, type NatsServer } from '../src/natsd.ts';
import { connectNats, type NatsConnection } from '../src/nats/connect.ts';
import { RouteNode, type RouteNodeStats } from '../src/node/route-node.ts';
import { Registry, openBucket } from '../src/registry.ts';
import { createAgent, type Agent } from '../src/agent/agent.ts';
import { names as makeNames, partitionOf, DEFAULT_PARTITIONS, type Names } from '../schemas/subjects.ts';
import type { RegistryEntry, ReportBatch, ReportTuple, RouteState } from '../schemas/messages.ts';
import type { StrategyName } from '../actors/strategies/types.ts';
import { encode } from '../src/codec.ts';
import { record, type Metric } from './lib.ts';
import {
  benchHosts,
  epochMs,
  percentile,
  sleep,
  type AgentsConfig,
  type FromAgents,
  type FromHeap,
  type FromPublisher,
  type HeapConfig,
  type PublisherConfig,
  type ToAgents,
  type ToPublisher,
} from './_common.ts';

const here = dirname(fileURLToPath(import.meta.url));
const P = DEFAULT_PARTITIONS;
const TRIALS = envInt('BENCH_TRIALS', 100);
const AGENT_PROCS = 2;
const AGENTS_PER_PROC = 50;
const AGENTS = AGENT_PROCS * AGENTS_PER_PROC;
const INGEST_ROUTES = 100;
const REPORTS_PER_BATCH = 1000;
const HEAP_ROUTES = envInt('BENCH_HEAP_ROUTES', 10_000);
const HOSTS_PER_ROUTE = 10;

const PICK_ROUTE: [number, number] = [1, 1];
const PROP_ROUTE: [number, number] = [200, 1];
const INGEST_MODID = 100;
const EJECT_MODID = 300;

function envInt(name: string, dflt: number): number {
  const v = process.env[name];
  const n = v === undefined ? Number.NaN : Number(v);
  return Number.isInteger(n) && n > 0 ? n : dflt;
}

function log(msg: string): void {
  console.log(`[core ${new Date().toISOString().slice(11, 19)}] ${msg}`);
}

// ---------------------------------------------------------------- child processes

const children = new Set<ChildProcess>();

function spawnChild(file: string, cfg: unknown, exposeGc = false): ChildProcess {
  const c = fork(join(here, file), [], {
    execArgv: ['--import', 'tsx', ...(exposeGc ? ['--expose-gc'] : [])],
    env: { ...process.env, BENCH_CONFIG: JSON.stringify(cfg) },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  children.add(c);
  c.once('exit', () => children.delete(c));
  return c;
}

/** The next IPC message of `type` from `c`; rejects when the child exits first or on timeout. */
function nextMessage<M extends { type: string }, T extends M['type']>(c: ChildProcess, type: T, timeoutMs: number): Promise<Extract<M, { type: T }>> {
  return new Promise((resolve, reject) => {
    const onMsg = (m: M) => {
      if (m.type !== type) return;
      done();
      resolve(m as Extract<M, { type: T }>);
    };
    const onExit = (code: number | null) => {
      done();
      reject(new Error(`child ${c.pid} exited (${code}) before sending ${type}`));
    };
    const t = setTimeout(() => {
      done();
      reject(new Error(`child ${c.pid} sent no ${type} within ${timeoutMs} ms`));
    }, timeoutMs);
    const done = () => {
      clearTimeout(t);
      c.off('message', onMsg as (m: unknown) => void);
      c.off('exit', onExit);
    };
    c.on('message', onMsg as (m: unknown) => void);
    c.once('exit', onExit);
  });
}

/** Asks a child to stop (message, then IPC disconnect, then SIGKILL) and waits for it to exit. */
async function stopChild(c: ChildProcess, stopMsg?: unknown, graceMs = 5000): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) return;
  const exited = new Promise<void>((r) => c.once('exit', () => r()));
  try {
    if (stopMsg !== undefined && c.connected) c.send(stopMsg as never);
  } catch {
    // channel already closed
  }
  const soft = setTimeout(() => {
    if (c.connected) c.disconnect();
  }, graceMs / 2);
  const hard = setTimeout(() => c.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(soft);
  clearTimeout(hard);
}

let server: NatsServer | undefined;
const connections: NatsConnection[] = [];
const nodes: RouteNode[] = [];
const inprocAgents: Agent[] = [];
let cleaned = false;

async function cleanup(): Promise<void> {
  if (cleaned) return;
  cleaned = true;
  await Promise.all([...children].map((c) => stopChild(c, { type: 'stop' }, 4000)));
  for (const a of inprocAgents) await a.close().catch(() => undefined);
  for (const nd of nodes) await Promise.race([nd.close().catch(() => undefined), sleep(4000)]);
  for (const nc of connections) await nc.close().catch(() => undefined);
  await server?.stop();
}

for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    log(`${sig}: stopping children and nats-server`);
    void cleanup().finally(() => process.exit(130));
  });
}

async function connection(name: string): Promise<NatsConnection> {
  const nc = await connectNats({ url: server!.url, name });
  connections.push(nc);
  return nc;
}

async function waitFor(cond: () => boolean, timeoutMs: number, everyMs = 1): Promise<boolean> {
  const end = performance.now() + timeoutMs;
  while (!cond()) {
    if (performance.now() > end) return false;
    await sleep(everyMs);
  }
  return true;
}

/** Runs `fn` over `items` with at most `limit` running at once. */
async function pool<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

const ms = (v: number) => Number(v.toFixed(3));

/** Hosts of ejection route (EJECT_MODID, c): 10.<3 + c/256>.<c % 256>.<1..10>. */
function ejectHosts(c: number) {
  return benchHosts(3 + (c >> 8), c & 255, HOSTS_PER_ROUTE);
}

// ---------------------------------------------------------------- 0. noise floor

/** One core-NATS hop (publish -> subscriber callback, two connections of this process), idle machine. */
async function benchHop(): Promise<Metric[]> {
  const a = await connection('bench-core-hop-pub');
  const b = await connection('bench-core-hop-sub');
  const d: number[] = [];
  const sub = b.subscribe('bench.hop', {
    callback: (_e, m) => {
      d.push(epochMs() - Number(new TextDecoder().decode(m.data)));
    },
  });
  await b.flush();
  for (let i = 0; i < 300; i++) {
    a.publish('bench.hop', String(epochMs()));
    await sleep(2 + Math.random() * 3);
  }
  await a.flush();
  await sleep(50);
  sub.unsubscribe();
  log(`one NATS hop: p50 ${percentile(d, 50).toFixed(3)} ms, p99 ${percentile(d, 99).toFixed(3)} ms, max ${Math.max(...d).toFixed(3)} ms`);
  return [
    { name: 'nats_hop_p50_ms', value: ms(percentile(d, 50)), unit: 'ms', note: 'noise floor: publish -> subscriber callback, loopback, idle' },
    { name: 'nats_hop_p99_ms', value: ms(percentile(d, 99)), unit: 'ms', note: `${d.length} messages 2-5 ms apart` },
  ];
}

// ---------------------------------------------------------------- 1. picks

let sink = 0;

function pickLoop(a: Agent, n: number): number {
  let s = 0;
  const [m, c] = PICK_ROUTE;
  for (let i = 0; i < n; i++) {
    const h = a.pick(m, c);
    if (h.ok) s += h.port;
  }
  return s;
}

const KEYS = Array.from({ length: 4096 }, (_, i) => `user-${i * 7919}`);
function pickLoopKeyed(a: Agent, n: number): number {
  let s = 0;
  const [m, c] = PICK_ROUTE;
  for (let i = 0; i < n; i++) {
    const h = a.pick(m, c, KEYS[i & 4095]);
    if (h.ok) s += h.port;
  }
  return s;
}

/** Median over `runs` runs of ~runMs each of ops per second, after a warm-up. */
function opsPerSec(loop: (n: number) => number, runMs: number, runs = 3): number {
  const chunk = 200_000;
  const warmEnd = performance.now() + 300;
  while (performance.now() < warmEnd) sink += loop(chunk);
  const rates: number[] = [];
  for (let r = 0; r < runs; r++) {
    let ops = 0;
    const t0 = performance.now();
    let el = 0;
    do {
      sink += loop(chunk);
      ops += chunk;
      el = performance.now() - t0;
    } while (el < runMs);
    rates.push(ops / (el / 1000));
  }
  return percentile(rates, 50);
}

async function asyncOpsPerSec(a: Agent, runMs: number): Promise<number> {
  const [m, c] = PICK_ROUTE;
  const chunk = 10_000;
  const rates: number[] = [];
  for (let r = 0; r < 4; r++) {
    let ops = 0;
    const t0 = performance.now();
    let el = 0;
    do {
      for (let i = 0; i < chunk; i++) {
        const h = await a.getHost(m, c);
        if (h.ok) sink += h.port;
      }
      ops += chunk;
      el = performance.now() - t0;
    } while (el < runMs);
    if (r > 0) rates.push(ops / (el / 1000)); // first run is the warm-up
  }
  return percentile(rates, 50);
}

async function benchPicks(n: Names): Promise<Metric[]> {
  const nc = await connection('bench-core-picks');
  const make = async (strategy: StrategyName) => {
    const a = await createAgent({ nc, prefix: n.prefix, partitions: P, strategy });
    inprocAgents.push(a);
    const st = await a.getRoute(...PICK_ROUTE);
    if (!st || st.hosts.length !== HOSTS_PER_ROUTE) throw new Error(`pick route not loaded for ${strategy}`);
    return a;
  };
  // Default strategy first, so its figure is taken before other strategies make the agent's call sites polymorphic.
  const swrr = await make('swrr');
  const gethost = opsPerSec((k) => pickLoop(swrr, k), 700);
  log(`pick swrr (gethost_ops_per_sec): ${Math.round(gethost).toLocaleString('en-US')}/s`);
  const gethostAsync = await asyncOpsPerSec(swrr, 500);
  log(`getHost awaited: ${Math.round(gethostAsync).toLocaleString('en-US')}/s`);
  const per: Record<string, number> = { swrr: gethost };
  for (const s of ['lars', 'p2c', 'hash'] as const) {
    const a = await make(s);
    per[s] = s === 'hash' ? opsPerSec((k) => pickLoopKeyed(a, k), 500) : opsPerSec((k) => pickLoop(a, k), 500);
    log(`pick ${s}: ${Math.round(per[s]!).toLocaleString('en-US')}/s`);
  }
  // swrr again, after the other strategies ran through the same call sites (what a mixed-strategy process sees).
  per['swrr'] = opsPerSec((k) => pickLoop(swrr, k), 500);
  log(`pick swrr (after other strategies): ${Math.round(per['swrr']!).toLocaleString('en-US')}/s`);
  for (const a of inprocAgents.splice(0)) await a.close();
  return [
    { name: 'gethost_ops_per_sec', value: gethost, unit: 'ops/s', target: '>= 5000000', note: 'agent.pick, swrr, 10 hosts (weights 10..100), 1 thread' },
    { name: 'gethost_async_ops_per_sec', value: gethostAsync, unit: 'ops/s', note: 'await agent.getHost, swrr' },
    { name: 'pick_ops_per_sec_lars', value: per['lars']!, unit: 'ops/s', note: 'lars round robin with probing' },
    { name: 'pick_ops_per_sec_swrr', value: per['swrr']!, unit: 'ops/s', note: 'measured after the other strategies (polymorphic call site)' },
    { name: 'pick_ops_per_sec_p2c', value: per['p2c']!, unit: 'ops/s', note: 'p2c on latency x in-flight' },
    { name: 'pick_ops_per_sec_hash', value: per['hash']!, unit: 'ops/s', note: 'consistent hash, 4096 distinct keys' },
  ];
}

// ---------------------------------------------------------------- 2. report ingest

interface IngestRun {
  publishers: number;
  ingest: number;
  batchesPerSec: number;
  publish: number;
  publisherWait: number;
  batchBytes: number;
  events: number;
  rejects: number;
}

function rejectTotal(s: RouteNodeStats): number {
  return Object.values(s.rejects).reduce((a, b) => a + b, 0);
}

async function ingestRun(n: Names, node: RouteNode, ingestRoutes: PublisherConfig['routes'], publishers: number, warmMs: number, windowMs: number): Promise<IngestRun> {
  const pubs: ChildProcess[] = [];
  for (let i = 0; i < publishers; i++) {
    const cfg: PublisherConfig = {
      url: server!.url,
      prefix: n.prefix,
      partitions: P,
      index: i,
      count: publishers,
      routes: ingestRoutes,
      reportsPerBatch: REPORTS_PER_BATCH,
      errorEvery: 97,
      windowBatches: 256,
    };
    pubs.push(spawnChild('_publisher.ts', cfg));
  }
  const ready = await Promise.all(pubs.map((p) => nextMessage<FromPublisher, 'ready'>(p, 'ready', 30_000)));
  const base = node.stats().batches;
  const sendAll = (m: ToPublisher) => {
    for (const p of pubs) if (p.connected) p.send(m);
  };
  const credit = setInterval(() => sendAll({ type: 'credit', consumed: node.stats().batches - base }), 5);
  try {
    sendAll({ type: 'credit', consumed: 0 });
    sendAll({ type: 'start' });
    await sleep(warmMs);
    const pubStats = () =>
      Promise.all(
        pubs.map((p) => {
          const r = nextMessage<FromPublisher, 'stats'>(p, 'stats', 5000);
          p.send({ type: 'stats' } satisfies ToPublisher);
          return r;
        }),
      );
    const s0 = node.stats();
    const t0 = epochMs();
    const p0 = await pubStats();
    await sleep(windowMs);
    const s1 = node.stats();
    const t1 = epochMs();
    const p1 = await pubStats();
    let publish = 0;
    let wait = 0;
    for (let i = 0; i < pubs.length; i++) {
      const a = p0[i]!;
      const b = p1[i]!;
      const el = b.t - a.t;
      publish += ((b.published - a.published) * REPORTS_PER_BATCH) / (el / 1000);
      wait += (b.waitMs - a.waitMs) / el / pubs.length;
    }
    const secs = (t1 - t0) / 1000;
    return {
      publishers,
      ingest: (s1.reports - s0.reports) / secs,
      batchesPerSec: (s1.batches - s0.batches) / secs,
      publish,
      publisherWait: wait,
      batchBytes: ready[0]!.batchBytes,
      events: s1.events - s0.events,
      rejects: rejectTotal(s1) - rejectTotal(s0),
    };
  } finally {
    clearInterval(credit);
    await Promise.all(pubs.map((p) => stopChild(p, { type: 'stop' } satisfies ToPublisher)));
  }
}

async function benchIngest(n: Names, node: RouteNode, ingestRoutes: PublisherConfig['routes']): Promise<Metric[]> {
  const fixed = process.env['BENCH_PUBLISHERS'] ? envInt('BENCH_PUBLISHERS', 1) : undefined;
  const describe = (r: IngestRun) =>
    `${r.publishers} publisher(s): node ingest ${Math.round(r.ingest).toLocaleString('en-US')} reports/s (${Math.round(r.batchesPerSec)} batches/s of ${r.batchBytes} B), ` +
    `publishers ${Math.round(r.publish).toLocaleString('en-US')} reports/s, publishers waiting for credit ${(r.publisherWait * 100).toFixed(1)}% of the time, state changes ${r.events}, rejects ${r.rejects}`;
  let run = await ingestRun(n, node, ingestRoutes, fixed ?? 1, 2000, 5000);
  log(describe(run));
  // A publisher that almost never waits for credit is the bottleneck: add a second one.
  if (fixed === undefined && run.publisherWait < 0.1) {
    const two = await ingestRun(n, node, ingestRoutes, 2, 2000, 5000);
    log(describe(two));
    if (two.ingest > run.ingest) run = two;
  }
  return [
    { name: 'report_ingest_per_sec', value: run.ingest, unit: 'reports/s', target: '>= 500000', note: `1 node; ${REPORTS_PER_BATCH}-report batches over ${INGEST_ROUTES} routes x 10 hosts, ~1% errors; 5 s window` },
    { name: 'report_ingest_batches_per_sec', value: run.batchesPerSec, unit: 'batches/s', note: `${run.batchBytes} B per batch` },
    { name: 'report_publish_per_sec', value: run.publish, unit: 'reports/s', note: `${run.publishers} publisher process(es), credit-window flow control` },
    { name: 'report_publishers', value: run.publishers, unit: 'processes' },
    { name: 'report_publisher_wait_pct', value: run.publisherWait * 100, unit: '%', note: 'time publishers waited for the node (high = node-bound)' },
    { name: 'report_ingest_state_changes', value: run.events, unit: 'events', note: 'during the window; expected 0 (errors below thresholds)' },
  ];
}

// ---------------------------------------------------------------- 3 + 4. propagation and ejection

interface Delivery {
  agent: number;
  t: number;
}

/** Conditions re-checked whenever a record or a node change arrives (no polling in the node's process). */
const checks = new Set<() => void>();
function when(cond: () => boolean, timeoutMs: number): Promise<boolean> {
  if (cond()) return Promise.resolve(true);
  return new Promise((resolve) => {
    const chk = () => {
      if (!cond()) return;
      clearTimeout(t);
      checks.delete(chk);
      resolve(true);
    };
    const t = setTimeout(() => {
      checks.delete(chk);
      resolve(false);
    }, timeoutMs);
    checks.add(chk);
  });
}
function poke(): void {
  for (const c of [...checks]) c();
}

interface FanoutResult {
  prop: { all: number[]; trialMax: number[]; registry: number[]; missed: number; cpuUs: number };
  eject: { all: number[]; trialMax: number[]; node: number[]; missed: number; picked: number };
  readyMs: number;
}

const WARMUP_TRIALS = 10;
const PICK_SAMPLE = 40;

/**
 * One pass: AGENTS agents in AGENT_PROCS processes follow PROP_ROUTE and `ejectRoutes`;
 * WARMUP_TRIALS + TRIALS registry edits, then one ejection per eject route (the first
 * WARMUP_TRIALS not counted).
 */
async function fanoutPass(n: Names, node: RouteNode, registry: Registry, nc: NatsConnection, ejectRoutes: Array<[number, number]>, sharedConnection: boolean): Promise<FanoutResult> {
  // Node side: when each version of a route was published, and when each host was first published ejected.
  const nodeVersionT = new Map<string, number>();
  const nodeEjectT = new Map<string, number>();
  let propVersion = 0;
  const off = node.onChange((s: RouteState) => {
    const t = epochMs();
    nodeVersionT.set(`${s.modid}.${s.cmdid}.${s.version}`, t);
    if (s.modid === PROP_ROUTE[0] && s.cmdid === PROP_ROUTE[1]) propVersion = Math.max(propVersion, s.version);
    if (s.modid === EJECT_MODID) {
      for (const h of s.hosts) {
        const k = `${s.modid}.${s.cmdid}.${h.ip}:${h.port}`;
        if (h.state === 'overloaded' && !nodeEjectT.has(k)) nodeEjectT.set(k, t);
      }
    }
    poke();
  });

  // Agent side.
  const versionRecs = new Map<string, Delivery[]>();
  const ejectRecs = new Map<string, Array<Delivery & { picked: number }>>();
  const procs: ChildProcess[] = [];
  const t0 = epochMs();
  for (let p = 0; p < AGENT_PROCS; p++) {
    const cfg: AgentsConfig = {
      url: server!.url,
      prefix: n.prefix,
      partitions: P,
      first: p * AGENTS_PER_PROC,
      count: AGENTS_PER_PROC,
      sharedConnection,
      propRoute: PROP_ROUTE,
      ejectRoutes,
      pickSample: PICK_SAMPLE,
    };
    const c = spawnChild('_agents.ts', cfg);
    c.on('message', (m: FromAgents) => {
      if (m.type !== 'rec') return;
      for (const it of m.items) {
        if (it[0] === 'v') {
          const k = `${it[2]}.${it[3]}.${it[4]}`;
          let a = versionRecs.get(k);
          if (!a) versionRecs.set(k, (a = []));
          a.push({ agent: it[1], t: it[5] });
        } else {
          const k = `${it[2]}.${it[3]}.${it[4]}`;
          let a = ejectRecs.get(k);
          if (!a) ejectRecs.set(k, (a = []));
          a.push({ agent: it[1], t: it[6], picked: it[7] });
        }
      }
      poke();
    });
    procs.push(c);
  }
  const cpu = async () => {
    const rs = await Promise.all(
      procs.map((c) => {
        const r = nextMessage<FromAgents, 'cpu'>(c, 'cpu', 5000);
        c.send({ type: 'cpu' } satisfies ToAgents);
        return r;
      }),
    );
    return rs.reduce((a, r) => a + r.userUs + r.systemUs, 0);
  };
  try {
    await Promise.all(procs.map((c) => nextMessage<FromAgents, 'ready'>(c, 'ready', 120_000)));
    const readyMs = epochMs() - t0;
    await sleep(300);

    // ---- propagation: registry weight edits on PROP_ROUTE
    const prop = { all: [] as number[], trialMax: [] as number[], registry: [] as number[], missed: 0, cpuUs: 0 };
    let cpu0 = 0;
    for (let i = 0; i < WARMUP_TRIALS + TRIALS; i++) {
      if (i === WARMUP_TRIALS) cpu0 = await cpu();
      const counted = i >= WARMUP_TRIALS;
      const before = propVersion;
      const w = i % 2 === 0 ? 150 : 100;
      const tReg = epochMs();
      await registry.update(PROP_ROUTE[0], PROP_ROUTE[1], (cur) => {
        if (!cur) throw new Error('propagation route vanished');
        return { ...cur, hosts: cur.hosts.map((h, j) => (j === 0 ? { ...h, weight: w } : h)), updated_by: 'bench-core', ts: Date.now() };
      });
      if (!(await when(() => propVersion > before, 3000))) throw new Error(`node published no new version of the propagation route in trial ${i}`);
      const ver = propVersion;
      const key = `${PROP_ROUTE[0]}.${PROP_ROUTE[1]}.${ver}`;
      await when(() => (versionRecs.get(key)?.length ?? 0) >= AGENTS, 3000);
      const tNode = nodeVersionT.get(key)!;
      const recs = versionRecs.get(key) ?? [];
      if (counted) {
        prop.missed += AGENTS - recs.length;
        let mx = 0;
        for (const r of recs) {
          const d = r.t - tNode;
          prop.all.push(d);
          if (d > mx) mx = d;
        }
        prop.trialMax.push(mx);
        if (recs.length > 0) prop.registry.push(Math.max(...recs.map((r) => r.t)) - tReg);
      }
      await sleep(20 + Math.random() * 30);
    }
    prop.cpuUs = ((await cpu()) - cpu0) / (TRIALS * AGENTS);

    // ---- ejection: one fresh route and host per trial, 15 consecutive errors in one batch
    const eject = { all: [] as number[], trialMax: [] as number[], node: [] as number[], missed: 0, picked: 0 };
    for (let i = 0; i < ejectRoutes.length; i++) {
      const counted = i >= WARMUP_TRIALS;
      const [m, c] = ejectRoutes[i]!;
      const j = i % HOSTS_PER_ROUTE;
      const h = ejectHosts(c)[j]!;
      const host: [string, number] = [h.ip, h.port];
      const reports: ReportTuple[] = Array.from({ length: 15 }, (_, k) => [0, 503, 12.5, k]);
      const batch: ReportBatch = { v: 1, sender: 'bench-core', modid: m, cmdid: c, ts: Date.now(), hosts: [host], reports };
      const data = encode(batch);
      const subject = n.report(partitionOf(m, c, P), m, c);
      const key = `${m}.${c}.${host[0]}:${host[1]}`;
      const tPub = epochMs();
      nc.publish(subject, data);
      await nc.flush();
      await when(() => (ejectRecs.get(key)?.length ?? 0) >= AGENTS, 3000);
      const recs = ejectRecs.get(key) ?? [];
      if (counted) {
        eject.missed += AGENTS - recs.length;
        let mx = 0;
        for (const r of recs) {
          const d = r.t - tPub;
          eject.all.push(d);
          if (d > mx) mx = d;
          eject.picked += r.picked;
        }
        if (recs.length > 0) eject.trialMax.push(mx);
        const tn = nodeEjectT.get(key);
        if (tn !== undefined) eject.node.push(tn - tPub);
      }
      await sleep(20 + Math.random() * 30);
    }
    return { prop, eject, readyMs };
  } finally {
    off();
    await Promise.all(procs.map((c) => stopChild(c, { type: 'stop' } satisfies ToAgents, 8000)));
  }
}

function describeFanout(label: string, r: FanoutResult): void {
  const f = (v: number) => v.toFixed(2);
  log(
    `${label}: agents ready in ${Math.round(r.readyMs)} ms; propagation p50 ${f(percentile(r.prop.all, 50))} / p99 ${f(percentile(r.prop.all, 99))} ms, ` +
      `per-trial max p50 ${f(percentile(r.prop.trialMax, 50))} / p99 ${f(percentile(r.prop.trialMax, 99))} ms, agent CPU ${Math.round(r.prop.cpuUs)} us/update, missed ${r.prop.missed}; ` +
      `ejection per-trial max p50 ${f(percentile(r.eject.trialMax, 50))} / p99 ${f(percentile(r.eject.trialMax, 99))} ms, node p99 ${f(percentile(r.eject.node, 99))} ms, missed ${r.eject.missed}, picks after ${r.eject.picked}`,
  );
}

async function benchFanout(n: Names, node: RouteNode, registry: Registry, nc: NatsConnection, ejectRoutes: Array<[number, number]>): Promise<Metric[]> {
  const per = WARMUP_TRIALS + TRIALS;
  // Primary: every agent on its own NATS connection, as separate services are.
  const own = await fanoutPass(n, node, registry, nc, ejectRoutes.slice(0, per), false);
  describeFanout(`${AGENTS} agents, own connection each`, own);
  // Secondary: the agents of one process share one connection (fewer sockets on this 2-core box).
  const shared = await fanoutPass(n, node, registry, nc, ejectRoutes.slice(per, 2 * per), true);
  describeFanout(`${AGENTS} agents, one connection per process`, shared);
  const r = own;
  const setup = `${AGENTS} agents in ${AGENT_PROCS} processes, own NATS connection each`;
  return [
    { name: 'route_propagation_p50_ms', value: ms(percentile(r.prop.all, 50)), unit: 'ms', note: `over ${r.prop.all.length} (trial, agent) deliveries` },
    { name: 'route_propagation_p99_ms', value: ms(percentile(r.prop.all, 99)), unit: 'ms', target: '<= 20', note: `node publishes version -> agent holds it; ${TRIALS} trials; ${setup}` },
    { name: 'route_propagation_trial_max_p99_ms', value: ms(percentile(r.prop.trialMax, 99)), unit: 'ms', note: 'p99 over trials of the slowest agent' },
    { name: 'route_propagation_registry_p99_ms', value: ms(percentile(r.prop.registry, 99)), unit: 'ms', note: 'registry KV update -> last agent (KV write + watch + node + fan-out)' },
    { name: 'route_propagation_missed', value: r.prop.missed, unit: 'deliveries', note: 'expected 0' },
    { name: 'route_update_agent_cpu_us', value: r.prop.cpuUs, unit: 'us', note: 'CPU of the agent processes per (update, agent)' },
    { name: 'ejection_p50_ms', value: ms(percentile(r.eject.trialMax, 50)), unit: 'ms', note: 'per-trial max over agents' },
    { name: 'ejection_p99_ms', value: ms(percentile(r.eject.trialMax, 99)), unit: 'ms', target: '<= 50', note: `report batch published -> all ${AGENTS} agents hold the host ejected; ${r.eject.trialMax.length} trials` },
    { name: 'ejection_all_p99_ms', value: ms(percentile(r.eject.all, 99)), unit: 'ms', note: `over ${r.eject.all.length} (trial, agent) deliveries` },
    { name: 'ejection_node_p99_ms', value: ms(percentile(r.eject.node, 99)), unit: 'ms', note: 'report batch published -> node publishes the ejection' },
    { name: 'ejection_missed', value: r.eject.missed, unit: 'deliveries', note: 'expected 0' },
    { name: 'ejection_picks_after', value: r.eject.picked, unit: 'picks', note: `ejected host picked in ${PICK_SAMPLE} sampled picks per agent after it saw the ejection; expected 0` },
    { name: 'route_propagation_p50_ms_shared_conn', value: ms(percentile(shared.prop.all, 50)), unit: 'ms', note: 'same, the agents of a process share one connection' },
    { name: 'route_propagation_p99_ms_shared_conn', value: ms(percentile(shared.prop.all, 99)), unit: 'ms', note: 'same, shared connection' },
    { name: 'route_propagation_trial_max_p99_ms_shared_conn', value: ms(percentile(shared.prop.trialMax, 99)), unit: 'ms', note: 'same, shared connection' },
    { name: 'route_update_agent_cpu_us_shared_conn', value: shared.prop.cpuUs, unit: 'us', note: 'same, shared connection' },
    { name: 'ejection_p99_ms_shared_conn', value: ms(percentile(shared.eject.trialMax, 99)), unit: 'ms', note: 'same, shared connection' },
    { name: 'ejection_missed_shared_conn', value: shared.eject.missed, unit: 'deliveries', note: 'expected 0' },
  ];
}

// ---------------------------------------------------------------- 5. heap per host

async function benchHeap(nc: NatsConnection): Promise<Metric[]> {
  const n = makeNames(`bh${randomBytes(3).toString('hex')}`);
  const kv = await openBucket(nc, n.registryBucket);
  const t0 = epochMs();
  const ids = Array.from({ length: HEAP_ROUTES }, (_, r) => r);
  await pool(ids, 64, async (r) => {
    const modid = 10 + Math.floor(r / 1000);
    const cmdid = (r % 1000) + 1;
    const entry: RegistryEntry = {
      v: 1,
      modid,
      cmdid,
      hosts: Array.from({ length: HOSTS_PER_ROUTE }, (_, j) => ({ ip: `10.${(r >> 8) & 255}.${r & 255}.${j + 1}`, port: 8000 + (r >> 16), weight: 100 })),
      updated_by: 'bench-core',
      ts: Date.now(),
    };
    await kv.create(n.routeKey(modid, cmdid), encode(entry));
  });
  const writeMs = epochMs() - t0;
  log(`heap: ${HEAP_ROUTES} routes x ${HOSTS_PER_ROUTE} hosts written to the registry KV in ${Math.round(writeMs)} ms`);
  const cfg: HeapConfig = { url: server!.url, prefix: n.prefix, partitions: P, routes: HEAP_ROUTES, hostsPerRoute: HOSTS_PER_ROUTE, loadTimeoutMs: 150_000 };
  const c = spawnChild('_heap.ts', cfg, true);
  try {
    const res = await Promise.race([nextMessage<FromHeap, 'result'>(c, 'result', 180_000), nextMessage<FromHeap, 'error'>(c, 'error', 180_000).then((e) => Promise.reject(new Error(`heap child: ${e.message}`)))]);
    const delta = res.after - res.baseline;
    const perHost = delta / res.hosts;
    log(`heap: node loaded ${res.routes} routes / ${res.hosts} hosts in ${Math.round(res.loadMs)} ms (settled ${Math.round(res.settleMs)} ms); heapUsed ${res.baseline} -> ${res.after} (+${delta} B), ${perHost.toFixed(0)} B/host; rss +${Math.round(res.rssDelta / 2 ** 20)} MiB`);
    return [
      { name: 'heap_bytes_per_host', value: perHost, unit: 'B/host', target: '<= 2048', note: `heapUsed delta after full GCs / ${res.hosts} hosts` },
      { name: 'heap_routes', value: res.routes, unit: 'routes' },
      { name: 'heap_node_bytes', value: delta, unit: 'B', note: 'heapUsed of the node process with the node minus before it' },
      { name: 'heap_node_load_ms', value: Math.round(res.loadMs), unit: 'ms', note: 'RouteNode.start until every route is loaded' },
      { name: 'heap_registry_write_ms', value: Math.round(writeMs), unit: 'ms', note: 'kv.create of every route, 64 in flight' },
    ];
  } finally {
    await stopChild(c, undefined, 8000);
  }
}

// ---------------------------------------------------------------- main

async function main(): Promise<void> {
  const tStart = epochMs();
  const loadStart = loadavg()[0]!;
  server = await startNatsServer();
  log(`nats-server ${server.url} (store ${server.storeDir})`);
  const n = makeNames(`bc${randomBytes(3).toString('hex')}`);
  const nc = await connection('bench-core');
  const nodeNc = await connection('bench-core-node');
  const registry = await Registry.open(nc, n);

  const ingestRoutes: PublisherConfig['routes'] = [];
  for (let c = 1; c <= INGEST_ROUTES; c++) ingestRoutes.push([INGEST_MODID, c, benchHosts(2, c, HOSTS_PER_ROUTE).map((h) => [h.ip, h.port] as [string, number])]);
  // Two fan-out passes (own / shared connections), each with warm-up and counted ejection trials on fresh routes.
  const ejectRoutes: Array<[number, number]> = Array.from({ length: 2 * (WARMUP_TRIALS + TRIALS) }, (_, i) => [EJECT_MODID, i + 1]);
  const setup: Array<() => Promise<unknown>> = [
    () => registry.addHosts(...PICK_ROUTE, benchHosts(1, 1, HOSTS_PER_ROUTE, (i) => (i + 1) * 10), 'bench-core'),
    () => registry.addHosts(...PROP_ROUTE, benchHosts(4, 1, HOSTS_PER_ROUTE), 'bench-core'),
    ...ingestRoutes.map(([m, c]) => () => registry.addHosts(m, c, benchHosts(2, c, HOSTS_PER_ROUTE), 'bench-core')),
    // An ejected host stays out for the whole run, so no recovery (probing) publishes interleave with later trials.
    ...ejectRoutes.map(([m, c]) => () => registry.addHosts(m, c, ejectHosts(c), 'bench-core', { params: { base_ejection_time: 3600, max_ejection_time: 3600 } })),
  ];
  await pool(setup, 16, (f) => f());
  const node = await RouteNode.start({ nc: nodeNc, nodeId: 'bench-core-node', prefix: n.prefix, partitions: P, tickMs: 100 });
  nodes.push(node);
  if (!(await waitFor(() => node.stats().routes === setup.length, 30_000, 20))) throw new Error(`node loaded ${node.stats().routes} of ${setup.length} routes`);
  await node.settled();
  log(`node holds ${node.stats().routes} routes (prefix ${n.prefix}, ${P} partitions)`);

  const metrics: Metric[] = [];
  metrics.push(...(await benchHop()));
  metrics.push(...(await benchPicks(n)));
  metrics.push(...(await benchIngest(n, node, ingestRoutes)));
  metrics.push(...(await benchFanout(n, node, registry, nc, ejectRoutes)));
  await node.close();
  nodes.splice(0);
  metrics.push(...(await benchHeap(nc)));
  metrics.push({ name: 'machine_load_1m_start', value: loadStart, unit: 'load', note: `1-min load average at start (other work on the ${cpus().length}-core machine skews every figure)` });
  metrics.push({ name: 'machine_load_1m_end', value: loadavg()[0]!, unit: 'load', note: '1-min load average at the end' });
  metrics.push({ name: 'core_bench_seconds', value: Math.round((epochMs() - tStart) / 1000), unit: 's', note: 'whole group' });
  if (sink === 42) console.log(''); // keep the pick results alive
  record('core', metrics);
}

try {
  await main();
} catch (err) {
  console.error(`[core] failed: ${(err as Error).stack ?? String(err)}`);
  process.exitCode = 1;
} finally {
  await cleanup();
}
