/**
 * `npm run bench -- calls`: the retry-storm scenario of the call policies
 * (docs/calls.md), in virtual time, with the real parts: `agent.call`'s
 * engine (src/agent/call.ts), each agent's budget (actors/agent-budget.ts)
 * and the route actor computing the route's policy from every caller's
 * marked reports (actors/route.ts, actors/call-policy.ts).
 *
 * Three agents call a route of 10 hosts, 200 logical calls a second each
 * (evenly spaced), at most 3 attempts per call. Every host fails every call
 * (fast, 2 ms) from 10 s to 40 s, then recovers; the run ends at 50 s. Reports
 * leave each agent every 20 ms and reach the route actor 2 ms later; the
 * actor is ticked every 100 ms and its states reach the agents 2 ms after a
 * flush. The same run three times: the default policy; without any budget
 * (retries limited only by the 3 attempts, no shedding); and with the budget
 * but no shedding (shed_k 0).
 *
 * Figures: `retry_storm_amplification` (attempts per logical call started
 * during the outage, target ≤ 1.2; `_no_budget` beside it, 3.0 expected),
 * `retry_storm_amplification_no_shed`, and `retry_storm_recovery_ms` (from
 * the hosts' recovery to the first 100 ms from which every logical call
 * succeeds, target ≤ 2000).
 */
import { RouteActor } from '../actors/route.ts';
import { AgentCallBudget, policyOf, type AgentPolicy } from '../actors/agent-budget.ts';
import type { PickedHost } from '../actors/agent-route.ts';
import type { AttemptTuple, RegistryEntry, ReportBatch, ReportTuple, RouteState } from '../schemas/messages.ts';
import { EventQueue } from '../src/sim/heap.ts';
import { newCallCounters, runCall, type CallTimers } from '../src/agent/call.ts';
import { record, type Metric } from './lib.ts';

const T0 = 1_700_000_000_000;
const HOSTS = 10;
const AGENTS = 3;
const RATE = 200;
const OUTAGE_FROM = 10_000;
const OUTAGE_TO = 40_000;
const END = 50_000;
const BATCH_MS = 20;
const DELAY_MS = 2;
const TICK_MS = 100;
const HOST_MS = 2;

type Ev = () => void;

interface Run {
  calls: number;
  attempts: number;
  outageCalls: number;
  outageAttempts: number;
  recoveryMs: number;
  stops: Record<string, number>;
}

async function run(params: Record<string, number>): Promise<Run> {
  const q = new EventQueue<Ev>();
  let now = T0;
  const timers: CallTimers = {
    now: () => now,
    set: (fn, ms) => {
      const h = { live: true };
      q.push(now + ms, () => h.live && fn());
      return h;
    },
    clear: (h) => {
      if (h !== undefined) (h as { live: boolean }).live = false;
    },
  };
  const entry: RegistryEntry = {
    v: 1,
    modid: 1,
    cmdid: 1,
    profile: 'default',
    params,
    hosts: Array.from({ length: HOSTS }, (_, i) => ({ ip: `10.0.0.${i + 1}`, port: 8000, weight: 100 })),
    updated_by: 'bench',
    ts: 0,
  };
  const actor = new RouteActor({ modid: 1, cmdid: 1, nodeId: 'bench', entry, now });
  let state: RouteState = actor.flush(now)!.state;
  const picks: PickedHost[] = entry.hosts.map((h) => ({ ok: true, ip: h.ip, port: h.port }));
  const out: Run = { calls: 0, attempts: 0, outageCalls: 0, outageAttempts: 0, recoveryMs: NaN, stops: {} };
  /** Per 100 ms bucket after the recovery: logical calls started, and those that failed. */
  const after = new Map<number, [number, number]>();
  const agents = Array.from({ length: AGENTS }, (_, a) => {
    let policy: AgentPolicy = policyOf(state);
    const reports: ReportTuple[] = [];
    const marks: AttemptTuple[] = [];
    let rr = a;
    const deps = {
      counters: newCallCounters(),
      pick: () => picks[rr++ % HOSTS],
      release: () => undefined,
      report: (h: PickedHost, retcode: number, lat: number, mark: { attempt: number; kind: 0 | 1 | 2 } | undefined) => {
        if (mark !== undefined) marks.push([reports.length, mark.attempt, mark.kind]);
        reports.push([picks.findIndex((p) => p === h), retcode, lat, 0]);
      },
      policy: () => policy,
      budget: new AgentCallBudget(now),
      timers,
      random: mulberry(a + 1),
      timeoutMs: 1000,
    };
    const flushBatch = (): void => {
      if (reports.length > 0) {
        const b: ReportBatch = { v: 1, sender: `agent-${a}`, modid: 1, cmdid: 1, ts: now, hosts: entry.hosts.map((h) => [h.ip, h.port]), reports: reports.splice(0) };
        if (marks.length > 0) b.attempts = marks.splice(0);
        q.push(now + DELAY_MS, () => {
          actor.ingest(b, now);
          publish();
        });
      }
      q.push(now + BATCH_MS, flushBatch);
    };
    q.push(now + BATCH_MS + a, flushBatch);
    return { deps, setPolicy: (p: AgentPolicy) => (policy = p) };
  });
  const publish = (): void => {
    const ch = actor.flush(now);
    if (ch === undefined) return;
    state = ch.state;
    const s = state;
    q.push(now + DELAY_MS, () => agents.forEach((ag) => ag.setPolicy(policyOf(s))));
  };
  const tick = (): void => {
    actor.tick(now);
    publish();
    q.push(now + TICK_MS, tick);
  };
  q.push(now + TICK_MS, tick);
  const failing = (): boolean => now - T0 >= OUTAGE_FROM && now - T0 < OUTAGE_TO;
  const call = (ag: (typeof agents)[number]): void => {
    const startedAt = now - T0;
    const outage = startedAt >= OUTAGE_FROM && startedAt < OUTAGE_TO;
    out.calls++;
    if (outage) out.outageCalls++;
    void runCall(
      1,
      1,
      ag.deps,
      () =>
        new Promise<void>((resolve, reject) => {
          out.attempts++;
          if (outage) out.outageAttempts++;
          const fail = failing();
          timers.set(() => (fail ? reject(Object.assign(new Error('refused'), { code: 'ECONNREFUSED' })) : resolve()), HOST_MS);
        }),
      { maxAttempts: 3, attemptTimeoutMs: 1000 },
    ).then(
      () => bucket(startedAt, false),
      (err: { reason?: string }) => {
        out.stops[err.reason ?? 'other'] = (out.stops[err.reason ?? 'other'] ?? 0) + 1;
        bucket(startedAt, true);
      },
    );
  };
  const bucket = (startedAt: number, failed: boolean): void => {
    if (startedAt < OUTAGE_TO) return;
    const b = Math.floor((startedAt - OUTAGE_TO) / 100);
    const v = after.get(b) ?? [0, 0];
    v[0]++;
    if (failed) v[1]++;
    after.set(b, v);
  };
  agents.forEach((ag, a) => {
    const every = 1000 / RATE;
    const next = (): void => {
      call(ag);
      if (now - T0 + every < END) q.push(now + every, next);
    };
    q.push(now + a * 0.3, next);
  });
  for (;;) {
    const e = q.pop();
    if (e === undefined || e.t - T0 > END + 2000) break;
    now = e.t;
    e.ev();
    // the promise jobs of what just happened (attempts settling, calls ending)
    await new Promise((r) => setImmediate(r));
  }
  // the first bucket from which every call succeeded to the end
  const last = Math.floor((END - OUTAGE_TO) / 100) - 1;
  let from = last + 1;
  for (let b = last; b >= 0; b--) {
    const v = after.get(b);
    if (v !== undefined && v[1] > 0) break;
    from = b;
  }
  out.recoveryMs = from * 100;
  return out;
}

function mulberry(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const withPolicy = await run({});
const noBudget = await run({ retry_budget_percent: 10_000, retry_min_per_sec: 1_000_000, shed_k: 0 });
const noShed = await run({ shed_k: 0 });
const amp = (r: Run): number => r.outageAttempts / Math.max(1, r.outageCalls);
const metrics: Metric[] = [
  { name: 'retry_storm_amplification', value: amp(withPolicy), unit: 'attempts/call', target: '<= 1.2', note: `default policy; stops ${JSON.stringify(withPolicy.stops)}` },
  { name: 'retry_storm_amplification_no_budget', value: amp(noBudget), unit: 'attempts/call', note: 'no retry budget, no shedding: 3 attempts per call' },
  { name: 'retry_storm_amplification_no_shed', value: amp(noShed), unit: 'attempts/call', note: 'retry budget, no shedding' },
  { name: 'retry_storm_recovery_ms', value: withPolicy.recoveryMs, unit: 'ms', target: '<= 2000', note: 'hosts back → every call succeeds' },
  { name: 'retry_storm_recovery_ms_no_budget', value: noBudget.recoveryMs, unit: 'ms' },
];
record('calls', metrics);
