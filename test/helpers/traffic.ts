/** Simulated callers: pick through an agent, "call" the host, report the outcome. */
import type { Agent } from '../../src/agent/agent.ts';

/** What a call to the host does; `utilization`, when given, is what the host answers with about its load (0..1). */
export type Behaviour = (hostKey: string) => { retcode: number; latencyMs: number; utilization?: number };

export interface Traffic {
  readonly picks: Map<string, number>;
  noHost: number;
  calls: number;
  reset(): void;
  stop(): void;
}

export function startTraffic(agent: Agent, modid: number, cmdid: number, behaviour: Behaviour, opts: { callsPerTick?: number; tickMs?: number } = {}): Traffic {
  const t: Traffic = {
    picks: new Map(),
    noHost: 0,
    calls: 0,
    reset() {
      t.picks.clear();
      t.noHost = 0;
    },
    stop() {
      clearInterval(timer);
    },
  };
  const n = opts.callsPerTick ?? 20;
  const timer = setInterval(() => {
    for (let i = 0; i < n; i++) {
      const h = agent.pick(modid, cmdid);
      if (!h.ok) {
        t.noHost++;
        continue;
      }
      const key = `${h.ip}:${h.port}`;
      t.picks.set(key, (t.picks.get(key) ?? 0) + 1);
      t.calls++;
      const r = behaviour(key);
      agent.report(modid, cmdid, h, r.retcode, r.latencyMs, r.utilization);
    }
  }, opts.tickMs ?? 5);
  return t;
}

/** Counts `n` synchronous picks per host. */
export function samplePicks(agent: Agent, modid: number, cmdid: number, n: number): Map<string, number> {
  const m = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const h = agent.pick(modid, cmdid);
    const k = h.ok ? `${h.ip}:${h.port}` : `!${h.code}`;
    m.set(k, (m.get(k) ?? 0) + 1);
  }
  return m;
}
