/**
 * How long routes go unjudged after a server fault
 * (`leader_loss_judging_gap_ms`): three nats-servers, three `lars node`
 * processes sharing 8 partitions by leases, 8 routes of 8 hosts under steady
 * calls from an agent in this process (swrr: the nodes, not the agent,
 * judge). Each trial kills -9 one server (in turn the leader of the leases
 * bucket, of the reports stream, of the routes bucket, and one leading none
 * of them) and makes one fresh host of each route fail, route r's
 * STAGGER_MS × r after the kill (0 to 4.2 s: through the lease's fence window
 * and the elections); the trial's gap is the longest time from a host's
 * first failure until the agent sees it ejected. A trial without a kill
 * gives the baseline (the ejection itself). The server comes back and the cluster settles before
 * the next trial.
 */
import { randomBytes } from 'node:crypto';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { names as makeNames } from '../../schemas/subjects.ts';
import type { NatsConnection } from '../../src/nats/connect.ts';
import { createAgent, type Agent } from '../../src/agent/agent.ts';
import { Registry } from '../../src/registry/registry.ts';
import { clusterNames } from '../../src/cluster/index.ts';
import { NatsCluster } from '../../test/helpers/nats-cluster.ts';
import { createNodeBuckets, ensureStreamsOnCluster } from '../../test/helpers/cluster-load.ts';
import { startTraffic, type Traffic } from '../../test/helpers/traffic.ts';
import { epochMs, sleep } from '../_common.ts';
import { QUICK, logger, onTeardown } from '../_harness.ts';
import type { Metric } from '../lib.ts';
import { leaseOwners, startChildNode, until } from './_nodes.ts';

const log = logger('cluster');
const P = 8;
const LEASE_MS = 2000;
const ROUTES: Array<[number, number]> = Array.from({ length: 8 }, (_, i) => [610, i + 1]);
const HOSTS = 8;
/** Between the failure onsets of successive routes, ms: 8 routes cover 4.2 s from the kill. */
const STAGGER_MS = 600;
/** Host i of route (610, c): its own address per route, so that failing it fails it on that route alone. */
const key = (c: number, i: number): string => `10.61.${c}.${i + 1}:9000`;

type Role = 'none' | 'leases' | 'reports' | 'routes' | 'other';

interface Trial {
  role: Role;
  killed: string | undefined;
  gapMs: number;
}

/** Waits until the stream has a leader and both followers are current; its leader's name. */
async function steadyLeader(jsm: JetStreamManager, stream: string): Promise<string> {
  let leader = '';
  await until(
    async () => {
      const c = (await jsm.streams.info(stream).catch(() => undefined))?.cluster;
      if (!c?.leader || (c.replicas ?? []).length !== 2 || !(c.replicas ?? []).every((r) => r.current && !r.offline)) return false;
      leader = c.leader;
      return true;
    },
    120_000,
    `stream ${stream} steady`,
    200,
  );
  return leader;
}

export async function benchJudgingGap(): Promise<Metric[]> {
  const cluster = await NatsCluster.start(3);
  onTeardown(() => cluster.close());
  const admin: NatsConnection = await cluster.connect('judging-admin');
  onTeardown(() => admin.close());
  const jsm = await jetstreamManager(admin, { timeout: 1000 });
  const n = makeNames(`jg${randomBytes(3).toString('hex')}`);
  await ensureStreamsOnCluster(admin, n, { reports: { maxBytes: 2 ** 28 }, events: { maxBytes: 2 ** 26 } });
  await createNodeBuckets(admin, n, LEASE_MS);
  const registry = await Registry.open(admin, n);
  for (const [m, c] of ROUTES) {
    await registry.addHosts(m, c, Array.from({ length: HOSTS }, (_, i) => ({ ip: key(c, i).split(':')[0]!, port: 9000, weight: 100 })), 'bench', { profile: 'default', params: { base_ejection_time: 600, max_ejection_percent: 90 } });
  }
  const nodes = ['a', 'b', 'c'].map((x) => startChildNode(cluster.url, n, P, `jg-${x}`, LEASE_MS));
  await until(async () => (await leaseOwners(admin, n, P)).size === P, 60_000, 'every partition leased', 200);
  const failing = new Set<string>();
  const agent: Agent = await createAgent({ servers: cluster.url, prefix: n.prefix, partitions: P, strategy: 'swrr', batchMaxDelayMs: 5 });
  onTeardown(() => agent.close());
  await agent.prepare(ROUTES);
  const traffic: Traffic[] = ROUTES.map(([m, c]) => startTraffic(agent, m, c, (h) => ({ retcode: failing.has(h) ? 1 : 0, latencyMs: 2 }), { callsPerTick: 4, tickMs: 20 }));
  onTeardown(async () => {
    for (const t of traffic) t.stop();
  });
  const streams: Record<Exclude<Role, 'none' | 'other'>, string> = {
    leases: `KV_${clusterNames(n.prefix).leasesBucket}`,
    reports: n.reportsStream,
    routes: `KV_${n.routesBucket}`,
  };
  const roles: Role[] = process.env['BENCH_JUDGING_ROLES'] ? (process.env['BENCH_JUDGING_ROLES'].split(',') as Role[]) : QUICK ? ['none', 'leases', 'reports'] : ['none', 'leases', 'reports', 'routes', 'other', 'leases', 'reports'];
  const trials: Trial[] = [];
  try {
    for (let t = 0; t < roles.length && t < HOSTS - 1; t++) {
      const role = roles[t]!;
      const leaders = { leases: await steadyLeader(jsm, streams.leases), reports: await steadyLeader(jsm, streams.reports), routes: await steadyLeader(jsm, streams.routes) };
      await until(async () => (await leaseOwners(admin, n, P)).size === P, 60_000, 'every partition leased', 200);
      await sleep(1000);
      let idx: number | undefined;
      if (role === 'other') idx = [0, 1, 2].find((i) => !Object.values(leaders).includes(`${cluster.name}-n${i}`));
      else if (role !== 'none') idx = [0, 1, 2].find((i) => `${cluster.name}-n${i}` === leaders[role]);
      if (role !== 'none' && role !== 'other' && idx === undefined) throw new Error(`no server leads ${streams[role]}`);
      const t0 = epochMs();
      if (idx !== undefined) cluster.kill(idx);
      // Route r's host begins to fail STAGGER_MS × r after the kill: the hosts fail across the whole fault,
      // through the lease's fence window and the elections that follow.
      const startAt = new Map(ROUTES.map(([m, c], r) => [`${m}.${c}`, t0 + r * STAGGER_MS]));
      const pending = new Set(startAt.keys());
      let gapMs = 0;
      await until(
        async () => {
          const now = epochMs();
          for (const [m, c] of ROUTES) {
            const k = `${m}.${c}`;
            if (!pending.has(k)) continue;
            const from = startAt.get(k)!;
            if (now < from) continue;
            failing.add(key(c, t));
            const s = await agent.getRoute(m, c);
            if (s?.hosts.some((h) => `${h.ip}:${h.port}` === key(c, t) && (h.state === 'overloaded' || h.state === 'probing'))) {
              pending.delete(k);
              gapMs = Math.max(gapMs, epochMs() - from);
            }
          }
          return pending.size === 0;
        },
        90_000,
        `trial ${t + 1}: the failing host ejected on every route`,
        5,
      );
      const killed = idx === undefined ? undefined : `${cluster.name}-n${idx}`;
      if (role !== 'none' && role !== 'other') {
        const info = await jsm.streams.info(streams[role]).catch(() => undefined);
        log(`  ${streams[role]} led by ${info?.cluster?.leader ?? '?'} ${Math.round(epochMs() - t0)} ms after the kill`);
      }
      trials.push({ role, killed, gapMs });
      log(`judging gap trial ${t + 1}: ${role === 'none' ? 'no fault' : `kill -9 of ${killed} (leading ${role === 'other' ? 'none of leases, reports, routes' : role})`}: hosts failing 0-4.2 s after it ejected at most ${(gapMs / 1000).toFixed(2)} s after their first failure`);
      if (idx !== undefined) await cluster.restart(idx);
    }
  } finally {
    for (const t of traffic) t.stop();
    for (const nd of nodes) nd.kill('SIGKILL');
  }
  const faults = trials.filter((t) => t.role !== 'none');
  const base = trials.filter((t) => t.role === 'none').map((t) => t.gapMs);
  const per = faults.map((t) => `${t.role} ${Math.round(t.gapMs)}`).join(', ');
  return [
    { name: 'leader_loss_judging_gap_ms', value: Math.max(...faults.map((t) => t.gapMs)), unit: 'ms', target: '<= 3000', note: `kill -9 of one of 3 servers, a host of each of 8 routes beginning to fail 0-4.2 s after it: the longest time from a host's first failure to its ejection seen by an agent, worst trial; per trial (role of the killed server) ${per}; 3 lars node processes, lease ${LEASE_MS} ms` },
    { name: 'judging_baseline_ms', value: Math.max(...base), unit: 'ms', note: 'the same without a fault: the ejection itself' },
  ];
}
