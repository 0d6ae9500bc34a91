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
 * (`rebalance_100k_node_load_ms`), and so is the time until it has
 * published and stored every moved route under its name
 * (`rebalance_100k_stored_ms`).
 *
 * With BENCH_VERBOSE=1: progress every 5 s, the CPU time of every process
 * (idle before the join, then over the rebalance), each moved partition's
 * lease holders and when its routes were in. BENCH_REBALANCE_PROFILE=<file>
 * writes a CPU profile of this process (the new node); BENCH_NODE_NODE_ARGS
 * passes Node options to the `lars node` processes (`--cpu-prof ...`).
 */
import { performance } from 'node:perf_hooks';
import { writeFile } from 'node:fs/promises';
import { Session } from 'node:inspector/promises';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Names } from '../../schemas/subjects.ts';
import { clusterNames } from '../../src/cluster/names.ts';
import { decodeLease } from '../../src/cluster/leases.ts';
import { partitionOf } from '../../schemas/subjects.ts';
import { rendezvousOwner } from '../../actors/ownership.ts';
import { sleep } from '../_common.ts';
import { QUICK, envInt, logger, machineCpuMs, onTeardown, procCpuMs } from '../_harness.ts';
import type { Metric } from '../lib.ts';
import { RouteRecorder, type ChildNode, benchServer, freshPrefix, kvCaughtUp, kvQuiet, leaseOwners, registerRoutes, routeIds, startChildNode, startInProcessNode, until } from './_nodes.ts';

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
  // and done writing: the new node joins three idle nodes
  await kvQuiet(nc, n, 1000, 5 * 60_000);
  log(`rebalance: 3 nodes up with every route published and stored in ${Math.round(performance.now() - t)} ms`);
  const four = [...ids, 'r-d'];
  const want = new Set(Array.from({ length: P }, (_, p) => p).filter((p) => rendezvousOwner(p, four) === 'r-d'));
  const expected = routes.filter(([m, c]) => want.has(partitionOf(m, c, P))).length;
  const trace = process.env['BENCH_VERBOSE'] ? await LeaseTrace.start(nc, n) : undefined;
  if (trace) {
    // What three nodes with nothing to do cost (ticks, lease renewals, heartbeats), as a baseline for the figures below.
    const idle0 = cpuNow(server.process.pid, children);
    await sleep(2000);
    const idle1 = cpuNow(server.process.pid, children);
    log(`rebalance: CPU ms over 2 s before the join: ${Object.entries(idle1).map(([k, v]) => `${k} ${Math.round(v - (idle0[k] ?? 0))}`).join(', ')}`);
  }
  const profile = process.env['BENCH_REBALANCE_PROFILE'] ? await CpuProfile.start() : undefined;
  const startAt = performance.now();
  const d = await startInProcessNode(server.url, n, P, 'r-d', LEASE_MS);
  const loadMs = Math.round(d.joinedAt - startAt);
  const cpu0 = trace ? cpuNow(server.process.pid, children) : undefined;
  if (trace) log(`rebalance: joined at monotonic ${Math.round(Number(process.hrtime.bigint() / 1000n) - (performance.now() - d.joinedAt) * 1000)} µs`);
  const acquiredAt: string[] = [];
  d.node.onPartition((e) => {
    if (e.kind === 'acquired') acquiredAt.push(`${e.partition}@${Math.round(performance.now() - d.joinedAt)}`);
  });
  const progress = setInterval(() => {
    const st = d.node.stats();
    if (process.env['BENCH_VERBOSE']) log(`rebalance: +${Math.round(performance.now() - d.joinedAt)} ms: ${d.node.servedPartitions().length}/${want.size} partitions served, ${st.routes}/${expected} routes, ${st.kvWrites} writes, ${st.partitionsLost} lost, ${st.fenced} held back`);
  }, 5000);
  onTeardown(async () => clearInterval(progress));
  await until(
    async () => {
      // (served partitions first: stats() walks every route)
      const served = d.node.servedPartitions();
      if (served.length !== want.size || !served.every((p) => want.has(p))) return false;
      if (d.node.stats().routes !== expected) return false;
      const owners = await leaseOwners(nc, n, P);
      for (let p = 0; p < P; p++) if (owners.get(p) !== rendezvousOwner(p, four)) return false;
      return true;
    },
    120_000,
    'ownership settled over four nodes and the moved routes restored',
    10,
  );
  const rebalanceMs = Math.round(performance.now() - d.joinedAt);
  if (cpu0) {
    const cpu1 = cpuNow(server.process.pid, children);
    log(`rebalance: CPU ms from the join: ${Object.entries(cpu1).map(([k, v]) => `${k} ${Math.round(v - (cpu0[k] ?? 0))}`).join(', ')}`);
  }
  if (profile) log(`rebalance: CPU profile of this process from before the join: ${await profile.stop(process.env['BENCH_REBALANCE_PROFILE']!)}`);
  // The new owner publishes and stores the restored routes under its name once it has restored them all.
  await until(async () => d.node.stats().kvWrites >= expected, 120_000, 'every moved route stored by the new owner', 20);
  await d.node.settled();
  const storedMs = Math.round(performance.now() - d.joinedAt);
  clearInterval(progress);
  const st = d.node.stats();
  if (process.env['BENCH_VERBOSE']) log(`rebalance: partitions acquired at ${acquiredAt.join(', ')} ms after the join`);
  if (trace) for (const line of trace.report(want, d.joinedAt)) log(`rebalance: ${line}`);
  log(`rebalance: fourth node read the buckets in ${loadMs} ms, then took ${want.size} partitions (${expected} routes) in ${rebalanceMs} ms, and had published and stored them under its name ${storedMs} ms after the join (write conflicts ${st.kvConflicts}, partitions lost ${st.partitionsLost}, held back ${st.fenced})`);
  await d.stop();
  // Profiled nodes write their profiles when they stop: a graceful stop then.
  for (const c of children) c.kill(process.env['BENCH_NODE_NODE_ARGS']?.includes('--cpu-prof') ? 'SIGTERM' : 'SIGKILL');
  await Promise.all(children.map((c) => c.exited));
  return [
    { name: 'rebalance_100k_routes_ms', value: rebalanceMs, unit: 'ms', target: '<= 5000', note: `${ROUTES} routes, 3 → 4 nodes: ${want.size} partitions, ${expected} routes moved and restored, from the join` },
    { name: 'rebalance_100k_stored_ms', value: storedMs, unit: 'ms', note: 'from the join until the new node has published every moved route under its name and stored its state and checkpoint' },
    { name: 'rebalance_100k_node_load_ms', value: loadMs, unit: 'ms', note: 'the fourth node reading the registry, routes and checkpoints buckets before it joins' },
    { name: 'rebalance_100k_register_ms', value: registerMs, unit: 'ms', note: `${ROUTES} registry puts, 256 in flight` },
  ];
}

/** Every lease write and delete as the bench sees it (performance.now()), for the verbose timeline of each moved partition. */
class LeaseTrace {
  private readonly events = new Map<number, Array<{ at: number; owner: string | undefined }>>();

  static async start(nc: NatsConnection, n: Names): Promise<LeaseTrace> {
    const t = new LeaseTrace();
    const cn = clusterNames(n.prefix);
    const subj = `$KV.${cn.leasesBucket}.`;
    nc.subscribe(`${subj}>`, {
      callback: (_e, m) => {
        const p = cn.leasePartition(m.subject.slice(subj.length));
        if (p === undefined) return;
        const op = m.headers?.get('KV-Operation');
        const owner = op === 'DEL' || op === 'PURGE' ? undefined : decodeLease({ operation: 'PUT', value: m.data })?.node;
        let l = t.events.get(p);
        if (!l) t.events.set(p, (l = []));
        l.push({ at: performance.now(), owner });
      },
    });
    await nc.flush();
    return t;
  }

  /** Per moved partition, its lease's holders from `from` on: each change of holder (renewals left out) and when, ms after `from` (`-`: none, the lease deleted). */
  report(ps: ReadonlySet<number>, from: number): string[] {
    const rows: Array<{ first: number; line: string }> = [];
    for (const p of ps) {
      const changes: string[] = [];
      let last: string | null = null;
      let first = Infinity;
      for (const e of this.events.get(p) ?? []) {
        const who = e.owner ?? '-';
        if (who === last) continue;
        last = who;
        const at = Math.round(e.at - from);
        if (e.at >= from) first = Math.min(first, at);
        changes.push(e.at < from ? who : `${who} at ${at} ms`);
      }
      rows.push({ first, line: `partition ${p}: ${changes.join(', ')}` });
    }
    return rows.sort((a, b) => a.first - b.first).map((r) => r.line);
  }
}

/** A CPU profile of this process (the fourth node's), written as a .cpuprofile for Chrome's DevTools or speedscope. */
class CpuProfile {
  private readonly session: Session;

  private constructor(session: Session) {
    this.session = session;
  }

  static async start(): Promise<CpuProfile> {
    const session = new Session();
    session.connect();
    await session.post('Profiler.enable');
    await session.post('Profiler.start');
    return new CpuProfile(session);
  }

  async stop(file: string): Promise<string> {
    const { profile } = await this.session.post('Profiler.stop');
    this.session.disconnect();
    await writeFile(file, JSON.stringify(profile));
    return file;
  }
}

/** CPU time so far, ms: the nats-server, each `lars node`, this process (the fourth node) and the machine. */
function cpuNow(serverPid: number | undefined, children: readonly ChildNode[]): Record<string, number> {
  const out: Record<string, number> = { 'nats-server': procCpuMs(serverPid) ?? 0 };
  for (const c of children) out[c.id] = procCpuMs(c.child.pid) ?? 0;
  const u = process.cpuUsage();
  out['r-d (this process)'] = (u.user + u.system) / 1000;
  out['machine busy'] = machineCpuMs()?.busy ?? 0;
  return out;
}
