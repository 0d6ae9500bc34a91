/**
 * Failover and fencing of route nodes (`failover_ms`, `failover_lost_reports`,
 * `stale_versions_seen`): three `lars node` processes share 64 partitions by
 * leases (`--lease-ms`, BENCH_LEASE_MS, default 2000) over 1,000 routes of 10
 * hosts (300 with --quick), under a steady acknowledged report load from
 * this process (JetStream publishes with a msgID, retried until acked).
 *
 * - failover: one node is killed with SIGKILL; `failover_ms` is the time from
 *   the kill until every route of its partitions has been published by
 *   another node (a recorder on the route subjects). `failover_lost_reports`:
 *   reports acknowledged during the run minus reports in the REPORTS stream.
 * - stall: on a fresh prefix, one node is stopped with SIGSTOP for 2.5 lease
 *   times while reports for its routes keep coming, then continued;
 *   `stale_versions_seen` counts route states the woken node published while
 *   it was not the owner (another node published the route after them) with
 *   a version above every earlier one (what an agent would accept).
 */
import { performance } from 'node:perf_hooks';
import { partitionOf } from '../../schemas/subjects.ts';
import { sleep } from '../_common.ts';
import { QUICK, envInt, logger } from '../_harness.ts';
import type { Metric } from '../lib.ts';
import { ReportLoad, RouteRecorder, benchServer, freshPrefix, kvCaughtUp, leaseOwners, registerRoutes, routeIds, startChildNode, storedBatches, until, type ChildNode } from './_nodes.ts';

const log = logger('cluster');
const P = 64;
const ROUTES = envInt('BENCH_FAILOVER_ROUTES', QUICK ? 300 : 1000);
const LEASE_MS = envInt('BENCH_LEASE_MS', 2000);
const LOAD = envInt('BENCH_FAILOVER_BATCHES_PER_SEC', 200);

export async function benchFailover(): Promise<Metric[]> {
  const { server, nc } = await benchServer('bench-cluster-failover');

  const fo = await runFailover(server.url, nc);
  const stale = await runStall(server.url, nc);
  return [
    { name: 'failover_ms', value: fo.failoverMs, unit: 'ms', target: '<= 3000', note: `kill -9 of 1 of 3 nodes (${fo.partitions} partitions, ${fo.routes} routes) → all republished by new owners; lease ${LEASE_MS} ms` },
    { name: 'failover_lost_reports', value: fo.lost, unit: 'reports', target: '<= 0', note: `${fo.ackedReports} reports acknowledged during the run, ${fo.storedReports} in the REPORTS stream` },
    { name: 'stale_versions_seen', value: stale.stale, unit: 'versions', target: '<= 0', note: `SIGSTOP ${stale.stallMs} ms of a node holding ${stale.routes} routes; after waking it published ${stale.after} states, ${stale.fenced} while not the owner` },
  ];
}

async function startThree(url: string, n: Parameters<typeof startChildNode>[1], tag: string): Promise<ChildNode[]> {
  const nodes = ['a', 'b', 'c'].map((x) => startChildNode(url, n, P, `${tag}-${x}`, LEASE_MS));
  return nodes;
}

async function settled(nc: Parameters<typeof leaseOwners>[0], n: Parameters<typeof leaseOwners>[1], rec: RouteRecorder, routes: number, ids: string[]): Promise<Map<number, string>> {
  let owners = new Map<number, string>();
  await until(
    async () => {
      owners = await leaseOwners(nc, n, P);
      return owners.size === P && new Set(owners.values()).size === ids.length && rec.keys.size === routes && (await kvCaughtUp(nc, n, routes));
    },
    120_000,
    'every partition leased by the three nodes and every route published',
    200,
  );
  return owners;
}

async function runFailover(url: string, nc: Parameters<typeof leaseOwners>[0]): Promise<{ failoverMs: number; lost: number; ackedReports: number; storedReports: number; partitions: number; routes: number }> {
  const n = await freshPrefix(nc, 'bf');
  const routes = routeIds(9100, ROUTES);
  await registerRoutes(nc, n, routes);
  const rec = await RouteRecorder.start(nc, n);
  const nodes = await startThree(url, n, 'fo');
  const owners = await settled(nc, n, rec, ROUTES, nodes.map((x) => x.id));
  const load = new ReportLoad(nc, n, P, routes, LOAD);
  await sleep(2000);
  const victim = nodes[1]!;
  const lost = new Set([...owners].filter(([, o]) => o === victim.id).map(([p]) => p));
  const moved = routes.filter(([m, c]) => lost.has(partitionOf(m, c, P))).map(([m, c]) => `${m}.${c}`);
  log(`failover: ${ROUTES} routes on 3 nodes, killing ${victim.id} (${lost.size} partitions, ${moved.length} routes) under ${LOAD} batches/s`);
  const killedAt = Date.now();
  const t0 = performance.now();
  victim.kill('SIGKILL');
  const republished = (k: string): number | undefined => rec.byRoute.get(k)?.find((s) => s.sender !== victim.id && s.at >= killedAt)?.at;
  await until(() => moved.every((k) => republished(k) !== undefined), 30_000, 'every route of the killed node republished', 5);
  const failoverMs = Math.max(...moved.map((k) => republished(k)! - killedAt));
  log(`failover: every moved route republished ${failoverMs} ms after the kill (waited ${Math.round(performance.now() - t0)} ms)`);
  await sleep(1000);
  await load.stop();
  const stored = await storedBatches(nc, n);
  log(`failover: ${load.acked} batches acknowledged, ${load.failed} never acknowledged, ${stored} stored`);
  for (const x of nodes) x.kill('SIGKILL');
  await Promise.all(nodes.map((x) => x.exited));
  return { failoverMs, lost: (load.acked - stored) * 10, ackedReports: load.acked * 10, storedReports: stored * 10, partitions: lost.size, routes: moved.length };
}

async function runStall(url: string, nc: Parameters<typeof leaseOwners>[0]): Promise<{ stale: number; fenced: number; after: number; stallMs: number; routes: number }> {
  const n = await freshPrefix(nc, 'bs');
  const routes = routeIds(9200, ROUTES);
  await registerRoutes(nc, n, routes);
  const rec = await RouteRecorder.start(nc, n);
  const nodes = await startThree(url, n, 'st');
  const owners = await settled(nc, n, rec, ROUTES, nodes.map((x) => x.id));
  const victim = nodes[2]!;
  const held = new Set([...owners].filter(([, o]) => o === victim.id).map(([p]) => p));
  const its = routes.filter(([m, c]) => held.has(partitionOf(m, c, P)));
  // Reports for the stalled node's routes only: on waking it has a queue of them to judge and, unfenced, would publish.
  const load = new ReportLoad(nc, n, P, its, LOAD);
  await sleep(1000);
  const stallMs = Math.round(LEASE_MS * 2.5);
  log(`stall: SIGSTOP ${victim.id} (${held.size} partitions, ${its.length} routes) for ${stallMs} ms`);
  const stoppedAt = Date.now();
  victim.kill('SIGSTOP');
  await sleep(stallMs);
  victim.kill('SIGCONT');
  const wokeAt = Date.now();
  await sleep(Math.max(3000, LEASE_MS * 3));
  await load.stop();
  // A state the woken node published while it was not the owner is followed by
  // more states of the same route from the owner; an agent accepts it when its
  // version is above every version published before it.
  let stale = 0;
  let fenced = 0;
  let after = 0;
  for (const l of rec.byRoute.values()) {
    let high = 0;
    for (let i = 0; i < l.length; i++) {
      const s = l[i]!;
      if (s.sender === victim.id && s.at >= wokeAt) {
        after++;
        const notOwner = l.slice(i + 1).some((x) => x.sender !== victim.id);
        if (notOwner) fenced++;
        if (notOwner && s.version > high) stale++;
      }
      high = Math.max(high, s.version);
    }
  }
  log(`stall: ${after} states published by ${victim.id} after waking (stopped ${wokeAt - stoppedAt} ms); ${fenced} while another node owned the route, ${stale} of those with a rising version`);
  for (const x of nodes) x.kill('SIGKILL');
  await Promise.all(nodes.map((x) => x.exited));
  return { stale, fenced, after, stallMs, routes: its.length };
}
