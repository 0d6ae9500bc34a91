/**
 * The balancing simulator: a discrete-event run in virtual time of the real
 * route actor (actors/route.ts) and the real pick strategies
 * (actors/strategies/), with simulated agents, hosts and callers around them.
 *
 * - Callers make calls (open loop: a rate; closed loop: K callers each with
 *   one call in flight). Each call goes through one agent: the agent's
 *   strategy picks a host (NO_HOST fails the call at once), the call waits in
 *   the host's queue and is served; the caller gets the answer, or gives up at
 *   its timeout and counts the call failed with latency = timeout. The agent
 *   reports the result (a timeout as an error with latency = timeout) with the
 *   SDK's local feedback (./feedback.ts) and batches it, with the
 *   utilization the host answered with when it reports one.
 * - A batch leaves after `batch_max_delay_ms` or at `batch_max_reports` and
 *   reaches the route actor `report_delay_ms` later; the actor ingests it and
 *   flushes, and ticks every `tick_ms`. Every published route state reaches
 *   each agent `propagation_ms` later, which applies it to its hosts and
 *   strategy as the SDK does (actors/agent-route.ts).
 *
 * No timers and no clock: time is the event queue's. Randomness comes from
 * seeded streams (arrivals, each host, each agent), so a seed fixes the run.
 */
import { RouteActor } from '../../actors/route.ts';
import { createStrategy, type StrategyName } from '../../actors/strategies/index.ts';
import { AttemptKind, type RegistryEntry, type ReportBatch, type RouteState } from '../../schemas/messages.ts';
import { policyOf } from '../../actors/agent-budget.ts';
import { EventQueue } from './heap.ts';
import { expandHosts } from './hosts.ts';
import { DEFAULT_MAX_TRIALS, FEEDBACK_DEFAULTS, notePick, noteRelease, noteReport, pickBounded, type FeedbackOptions } from './feedback.ts';
import { SimCallers, type LogicalCall, type SimCall } from './calls.ts';
import { SimAgent } from './agent.ts';
import { bucketPercentiles, FINE_MS, hostFigures, pct, type CallResult, type SimResult, type StateChange } from './result.ts';

export type { CallResult, HostResult, SimResult, StateChange } from './result.ts';
import { exponential, streamRandom, type Random } from './random.ts';
import { rateAt, SCENARIO_DEFAULTS, SYSTEM_DEFAULTS, type Scenario } from './scenario.ts';

export const DEFAULT_SIM_SEED = 1;
const BUCKET_MS = 1000;
/** A closed-loop caller whose pick found no host tries again this much later, ms (it would spin otherwise). */
export const NO_HOST_RETRY_MS = 1;
const MODID = 1;
const CMDID = 1;


export interface SimOptions {
  strategy: StrategyName;
  seed?: number;
  /** With the scenario's `call`: false runs its callers without the call policy (no budget, no hedges, no shedding). Default true. */
  callPolicy?: boolean;
}


type Call = SimCall;

type Event =
  | { k: 'arrival' }
  | { k: 'caller'; caller: number }
  | { k: 'hostDone'; call: Call }
  | { k: 'timeout'; call: Call }
  | { k: 'batchAge'; agent: number; gen: number }
  | { k: 'ingest'; batch: ReportBatch }
  | { k: 'tick' }
  | { k: 'route'; agent: number; state: RouteState }
  | { k: 'capacity'; host: number }
  | { k: 'hedge'; lc: LogicalCall }
  | { k: 'refused'; call: Call };

/** Runs `scenario` with one strategy. Same scenario, strategy and seed: the same result. */
export function simulate(scenario: Scenario, opts: SimOptions): SimResult {
  const seed = opts.seed ?? scenario.seed ?? DEFAULT_SIM_SEED;
  const sys = { ...SYSTEM_DEFAULTS, ...scenario.system };
  const timeoutMs = scenario.timeout_ms ?? SCENARIO_DEFAULTS.timeout_ms;
  const nAgents = scenario.agents ?? SCENARIO_DEFAULTS.agents;
  const durationMs = scenario.duration_s === undefined ? Infinity : scenario.duration_s * 1000;
  const maxCalls = scenario.calls ?? Infinity;

  const q = new EventQueue<Event>();
  const arrivalRandom = streamRandom(seed, 0);
  const agentChoice = streamRandom(seed, 1);
  const hosts = expandHosts<Call>(scenario.hosts, (i) => streamRandom(seed, 100 + i));
  const keyIndex = new Map<string, number>();
  hosts.forEach((h) => keyIndex.set(h.key, h.index));
  const batchHosts: Array<[string, number]> = hosts.map((h) => [h.ip, h.port]);

  const entry: RegistryEntry = {
    v: 1,
    modid: MODID,
    cmdid: CMDID,
    hosts: hosts.map((h) => ({ ip: h.ip, port: h.port, weight: h.weight })),
    profile: scenario.route?.profile ?? 'default',
    params: { ...scenario.route?.params },
    updated_by: 'sim',
    ts: 0,
  };
  const actor = new RouteActor({ modid: MODID, cmdid: CMDID, nodeId: 'sim-node', entry, now: 0 });
  // The agents' clock is the event queue's.
  let clock = 0;
  const now = (): number => clock;
  const feedback: FeedbackOptions = { ...FEEDBACK_DEFAULTS, timeoutMs };
  const agents: SimAgent[] = [];
  for (let a = 0; a < nAgents; a++) {
    const random: Random = streamRandom(seed, 10_000 + a);
    agents.push(new SimAgent(`sim-agent-${a}`, opts.strategy, (name) => createStrategy(name, { random, now, decayMs: feedback.decayMs, timeoutMs }), hosts.length));
  }

  // ---------------------------------------------------------------- measurements
  const latencies: number[] = [];
  const bucketLat: number[][] = [];
  const bucketPicks: number[][] = [];
  const bucketFailed: number[] = [];
  const picks = new Array<number>(hosts.length).fill(0);
  const changesPerHost = new Array<number>(hosts.length).fill(0);
  const stateChanges: StateChange[] = [];
  let ok = 0;
  let timeouts = 0;
  let errors = 0;
  let noHost = 0;
  let events = 0;
  let versions = 0;

  const bucket = (t: number): number => {
    const b = Math.floor(t / BUCKET_MS);
    while (bucketPicks.length <= b) {
      bucketPicks.push(new Array<number>(hosts.length).fill(0));
      bucketLat.push([]);
      bucketFailed.push(0);
    }
    return b;
  };

  // ---------------------------------------------------------------- route node
  // The call policy the route published last, and its extremes.
  let published = policyOf(undefined);
  let maxShed = 0;
  let minRetryBudget = Infinity;
  const publish = (now: number): void => {
    const ch = actor.flush(now);
    if (!ch) return;
    versions++;
    for (const e of ch.events) {
      if (e.from === 'none') continue;
      const hi = keyIndex.get(`${e.ip}:${e.port}`);
      if (hi !== undefined) changesPerHost[hi]!++;
      stateChanges.push({ t: now, host: hi === undefined ? `${e.ip}:${e.port}` : hosts[hi]!.label, from: e.from, to: e.to, reason: e.reason });
    }
    for (let a = 0; a < agents.length; a++) q.push(now + sys.propagation_ms, { k: 'route', agent: a, state: ch.state });
    published = policyOf(ch.state);
    if (published.shed > maxShed) maxShed = published.shed;
    if (published.retryBudget < minRetryBudget) minRetryBudget = published.retryBudget;
  };

  // Agents start with the route loaded (as after Agent.prepare).
  const first = actor.flush(0);
  if (first) {
    versions++;
    for (const a of agents) a.apply(first.state);
  }

  // ---------------------------------------------------------------- agents
  const sendBatch = (a: number, now: number): void => {
    const ag = agents[a]!;
    if (ag.reports.length === 0) return;
    const batch: ReportBatch = { v: 1, sender: ag.id, modid: MODID, cmdid: CMDID, ts: ag.batchTs, hosts: batchHosts, reports: ag.reports };
    const util = ag.takeUtilization();
    if (util !== undefined) batch.utilization = util;
    if (ag.marks.length > 0) {
      batch.attempts = ag.marks;
      ag.marks = [];
    }
    ag.reports = [];
    ag.gen++;
    q.push(now + sys.report_delay_ms, { k: 'ingest', batch });
  };

  const report = (call: Call, retcode: number, latencyMs: number, now: number, utilization?: number): void => {
    const ag = agents[call.agent]!;
    if (utilization !== undefined) {
      if (ag.util[call.host] !== ag.util[call.host]) ag.utilHosts++;
      ag.util[call.host] = utilization;
    }
    const lat = noteReport(ag.route.hosts[call.host]!, retcode === 0, latencyMs, now, feedback);
    if (ag.reports.length === 0) {
      ag.batchTs = now;
      q.push(now + sys.batch_max_delay_ms, { k: 'batchAge', agent: call.agent, gen: ag.gen });
    }
    if (call.kind !== undefined && call.kind !== AttemptKind.first) ag.marks.push([ag.reports.length, call.n!, call.kind]);
    ag.reports.push([call.host, retcode, lat, Math.floor(now - ag.batchTs)]);
    if (ag.reports.length >= sys.batch_max_reports) sendBatch(call.agent, now);
  };

  // ---------------------------------------------------------------- callers
  let issued = 0;
  let outstanding = 0;
  let loadActive = true;
  let loadEndMs = 0;
  let lastAnswer = 0;

  const stopLoad = (now: number): void => {
    if (!loadActive) return;
    loadActive = false;
    loadEndMs = now;
    for (const h of hosts) h.account(now);
  };

  const finishCall = (call: Call, now: number, success: boolean, latencyMs: number): void => {
    call.done = true;
    outstanding--;
    lastAnswer = now;
    latencies.push(latencyMs);
    const b = bucket(call.start);
    bucketLat[b]!.push(latencyMs);
    if (success) ok++;
    else bucketFailed[b]!++;
    if (call.caller >= 0) nextCall(call.caller, now + (scenario.load.kind === 'closed' ? (scenario.load.think_ms ?? 0) : 0));
  };

  const nextCall = (caller: number, t: number): void => {
    if (loadActive) q.push(t, { k: 'caller', caller });
  };

  /** One call starts at `now` on agent `a`; returns false when it failed at once (no host). */
  const startCall = (a: number, caller: number, now: number): boolean => {
    issued++;
    if (issued >= maxCalls) stopLoad(now);
    const ag = agents[a]!;
    const r = ag.route;
    const i = pickBounded(r.strategy, r.hosts, undefined, now, DEFAULT_MAX_TRIALS, timeoutMs);
    const b = bucket(now);
    if (i < 0) {
      noHost++;
      latencies.push(0);
      bucketLat[b]!.push(0);
      bucketFailed[b]!++;
      return false;
    }
    notePick(r.hosts[i]!, now, feedback);
    picks[i]!++;
    bucketPicks[b]![i]!++;
    const call: Call = { agent: a, host: i, start: now, done: false, caller, hostDone: 0, ok: true, timeoutMs };
    outstanding++;
    q.push(now + timeoutMs, { k: 'timeout', call });
    const end = hosts[i]!.arrive(call, now);
    if (end !== undefined) q.push(end, { k: 'hostDone', call });
    return true;
  };

  // ---------------------------------------------------------------- calls under the call policy
  const think = scenario.load.kind === 'closed' ? (scenario.load.think_ms ?? 0) : 0;
  /** Host time spent on attempts whose caller had stopped waiting for them (hedges that lost, attempts past their timeout). */
  let wastedWorkMs = 0;
  const reqLatencies: number[] = [];
  let failedRequests = 0;
  const logicalPerBucket: number[] = [];
  const attemptsPerBucket: number[] = [];
  const failedPer100ms: number[] = [];
  const logicalPer100ms: number[] = [];
  const inc = (arr: number[], i: number): void => {
    while (arr.length <= i) arr.push(0);
    arr[i]!++;
  };
  const callers =
    scenario.call === undefined
      ? undefined
      : new SimCallers(
          scenario.call,
          {
            timeoutMs,
            pick: (a, now) => {
              const r = agents[a]!.route;
              return pickBounded(r.strategy, r.hosts, undefined, now, DEFAULT_MAX_TRIALS, timeoutMs);
            },
            launch: (call, now) => {
              notePick(agents[call.agent]!.route.hosts[call.host]!, now, feedback);
              picks[call.host]!++;
              bucketPicks[bucket(now)]![call.host]!++;
              inc(attemptsPerBucket, Math.floor(call.lc!.start / BUCKET_MS));
              q.push(now + call.timeoutMs, { k: 'timeout', call });
              if (hosts[call.host]!.refuses(now)) {
                hosts[call.host]!.refuse();
                q.push(now, { k: 'refused', call });
                return;
              }
              const end = hosts[call.host]!.arrive(call, now);
              if (end !== undefined) q.push(end, { k: 'hostDone', call });
            },
            release: (call, now) => noteRelease(agents[call.agent]!.route.hosts[call.host]!, now),
            abort: (call, now) => {
              const h = hosts[call.host]!;
              if (!h.stopsOnCancel) return;
              const r = h.cancel(call, now);
              wastedWorkMs += r.workMs;
              for (const next of r.started) q.push(next.hostDone, { k: 'hostDone', call: next });
            },
            report: (call, retcode, lat, now, util) => report(call, retcode, lat, now, util),
            hedgeAt: (t, lc) => q.push(t, { k: 'hedge', lc }),
            policy: (a) => agents[a]!.policy,
            random: (a) => shedRandom[a]!(),
            logicalDone: (lc, success, lat, now) => {
              lastAnswer = now;
              latencies.push(lat);
              const b = bucket(lc.start);
              bucketLat[b]!.push(lat);
              inc(logicalPerBucket, b);
              inc(logicalPer100ms, Math.floor(lc.start / FINE_MS));
              if (success) ok++;
              else {
                bucketFailed[b]!++;
                inc(failedPer100ms, Math.floor(lc.start / FINE_MS));
              }
            },
            requestDone: (req, now) => {
              outstanding--;
              reqLatencies.push(now - req.start);
              if (!req.ok) failedRequests++;
              if (req.caller >= 0) nextCall(req.caller, now + think + (now === req.start ? NO_HOST_RETRY_MS : 0));
            },
          },
          nAgents,
          opts.callPolicy !== false,
        );
  const shedRandom = agents.map((_, a) => streamRandom(seed, 20_000 + a));
  const startRequest = (a: number, caller: number, now: number): void => {
    issued++;
    if (issued >= maxCalls) stopLoad(now);
    outstanding++;
    callers!.request(a, caller, now);
  };

  // ---------------------------------------------------------------- start
  const load = scenario.load;
  if (load.kind === 'open') {
    q.push(0, { k: 'arrival' });
  } else {
    for (let c = 0; c < load.callers; c++) q.push(0, { k: 'caller', caller: c });
  }
  q.push(sys.tick_ms, { k: 'tick' });
  // Capacity changes within the load (a closed-loop run without a duration: within one day).
  const horizon = Number.isFinite(durationMs) ? durationMs : 86_400_000;
  for (const h of hosts) for (const t of h.capacityTimes(horizon)) q.push(t, { k: 'capacity', host: h.index });

  for (;;) {
    const item = q.pop();
    if (item === undefined) break;
    const now = item.t;
    clock = now;
    if (loadActive && now >= durationMs) stopLoad(durationMs);
    if (!loadActive && outstanding === 0) break;
    events++;
    const ev = item.ev;
    switch (ev.k) {
      case 'arrival': {
        if (!loadActive) break;
        if (callers !== undefined) startRequest(Math.floor(agentChoice() * nAgents), -1, now);
        else startCall(Math.floor(agentChoice() * nAgents), -1, now);
        if (!loadActive) break;
        // the rate in force when the gap is drawn (a surge starts or ends with the first arrival after it)
        const rate = rateAt(load as Extract<typeof load, { kind: 'open' }>, now);
        const gap = load.kind === 'open' && load.arrivals === 'fixed' ? 1000 / rate : exponential(arrivalRandom, 1000 / rate);
        q.push(now + gap, { k: 'arrival' });
        break;
      }
      case 'caller': {
        if (!loadActive) break;
        if (callers !== undefined) startRequest(ev.caller % nAgents, ev.caller, now);
        else if (!startCall(ev.caller % nAgents, ev.caller, now)) {
          lastAnswer = now;
          nextCall(ev.caller, now + NO_HOST_RETRY_MS);
        }
        break;
      }
      case 'hostDone': {
        const call = ev.call;
        // the host stopped working on it when its caller aborted it
        if (call.cancelled === true) break;
        for (const next of hosts[call.host]!.finish(now)) q.push(next.hostDone, { k: 'hostDone', call: next });
        if (call.done) {
          if (call.lc !== undefined) wastedWorkMs += now - call.hostStart!;
          break;
        }
        if (call.lc !== undefined) {
          if (!call.ok) errors++;
          callers!.answered(call, now, hosts[call.host]!.utilization());
          break;
        }
        const lat = now - call.start;
        report(call, call.ok ? 0 : 1, lat, now, hosts[call.host]!.utilization());
        if (!call.ok) errors++;
        finishCall(call, now, call.ok, lat);
        break;
      }
      case 'timeout': {
        const call = ev.call;
        if (call.done) break;
        timeouts++;
        if (call.lc !== undefined) {
          callers!.timedOut(call, now);
          break;
        }
        report(call, 1, timeoutMs, now);
        finishCall(call, now, false, timeoutMs);
        break;
      }
      case 'batchAge': {
        if (agents[ev.agent]!.gen === ev.gen) sendBatch(ev.agent, now);
        break;
      }
      case 'ingest': {
        actor.ingest(ev.batch, now);
        if (actor.isDirty) publish(now);
        break;
      }
      case 'tick': {
        actor.tick(now);
        if (actor.isDirty) publish(now);
        q.push(now + sys.tick_ms, { k: 'tick' });
        break;
      }
      case 'route': {
        agents[ev.agent]!.apply(ev.state);
        break;
      }
      case 'refused': {
        if (ev.call.done) break;
        errors++;
        callers!.answered(ev.call, now, undefined, true);
        break;
      }
      case 'hedge': {
        callers!.hedge(ev.lc, now);
        break;
      }
      case 'capacity': {
        for (const next of hosts[ev.host]!.wake(now)) q.push(next.hostDone, { k: 'hostDone', call: next });
        break;
      }
    }
  }
  if (loadActive) stopLoad(lastAnswer);

  // ---------------------------------------------------------------- results
  const calls = latencies.length;
  const sorted = Float64Array.from(latencies).sort();
  let sum = 0;
  for (const x of latencies) sum += x;
  const hostResults = hostFigures(hosts, picks, changesPerHost, Math.max(loadEndMs, 1e-9));
  const { p50, p99 } = bucketPercentiles(bucketLat);
  const failed = calls - ok;
  let callStats: CallResult | undefined;
  if (callers !== undefined) {
    const c = callers.counts;
    noHost = c.stops.no_host;
    const rs = Float64Array.from(reqLatencies).sort();
    callStats = {
      ...c,
      stops: { ...c.stops },
      policy: opts.callPolicy !== false,
      requestLatency: { p50: pct(rs, 50), p99: pct(rs, 99), p999: pct(rs, 99.9), max: rs.length > 0 ? rs[rs.length - 1]! : Number.NaN },
      failedRequests,
      route: { last: published, maxShed, minRetryBudget },
      logicalPerBucket,
      attemptsPerBucket,
      logicalPer100ms,
      failedPer100ms,
      hostWorkMs: hosts.reduce((n, h) => n + h.busyArea, 0),
      wastedWorkMs,
    };
  }
  return {
    scenario: scenario.name,
    strategy: opts.strategy,
    seed,
    calls,
    ok,
    failed,
    timeouts,
    errors,
    noHost,
    successPct: calls > 0 ? (ok * 100) / calls : 0,
    latency: { mean: calls > 0 ? sum / calls : Number.NaN, p50: pct(sorted, 50), p99: pct(sorted, 99), p999: pct(sorted, 99.9), max: calls > 0 ? sorted[calls - 1]! : Number.NaN },
    hosts: hostResults,
    timeline: { bucketMs: BUCKET_MS, picks: bucketPicks, p50, p99, failed: bucketFailed },
    stateChanges,
    loadEndMs,
    endMs: lastAnswer,
    events,
    versions,
    ...(callStats === undefined ? {} : { callStats }),
  };
}
