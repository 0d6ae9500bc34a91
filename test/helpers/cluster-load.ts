/**
 * Load and bookkeeping for the cluster end-to-end tests: agents reporting on
 * a timer, the REPORTS stream read back batch by batch, a sink into the
 * process' embedded ClickHouse, and the replica counts of a prefix' streams
 * and buckets.
 */
import { expect } from 'chai';
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '../../src/nats/connect.ts';
import { decode } from '../../schemas/codec.ts';
import { parseReportMsgId } from '../../schemas/msg-id.ts';
import type { Agent } from '../../src/agent/agent.ts';
import type { Names } from '../../schemas/subjects.ts';
import type { ReportBatch } from '../../schemas/messages.ts';
import { openEngine, type AnalyticsEngine } from '../../src/analytics/engine.ts';
import { runMigrations } from '../../src/analytics/migrate.ts';
import { durableName, startSink, type Sink, type SinkOptions } from '../../src/analytics/sink.ts';
import { clusterNames, LEASE_DEFAULTS } from '../../src/cluster/index.ts';
import { openTtlBucket } from '../../src/nats/buckets.ts';
import { RouteStore } from '../../src/registry/route-store.ts';
import { bindBucket } from '../../src/nats/buckets.ts';
import { ensureStreams, type EnsureStreamsOptions } from '../../src/nats/streams.ts';
import { waitFor } from './wait.ts';
import { randomDatabase, sharedChdbPath } from './clickhouse-server.ts';
import { startTraffic, type Behaviour, type Traffic } from './traffic.ts';

export interface ReportLoad {
  readonly traffic: Traffic[];
  /** Picks that found no host, over every agent and route. */
  failedPicks(): number;
  calls(): number;
  stop(): void;
}

/**
 * Steady picks and reports: agent i works on `perAgent` routes starting at
 * route i (so every route gets callers when agents × perAgent ≥ routes),
 * `callsPerTick` calls per route every `tickMs`.
 */
export function startReportLoad(agents: Agent[], routes: Array<[number, number]>, behaviour: Behaviour, opts: { perAgent?: number; callsPerTick?: number; tickMs?: number } = {}): ReportLoad {
  const perAgent = Math.min(opts.perAgent ?? 3, routes.length);
  const traffic: Traffic[] = [];
  agents.forEach((a, i) => {
    for (let k = 0; k < perAgent; k++) {
      const [m, cmd] = routes[(i * perAgent + k) % routes.length]!;
      traffic.push(startTraffic(a, m, cmd, behaviour, { callsPerTick: opts.callsPerTick ?? 1, tickMs: opts.tickMs ?? 100 }));
    }
  });
  return {
    traffic,
    failedPicks: () => traffic.reduce((s, t) => s + t.noHost, 0),
    calls: () => traffic.reduce((s, t) => s + t.calls, 0),
    stop: () => {
      for (const t of traffic) t.stop();
    },
  };
}

/** Reports made by the agents, and what they could not deliver. */
export function agentTotals(agents: Agent[]): { reports: number; batches: number; dropped: number; pending: number; retried: number } {
  let reports = 0;
  let batches = 0;
  let dropped = 0;
  let pending = 0;
  let retried = 0;
  for (const a of agents) {
    const s = a.stats();
    reports += s.reports;
    batches += s.batches;
    dropped += s.droppedReports;
    pending += s.pendingReports;
    retried += s.retriedBatches;
  }
  return { reports, batches, dropped, pending, retried };
}

export interface StoredBatch {
  /** Stream sequence of the (first) message with this id. */
  seq: number;
  sender: string;
  reports: number;
}

export interface StoredReports {
  /** Messages in the stream. */
  messages: number;
  /** Report batches by `Nats-Msg-Id`. */
  batches: Map<string, StoredBatch>;
  /** Reports of the distinct batches. */
  reports: number;
}

/**
 * Reads every report batch of the REPORTS stream back, message by message by
 * sequence (works while a replica is down), the msg id checked against the
 * batch's sender.
 */
export async function readStoredReports(nc: NatsConnection, n: Names): Promise<StoredReports> {
  // No account-info check (the meta leader may still be moving after a server was lost); each read retried until the stream answers.
  const jsm = await jetstreamManager(nc, { timeout: 5_000, checkAPI: false });
  const st = await retried(() => jsm.streams.info(n.reportsStream), 'the reports stream info').then((i) => i.state);
  const batches = new Map<string, StoredBatch>();
  let messages = 0;
  let reports = 0;
  for (let seq = st.first_seq; seq <= st.last_seq && st.messages > 0; seq++) {
    const m = await retried(() => jsm.streams.getMessage(n.reportsStream, { seq }), `reports message ${seq}`);
    if (!m) continue;
    messages++;
    const id = m.header.get('Nats-Msg-Id');
    const parsed = parseReportMsgId(id);
    expect(parsed, `msg id ${id}`).to.not.equal(undefined);
    if (batches.has(id)) continue;
    const b = decode(m.data) as ReportBatch;
    expect(b.sender).to.equal(parsed!.sender);
    batches.set(id, { seq, sender: b.sender, reports: b.reports.length });
    reports += b.reports.length;
  }
  expect(messages, 'messages read').to.equal(st.messages);
  return { messages, batches, reports };
}

/** A JetStream read retried on timeouts (a stream or meta leader being elected) for up to 30 s. */
async function retried<T>(read: () => Promise<T>, what: string): Promise<T> {
  const until = Date.now() + 30_000;
  for (;;) {
    try {
      return await read();
    } catch (err) {
      if ((err as Error).name !== 'TimeoutError' || Date.now() > until) throw new Error(`${what}: ${(err as Error).message}`, { cause: err });
    }
  }
}

export interface ChdbSink {
  engine: AnalyticsEngine;
  sink: Sink;
  close(): Promise<void>;
}

/** A sink of the reports pipeline into a fresh database of the process' embedded ClickHouse (chdb); close() closes `nc` too. */
export async function startChdbSink(nc: NatsConnection, n: Names, opts: Partial<SinkOptions> = {}): Promise<ChdbSink> {
  const engine = await openEngine({ path: sharedChdbPath(), database: randomDatabase() });
  await runMigrations(engine);
  const sink = await startSink({ nc, names: n, engine, pipelines: ['reports'], batch: { maxWaitMs: 100 }, ...opts });
  let closed = false;
  return {
    engine,
    sink,
    close: async () => {
      if (closed) return;
      closed = true;
      await sink.stop().catch(() => undefined);
      await engine.close().catch(() => undefined);
      await nc.close().catch(() => undefined);
    },
  };
}

/** Rows per (caller, JetStream sequence) of the reports table. */
export async function rowsPerSenderSeq(e: AnalyticsEngine): Promise<Map<string, number>> {
  const r = await e.query<{ caller: string; seq: number | string; c: number | string }>(`SELECT toString(caller) AS caller, seq, count() AS c FROM ${e.database}.reports GROUP BY caller, seq`);
  return new Map(r.map((x) => [`${x.caller}#${Number(x.seq)}`, Number(x.c)]));
}

/** Replica counts of the prefix' streams and of every bucket that exists, by stream or bucket name. */
export async function replicaCounts(nc: NatsConnection, n: Names): Promise<Record<string, number>> {
  const jsm = await jetstreamManager(nc);
  const out: Record<string, number> = {};
  for (const s of [n.reportsStream, n.eventsStream]) out[s] = (await jsm.streams.info(s)).config.num_replicas;
  const cn = clusterNames(n.prefix);
  for (const b of [n.registryBucket, n.routesBucket, cn.membersBucket, cn.leasesBucket, cn.checkpointsBucket]) {
    const kv = await bindBucket(nc, b).catch(() => undefined);
    if (kv) out[b] = (await kv.status()).replicas;
  }
  return out;
}

/** True when the reports sink's durable consumer (default durable prefix) has nothing pending or unacknowledged. */
export async function sinkDrained(nc: NatsConnection, n: Names): Promise<boolean> {
  const jsm = await jetstreamManager(nc);
  const ci = await jsm.consumers.info(n.reportsStream, durableName(`${n.prefix}_sink`, 'reports'));
  return ci.num_pending === 0 && ci.num_ack_pending === 0;
}

/**
 * Creates the buckets route nodes open at start (members, leases,
 * checkpoints, routes) with the nodes' own settings, so that nodes starting
 * together bind to existing buckets instead of racing to create them.
 */
export async function createNodeBuckets(nc: NatsConnection, n: Names, leaseMs: number, heartbeatMs = LEASE_DEFAULTS.heartbeatMs): Promise<void> {
  const cn = clusterNames(n.prefix);
  await openTtlBucket(nc, cn.membersBucket, Math.max(heartbeatMs * 3 * 2, 1000));
  await openTtlBucket(nc, cn.leasesBucket, Math.max(leaseMs * 5, 10_000));
  await openTtlBucket(nc, cn.checkpointsBucket, 0);
  await RouteStore.open(nc, n);
}

/**
 * ensureStreams on a NATS cluster that has just started: until the meta
 * leader knows every peer, R3 placement fails with "no suitable peers";
 * retried until the deadline.
 */
export async function ensureStreamsOnCluster(nc: NatsConnection, n: Names, opts: EnsureStreamsOptions, timeoutMs = 20_000): Promise<void> {
  let last: unknown;
  await waitFor(
    async () => {
      try {
        await ensureStreams(nc, n, opts);
        return true;
      } catch (err) {
        if (!/no suitable peers/i.test((err as Error).message)) throw err;
        last = err;
        return false;
      }
    },
    { timeoutMs, what: 'streams placed on the cluster', intervalMs: 200 },
  ).catch((err: unknown) => {
    throw new Error(`${(err as Error).message}: ${(last as Error | undefined)?.message}`);
  });
}
