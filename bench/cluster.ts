/**
 * Benchmark group `cluster`: `npm run bench -- cluster [--quick]`.
 *
 * NATS server topology and JetStream figures, one module per benchmark in
 * bench/cluster/, each starting the servers it needs:
 *  1. acked-small-batches.ts: reports per second acknowledged by JetStream on
 *     one server, 1,000 simulated agents sending batches of 10 reports
 *     (acked_reports_per_sec_small_batches), and where the bottleneck is.
 *  2. handover.ts: graceful_handover_gap_ms (in-process route nodes).
 *  3. failover.ts: failover_ms and failover_lost_reports (kill -9 of a
 *     `lars node`), stale_versions_seen (SIGSTOP of one).
 *  4. rebalance.ts: rebalance_100k_routes_ms (a fourth node joins three).
 *  5. coordinated-crash.ts: acknowledged writes lost across a kill -9 of all
 *     three nats-servers at once (coordinated_crash_lost_acked_<sync>), with
 *     the stores synced on the server's schedule and on every write.
 *  6. leader-loss.ts: leader_loss_ack_pause_ms, the longest time any agent's
 *     acknowledgements stop when the REPORTS stream's leader is killed.
 *  7. judging-gap.ts: leader_loss_judging_gap_ms, how long a host failing from
 *     a server's kill -9 goes unejected (three `lars node` processes).
 *  8. recovery.ts: recovery_after_nats_restart_ms (one server away 6 s).
 * docs/benchmarks.md describes the method. Every child process and server
 * is stopped at the end, also on failure or Ctrl-C.
 *
 * `--quick` (or BENCH_QUICK=1): short windows, to check the group end to end.
 * Knobs: BENCH_SMALL_AGENTS [1000], BENCH_SMALL_CONNECTIONS [4 per process],
 * BENCH_SMALL_WINDOW [1 publish in flight per agent]; BENCH_LEASE_MS [2000],
 * BENCH_HANDOVER_ROUTES, BENCH_FAILOVER_ROUTES, BENCH_REBALANCE_ROUTES;
 * BENCH_CRASH_TRIALS [3], BENCH_CRASH_LOAD_MS [4000], BENCH_CRASH_MODES
 * [interval,always];
 * BENCH_LEADERLOSS_TRIALS [5], BENCH_LEADERLOSS_AGENTS [10 per process];
 * BENCH_RECOVERY_TRIALS [3];
 * BENCH_CLUSTER_ONLY=small|handover|failover|rebalance|crash|leaderloss|judging|recovery
 * (comma separated) runs only those.
 */
import { loadavg } from 'node:os';
import { epochMs } from './_common.ts';
import { runGroup } from './_harness.ts';
import { record, type Metric } from './lib.ts';
import { benchAckedSmallBatches } from './cluster/acked-small-batches.ts';
import { benchHandover } from './cluster/handover.ts';
import { benchFailover } from './cluster/failover.ts';
import { benchRebalance } from './cluster/rebalance.ts';
import { benchCoordinatedCrash } from './cluster/coordinated-crash.ts';
import { benchLeaderLoss } from './cluster/leader-loss.ts';
import { benchJudgingGap } from './cluster/judging-gap.ts';
import { benchRecovery } from './cluster/recovery.ts';

const only = process.env['BENCH_CLUSTER_ONLY']?.split(',');
const runs = (name: string): boolean => !only || only.includes(name);

await runGroup('cluster', async () => {
  const tStart = epochMs();
  const loadStart = loadavg()[0]!;
  const metrics: Metric[] = [];
  if (runs('small')) metrics.push(...(await benchAckedSmallBatches()));
  // Route node ownership: handover, failover, fencing, rebalancing.
  if (runs('handover')) metrics.push(...(await benchHandover()));
  if (runs('failover')) metrics.push(...(await benchFailover()));
  if (runs('rebalance')) metrics.push(...(await benchRebalance()));
  // Durability and availability of the three NATS servers themselves.
  if (runs('leaderloss')) metrics.push(...(await benchLeaderLoss()));
  // Healing: routes judged through a server fault, ownership back after an outage.
  if (runs('judging')) metrics.push(...(await benchJudgingGap()));
  if (runs('recovery')) metrics.push(...(await benchRecovery()));
  if (runs('crash')) metrics.push(...(await benchCoordinatedCrash()));
  metrics.push({ name: 'cluster_load_1m_start', value: loadStart, unit: 'load', note: '1-min load average at start' });
  metrics.push({ name: 'cluster_bench_seconds', value: Math.round((epochMs() - tStart) / 1000), unit: 's', note: 'whole group' });
  record('cluster', metrics);
});
