/**
 * One nemesis run, start to verdict: a 3-server NATS cluster (R3),
 * clickhouse-server, 2 `lars sink` and 3 `lars node` processes, agents in 2
 * processes under load, the recorder; then the fault groups one after
 * another, each healed and given a quiet window; then hosts made to fail on
 * half the routes and those routes left without callers for a while; then
 * every call stopped, every outbox flushed, the sinks drained, ClickHouse
 * read, everything stopped, and the checks run on the history. Used by the
 * short run in the suite (test/integration/nemesis.test.ts) and by
 * `npm run chaos` (test/nemesis/main.ts).
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { names } from '../../schemas/subjects.ts';
import { Registry } from '../../src/registry/registry.ts';
import type { NatsConnection } from '../../src/nats/connect.ts';
import { NatsCluster } from '../helpers/nats-cluster.ts';
import { freePort, randomDatabase, startClickHouseServer, type ClickHouseServer } from '../helpers/clickhouse-server.ts';
import { createNodeBuckets, ensureStreamsOnCluster, sinkDrained } from '../helpers/cluster-load.ts';
import { uniquePrefix } from '../helpers/cluster.ts';
import { waitFor } from '../helpers/wait.ts';
import { AgentProcess } from './agents.ts';
import { judge, type Verdict } from './checks.ts';
import { LarsProc, NatsProc, Timeline, type Managed } from './processes.ts';
import { Recorder } from './recorder.ts';
import { locateMissing, quarantined, tallyStored } from './stored.ts';
import { FaultKind, LeaderOf, describeFault, quietMs, randomPlan, type FaultGroup, type PlannedFault } from './schedule.ts';
import { ProcEventKind, ProcKind, type AgentFinal, type FaultRecord, type HealRecord, type History } from './types.ts';
import { makeWorkload, routeKey, type FailWindow } from './workload.ts';

export interface NemesisOptions {
  seed: number;
  /** The fault groups (the short run's fixed list), or random groups for this long. */
  plan: FaultGroup[] | { randomForMs: number };
  leaseMs: number;
  partitions: number;
  routes: number;
  hostsPerRoute: number;
  agentsPerProcess: number;
  routesPerAgent: number;
  /** Calls per second over both agent processes. */
  callsPerSec: number;
  batchMaxDelayMs: number;
  warmupMs: number;
  /** How long half the routes stay without callers at the end. */
  idleMs: number;
  /** The REPORTS stream's size limit (the sinks must never be that far behind). */
  reportsMaxBytes: number;
  /** Where every process' log (`logs/`) and local state (`data/`) go. */
  workDir: string;
  /** Progress lines. */
  log?: (line: string) => void;
}

export interface NemesisRun {
  history: History;
  verdict: Verdict;
  /** Notes on the run itself (processes that had to be started twice, setup steps that timed out). */
  notes: string[];
}

const NODES = 3;
const SINKS = 2;
const AGENT_PROCS = 2;
/** How long a heal may wait for JetStream to answer writes before it is recorded as not healed. */
const WRITABLE_DEADLINE_MS = 60_000;

const delay = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** What the code under test is: the commit, and whether the working tree differs from it. */
export function codeVersion(): string {
  const git = (args: string[]): string => spawnSync('git', args, { encoding: 'utf8' }).stdout.trim();
  const head = git(['rev-parse', '--short', 'HEAD']);
  if (head === '') return 'not a git checkout';
  const dirty = git(['status', '--porcelain', '--', 'src', 'actors', 'schemas'])
    .split('\n')
    .filter((l) => l.trim().length > 0);
  return dirty.length === 0 ? `commit ${head}` : `commit ${head} with ${dirty.length} uncommitted changes in src/, actors/, schemas/ (${dirty.map((l) => l.slice(3)).slice(0, 8).join(', ')}${dirty.length > 8 ? ', …' : ''})`;
}

export async function runNemesis(o: NemesisOptions): Promise<NemesisRun> {
  const log = o.log ?? ((): void => undefined);
  const logDir = join(o.workDir, 'logs');
  mkdirSync(logDir, { recursive: true });
  const timeline = new Timeline();
  const notes: string[] = [];
  const runStart = Date.now();
  let cluster: NatsCluster | undefined;
  let ch: ClickHouseServer | undefined;
  let admin: NatsConnection | undefined;
  let recorder: Recorder | undefined;
  const larsProcs: LarsProc[] = [];
  const agentProcs: AgentProcess[] = [];
  try {
    // ---------------------------------------------------------------- servers
    [cluster, ch] = await Promise.all([NatsCluster.start(3), startClickHouseServer()]);
    const natsProcs = Array.from({ length: cluster.size }, (_, i) => new NatsProc(cluster!, i, timeline));
    for (const p of natsProcs) {
      timeline.note(p.id, ProcEventKind.start, p.pid());
      timeline.note(p.id, ProcEventKind.up, p.pid());
    }
    const prefix = uniquePrefix();
    const n = names(prefix);
    const database = randomDatabase();
    admin = await cluster.connect('nemesis-admin');
    await ensureStreamsOnCluster(admin, n, { reports: { maxBytes: o.reportsMaxBytes }, events: { maxBytes: 16 * 2 ** 20 } });
    await createNodeBuckets(admin, n, o.leaseMs);
    const registry = await Registry.open(admin, n);
    const agentIds = Array.from({ length: AGENT_PROCS * o.agentsPerProcess }, (_, i) => `p${Math.floor(i / o.agentsPerProcess)}-a${i % o.agentsPerProcess}`);
    const spanMs = 'randomForMs' in o.plan ? o.plan.randomForMs : o.plan.reduce((s, g) => s + g.quietMs + Math.max(...g.faults.map((f) => f.offsetMs + f.durationMs)) + 5000, 0);
    const work = makeWorkload({ seed: o.seed, routes: o.routes, hostsPerRoute: o.hostsPerRoute, agents: agentIds, routesPerAgent: o.routesPerAgent, spanMs: o.warmupMs + spanMs, failuresPerRouteMinute: 2 });
    for (const r of work.routes) await registry.addHosts(r.modid, r.cmdid, r.hosts.map((h) => ({ ...h, weight: 100 })), 'nemesis');
    const routes = work.routes.map((r) => routeKey(r.modid, r.cmdid));

    // ---------------------------------------------------------------- processes
    const env: Record<string, string> = {
      LARS_NATS_URL: cluster.url,
      LARS_PREFIX: prefix,
      LARS_PARTITIONS: String(o.partitions),
      LARS_LOG_FORMAT: 'json',
      LARS_LOG_LEVEL: 'info',
      LARS_DATA_DIR: join(o.workDir, 'data'),
    };
    const nodes = await Promise.all(
      Array.from({ length: NODES }, async (_, i) => new LarsProc({ kind: ProcKind.node, name: `n${i}`, args: ['--lease-ms', String(o.leaseMs), '--console', 'off'], env, httpPort: await freePort(), logDir }, timeline)),
    );
    const sinkEnv = { ...env, LARS_CLICKHOUSE_URL: ch.url, LARS_CLICKHOUSE_DATABASE: database };
    const sinks = await Promise.all(
      Array.from({ length: SINKS }, async (_, i) => new LarsProc({ kind: ProcKind.sink, name: `s${i}`, args: ['--only', 'reports', '--batch-ms', '200'], env: sinkEnv, httpPort: await freePort(), logDir }, timeline)),
    );
    larsProcs.push(...nodes, ...sinks);
    recorder = await Recorder.start({ serverUrls: Array.from({ length: cluster.size }, (_, i) => cluster!.urlOf(i)), prefix, partitions: o.partitions, nodes: nodes.map((nd) => ({ name: nd.name, httpPort: nd.httpPort })) });
    const rec = recorder;
    // the first sink creates the tables; the second binds to them
    await sinks[0]!.start();
    await sinks[1]!.start();
    await Promise.all(nodes.map((nd) => nd.start()));
    log(`servers and processes up after ${((Date.now() - runStart) / 1000).toFixed(1)} s`);
    const nodeNames = new Set(nodes.map((nd) => nd.name));
    await waitFor(() => [...rec.holders(o.leaseMs)].filter(([, node]) => nodeNames.has(node)).length === o.partitions, {
      timeoutMs: 60_000,
      what: `every one of ${o.partitions} partitions leased by a node`,
      intervalMs: 200,
      explain: () => `${rec.holders(o.leaseMs).size} leased`,
    });

    const t0 = Date.now();
    const callers = [...work.callers];
    const per = Math.ceil(callers.length / AGENT_PROCS);
    agentProcs.push(
      ...(await Promise.all(
        Array.from({ length: AGENT_PROCS }, (_, k) =>
          AgentProcess.start(
            { proc: `agents-${k}`, url: cluster!.url, prefix, partitions: o.partitions, callers: callers.slice(k * per, (k + 1) * per), callsPerSec: o.callsPerSec / AGENT_PROCS, batchMaxDelayMs: o.batchMaxDelayMs, t0, failures: work.failures, seed: o.seed + k },
            logDir,
          ),
        ),
      )),
    );
    await waitFor(() => agentProcs.every((a) => a.samples.some((s) => s.acked > 0)), { timeoutMs: 30_000, what: 'acknowledged reports from both agent processes', intervalMs: 200 });
    log(`agents calling after ${((Date.now() - runStart) / 1000).toFixed(1)} s`);
    // A fixed time under load before the first fault: the routes settle and the timeline shows the steady state.
    await delay(o.warmupMs);

    // ---------------------------------------------------------------- nemesis
    const faults: FaultRecord[] = [];
    const heals: HealRecord[] = [];
    const nemesisStart = Date.now();
    const groups: Iterator<FaultGroup> = Array.isArray(o.plan) ? o.plan[Symbol.iterator]() : randomPlan(o.seed, { servers: cluster.size, nodes: NODES, sinks: SINKS }, o.leaseMs);
    const until = Array.isArray(o.plan) ? Infinity : nemesisStart + o.plan.randomForMs;
    const procsOf = { nats: natsProcs, node: nodes, sink: sinks };
    for (let gi = 1; Date.now() < until; gi++) {
      const next = groups.next();
      if (next.done) break;
      const g = next.value;
      // A planned quiet time, not a wait for an event: the previous heal is judged over it.
      await delay(g.quietMs);
      const prev = heals[heals.length - 1];
      if (prev) prev.windowEnd = Date.now();
      log(`group ${gi}: ${g.faults.map(describeFault).join(' + ')}`);
      const heal = await runGroup(gi, g, procsOf, rec, faults);
      heals.push(heal);
      log(`group ${gi} healed ${heal.at === undefined ? 'NOT (JetStream not writable)' : `${((heal.at - heal.upAt) / 1000).toFixed(1)} s after its processes were up`}`);
    }
    const nemesisEnd = Date.now();

    // ---------------------------------------------------------------- idle routes
    // Half the routes: a host fails while traffic still flows (ejected), then the routes lose every caller.
    const idleRoutes = routes.filter((_, i) => i % 2 === 1);
    const rel = Date.now() - t0;
    const fail: FailWindow[] = idleRoutes.map((r) => {
      const spec = work.routes.find((x) => routeKey(x.modid, x.cmdid) === r)!;
      return { route: r, host: `${spec.hosts[0]!.ip}:${spec.hosts[0]!.port}`, from: rel, to: rel + 10 * 60_000, errorRate: 1 };
    });
    for (const a of agentProcs) a.send({ type: 'fail', windows: fail });
    await delay(quietMs(o.leaseMs, 0));
    // The idle spell counts from the moment the reports made before it are all acknowledged (retried batches arrive late).
    // (Not acknowledged within 30 s: said in the notes, and the idle check may then count what arrived late.)
    await Promise.all(agentProcs.map((a) => a.idle(idleRoutes, 30_000).catch((err: unknown) => void notes.push(String((err as Error).message ?? err)))));
    const idleStart = Date.now();
    log(`routes ${idleRoutes.join(', ')} idle for ${o.idleMs / 1000} s`);
    await delay(o.idleMs);
    const idleEnd = Date.now();

    // ---------------------------------------------------------------- drain
    const flushed = await Promise.all(agentProcs.map((a) => a.flush(60_000).catch((err: unknown) => ({ agents: [] as AgentFinal[], error: String(err) }))));
    for (const f of flushed) if (f.error) notes.push(`agent flush: ${f.error}`);
    const finals = flushed.flatMap((f) => f.agents);
    log(`agents flushed: ${finals.reduce((s, a) => s + a.made, 0)} reports made, ${finals.reduce((s, a) => s + a.pending, 0)} pending, ${finals.reduce((s, a) => s + a.dropped, 0)} dropped`);
    const drained = await waitFor(async () => (await sinkDrained(admin!, n).catch(() => false)) || undefined, { timeoutMs: 90_000, what: 'the sinks drained', intervalMs: 250 })
      .then(() => true)
      .catch(() => false);
    if (!drained) notes.push('the sinks had not drained the reports stream within 90 s');
    const runEnd = Date.now();
    const last = heals[heals.length - 1];
    if (last) last.windowEnd = runEnd;
    const tallies = await tallyStored(ch.url, database, new Map(finals.map((a) => [a.agent, a.made])));
    // where the missing reports went: still in the stream (the sinks lost them) or not (JetStream did)
    const q = await quarantined(ch.url, database).catch(() => ({}) as Record<string, number>);
    if (Object.keys(q).length > 0) notes.push(`the sinks quarantined messages (not stored as reports): ${JSON.stringify(q)}`);
    const located = await locateMissing(admin, n.reportsStream, tallies).catch((err: unknown) => void notes.push(`the reports stream could not be read for the missing reports: ${String(err)}`));
    if (located && located.firstSeq > 1) notes.push(`the reports stream had discarded its first ${located.firstSeq - 1} messages (its size limit): a missing report not found there may be one of them`);
    for (const a of agentProcs) await a.close();
    for (const p of larsProcs) if (p.failedStarts > 0) notes.push(`${p.id} exited before it answered ${p.failedStarts} times (started again)`);
    for (const p of larsProcs) if (p.crashes > 0) notes.push(`${p.id} exited by itself ${p.crashes} times (not started again; see its log)`);
    for (const a of agentProcs) for (const e of a.errors) notes.push(`${a.cfg.proc}: ${e.split('\n')[0]}`);
    await rec.stop();

    const history: History = {
      seed: o.seed,
      prefix,
      partitions: o.partitions,
      leaseMs: o.leaseMs,
      nodes: nodes.map((nd) => nd.name),
      routes,
      runStart,
      nemesisStart,
      nemesisEnd,
      runEnd,
      procEvents: timeline.events,
      leases: [...rec.leases.values()],
      leaseRenumbered: [...rec.renumbered.values()].slice(0, 200),
      leaseRenumberedCount: rec.renumbered.size,
      leaseSampleFailures: rec.sampleFailures,
      routeMsgs: [...rec.routeMsgs.values()],
      ready: rec.ready,
      applied: agentProcs.flatMap((a) => a.applied),
      agentSamples: agentProcs.flatMap((a) => a.samples),
      faults,
      heals,
      idle: { routes: idleRoutes, start: idleStart, end: idleEnd },
      agents: finals,
      sinksDrained: drained,
      tallies,
      harnessLagMaxMs: rec.lagMaxMs(),
      harnessStalls: rec.stalls,
    };
    return { history, verdict: judge(history), notes };
  } finally {
    for (const a of agentProcs) a.kill();
    await recorder?.stop().catch(() => undefined);
    await Promise.all(larsProcs.map((p) => p.dispose()));
    await admin?.close().catch(() => undefined);
    await cluster?.close();
    await ch?.destroy();
  }
}

type Procs = { nats: NatsProc[]; node: LarsProc[]; sink: LarsProc[] };

/** Injects a group's faults at their offsets, heals each after its duration, then waits for JetStream to answer writes. */
async function runGroup(gi: number, g: FaultGroup, procs: Procs, rec: Recorder, faults: FaultRecord[]): Promise<HealRecord> {
  const ids: string[] = [];
  await Promise.all(
    g.faults.map(async (f, k) => {
      await delay(f.offsetMs);
      const { targets, detail } = await resolve(f, procs, rec);
      const r: FaultRecord = { id: `g${gi}.${k}`, group: gi, kind: f.kind, target: targets.length > 1 ? 'nats-*' : targets[0]!.id, detail, start: Date.now() };
      faults.push(r);
      ids.push(`${f.kind} ${r.target}`);
      await Promise.all(targets.map((p) => hurt(f.kind, p)));
      // The fault's planned length: the process stays down or paused this long.
      await delay(f.durationMs);
      r.healStart = Date.now();
      if (f.kind === FaultKind.pause) for (const p of targets) p.resume();
      else await Promise.all(targets.map((p) => p.start()));
      r.up = Date.now();
    }),
  );
  const upAt = Date.now();
  const at = await rec.writable(WRITABLE_DEADLINE_MS);
  return { group: gi, faults: ids, at, upAt, windowEnd: Number.NaN };
}

async function hurt(kind: FaultKind, p: Managed): Promise<void> {
  switch (kind) {
    case FaultKind.kill:
      return p.kill();
    case FaultKind.pause:
      return p.pause();
    case FaultKind.restart:
    case FaultKind.clusterRestart:
      return p.stop();
  }
}

async function resolve(f: PlannedFault, procs: Procs, rec: Recorder): Promise<{ targets: Managed[]; detail: string }> {
  const t = f.target;
  switch (t.kind) {
    case 'cluster':
      return { targets: procs.nats, detail: 'all three' };
    case 'node':
      return { targets: [procs.node[t.index]!], detail: `node ${procs.node[t.index]!.name}` };
    case 'sink':
      return { targets: [procs.sink[t.index]!], detail: `sink ${procs.sink[t.index]!.name}` };
    case 'nats': {
      if ('index' in t) return { targets: [procs.nats[t.index]!], detail: 'by index' };
      const stream = t.leaderOf === LeaderOf.leases ? rec.leasesStream : rec.reportsStream;
      const leader = await rec.leaderOf(stream);
      const i = procs.nats.findIndex((p) => leader !== undefined && p.serverName() === leader);
      return i >= 0 ? { targets: [procs.nats[i]!], detail: `leader of ${stream}` } : { targets: [procs.nats[0]!], detail: `leader of ${stream} unknown; the first server` };
    }
  }
}
