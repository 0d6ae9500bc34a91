/**
 * `npm run bench -- calls`: the call policies (docs/calls.md) on three
 * scenarios, in virtual time, with the real parts: `agent.call`'s engine
 * (src/agent/call.ts), each agent's budget (actors/agent-budget.ts) and the
 * route actor computing the route's policy from every caller's marked
 * reports (actors/route.ts, actors/call-policy.ts). Reports leave each agent
 * every 20 ms and reach the route actor 2 ms later; the actor's states reach
 * the agents 2 ms after a flush (ticked every 100 ms). Each scenario runs with
 * the default policy and without (the figures side by side):
 *
 * - retry-storm: 3 agents, 200 logical calls a second each, at most 3
 *   attempts, on 10 hosts that all fail every call (fast, 2 ms) from 10 s to
 *   40 s. `retry_storm_amplification`: attempts per logical call started
 *   during the outage (target ≤ 1.2; 3.0 without any budget);
 *   `retry_storm_recovery_ms`: from the hosts' recovery to the first 100 ms
 *   from which every call succeeds (target ≤ 2000).
 * - one-bad-host: 1 of 10 hosts fails 30 % of its calls fast; 3 agents, 200
 *   calls a second each, 30 s. `retry_logical_success_pct` (target ≥ 99.99;
 *   without retries beside it).
 * - tail-at-scale (after Dean and Barroso): each request fans out to 100
 *   hosts and waits for every answer; a leaf answers in p50/p95/p99 ≈
 *   1/5/10 ms, and 1 call in 2,000 stalls 200–2000 ms. 2 agents, 10 requests
 *   a second each, 30 s; requests are idempotent (hedged). `tail_p999_ratio_hedged`:
 *   p99.9 of the requests with the policy ÷ without (target ≤ 0.10);
 *   `hedge_extra_calls_pct` (target ≤ 5).
 * - overload: 10 hosts of 2 workers, 20 ms a call (1,000 calls a second); a
 *   host refuses a call as overloaded (retcode -4, at once) when it would
 *   wait more than one call's time. 4 agents offer half the capacity, twice
 *   it from 10 s to 30 s, half again to 40 s. `overload_goodput_pct`
 *   (successful calls started under the load ÷ capacity, target ≥ 90),
 *   `overload_p99_ratio` (p99 of admitted calls under the load ÷ unloaded,
 *   target ≤ 2), `overload_recovery_ms` (target ≤ 5000) and
 *   `overload_attempts_per_call`.
 */
import { RouteActor } from '../actors/route.ts';
import { AgentCallBudget, policyOf, type AgentPolicy } from '../actors/agent-budget.ts';
import type { PickedHost } from '../actors/agent-route.ts';
import type { AttemptTuple, RegistryEntry, ReportBatch, ReportTuple, RouteState } from '../schemas/messages.ts';
import { EventQueue } from '../src/sim/heap.ts';
import { newCallCounters, runCall, type CallOptions, type CallTimers } from '../src/agent/call.ts';
import { record, type Metric } from './lib.ts';
import { percentile } from './_common.ts';
import { seededRandom } from '../actors/strategies/random.ts';

const T0 = 1_700_000_000_000;
const BATCH_MS = 20;
const DELAY_MS = 2;
const TICK_MS = 100;

interface Scenario {
  hosts: number;
  agents: number;
  /** Logical requests a second per agent, evenly spaced. */
  rate: number;
  /** Calls per request (all must succeed; the request lasts as long as the slowest). */
  fanout: number;
  endMs: number;
  /** One call to host `h` started at `t` (ms from the start): fails or not (with the retcode it answers, default a connection error), and how long it takes, ms. */
  leaf(h: number, t: number, random: () => number): { fail: boolean; ms: number; retcode?: number };
  /** Requests a second per agent at `t` (ms from the start), over `rate`. */
  rateAt?(t: number): number;
  call: CallOptions;
  params: Record<string, number>;
}

interface Run {
  requests: number;
  failedRequests: number;
  /** Attempts and requests started in [from, to) of `window`. */
  windowRequests: number;
  windowAttempts: number;
  attempts: number;
  hedges: number;
  firsts: number;
  latencies: number[];
  /** Every request: when it started (ms from the start), how long it took, whether it succeeded. */
  samples: Array<[number, number, boolean]>;
  /** Per 100 ms bucket from `window.to`: requests started, failed. */
  after: Map<number, [number, number]>;
  stops: Record<string, number>;
}

async function run(sc: Scenario, window: { from: number; to: number } = { from: 0, to: Infinity }): Promise<Run> {
  const q = new EventQueue<() => void>();
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
    params: sc.params,
    hosts: Array.from({ length: sc.hosts }, (_, i) => ({ ip: `10.0.${i >> 8}.${(i & 255) + 1}`, port: 8000, weight: 100 })),
    updated_by: 'bench',
    ts: 0,
  };
  const actor = new RouteActor({ modid: 1, cmdid: 1, nodeId: 'bench', entry, now });
  let state: RouteState = actor.flush(now)!.state;
  const picks: PickedHost[] = entry.hosts.map((h) => ({ ok: true, ip: h.ip, port: h.port }));
  const index = new Map<PickedHost, number>(picks.map((p, i) => [p, i]));
  const out: Run = { requests: 0, failedRequests: 0, windowRequests: 0, windowAttempts: 0, attempts: 0, hedges: 0, firsts: 0, latencies: [], samples: [], after: new Map(), stops: {} };
  const hostRandom = seededRandom(99);
  const agents = Array.from({ length: sc.agents }, (_, a) => {
    let policy: AgentPolicy = policyOf(state);
    const reports: ReportTuple[] = [];
    const marks: AttemptTuple[] = [];
    let rr = a * 7;
    const counters = newCallCounters();
    const deps = {
      counters,
      pick: () => picks[rr++ % sc.hosts],
      release: () => undefined,
      report: (h: PickedHost, retcode: number, lat: number, mark: { attempt: number; kind: 0 | 1 | 2 } | undefined) => {
        if (mark !== undefined) marks.push([reports.length, mark.attempt, mark.kind]);
        reports.push([index.get(h)!, retcode, lat, 0]);
      },
      policy: () => policy,
      budget: new AgentCallBudget(now),
      timers,
      random: seededRandom(a + 1),
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
    return { deps, counters, setPolicy: (p: AgentPolicy) => (policy = p) };
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
  const request = (ag: (typeof agents)[number]): void => {
    const startedAt = now - T0;
    const counted = startedAt >= window.from && startedAt < window.to;
    out.requests++;
    if (counted) out.windowRequests++;
    const leaf = (h: PickedHost): Promise<void> =>
      new Promise<void>((resolve, reject) => {
        out.attempts++;
        if (counted) out.windowAttempts++;
        const r = sc.leaf(index.get(h)!, now - T0, hostRandom);
        const err = r.retcode !== undefined ? Object.assign(new Error('refused'), { retcode: r.retcode }) : Object.assign(new Error('refused'), { code: 'ECONNREFUSED' });
        timers.set(() => (r.fail ? reject(err) : resolve()), r.ms);
      });
    const subs = Array.from({ length: sc.fanout }, () => runCall(1, 1, ag.deps, leaf, sc.call));
    void Promise.allSettled(subs).then((rs) => {
      const failed = rs.some((r) => r.status === 'rejected');
      for (const r of rs) {
        if (r.status === 'rejected') {
          const why = (r.reason as { reason?: string }).reason ?? 'other';
          out.stops[why] = (out.stops[why] ?? 0) + 1;
        }
      }
      if (failed) out.failedRequests++;
      else out.latencies.push(now - T0 - startedAt);
      out.samples.push([startedAt, now - T0 - startedAt, !failed]);
      if (startedAt >= window.to) {
        const b = Math.floor((startedAt - window.to) / 100);
        const v = out.after.get(b) ?? [0, 0];
        v[0]++;
        if (failed) v[1]++;
        out.after.set(b, v);
      }
    });
  };
  agents.forEach((ag, a) => {
    const next = (): void => {
      request(ag);
      const every = 1000 / (sc.rateAt?.(now - T0) ?? sc.rate);
      if (now - T0 + every < sc.endMs) q.push(now + every, next);
    };
    q.push(now + a * 0.3, next);
  });
  for (;;) {
    const e = q.pop();
    if (e === undefined || e.t - T0 > sc.endMs + 5000) break;
    now = e.t;
    e.ev();
    // the promise jobs of what just happened (attempts settling, calls ending)
    await new Promise((r) => setImmediate(r));
  }
  for (const ag of agents) {
    out.firsts += ag.counters.first;
    out.hedges += ag.counters.hedge;
  }
  return out;
}

/** From `window.to`: the first 100 ms bucket from which every request succeeded, ms. */
function recoveryMs(r: Run, sc: Scenario, window: { to: number }): number {
  const last = Math.floor((sc.endMs - window.to) / 100) - 1;
  let from = last + 1;
  for (let b = last; b >= 0; b--) {
    const v = r.after.get(b);
    if (v !== undefined && v[1] > 0) break;
    from = b;
  }
  return from * 100;
}

const NO_POLICY = { retry_budget_percent: 10_000, retry_min_per_sec: 1_000_000, shed_k: 0 };

// ------------------------------------------------------------------ retry-storm
const OUTAGE = { from: 10_000, to: 40_000 };
const storm = (params: Record<string, number>): Scenario => ({
  hosts: 10,
  agents: 3,
  rate: 200,
  fanout: 1,
  endMs: 50_000,
  leaf: (_h, t) => ({ fail: t >= OUTAGE.from && t < OUTAGE.to, ms: 2 }),
  call: { maxAttempts: 3, attemptTimeoutMs: 1000 },
  params,
});
const stormOn = await run(storm({}), OUTAGE);
const stormOff = await run(storm(NO_POLICY), OUTAGE);
const stormNoShed = await run(storm({ shed_k: 0 }), OUTAGE);
const amp = (r: Run): number => r.windowAttempts / Math.max(1, r.windowRequests);

// ------------------------------------------------------------------ one-bad-host
const badHost = (call: CallOptions): Scenario => ({
  hosts: 10,
  agents: 3,
  rate: 200,
  fanout: 1,
  endMs: 30_000,
  leaf: (h, _t, random) => ({ fail: h === 0 && random() < 0.3, ms: h === 0 ? 1 : 2 }),
  call,
  params: {},
});
const badOn = await run(badHost({ maxAttempts: 3 }));
const badOff = await run(badHost({ maxAttempts: 1 }));
const successPct = (r: Run): number => (100 * (r.requests - r.failedRequests)) / Math.max(1, r.requests);

// ------------------------------------------------------------------ tail-at-scale
function leafMs(u: number, v: number): number {
  if (u < 0.0005) return 200 + v * 1800;
  if (u < 0.5) return 0.5 + u;
  if (u < 0.95) return 1 + ((u - 0.5) / 0.45) * 4;
  if (u < 0.99) return 5 + ((u - 0.95) / 0.04) * 5;
  return 10 + ((u - 0.99) / 0.01) * 40;
}
const tail = (call: CallOptions, params: Record<string, number> = {}): Scenario => ({
  hosts: 100,
  agents: 2,
  rate: 10,
  fanout: 100,
  endMs: 30_000,
  leaf: (_h, _t, random) => ({ fail: false, ms: leafMs(random(), random()) }),
  call,
  params,
});
const tailOn = await run(tail({ idempotent: true, attemptTimeoutMs: 5000, maxAttempts: 2 }));
const tailOff = await run(tail({ attemptTimeoutMs: 5000, maxAttempts: 1 }));
const p999 = (r: Run): number => percentile(r.latencies, 99.9);

// ------------------------------------------------------------------ overload
// 10 hosts of 2 workers, 20 ms a call: 1,000 calls a second in all. A host
// refuses a call as overloaded (retcode -4, at once) when it would wait more
// than one call's time for a worker. Offered: half the capacity, twice the
// capacity from 10 s to 30 s, half again until 40 s.
const SERVICE_MS = 20;
const WORKERS = 2;
const LOAD = { from: 10_000, to: 30_000 };
const CAPACITY = (10 * WORKERS * 1000) / SERVICE_MS;
const overload = (params: Record<string, number>): Scenario => {
  const freeAt = Array.from({ length: 10 }, () => new Array<number>(WORKERS).fill(0));
  return {
    hosts: 10,
    agents: 4,
    rate: CAPACITY / 2 / 4,
    rateAt: (t) => (t >= LOAD.from && t < LOAD.to ? (2 * CAPACITY) / 4 : CAPACITY / 2 / 4),
    fanout: 1,
    endMs: 40_000,
    leaf: (h, t) => {
      const w = freeAt[h]!;
      let i = 0;
      for (let k = 1; k < WORKERS; k++) if (w[k]! < w[i]!) i = k;
      const start = Math.max(t, w[i]!);
      if (start - t > SERVICE_MS) return { fail: true, ms: 0.1, retcode: -4 };
      w[i] = start + SERVICE_MS;
      return { fail: false, ms: start + SERVICE_MS - t };
    },
    call: { maxAttempts: 3, attemptTimeoutMs: 1000 },
    params,
  };
};
const overOn = await run(overload({}), LOAD);
const overOff = await run(overload(NO_POLICY), LOAD);
const okIn = (r: Run, from: number, to: number): number[] => r.samples.filter(([t, , ok]) => ok && t >= from && t < to).map(([, ms]) => ms);
const goodputPct = (r: Run): number => (100 * okIn(r, LOAD.from, LOAD.to).length) / ((CAPACITY * (LOAD.to - LOAD.from)) / 1000);
const p99Ratio = (r: Run): number => percentile(okIn(r, LOAD.from, LOAD.to), 99) / percentile(okIn(r, 0, LOAD.from), 99);
const overloadRecovery = (r: Run): number => recoveryMs(r, overload({}), LOAD);

const metrics: Metric[] = [
  { name: 'retry_storm_amplification', value: amp(stormOn), unit: 'attempts/call', target: '<= 1.2', note: `default policy; stops ${JSON.stringify(stormOn.stops)}` },
  { name: 'retry_storm_amplification_no_budget', value: amp(stormOff), unit: 'attempts/call', note: 'no retry budget, no shedding: 3 attempts per call' },
  { name: 'retry_storm_amplification_no_shed', value: amp(stormNoShed), unit: 'attempts/call', note: 'retry budget, no shedding' },
  { name: 'retry_storm_recovery_ms', value: recoveryMs(stormOn, storm({}), OUTAGE), unit: 'ms', target: '<= 2000', note: 'hosts back → every call succeeds' },
  { name: 'retry_storm_recovery_ms_no_budget', value: recoveryMs(stormOff, storm(NO_POLICY), OUTAGE), unit: 'ms' },
  { name: 'retry_logical_success_pct', value: successPct(badOn), unit: '%', target: '>= 99.99', note: `one bad host (30 % fast failures), ${badOn.requests} calls; stops ${JSON.stringify(badOn.stops)}` },
  { name: 'retry_logical_success_pct_no_retries', value: successPct(badOff), unit: '%' },
  { name: 'tail_p999_ratio_hedged', value: p999(tailOn) / p999(tailOff), unit: 'ratio', target: '<= 0.1', note: `p99.9 ${p999(tailOn).toFixed(1)} ms hedged, ${p999(tailOff).toFixed(1)} ms without` },
  { name: 'tail_p999_ms_hedged', value: p999(tailOn), unit: 'ms' },
  { name: 'tail_p999_ms_no_hedge', value: p999(tailOff), unit: 'ms' },
  { name: 'overload_goodput_pct', value: goodputPct(overOn), unit: '%', target: '>= 90', note: `successful calls started under 2x load ÷ capacity; stops ${JSON.stringify(overOn.stops)}` },
  { name: 'overload_goodput_pct_no_policy', value: goodputPct(overOff), unit: '%' },
  { name: 'overload_p99_ratio', value: p99Ratio(overOn), unit: 'ratio', target: '<= 2', note: 'p99 of admitted calls under 2x load ÷ unloaded p99' },
  { name: 'overload_p99_ratio_no_policy', value: p99Ratio(overOff), unit: 'ratio' },
  { name: 'overload_attempts_per_call', value: amp(overOn), unit: 'attempts/call', note: 'under 2x load: the budget keeps refused calls from being retried into the full hosts' },
  { name: 'overload_attempts_per_call_no_policy', value: amp(overOff), unit: 'attempts/call' },
  { name: 'overload_recovery_ms', value: overloadRecovery(overOn), unit: 'ms', target: '<= 5000', note: 'load back to half → every call succeeds' },
  { name: 'overload_recovery_ms_no_policy', value: overloadRecovery(overOff), unit: 'ms' },
  { name: 'hedge_extra_calls_pct', value: (100 * tailOn.hedges) / Math.max(1, tailOn.firsts), unit: '%', target: '<= 5', note: `${tailOn.hedges} hedges for ${tailOn.firsts} first attempts` },
];
record('calls', metrics);
