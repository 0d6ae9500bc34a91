/**
 * Benchmark group `cluster`: `npm run bench -- cluster [--quick]`.
 *
 * NATS server topology and JetStream figures, one module per benchmark in
 * bench/cluster/, each starting the servers it needs:
 *  1. acked-small-batches.ts: reports per second acknowledged by JetStream on
 *     one server, 1,000 simulated agents sending batches of 10 reports
 *     (acked_reports_per_sec_small_batches), and where the bottleneck is.
 * docs/benchmarks.md describes the method. Every child process and server
 * is stopped at the end, also on failure or Ctrl-C.
 *
 * `--quick` (or BENCH_QUICK=1): short windows, to check the group end to end.
 * Knobs: BENCH_SMALL_AGENTS [1000], BENCH_SMALL_CONNECTIONS [4 per process],
 * BENCH_SMALL_WINDOW [1 publish in flight per agent].
 */
import { loadavg } from 'node:os';
import { epochMs } from './_common.ts';
import { runGroup } from './_harness.ts';
import { record, type Metric } from './lib.ts';
import { benchAckedSmallBatches } from './cluster/acked-small-batches.ts';

await runGroup('cluster', async () => {
  const tStart = epochMs();
  const loadStart = loadavg()[0]!;
  const metrics: Metric[] = [];
  metrics.push(...(await benchAckedSmallBatches()));
  // Further cluster benchmarks (multi-server clusters, failover, replicated streams) go here, one module each in bench/cluster/.
  metrics.push({ name: 'cluster_load_1m_start', value: loadStart, unit: 'load', note: '1-min load average at start' });
  metrics.push({ name: 'cluster_bench_seconds', value: Math.round((epochMs() - tStart) / 1000), unit: 's', note: 'whole group' });
  record('cluster', metrics);
});
