/**
 * Agents (createAgent, each with its own connection to the three servers)
 * reporting calls at a steady rate with acknowledged delivery, for
 * bench/cluster/leader-loss.ts. Every `sampleMs` each agent's
 * stats().ackedBatches is read; every time it has grown, the time is kept,
 * so the parent can ask for the longest stretch without a new ack.
 */
import { createAgent, type Agent } from '../../src/agent/agent.ts';
import { childConfig, epochMs, exitWithParent, toParent } from '../_common.ts';

export interface LeaderLossAgentsConfig {
  url: string;
  prefix: string;
  partitions: number;
  /** Agents in this process. */
  agents: number;
  /** First agent's index (ids and routes differ across processes). */
  first: number;
  /** Calls reported per second by each agent. */
  reportsPerSec: number;
  sampleMs: number;
  /** Agent options under test (undefined: the defaults). */
  ackTimeoutMs?: number;
  retryBackoffMs?: number[];
}

export type ToLeaderLossAgents = { type: 'gaps'; from: number; to: number } | { type: 'stats' } | { type: 'stop' };
export type FromLeaderLossAgents =
  | { type: 'ready' }
  /** Per agent: the longest time between two ack increases within [from, to], its start, and the time of its last ack. */
  | { type: 'gaps'; gaps: Array<{ gapMs: number; at: number; lastAck: number }> }
  | { type: 'stats'; acked: number; retried: number; dropped: number; pending: number };

const cfg = childConfig<LeaderLossAgentsConfig>();
const agents: Agent[] = [];
for (let i = 0; i < cfg.agents; i++) {
  const id = cfg.first + i;
  agents.push(
    await createAgent({
      servers: cfg.url,
      prefix: cfg.prefix,
      partitions: cfg.partitions,
      agentId: `ll-agent-${id}`,
      batchMaxDelayMs: 20,
      ...(cfg.ackTimeoutMs !== undefined ? { ackTimeoutMs: cfg.ackTimeoutMs } : {}),
      ...(cfg.retryBackoffMs !== undefined ? { retryBackoffMs: cfg.retryBackoffMs } : {}),
    }),
  );
}
exitWithParent(async () => {
  await Promise.all(agents.map((a) => a.close().catch(() => undefined)));
});

/** Per agent: times (epoch ms) at which its acked batch count was seen to grow. */
const ackTimes: number[][] = agents.map(() => []);
const lastAcked = agents.map(() => 0);
const sampler = setInterval(() => {
  const t = epochMs();
  for (let i = 0; i < agents.length; i++) {
    const acked = agents[i]!.stats().ackedBatches;
    if (acked > lastAcked[i]!) {
      lastAcked[i] = acked;
      const times = ackTimes[i]!;
      times.push(t);
      // an hour of samples at most; the parent asks about the last minute
      if (times.length > 200_000) times.splice(0, 100_000);
    }
  }
}, cfg.sampleMs);

// Calls spread over 10 routes per agent and 4 hosts per route, reported every 10 ms.
const perTick = Math.max(1, Math.round(cfg.reportsPerSec / 100));
let k = 0;
const reporter = setInterval(() => {
  for (let i = 0; i < agents.length; i++) {
    const a = agents[i]!;
    for (let j = 0; j < perTick; j++) {
      k++;
      a.report(700, 1 + ((cfg.first + i + k) % 10), { ip: `10.7.0.${1 + (k % 4)}`, port: 8000 }, k % 50 === 0 ? 1 : 0, 5 + (k % 20));
    }
  }
}, 10);

process.on('message', (m: ToLeaderLossAgents) => {
  if (m.type === 'gaps') {
    const gaps = ackTimes.map((times) => {
      let gapMs = 0;
      let at = m.from;
      let prev: number | undefined;
      for (const t of times) {
        if (t < m.from) {
          prev = t;
          continue;
        }
        if (t > m.to) break;
        const start = prev ?? m.from;
        if (t - start > gapMs) {
          gapMs = t - start;
          at = start;
        }
        prev = t;
      }
      // no ack since: the gap runs to the end of the window
      const last = times.at(-1) ?? 0;
      if (last < m.to && m.to - Math.max(last, m.from) > gapMs) {
        gapMs = m.to - Math.max(last, m.from);
        at = Math.max(last, m.from);
      }
      return { gapMs, at, lastAck: last };
    });
    toParent({ type: 'gaps', gaps } satisfies FromLeaderLossAgents);
  } else if (m.type === 'stats') {
    let acked = 0;
    let retried = 0;
    let dropped = 0;
    let pending = 0;
    for (const a of agents) {
      const s = a.stats();
      acked += s.ackedBatches;
      retried += s.retriedBatches;
      dropped += s.droppedReports;
      pending += s.pendingReports;
    }
    toParent({ type: 'stats', acked, retried, dropped, pending } satisfies FromLeaderLossAgents);
  } else if (m.type === 'stop') {
    clearInterval(sampler);
    clearInterval(reporter);
    void Promise.all(agents.map((a) => a.close().catch(() => undefined))).finally(() => process.exit(0));
  }
});
toParent({ type: 'ready' } satisfies FromLeaderLossAgents);
