/**
 * The Go SDK (clients/go), measured with Go's testing.B through
 * scripts/go.mjs (`npm run bench -- go`):
 *  - go_gethost_ns: an in-process pick, swrr, 10 hosts, one goroutine (target ≤ 50 ns)
 *  - go_gethost_parallel_picks_per_sec: the same from 8 × GOMAXPROCS goroutines on one route, aggregate
 *  - go_gethost_p2c_ewma_ns: a pick and its report with the default strategy (reads the clock)
 *  - go_report_ns: the enqueue of one report (target ≤ 100 ns)
 *  - go_route_update_cpu_us: process CPU per route update of 10 hosts from a real nats-server;
 *    compared with the TypeScript agent's route_update_agent_cpu_us recorded in bench/results/latest.json
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

/**
 * The Go agent's process CPU per route update: its test binary follows route
 * 1.1 (TestLiveFollowCPU) while this process publishes `updates` states of 10
 * hosts, one host's weight changed each time, 1000 a second.
 */
async function followCpu(url: string, prefix: string, updates: number): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'lars-go-bench-'));
  try {
    const bin = join(dir, 'lars.test');
    const built = runGo(['test', '-c', '-o', bin, '.'], { stdio: 'pipe', timeoutMs: 300_000 });
    if (built.status !== 0) throw new Error(`go test -c failed:\n${built.stdout}\n${built.stderr}`);
    const child = spawn(bin, ['-test.run', '^TestLiveFollowCPU$', '-test.v', '-test.count=1'], {
      cwd: goEnv().dir,
      env: { ...process.env, LARS_BENCH_NATS_URL: url, LARS_BENCH_PREFIX: prefix, LARS_BENCH_FOLLOW: String(updates) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    const ready = new Promise<void>((resolve) => {
      child.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('GO_FOLLOW_READY')) resolve();
      });
    });
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    await Promise.race([ready, exited]);
    const nc = await connectNats({ url, name: 'bench-go-publisher' });
    const subject = makeNames(prefix).route(1, 1);
    for (let v = 1; v <= updates; v++) {
      const hosts = Array.from({ length: 10 }, (_, i) => ({ ip: `10.0.0.${i + 1}`, port: 8000, weight: 100, state: 'healthy', reason: 'registered', since: 0, pick_weight: i === v % 10 ? 50 + (v % 50) : 100 + 10 * i }));
      nc.publish(subject, encode({ v: 1, sender: 'bench', modid: 1, cmdid: 1, version: v, ts: Date.now(), profile: 'default', panic: false, removed: false, probe_num: 10, hosts }));
      await new Promise((r) => setTimeout(r, 1));
    }
    await nc.flush();
    const code = await exited;
    await nc.close();
    const m = /^GO_FOLLOW (.*)$/m.exec(out);
    if (code !== 0 || !m) throw new Error(`TestLiveFollowCPU failed:\n${out}`);
    return (JSON.parse(m[1]!) as { cpu_us_per_update: number }).cpu_us_per_update;
  } finally {
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
  let updateCpu: number;
  try {
    const nc = await connectNats({ url: server.url, name: 'bench-go' });
    const n = makeNames(`bg${randomBytes(3).toString('hex')}`);
    await ensureStreams(nc, n, { reports: { maxBytes: 2 ** 30 } });
    await nc.close();
    const env = { LARS_BENCH_NATS_URL: server.url, LARS_BENCH_PREFIX: n.prefix };
    acked = need(goBench('^BenchmarkLiveAckedSmallBatches$', env, QUICK ? '1x' : '3x'), 'BenchmarkLiveAckedSmallBatches', 'acked_reports/s');
    updateCpu = await followCpu(server.url, n.prefix, QUICK ? 500 : 3000);
  } finally {
    await server.stop();
  }
  const latest = JSON.parse(readFileSync(join(import.meta.dirname, 'results', 'latest.json'), 'utf8')) as Record<string, number>;
  const tsAcked = latest['acked_reports_per_sec_small_batches'];
  const tsUpdate = latest['route_update_agent_cpu_us'];
  const metrics: Metric[] = [
    { name: 'go_gethost_ns', value: need(micro, 'BenchmarkGetHostSwrr', 'ns/op'), unit: 'ns', target: '<= 50', note: 'swrr, 10 hosts, one goroutine' },
    { name: 'go_gethost_parallel_picks_per_sec', value: 1e9 / need(micro, 'BenchmarkGetHostSwrrParallel', 'ns/op'), unit: 'picks/s', note: '8 goroutines per core on one route, aggregate' },
    { name: 'go_gethost_p2c_ewma_ns', value: need(micro, 'BenchmarkGetHostP2cEwma', 'ns/op'), unit: 'ns', note: 'p2c_ewma pick + report, 10 hosts' },
    { name: 'go_report_ns', value: need(micro, 'BenchmarkReport', 'ns/op'), unit: 'ns', target: '<= 100', note: 'enqueue one report' },
    {
      name: 'go_route_update_cpu_us',
      value: updateCpu,
      unit: 'µs',
      ...(tsUpdate !== undefined ? { target: `<= ${tsUpdate}` } : {}),
      note: 'Go agent process CPU per route update of 10 hosts from a real nats-server, ~1000/s, publisher in another process; target: the recorded route_update_agent_cpu_us (TS agent processes, core group)',
    },
    { name: 'go_route_update_decode_us', value: need(micro, 'BenchmarkRouteUpdate', 'ns/op') / 1000, unit: 'µs', note: 'decode + check + apply alone, 10 hosts, one goroutine' },
    {
      name: 'go_acked_reports_per_sec_small_batches',
      value: acked,
      unit: 'reports/s',
      ...(tsAcked !== undefined ? { target: `>= ${Math.round(tsAcked)}` } : {}),
      note: 'one Go agent, batches of 10, 100 routes, PublishWindow 1000 (the TS figure: 1000 agents with one batch out each); target: the recorded acked_reports_per_sec_small_batches (1000 simulated TS agents, cluster group)',
    },
  ];
  record('go', metrics);
}

await main();
