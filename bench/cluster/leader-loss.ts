/**
 * Acknowledgements through the loss of the reports stream's leader
 * (leader_loss_ack_pause_ms): three nats-servers (test/helpers/nats-cluster.ts),
 * the REPORTS stream at R3, a core subscriber on the report subjects (as the
 * route nodes are: with one, a publish meeting no stream leader waits for
 * its ack timeout instead of hearing "no responders"), and agents
 * (createAgent, `PROCS` processes x `AGENTS` agents, each with its own
 * connection, 100 calls/s each) reporting with acknowledged delivery. Each
 * trial kills -9 the server leading the stream, waits until every agent's
 * acks flow again, and takes the longest time any agent went without a new
 * ack (stats().ackedBatches sampled every `SAMPLE_MS`); then the server
 * comes back and catches up before the next trial.
 *
 * Beside it, what the servers take: from the kill to the first time the
 * stream reports a new leader to a client polling its info every 50 ms
 * (leader_loss_election_ms, within the info request's 1 s timeout), and
 * the spread between the agent that waited longest and the one that waited
 * least (leader_loss_ack_pause_spread_ms): every agent waits for the same
 * election, so the spread is the clients' own share.
 *
 * Knobs: BENCH_LEADERLOSS_TRIALS [5], BENCH_LEADERLOSS_AGENTS [10 per
 * process], BENCH_LEADERLOSS_ACK_TIMEOUT_MS and BENCH_LEADERLOSS_BACKOFF_MS
 * (comma separated) to run the agents with other outbox settings.
 */
import { randomBytes } from 'node:crypto';
import type { ChildProcess } from 'node:child_process';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import { names as makeNames, DEFAULT_PARTITIONS } from '../../schemas/subjects.ts';
import { ensureStreams } from '../../src/nats/streams.ts';
import type { NatsConnection } from '../../src/nats/connect.ts';
import { NatsCluster } from '../../test/helpers/nats-cluster.ts';
import { epochMs, percentile, sleep } from '../_common.ts';
import { QUICK, askAll, envInt, logger, nextMessage, onTeardown, spawnChild, stopChild } from '../_harness.ts';
import type { Metric } from '../lib.ts';
import type { FromLeaderLossAgents, LeaderLossAgentsConfig, ToLeaderLossAgents } from './_leader-loss-agents.ts';

const log = logger('cluster');
const TRIALS = envInt('BENCH_LEADERLOSS_TRIALS', QUICK ? 2 : 5);
const PROCS = 2;
const AGENTS = envInt('BENCH_LEADERLOSS_AGENTS', 10);
const SAMPLE_MS = 5;
const ACK_TIMEOUT_MS = process.env['BENCH_LEADERLOSS_ACK_TIMEOUT_MS'] ? Number(process.env['BENCH_LEADERLOSS_ACK_TIMEOUT_MS']) : undefined;
const BACKOFF_MS = process.env['BENCH_LEADERLOSS_BACKOFF_MS']?.split(',').map(Number);

interface Trial {
  pauseMs: number;
  /** The agent that waited least: what the servers alone impose, with one round trip. */
  shortestMs: number;
  electionMs: number;
  killed: string;
}

/** Waits until the stream has a leader and every replica is current; returns the leader's name. */
async function steadyLeader(jsm: JetStreamManager, stream: string, timeoutMs: number): Promise<string> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    try {
      const info = await jsm.streams.info(stream);
      const c = info.cluster;
      if (c?.leader && (c.replicas ?? []).length === 2 && (c.replicas ?? []).every((r) => r.current && !r.offline)) return c.leader;
    } catch {
      // no leader yet
    }
    if (Date.now() > end) throw new Error(`stream ${stream}: no leader with current replicas within ${timeoutMs} ms`);
    await sleep(200);
  }
}

/** Polls the stream's info until a leader other than `old` answers; the time of that answer (epoch ms). */
async function newLeaderAt(jsm: JetStreamManager, stream: string, old: string, timeoutMs: number): Promise<number> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    try {
      const info = await jsm.streams.info(stream);
      if (info.cluster?.leader && info.cluster.leader !== old) return epochMs();
    } catch {
      // election under way
    }
    if (Date.now() > end) throw new Error(`stream ${stream}: no new leader within ${timeoutMs} ms`);
    await sleep(50);
  }
}

export async function benchLeaderLoss(): Promise<Metric[]> {
  const cluster = await NatsCluster.start(3);
  onTeardown(() => cluster.close());
  const admin: NatsConnection = await cluster.connect('leader-loss-admin');
  onTeardown(() => admin.close());
  const jsm = await jetstreamManager(admin, { timeout: 1000 });
  const n = makeNames(`ll${randomBytes(3).toString('hex')}`);
  const { reports } = await ensureStreams(admin, n, { reports: { maxBytes: 2 ** 30 } });
  const stream = reports.config.name;
  let coreSeen = 0;
  // the route nodes' part: interest in every report subject, no reply
  admin.subscribe(n.reportAll, { callback: () => void coreSeen++ });
  const procs: ChildProcess[] = [];
  for (let p = 0; p < PROCS; p++) {
    const cfg: LeaderLossAgentsConfig = {
      url: cluster.url,
      prefix: n.prefix,
      partitions: DEFAULT_PARTITIONS,
      agents: AGENTS,
      first: p * AGENTS,
      reportsPerSec: 100,
      sampleMs: SAMPLE_MS,
      ...(ACK_TIMEOUT_MS !== undefined ? { ackTimeoutMs: ACK_TIMEOUT_MS } : {}),
      ...(BACKOFF_MS !== undefined ? { retryBackoffMs: BACKOFF_MS } : {}),
    };
    procs.push(spawnChild('cluster/_leader-loss-agents.ts', cfg));
  }
  const trials: Trial[] = [];
  try {
    await Promise.all(procs.map((c) => nextMessage<FromLeaderLossAgents, 'ready'>(c, 'ready', 60_000)));
    log(`leader loss: 3 servers, stream ${stream} R3, ${PROCS * AGENTS} agents in ${PROCS} processes at 100 calls/s each${ACK_TIMEOUT_MS !== undefined ? `, ack timeout ${ACK_TIMEOUT_MS} ms` : ''}${BACKOFF_MS ? `, backoff ${BACKOFF_MS.join('/')} ms` : ''}`);
    await sleep(QUICK ? 1000 : 3000);
    const gaps = async (from: number, to: number) => (await askAll<FromLeaderLossAgents, 'gaps'>(procs, { type: 'gaps', from, to } satisfies ToLeaderLossAgents, 'gaps')).flatMap((r) => r.gaps);
    for (let t = 0; t < TRIALS; t++) {
      const leader = await steadyLeader(jsm, stream, 120_000);
      const idx = [0, 1, 2].find((i) => `${cluster.name}-n${i}` === leader);
      if (idx === undefined) throw new Error(`stream leader ${leader} is none of the cluster's servers`);
      // a second of steady acks before the kill: the baseline gap
      await sleep(1000);
      const tKill = epochMs();
      cluster.kill(idx);
      const elected = newLeaderAt(jsm, stream, leader, 60_000);
      // acks flowing again at every agent: each has one in the last 300 ms, at least 1.5 s after the kill
      const deadline = tKill + 60_000;
      for (;;) {
        await sleep(250);
        const now = epochMs();
        const g = await gaps(tKill - 1000, now);
        if (now - tKill > 1500 && g.every((x) => x.lastAck > now - 300 && x.lastAck > tKill)) break;
        if (now > deadline) throw new Error(`acks did not resume at every agent within 60 s of the kill: ${g.filter((x) => x.lastAck <= now - 300).length} agents without`);
      }
      const electionMs = (await elected) - tKill;
      const g = await gaps(tKill - 1000, epochMs());
      const pauseMs = Math.max(...g.map((x) => x.gapMs));
      const sorted = g.map((x) => x.gapMs).sort((a, b) => a - b);
      trials.push({ pauseMs, shortestMs: sorted[0]!, electionMs, killed: leader });
      log(
        `leader loss trial ${t + 1}: killed ${leader}; a new leader answered after ${(electionMs / 1000).toFixed(2)} s; ` +
          `longest ack pause ${(pauseMs / 1000).toFixed(2)} s (agents: median ${(percentile(sorted, 50) / 1000).toFixed(2)} s, shortest ${(sorted[0]! / 1000).toFixed(2)} s)`,
      );
      await cluster.restart(idx);
    }
    const st = await askAll<FromLeaderLossAgents, 'stats'>(procs, { type: 'stats' } satisfies ToLeaderLossAgents, 'stats');
    const sum = (f: (s: (typeof st)[number]) => number): number => st.reduce((a, s) => a + f(s), 0);
    log(`leader loss: ${sum((s) => s.acked)} batches acknowledged, ${sum((s) => s.retried)} publishes retried, ${sum((s) => s.dropped)} reports dropped; the core subscriber saw ${coreSeen} batches`);
    const pauses = trials.map((t) => t.pauseMs);
    const excess = trials.map((t) => t.pauseMs - t.electionMs);
    const spread = trials.map((t) => t.pauseMs - t.shortestMs);
    const setup = `${PROCS * AGENTS} agents (createAgent) in ${PROCS} processes, 100 calls/s each, kill -9 of the REPORTS leader, ${trials.length} trials`;
    return [
      { name: 'leader_loss_ack_pause_ms', value: Math.max(...pauses), unit: 'ms', target: '<= 3000', note: `longest time any agent's acks stopped, worst trial; per trial ${pauses.map((p) => Math.round(p)).join(', ')}; ${setup}` },
      { name: 'leader_loss_ack_pause_median_ms', value: percentile(pauses, 50), unit: 'ms', note: 'median over trials of the longest pause' },
      { name: 'leader_loss_election_ms', value: Math.max(...trials.map((t) => t.electionMs)), unit: 'ms', note: `kill to a new leader answering stream info (polled every 50 ms), worst trial; per trial ${trials.map((t) => Math.round(t.electionMs)).join(', ')}` },
      { name: 'leader_loss_client_excess_ms', value: Math.max(...excess), unit: 'ms', note: `pause beyond the election, worst trial; per trial ${excess.map((e) => Math.round(e)).join(', ')}` },
      { name: 'leader_loss_ack_pause_spread_ms', value: Math.max(...spread), unit: 'ms', note: `longest minus shortest pause among the agents, worst trial (the clients' own share: probe interval, reconnects, load); per trial ${spread.map((e) => Math.round(e)).join(', ')}` },
      { name: 'leader_loss_dropped_reports', value: sum((s) => s.dropped), unit: 'reports', target: '<= 0', note: 'reports given up by the agents over all trials' },
    ];
  } finally {
    await Promise.all(procs.map((c) => stopChild(c, { type: 'stop' } satisfies ToLeaderLossAgents, 8000)));
    // not left running through the group's later benchmarks
    await admin.close().catch(() => undefined);
    await cluster.close();
  }
}
