/**
 * The Go SDK (clients/go), measured with Go's testing.B through
 * scripts/go.mjs (`npm run bench -- go`):
 *  - go_gethost_ns: an in-process pick, swrr, 10 hosts, one goroutine (target ≤ 50 ns)
 *  - go_gethost_parallel_picks_per_sec: the same from 8 × GOMAXPROCS goroutines on one route, aggregate
 *  - go_gethost_p2c_ewma_ns: a pick and its report with the default strategy (reads the clock)
 *  - go_report_ns: the enqueue of one report (target ≤ 100 ns)
 *  - go_route_update_cpu_us: process CPU per route update of 10 hosts from a real nats-server;
 *    compared with ts_agent_route_update_cpu_us, one TypeScript agent process on the same updates
 *    at the same time (bench/_ts-follower.ts)
 *  - go_ejection_lag_p50/p99_ms, ts_ejection_lag_p50/p99_ms: a state ejecting a host published ->
 *    each agent holds it (both at once, on the same states); go_ejected_host_picks after
 *  - go_route_update_decode_us: the decode, checks and apply of one update alone
 *  - go_acked_reports_per_sec_small_batches: one Go agent, batches of 10 over 100 routes,
 *    acknowledged by a real nats-server's REPORTS stream; compared with the TypeScript
 *    cluster group's figure recorded in bench/results/latest.json (not re-run here)
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { names as makeNames } from '../schemas/subjects.ts';
import { ensureStreams } from '../src/nats/streams.ts';
import { connectNats } from '../src/nats/connect.ts';
import { startNatsServer } from '../src/nats/natsd.ts';
import { record, type Metric } from './lib.ts';
import { ensureGo, goEnv, runGo } from '../scripts/go.mjs';
import { encode } from '../schemas/codec.ts';
import { epochMs, percentile } from './_common.ts';
import { nextMessage, spawnChild, stopChild } from './_harness.ts';
import type { FollowerConfig, FromFollower } from './_ts-follower.ts';
import { performance } from 'node:perf_hooks';
import { createAgent } from '../src/agent/agent.ts';

const QUICK = process.argv.includes('--quick');

/** `go test -bench`: ns/op and every custom metric, by benchmark name. */
function goBench(pattern: string, env: Record<string, string> = {}, benchtime = QUICK ? '200ms' : '2s'): Map<string, Record<string, number>> {
  const r = runGo(['test', '-run', '^$', '-bench', pattern, '-benchtime', benchtime, '-count', '1', '.'], { stdio: 'pipe', env, timeoutMs: 600_000 });
  if (r.status !== 0) throw new Error(`go test -bench ${pattern} failed:\n${r.stdout}\n${r.stderr}`);
  const out = new Map<string, Record<string, number>>();
  for (const line of r.stdout.split('\n')) {
    const m = /^(Benchmark\w+?)(?:-\d+)?\s+\d+\s+(.*)$/.exec(line.trim());
    if (!m) continue;
    const vals: Record<string, number> = {};
    const parts = m[2]!.trim().split(/\s+/);
    for (let i = 0; i + 1 < parts.length; i += 2) vals[parts[i + 1]!] = Number(parts[i]);
    out.set(m[1]!, vals);
  }
  return out;
}

/** A route state of route 1.1 with 10 hosts: one host's pick weight changed by `version`, or (`eject`) that host ejected. */
function routeState(version: number, eject: boolean): Uint8Array {
  const hosts = Array.from({ length: 10 }, (_, i) => {
    const mine = i === version % 10;
    if (eject && mine) return { ip: `10.0.0.${i + 1}`, port: 8000, weight: 100, state: 'overloaded', reason: 'consecutive_errors', since: 0, pick_weight: 0 };
    return { ip: `10.0.0.${i + 1}`, port: 8000, weight: 100, state: 'healthy', reason: 'registered', since: 0, pick_weight: mine ? 50 + (version % 50) : 100 + 10 * i };
  });
  return encode({ v: 1, sender: 'bench', modid: 1, cmdid: 1, version, ts: epochMs(), profile: 'default', panic: false, removed: false, probe_num: 10, hosts });
}

interface FollowFigures {
  goCpuUs: number;
  tsCpuUs: number;
  goEject: { lagMs: number[]; picked: number };
  tsEject: { lagMs: number[]; picked: number };
}

/**
 * A Go agent (its test binary, TestLiveFollowCPU) and a TypeScript agent
 * (_ts-follower.ts), each in its own process, follow route 1.1 while this
 * process publishes `updates` states of 10 hosts, one host's weight changed
 * each time, 1000 a second: each one's process CPU per update, on the same
 * updates. Then `ejections` states 20 ms apart, each ejecting one host: the
 * time from each publish to each agent holding it, and its picks of the
 * ejected host after.
 */
async function follow(url: string, prefix: string, updates: number, ejections: number): Promise<FollowFigures> {
  const dir = mkdtempSync(join(tmpdir(), 'lars-go-bench-'));
  const ts = spawnChild('_ts-follower.ts', { url, prefix, updates, ejections } satisfies FollowerConfig);
  try {
    const tsReady = nextMessage<FromFollower, 'ready'>(ts, 'ready', 30_000);
    const bin = join(dir, 'lars.test');
    const built = runGo(['test', '-c', '-o', bin, '.'], { stdio: 'pipe', timeoutMs: 300_000 });
    if (built.status !== 0) throw new Error(`go test -c failed:\n${built.stdout}\n${built.stderr}`);
    const child = spawn(bin, ['-test.run', '^TestLiveFollowCPU$', '-test.v', '-test.count=1', '-test.timeout=300s'], {
      cwd: goEnv().dir,
      env: { ...process.env, LARS_BENCH_NATS_URL: url, LARS_BENCH_PREFIX: prefix, LARS_BENCH_FOLLOW: String(updates), LARS_BENCH_EJECT: String(ejections) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    const seen: Array<() => void> = [];
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      for (const f of seen) f();
    });
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    const line = (tag: string, timeoutMs: number): Promise<string> =>
      new Promise((resolve, reject) => {
        const re = new RegExp(`^${tag}(?: (.*))?$`, 'm');
        const t = setTimeout(() => reject(new Error(`no ${tag} from the Go agent within ${timeoutMs} ms:\n${out}`)), timeoutMs);
        const check = (): void => {
          const m = re.exec(out);
          if (!m) return;
          clearTimeout(t);
          resolve(m[1] ?? '');
        };
        seen.push(check);
        check();
        void exited.then(() => setTimeout(() => reject(new Error(`the Go agent exited before ${tag}:\n${out}`)), 100));
      });
    await Promise.all([line('GO_FOLLOW_READY', 30_000), tsReady]);
    const tsCpu = nextMessage<FromFollower, 'cpu'>(ts, 'cpu', 120_000);
    const tsEject = nextMessage<FromFollower, 'eject'>(ts, 'eject', 120_000 + ejections * 100);
    const nc = await connectNats({ url, name: 'bench-go-publisher' });
    const subject = makeNames(prefix).route(1, 1);
    for (let v = 1; v <= updates; v++) {
      nc.publish(subject, routeState(v, false));
      await new Promise((r) => setTimeout(r, 1));
    }
    await nc.flush();
    const goCpu = JSON.parse(await line('GO_FOLLOW', 120_000)) as { cpu_us_per_update: number };
    const tsCpuMsg = await tsCpu;
    await line('GO_EJECT_READY', 30_000);
    for (let v = updates + 1; v <= updates + ejections; v++) {
      nc.publish(subject, routeState(v, true));
      await nc.flush();
      await new Promise((r) => setTimeout(r, 20));
    }
    const goEject = JSON.parse(await line('GO_EJECT', 30_000)) as { lag_ms: number[]; picked: number };
    const tsEjectMsg = await tsEject;
    await nc.close();
    const code = await exited;
    if (code !== 0) throw new Error(`TestLiveFollowCPU failed:\n${out}`);
    return { goCpuUs: goCpu.cpu_us_per_update, tsCpuUs: tsCpuMsg.cpuUsPerUpdate, goEject: { lagMs: goEject.lag_ms, picked: goEject.picked }, tsEject: { lagMs: tsEjectMsg.lagMs, picked: tsEjectMsg.picked } };
  } finally {
    await stopChild(ts);
    rmSync(dir, { recursive: true, force: true });
  }
}

function need(res: Map<string, Record<string, number>>, name: string, unit: string): number {
  const v = res.get(name)?.[unit];
  if (v === undefined || !Number.isFinite(v)) throw new Error(`no ${unit} for ${name} in the go test output`);
  return v;
}

async function main(): Promise<void> {
  if (!ensureGo()) process.exit(1);
  const micro = goBench('^Benchmark(GetHost|Report|RouteUpdate)');
  const server = await startNatsServer();
  let acked: number;
  let tsAckedRun: number;
  let f: FollowFigures;
  try {
    const nc = await connectNats({ url: server.url, name: 'bench-go' });
    const n = makeNames(`bg${randomBytes(3).toString('hex')}`);
    await ensureStreams(nc, n, { reports: { maxBytes: 2 ** 30 } });
    await nc.close();
    const env = { LARS_BENCH_NATS_URL: server.url, LARS_BENCH_PREFIX: n.prefix };
    acked = need(goBench('^BenchmarkLiveAckedSmallBatches$', env, QUICK ? '1x' : '3x'), 'BenchmarkLiveAckedSmallBatches', 'acked_reports/s');
    tsAckedRun = await tsAckedSmallBatches(server.url, n.prefix, QUICK ? 1 : 3);
    f = await follow(server.url, n.prefix, QUICK ? 500 : 3000, QUICK ? 20 : 100);
  } finally {
    await server.stop();
  }
  const latest = JSON.parse(readFileSync(join(import.meta.dirname, 'results', 'latest.json'), 'utf8')) as Record<string, number>;
  const tsAckedCluster = latest['acked_reports_per_sec_small_batches'];
  const tsUpdateCore = latest['route_update_agent_cpu_us'];
  const p = (v: number[], q: number): number => Math.round(percentile(v, q) * 1000) / 1000;
  const metrics: Metric[] = [
    { name: 'go_gethost_ns', value: need(micro, 'BenchmarkGetHostSwrr', 'ns/op'), unit: 'ns', target: '<= 50', note: 'swrr, 10 hosts, one goroutine' },
    { name: 'go_gethost_parallel_picks_per_sec', value: 1e9 / need(micro, 'BenchmarkGetHostSwrrParallel', 'ns/op'), unit: 'picks/s', note: '8 goroutines per core on one route, aggregate' },
    { name: 'go_gethost_p2c_ewma_ns', value: need(micro, 'BenchmarkGetHostP2cEwma', 'ns/op'), unit: 'ns', note: 'p2c_ewma pick + report, 10 hosts' },
    { name: 'go_report_ns', value: need(micro, 'BenchmarkReport', 'ns/op'), unit: 'ns', target: '<= 100', note: 'enqueue one report' },
    {
      name: 'go_route_update_cpu_us',
      value: f.goCpuUs,
      unit: 'µs',
      target: `<= ${Math.round(f.tsCpuUs * 10) / 10}`,
      note: 'Go agent process CPU per route update of 10 hosts from a real nats-server, ~1000/s, publisher in another process; target: ts_agent_route_update_cpu_us of the same run',
    },
    {
      name: 'ts_agent_route_update_cpu_us',
      value: f.tsCpuUs,
      unit: 'µs',
      note: `one TypeScript agent process on the same updates, at the same time as the Go agent (the core group's route_update_agent_cpu_us, 100 agents in processes: ${tsUpdateCore ?? 'not recorded'})`,
    },
    { name: 'go_ejection_lag_p50_ms', value: p(f.goEject.lagMs, 50), unit: 'ms', note: `publish of a state ejecting a host -> the Go agent holds it; ${f.goEject.lagMs.length} ejections 20 ms apart` },
    {
      name: 'go_ejection_lag_p99_ms',
      value: p(f.goEject.lagMs, 99),
      unit: 'ms',
      target: `<= ${p(f.tsEject.lagMs, 99)}`,
      note: 'same; target: ts_ejection_lag_p99_ms of the same run (the TS agent on the same states, at the same time)',
    },
    { name: 'ts_ejection_lag_p50_ms', value: p(f.tsEject.lagMs, 50), unit: 'ms', note: 'publish of a state ejecting a host -> the TypeScript agent holds it' },
    { name: 'ts_ejection_lag_p99_ms', value: p(f.tsEject.lagMs, 99), unit: 'ms', note: 'same' },
    { name: 'go_ejected_host_picks', value: f.goEject.picked, unit: 'picks', target: '= 0', note: `picks of the ejected host among 100 after each ejection (TS agent: ${f.tsEject.picked})` },
    { name: 'go_route_update_decode_us', value: need(micro, 'BenchmarkRouteUpdate', 'ns/op') / 1000, unit: 'µs', note: 'decode + check + apply alone, 10 hosts, one goroutine' },
    {
      name: 'go_acked_reports_per_sec_small_batches',
      value: acked,
      unit: 'reports/s',
      target: `>= ${Math.round(tsAckedRun)}`,
      note: 'one Go agent, batches of 10, 100 routes, PublishWindow 1000; target: ts_agent_acked_reports_per_sec_small_batches of the same run',
    },
    {
      name: 'ts_agent_acked_reports_per_sec_small_batches',
      value: tsAckedRun,
      unit: 'reports/s',
      note: `one TypeScript agent on the same server, same batches, routes and window, right after the Go agent (the cluster group's 1000 simulated agents: ${tsAckedCluster ?? 'not recorded'})`,
    },
  ];
  record('go', metrics);
}

/**
 * The TypeScript agent's acknowledged reports per second in the Go bench's
 * shape (one agent, batches of 10 over 100 routes, 1000 batches out, 200,000
 * reports then a flush), in this process; the median of `runs`.
 */
async function tsAckedSmallBatches(url: string, prefix: string, runs: number): Promise<number> {
  const agent = await createAgent({ servers: url, prefix, agentId: 'bench-ts-acked', batchMaxReports: 10, publishWindow: 1000, maxPendingReports: 2 ** 30 });
  const total = 200_000;
  const hosts = [{ ip: '10.0.0.1', port: 8000 }, { ip: '10.0.0.2', port: 8000 }];
  const rates: number[] = [];
  try {
    for (let r = 0; r < runs; r++) {
      const t0 = performance.now();
      for (let k = 0; k < total; k++) agent.report(1 + (k % 100), 1, hosts[k % 2]!, 0, 1);
      await agent.flush({ timeoutMs: 120_000 });
      rates.push(total / ((performance.now() - t0) / 1000));
    }
    const dropped = agent.stats().droppedReports;
    if (dropped !== 0) throw new Error(`the TypeScript agent dropped ${dropped} reports`);
  } finally {
    await agent.close();
  }
  return percentile(rates, 50);
}

await main();
