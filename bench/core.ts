/**
 * Benchmark group `core`: `npm run bench -- core [--quick]`.
 *
 * Starts its own nats-server (loopback, JetStream in a temp dir), uses a fresh
 * subject prefix per run, and runs, in this order, the benchmarks in bench/core/:
 *  0. hop.ts: one core-NATS hop (noise floor);
 *  1. picks.ts: agent.pick (sync) and getHost (async) on a 10-host route, per strategy (tinybench);
 *  2. ingest.ts: report ingest into one route node, publishers in separate processes,
 *     core NATS and JetStream-acknowledged;
 *  3. propagation.ts: node publishes a new version -> 100 agents (2 processes) hold it;
 *  4. ejection.ts: report batch crossing the threshold published -> 100 agents stop picking the host
 *     (3 and 4 share their agents: fanout.ts, agent-pass.ts);
 *  5. heap.ts: heap of a route node holding 10,000 routes x 10 hosts (a fresh process).
 * docs/benchmarks-core.md describes each measurement. Every child process and
 * the nats-server are stopped at the end, also on failure or Ctrl-C.
 *
 * `--quick` (or BENCH_QUICK=1): short windows, 20 trials, 1,000 heap routes,
 * to check the group end to end; its figures are not comparable.
 * Environment knobs (defaults in brackets): BENCH_TRIALS [100] trials per
 * latency metric, BENCH_PUBLISHERS [auto: 1, 2 when the publisher is the
 * bottleneck], BENCH_HEAP_ROUTES [10000];
 * BENCH_CORE_ONLY=hop|picks|ingest|fanout|heap (comma separated) runs only
 * those (fanout: propagation and ejection).
 */
import { cpus, loadavg } from 'node:os';
import { epochMs } from './_common.ts';
import { runGroup } from './_harness.ts';
import { record, type Metric } from './lib.ts';
import { setupCore } from './core/setup.ts';
import { benchHop } from './core/hop.ts';
import { benchPicks } from './core/picks.ts';
import { benchIngest } from './core/ingest.ts';
import { benchFanout } from './core/fanout.ts';
import { benchHeap } from './core/heap.ts';

const PARTS = ['hop', 'picks', 'ingest', 'fanout', 'heap'];
const only = process.env['BENCH_CORE_ONLY']?.split(',');
const unknown = only?.filter((p) => !PARTS.includes(p)) ?? [];
if (unknown.length > 0) throw new Error(`BENCH_CORE_ONLY: unknown part ${unknown.join(', ')} (parts: ${PARTS.join(', ')})`);
const runs = (name: string): boolean => !only || only.includes(name);

await runGroup('core', async () => {
  const tStart = epochMs();
  const loadStart = loadavg()[0]!;
  const ctx = await setupCore();
  const metrics: Metric[] = [];
  if (runs('hop')) metrics.push(...(await benchHop(ctx)));
  if (runs('picks')) metrics.push(...(await benchPicks(ctx)));
  if (runs('ingest')) metrics.push(...(await benchIngest(ctx)));
  if (runs('fanout')) metrics.push(...(await benchFanout(ctx)));
  await ctx.node.close();
  if (runs('heap')) metrics.push(...(await benchHeap(ctx)));
  metrics.push({ name: 'machine_load_1m_start', value: loadStart, unit: 'load', note: `1-min load average at start (other work on the ${cpus().length}-core machine skews every figure)` });
  metrics.push({ name: 'machine_load_1m_end', value: loadavg()[0]!, unit: 'load', note: '1-min load average at the end' });
  metrics.push({ name: 'core_bench_seconds', value: Math.round((epochMs() - tStart) / 1000), unit: 's', note: only ? `BENCH_CORE_ONLY=${only.join(',')}` : 'whole group' });
  record('core', metrics);
});
