/**
 * Graceful handover (`graceful_handover_gap_ms`): three route nodes with
 * leases in this process (each on its own connection), 1,200 routes of 10
 * hosts over 64 partitions (400 with --quick), a steady acknowledged report
 * load. One node stops gracefully (`RouteNode.close()`); for each of its
 * partitions the gap is from the moment it stopped taking the partition's
 * reports (`released`) to the moment the successor had restored the
 * partition's routes and subscribed (`acquired`), both on this process's
 * clock. The stopped node then starts again (same id) and gets its share
 * back; the next trial stops the next node. The figure is the median over
 * the trials of each stop's longest gap; the worst is in the note.
 */
import { performance } from 'node:perf_hooks';
import type { PartitionEvent } from '../../src/node/route-node.ts';
import { rendezvousOwner } from '../../actors/ownership.ts';
import { percentile, sleep } from '../_common.ts';
import { QUICK, envInt, logger } from '../_harness.ts';
import type { Metric } from '../lib.ts';
import { ReportLoad, benchServer, freshPrefix, leaseOwners, registerRoutes, routeIds, startInProcessNode, until, type InProcessNode } from './_nodes.ts';

const log = logger('cluster');
const P = 64;
const ROUTES = envInt('BENCH_HANDOVER_ROUTES', QUICK ? 400 : 1200);
const TRIALS = envInt('BENCH_HANDOVER_TRIALS', QUICK ? 2 : 6);
const LEASE_MS = envInt('BENCH_LEASE_MS', 2000);

export async function benchHandover(): Promise<Metric[]> {
  const { server, nc } = await benchServer('bench-cluster-handover');
  const n = await freshPrefix(nc, 'bh');
  const routes = routeIds(9300, ROUTES);
  await registerRoutes(nc, n, routes);
  const ids = ['h-a', 'h-b', 'h-c'];
  const nodes = new Map<string, InProcessNode>();
  const events: Array<PartitionEvent & { node: string }> = [];
  const start = async (id: string): Promise<void> => {
    const x = await startInProcessNode(server.url, n, P, id, LEASE_MS);
    x.node.onPartition((e) => events.push({ ...e, node: id }));
    nodes.set(id, x);
  };
  const settled = async (live: string[]): Promise<void> =>
    until(
      async () => {
        // The node-side checks first: they cost nothing, the lease reads do.
        for (let p = 0; p < P; p++) if (!nodes.get(rendezvousOwner(p, live)!)?.node.servedPartitions().includes(p)) return false;
        if (live.reduce((a, id) => a + nodes.get(id)!.node.stats().routes, 0) !== ROUTES) return false;
        const owners = await leaseOwners(nc, n, P);
        for (let p = 0; p < P; p++) if (owners.get(p) !== rendezvousOwner(p, live)) return false;
        return true;
      },
      60_000,
      `partitions settled over ${live.join(', ')}`,
      50,
    );
  for (const id of ids) await start(id);
  await settled(ids);
  const load = new ReportLoad(nc, n, P, routes, 200);
  await sleep(1000);
  const maxima: number[] = [];
  const all: number[] = [];
  const stops: number[] = [];
  for (let t = 0; t < TRIALS; t++) {
    const id = ids[t % ids.length]!;
    const x = nodes.get(id)!;
    const moved = x.node.servedPartitions();
    const from = events.length;
    const t0 = performance.now();
    await x.stop();
    stops.push(Math.round(performance.now() - t0));
    nodes.delete(id);
    const rest = ids.filter((i) => i !== id);
    await settled(rest);
    const evs = events.slice(from);
    const gaps = moved.map((p) => {
      const rel = evs.find((e) => e.node === id && e.partition === p && e.kind === 'released');
      const acq = evs.find((e) => e.node !== id && e.partition === p && e.kind === 'acquired');
      if (!rel || !acq) throw new Error(`partition ${p}: no released/acquired pair`);
      return acq.at - rel.at;
    });
    maxima.push(Math.max(...gaps));
    all.push(...gaps);
    log(`handover ${t + 1}/${TRIALS}: ${id} stopped, ${moved.length} partitions moved, gap max ${Math.max(...gaps)} ms, median ${percentile(gaps, 50)} ms`);
    await start(id);
    await settled(ids);
  }
  await load.stop();
  maxima.sort((a, b) => a - b);
  all.sort((a, b) => a - b);
  return [
    { name: 'graceful_handover_gap_ms', value: percentile(maxima, 50), unit: 'ms', target: '<= 100', note: `median over ${TRIALS} graceful stops of the longest partition gap; worst ${maxima[maxima.length - 1]} ms; ${ROUTES} routes, 3 in-process nodes` },
    { name: 'graceful_handover_gap_p50_ms', value: percentile(all, 50), unit: 'ms', note: `every moved partition's gap, ${all.length} in all` },
    { name: 'graceful_stop_ms', value: percentile(stops, 50), unit: 'ms', note: `a node's graceful stop (every partition handed over, one at a time), median of ${TRIALS}; longest ${Math.max(...stops)} ms` },
  ];
}
