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
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { names as makeNames } from '../schemas/subjects.ts';
import { ensureStreams } from '../src/nats/streams.ts';
import { connectNats } from '../src/nats/connect.ts';
import { startNatsServer } from '../src/nats/natsd.ts';
import { record, type Metric } from './lib.ts';
import { ensureGo, runGo } from '../scripts/go.mjs';

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
    updateCpu = need(goBench('^BenchmarkLiveRouteUpdateCPU$', env, QUICK ? '500x' : '3000x'), 'BenchmarkLiveRouteUpdateCPU', 'cpu_us/update');
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
      note: 'process CPU per route update of 10 hosts from a real nats-server, 1000/s (the publisher in the same process); target: the recorded route_update_agent_cpu_us (TS agent processes, core group)',
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
