/**
 * An agent process of the nemesis run (started by test/nemesis/agents.ts,
 * configuration in LARS_NEMESIS_AGENTS, commands over the IPC channel).
 * Several agents (`createAgent`, the public SDK) pick hosts for their routes
 * at a steady rate, take each call's outcome from the host behaviour
 * schedule, and report every call with its id in the latency
 * (workload.ts). It records every route state its agents apply (version and
 * content hash, through `watchRoute`) and its totals every second, and sends
 * both to the harness.
 */
import { createAgent, type Agent } from '../../src/index.ts';
import { HostBehaviour, latencyOf } from './workload.ts';
import { stateHash } from './hash.ts';
import type { AgentProcessConfig, FromChild, ToChild } from './agents.ts';
import type { AgentFinal } from './types.ts';

const TICK_MS = 20;

const cfg = JSON.parse(process.env['LARS_NEMESIS_AGENTS'] ?? '{}') as AgentProcessConfig;

function send(m: FromChild): void {
  if (process.connected) process.send!(m);
}

interface Caller {
  id: string;
  agent: Agent;
  routes: Array<{ key: string; modid: number; cmdid: number; idle: boolean; credit: number }>;
  /** Reports made: the id of the last one (ids count from 1). */
  made: number;
  noHost: number;
}

const behaviour = new HostBehaviour(cfg.failures, cfg.seed);
const callers: Caller[] = [];
let applied: Array<[number, string, string, number, string]> = [];
let calling = true;
let closing = false;

function parseRoute(k: string): { modid: number; cmdid: number } {
  const [m, c] = k.split('.').map(Number);
  return { modid: m!, cmdid: c! };
}

async function main(): Promise<void> {
  for (const [id, routes] of cfg.callers) {
    // Smooth weighted round robin: a failing host keeps its share until the route node ejects it (a latency-aware
    // strategy would steer away from it on its own, and the routes would see too little to judge).
    const agent = await createAgent({ servers: cfg.url, prefix: cfg.prefix, partitions: cfg.partitions, agentId: id, batchMaxDelayMs: cfg.batchMaxDelayMs, strategy: 'swrr' });
    const c: Caller = { id, agent, routes: routes.map((key) => ({ key, ...parseRoute(key), idle: false, credit: 0 })), made: 0, noHost: 0 };
    callers.push(c);
    for (const r of c.routes) {
      // called synchronously by the follower for every state it applies: hash it before the next one replaces it
      agent.watchRoute(r.modid, r.cmdid, (s) => applied.push([Date.now(), id, r.key, s.version, stateHash(s)]));
    }
    await agent.prepare(c.routes.map((r) => [r.modid, r.cmdid]));
  }
  const pairs = callers.reduce((n, c) => n + c.routes.length, 0);
  const perPairTick = (cfg.callsPerSec * TICK_MS) / 1000 / Math.max(1, pairs);
  const load = setInterval(() => {
    if (!calling) return;
    const now = Date.now();
    const t = now - cfg.t0;
    for (const c of callers) {
      for (const r of c.routes) {
        if (r.idle) continue;
        r.credit += perPairTick;
        for (; r.credit >= 1; r.credit--) {
          const h = c.agent.pick(r.modid, r.cmdid);
          if (!h.ok) {
            c.noHost++;
            continue;
          }
          const rc = behaviour.retcode(r.key, `${h.ip}:${h.port}`, t);
          c.agent.report(r.modid, r.cmdid, h, rc, latencyOf(++c.made));
        }
      }
    }
  }, TICK_MS);
  const tell = setInterval(() => {
    let reports = 0;
    let pending = 0;
    let dropped = 0;
    let noHost = 0;
    for (const c of callers) {
      const s = c.agent.stats();
      reports += s.reports;
      pending += s.pendingReports;
      dropped += s.droppedReports;
      noHost += c.noHost;
    }
    send({ type: 'sample', sample: { t: Date.now(), reports, acked: reports - pending - dropped, pending, dropped, noHost } });
    flushApplied();
  }, 1000);
  process.on('message', (m: ToChild) => {
    void handle(m, [load, tell]).catch((err: unknown) => send({ type: 'error', message: String((err as Error).stack ?? err) }));
  });
  process.on('disconnect', () => process.exit(0));
  send({ type: 'ready' });
}

function flushApplied(): void {
  if (applied.length === 0) return;
  send({ type: 'applied', rows: applied });
  applied = [];
}

function finals(): AgentFinal[] {
  return callers.map((c) => {
    const s = c.agent.stats();
    return { agent: c.id, made: c.made, reports: s.reports, pending: s.pendingReports, dropped: s.droppedReports, acked: s.reports - s.pendingReports - s.droppedReports, staleUpdates: s.staleUpdates, noHost: c.noHost };
  });
}

async function handle(m: ToChild, timers: NodeJS.Timeout[]): Promise<void> {
  switch (m.type) {
    case 'fail':
      behaviour.add(m.windows);
      return;
    case 'idle': {
      for (const c of callers) for (const r of c.routes) if (m.routes.includes(r.key)) r.idle = true;
      const rs = await Promise.allSettled(callers.map((c) => c.agent.flush({ timeoutMs: m.timeoutMs })));
      const failed = rs.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason));
      send(failed.length === 0 ? { type: 'idled' } : { type: 'idled', error: failed.slice(0, 3).join('; ') });
      return;
    }
    case 'stop':
      calling = false;
      return;
    case 'flush': {
      calling = false;
      const rs = await Promise.allSettled(callers.map((c) => c.agent.flush({ timeoutMs: m.timeoutMs })));
      const failed = rs.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason));
      flushApplied();
      send(failed.length === 0 ? { type: 'flushed', agents: finals() } : { type: 'flushed', agents: finals(), error: failed.slice(0, 3).join('; ') });
      return;
    }
    case 'close': {
      if (closing) return;
      closing = true;
      calling = false;
      for (const t of timers) clearInterval(t);
      flushApplied();
      const before = finals();
      await Promise.allSettled(callers.map((c) => c.agent.close()));
      send({ type: 'closed', agents: before });
      process.disconnect();
      return;
    }
  }
}

main().catch((err: unknown) => {
  send({ type: 'error', message: String((err as Error).stack ?? err) });
  process.exitCode = 1;
  process.disconnect?.();
});
