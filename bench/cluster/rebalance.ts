/**
 * Scale-out with many routes (`rebalance_100k_routes_ms`): 100,000 routes of
 * 10 hosts (10,000 with --quick) written to the registry with parallel puts,
 * three `lars node` processes sharing the 64 partitions by leases; once every
 * route is published, a fourth node starts in this process. The figure runs
 * from the moment it joins (its ownership starts, after it has read the
 * registry) until ownership is settled (every lease held by the rendezvous
 * owner over four nodes, the new node serving its partitions) and every
 * route of its partitions is restored in it. Its start-up read of the
 * registry, routes and checkpoints buckets is reported apart
 * (`rebalance_100k_node_load_ms`).
 */
import { performance } from 'node:perf_hooks';
import { partitionOf } from '../../schemas/subjects.ts';
import { rendezvousOwner } from '../../actors/ownership.ts';
import { QUICK, envInt, logger, onTeardown } from '../_harness.ts';
import type { Metric } from '../lib.ts';
import { RouteRecorder, benchServer, freshPrefix, kvCaughtUp, leaseOwners, registerRoutes, routeIds, startChildNode, startInProcessNode, until } from './_nodes.ts';

const log = logger('cluster');
const P = 64;
const ROUTES = envInt('BENCH_REBALANCE_ROUTES', QUICK ? 10_000 : 100_000);
const LEASE_MS = envInt('BENCH_LEASE_MS', 2000);

export async function benchRebalance(): Promise<Metric[]> {
  const { server, nc } = await benchServer('bench-cluster-rebalance');
  const n = await freshPrefix(nc, 'br');
  const routes = routeIds(9400, ROUTES);
  let t = performance.now();
  await registerRoutes(nc, n, routes);
  const registerMs = Math.round(performance.now() - t);
  log(`rebalance: ${ROUTES} routes registered in ${registerMs} ms`);
  const rec = await RouteRecorder.start(nc, n, false);
  const ids = ['r-a', 'r-b', 'r-c'];
  t = performance.now();
  const children = ids.map((id) => startChildNode(server.url, n, P, id, LEASE_MS));
  await until(
    async () => {
      const owners = await leaseOwners(nc, n, P);
      return owners.size === P && new Set(owners.values()).size === 3 && rec.keys.size === ROUTES && (await kvCaughtUp(nc, n, ROUTES));
    },
    15 * 60_000,
    'three nodes holding every partition, every route published and stored with its checkpoint',
    500,
  );
  log(`rebalance: 3 nodes up with every route published in ${Math.round(performance.now() - t)} ms`);
  const four = [...ids, 'r-d'];
  const want = new Set(Array.from({ length: P }, (_, p) => p).filter((p) => rendezvousOwner(p, four) === 'r-d'));
  const expected = routes.filter(([m, c]) => want.has(partitionOf(m, c, P))).length;
  const startAt = performance.now();
  const d = await startInProcessNode(server.url, n, P, 'r-d', LEASE_MS);
  const loadMs = Math.round(d.joinedAt - startAt);
  const acquiredAt: number[] = [];
  d.node.onPartition((e) => {
    if (e.kind === 'acquired') acquiredAt.push(Math.round(performance.now() - d.joinedAt));
  });
  const progress = setInterval(() => {
    const st = d.node.stats();
    if (process.env['BENCH_VERBOSE']) log(`rebalance: +${Math.round(performance.now() - d.joinedAt)} ms: ${d.node.servedPartitions().length}/${want.size} partitions served, ${st.routes}/${expected} routes, ${st.kvWrites} writes, ${st.partitionsLost} lost, ${st.fenced} held back`);
  }, 5000);
  onTeardown(async () => clearInterval(progress));
  await until(
    async () => {
      if (d.node.stats().routes !== expected) return false;
      const served = d.node.servedPartitions();
      if (served.length !== want.size || !served.every((p) => want.has(p))) return false;
      const owners = await leaseOwners(nc, n, P);
      for (let p = 0; p < P; p++) if (owners.get(p) !== rendezvousOwner(p, four)) return false;
      return true;
    },
    120_000,
    'ownership settled over four nodes and the moved routes restored',
    10,
  );
  const rebalanceMs = Math.round(performance.now() - d.joinedAt);
  clearInterval(progress);
  const st = d.node.stats();
  if (process.env['BENCH_VERBOSE']) log(`rebalance: partitions acquired at ${acquiredAt.join(', ')} ms after the join`);
  log(`rebalance: fourth node read the buckets in ${loadMs} ms, then took ${want.size} partitions (${expected} routes) in ${rebalanceMs} ms (write conflicts ${st.kvConflicts}, partitions lost ${st.partitionsLost}, held back ${st.fenced})`);
  await d.stop();
  for (const c of children) c.kill('SIGKILL');
  await Promise.all(children.map((c) => c.exited));
  return [
    { name: 'rebalance_100k_routes_ms', value: rebalanceMs, unit: 'ms', target: '<= 5000', note: `${ROUTES} routes, 3 → 4 nodes: ${want.size} partitions, ${expected} routes moved and restored, from the join` },
    { name: 'rebalance_100k_node_load_ms', value: loadMs, unit: 'ms', note: 'the fourth node reading the registry, routes and checkpoints buckets before it joins' },
    { name: 'rebalance_100k_register_ms', value: registerMs, unit: 'ms', note: `${ROUTES} registry puts, 256 in flight` },
  ];
}
