/**
 * Conformance vectors of picking (schemas/conformance/picks.json): route
 * states applied to the agent's route model (actors/agent-route.ts) with a
 * seeded random source and a scripted clock, then picks and reports as the
 * agent makes them (actors/strategies/feedback.ts: the trial bound, the
 * in-flight count, the latency estimate), each pick's answer recorded. An
 * SDK in another language that runs the same script with the same seeded
 * source (mulberry32, actors/strategies/random.ts) must give the same
 * answers: every strategy here is deterministic once its randomness is.
 */
import { AgentRoute, type MakeStrategy } from '../../actors/agent-route.ts';
import { boundTrials, createStrategy, notePick, noteReport, seededRandom, weighsLoad, type FeedbackOptions, type StrategyName } from '../../actors/strategies/index.ts';
import { createZoneAware } from '../../actors/strategies/zone.ts';
import { LIMITS, type RouteHost, type RouteState } from '../../schemas/messages.ts';

/** One step of a pick script. */
export type PickStep =
  | { op: 'route'; state: RouteState }
  | { op: 'pick'; now: number; key?: string; want: string | null }
  | { op: 'report'; now: number; host: string; retcode: number; latency_ms: number; want_latency_ms: number; want_inflight: number };

/** A pick script: the agent's settings, and its steps with their expected answers. */
export interface PickVector {
  name: string;
  agent_id: string;
  /** The agent's strategy override; null: the route's, else the default (p2c_ewma). */
  strategy: StrategyName | null;
  /** mulberry32 seed of the agent's random source. */
  seed: number;
  /** The agent's zone for zone-aware picking; null: none. */
  zone: string | null;
  zone_min_healthy_percent: number;
  timeout_ms: number;
  decay_ms: number;
  probe_trials: number;
  steps: PickStep[];
}

/** What a script asks for, before its answers are filled in. */
type Script = Omit<PickVector, 'steps'> & { steps: Array<{ op: 'route'; state: RouteState } | { op: 'pick'; now: number; key?: string } | { op: 'report'; now: number; host: string; retcode: number; latency_ms: number }> };

/** Runs a script on the real route model and strategies; returns it with every answer. */
export function runPickScript(s: Script): PickVector {
  let clock = 0;
  const now = (): number => clock;
  const random = seededRandom(s.seed);
  const feedback: FeedbackOptions = { timeoutMs: s.timeout_ms, decayMs: s.decay_ms };
  const opts = { random, now, decayMs: s.decay_ms, timeoutMs: s.timeout_ms };
  const make: MakeStrategy = (name) =>
    s.zone === null ? createStrategy(name, opts) : createZoneAware(() => createStrategy(name, opts), { zone: s.zone, minHealthyPercent: s.zone_min_healthy_percent, random });
  const route = new AgentRoute(s.agent_id, s.strategy ?? undefined, make);
  const steps: PickStep[] = [];
  for (const st of s.steps) {
    if (st.op === 'route') {
      route.apply(st.state);
      steps.push(st);
    } else if (st.op === 'pick') {
      clock = st.now;
      const first = route.strategy.pick(st.key);
      let want: string | null = null;
      if (first >= 0) {
        const i = boundTrials(route.strategy, route.hosts, st.key, first, now, s.probe_trials, s.timeout_ms);
        if (i >= 0) {
          const h = route.hosts[i]!;
          notePick(h, now, feedback, weighsLoad(route.strategy.name));
          want = `${h.ip}:${h.port}`;
        }
      }
      steps.push({ ...st, want });
    } else {
      clock = st.now;
      const h = route.byKey.get(st.host);
      if (h === undefined) throw new Error(`script ${s.name}: report for unknown host ${st.host}`);
      const lat = st.latency_ms > LIMITS.maxLatencyMs ? LIMITS.maxLatencyMs : st.latency_ms;
      noteReport(h, st.retcode === 0, lat, st.now, feedback);
      steps.push({ ...st, want_latency_ms: h.latencyMs, want_inflight: h.inflight });
    }
  }
  return { ...s, steps };
}

// ------------------------------------------------------------------ scripts

export function host(i: number, over: Partial<RouteHost> = {}): RouteHost {
  return { ip: `10.0.0.${i}`, port: 8000, weight: 100, zone: null, state: 'healthy', reason: 'registered', since: 0, pick_weight: 100, ...over };
}

export function state(version: number, hosts: RouteHost[], over: Partial<RouteState> = {}): RouteState {
  return { v: 1, sender: 'node-1', modid: 1, cmdid: 1, version, ts: 1_764_115_200_000 + version, profile: 'default', panic: false, removed: false, probe_num: 10, hosts, ...over };
}

const BASE = { agent_id: 'agent-a', seed: 42, zone: null, zone_min_healthy_percent: 70, timeout_ms: 1000, decay_ms: 10_000, probe_trials: 1 } as const;

function picks(n: number, from = 0, every = 1, key?: (k: number) => string): Script['steps'] {
  const out: Script['steps'] = [];
  for (let k = 0; k < n; k++) out.push(key ? { op: 'pick', now: from + k * every, key: key(k) } : { op: 'pick', now: from + k * every });
  return out;
}

/** Calls made and answered one at a time: a pick, then a report for the host picked (`?`, filled in by `runCalls`). */
function calls(n: number): Script['steps'] {
  const out: Script['steps'] = [];
  for (let k = 0; k < n; k++) out.push({ op: 'pick', now: k * 10 }, { op: 'report', now: k * 10 + 5, host: '?', retcode: 0, latency_ms: 0 });
  return out;
}

/**
 * Resolves `?` report hosts of `calls` to the host the preceding pick
 * returned, running the script step by step (the report's host is the pick's
 * answer, as a caller reports the host it called).
 */
function runCalls(s: Script, latency: (host: string) => number, fails: (host: string) => boolean): PickVector {
  const resolved: Script['steps'] = [];
  let lastPick: string | null = null;
  for (const st of s.steps) {
    if (st.op === 'report' && st.host === '?') {
      if (lastPick === null) continue;
      resolved.push({ ...st, host: lastPick, latency_ms: latency(lastPick), retcode: fails(lastPick) ? 1 : 0 });
      continue;
    }
    resolved.push(st);
    if (st.op === 'pick') {
      const v = runPickScript({ ...s, steps: resolved });
      const last = v.steps[v.steps.length - 1]!;
      lastPick = last.op === 'pick' ? last.want : null;
    }
  }
  return runPickScript({ ...s, steps: resolved });
}

const ten = Array.from({ length: 10 }, (_, i) => host(i + 1));
const weighted = [host(1, { weight: 500, pick_weight: 500 }), host(2), host(3)];

/** Every pick script of the vectors. */
export function pickVectors(): PickVector[] {
  const out: PickVector[] = [];
  // swrr, canonical start (a seed only moves the start point)
  out.push(runPickScript({ ...BASE, name: 'swrr weights 5,1,1', strategy: 'swrr', steps: [{ op: 'route', state: state(1, weighted) }, ...picks(21)] }));
  out.push(runPickScript({ ...BASE, name: 'swrr ten equal hosts', strategy: 'swrr', steps: [{ op: 'route', state: state(1, ten) }, ...picks(25)] }));
  out.push(
    runPickScript({
      ...BASE,
      name: 'swrr probing host with a fractional weight, then healthy again',
      strategy: 'swrr',
      steps: [
        { op: 'route', state: state(1, [host(1), host(2), host(3, { state: 'probing', reason: 'timeout', pick_weight: 12.5 })]) },
        ...picks(30, 0),
        { op: 'route', state: state(2, [host(1), host(2), host(3)]) },
        ...picks(12, 100),
      ],
    }),
  );
  out.push(
    runPickScript({
      ...BASE,
      name: 'swrr weights that are not decimals run live',
      strategy: 'swrr',
      steps: [{ op: 'route', state: state(1, [host(1, { pick_weight: 100 / 3 }), host(2, { pick_weight: 50.123456 }), host(3, { pick_weight: 7.77777 })]) }, ...picks(40)],
    }),
  );
  out.push(
    runPickScript({
      ...BASE,
      name: 'swrr overloaded and draining hosts are not picked; none left: no host',
      strategy: 'swrr',
      steps: [
        { op: 'route', state: state(1, [host(1), host(2, { state: 'overloaded', reason: 'consecutive_errors', pick_weight: 0 }), host(3, { state: 'draining', reason: 'removed', pick_weight: 0 })]) },
        ...picks(4),
        { op: 'route', state: state(2, [host(1, { state: 'overloaded', reason: 'error_rate', pick_weight: 0 }), host(2, { state: 'overloaded', reason: 'consecutive_errors', pick_weight: 0 })]) },
        ...picks(2, 10),
      ],
    }),
  );
  out.push(
    runPickScript({
      ...BASE,
      name: 'route strategy named by the state, host set changed',
      strategy: null,
      steps: [{ op: 'route', state: state(1, weighted, { strategy: 'swrr' }) }, ...picks(7), { op: 'route', state: state(2, [host(4), ...weighted], { strategy: 'swrr' }) }, ...picks(8, 10)],
    }),
  );
  // trial calls: one in flight per probing host, and only for the trial agent
  out.push(
    runPickScript({
      ...BASE,
      name: 'swrr probing host: one trial in flight, released by its report',
      strategy: 'swrr',
      steps: [
        { op: 'route', state: state(1, [host(1, { pick_weight: 1 }), host(2, { state: 'probing', reason: 'timeout', pick_weight: 1 })]) },
        ...picks(6, 0),
        { op: 'report', now: 10, host: '10.0.0.2:8000', retcode: 0, latency_ms: 3 },
        ...picks(4, 20),
        { op: 'report', now: 2000, host: '10.0.0.1:8000', retcode: 0, latency_ms: 3 },
        ...picks(4, 2100),
      ],
    }),
  );
  out.push(
    runPickScript({
      ...BASE,
      name: "probing host whose trials are another agent's is not picked",
      strategy: 'swrr',
      steps: [
        { op: 'route', state: state(1, [host(1), host(2, { state: 'probing', reason: 'timeout', pick_weight: 50, trial_agent: 'agent-b' })]) },
        ...picks(6),
        { op: 'route', state: state(2, [host(1), host(2, { state: 'probing', reason: 'timeout', pick_weight: 50, trial_agent: 'agent-a' })]) },
        ...picks(6, 10),
      ],
    }),
  );
  // lars: round robin with one probe in probe_num + 1, none while all are overloaded, panic, an operator's ejection never probed
  const ov = (i: number, over: Partial<RouteHost> = {}): RouteHost => host(i, { state: 'overloaded', reason: 'consecutive_errors', pick_weight: 0, ...over });
  out.push(
    runPickScript({
      ...BASE,
      name: 'lars round robin with probing, all overloaded, panic, host set changed',
      strategy: 'lars',
      steps: [
        { op: 'route', state: state(1, [host(1), ov(2), host(3), ov(4, { reason: 'admin_eject' }), host(5, { state: 'draining', reason: 'removed', pick_weight: 0 })], { probe_num: 3 }) },
        ...picks(12),
        { op: 'route', state: state(2, [ov(1), ov(2), ov(3)], { probe_num: 2 }) },
        ...picks(9, 100),
        { op: 'route', state: state(3, [host(1), ov(2), host(3)], { probe_num: 2, panic: true }) },
        ...picks(5, 200),
        { op: 'route', state: state(4, [host(6), host(1), ov(2), host(3, { state: 'probing', reason: 'timeout', pick_weight: 10 })], { probe_num: 2, strategy: 'lars', profile: 'lars' }) },
        ...picks(9, 300),
      ],
    }),
  );
  // hash: keys to hosts, keyless calls by swrr
  const keys = (k: number): string => `user-${k * 7919}`;
  out.push(
    runPickScript({
      ...BASE,
      name: 'hash ring by key, a host ejected moves only its keys',
      strategy: 'hash',
      steps: [
        { op: 'route', state: state(1, [...ten.slice(0, 5), host(6, { weight: 300, pick_weight: 300 })]) },
        ...picks(40, 0, 1, keys),
        ...picks(5),
        { op: 'route', state: state(2, [...ten.slice(0, 2), host(3, { state: 'overloaded', reason: 'timeout', pick_weight: 0 }), ...ten.slice(3, 5), host(6, { weight: 300, pick_weight: 300 })]) },
        ...picks(40, 100, 1, keys),
      ],
    }),
  );
  // p2c and p2c_ewma with seeded draws and feedback
  for (const strategy of ['p2c', 'p2c_ewma'] as const) {
    const lat = (h: string): number => (h === '10.0.0.3:8000' ? 80 : h === '10.0.0.5:8000' ? 2 : 10);
    const fails = (h: string): boolean => h === '10.0.0.7:8000';
    const s: Script = { ...BASE, name: `${strategy} seeded draws, a slow and a failing host`, strategy, steps: [{ op: 'route', state: state(1, ten) }, ...calls(120)] };
    out.push(runCalls(s, lat, fails));
    out.push(
      runPickScript({
        ...BASE,
        seed: 7,
        name: `${strategy} calls in flight weigh, weighted hosts`,
        strategy,
        steps: [{ op: 'route', state: state(1, [host(1, { pick_weight: 300 }), host(2, { pick_weight: 100 }), host(3, { pick_weight: 50 }), host(4, { state: 'probing', reason: 'timeout', pick_weight: 5 })]) }, ...picks(60, 0, 3)],
      }),
    );
  }
  out.push(
    runCalls(
      { ...BASE, seed: 3, name: 'default strategy (p2c_ewma): a failed call counts as the timeout, the estimate decays', strategy: null, steps: [{ op: 'route', state: state(1, ten.slice(0, 4)) }, ...calls(80)] },
      (h) => (h === '10.0.0.2:8000' ? 30 : 4),
      (h) => h === '10.0.0.4:8000',
    ),
  );
  // zone preference with spill-over
  const z = (i: number, zone: string, over: Partial<RouteHost> = {}): RouteHost => host(i, { zone, ...over });
  for (const strategy of ['swrr', 'p2c_ewma'] as const) {
    out.push(
      runPickScript({
        ...BASE,
        zone: 'z1',
        seed: 11,
        name: `zone ${strategy}: local while healthy, spill as it weakens, all remote when none`,
        strategy,
        steps: [
          { op: 'route', state: state(1, [z(1, 'z1'), z(2, 'z1'), z(3, 'z1'), z(4, 'z2'), z(5, 'z2'), host(6)]) },
          ...picks(12, 0, 2),
          { op: 'route', state: state(2, [z(1, 'z1'), z(2, 'z1', { state: 'overloaded', reason: 'timeout', pick_weight: 0 }), z(3, 'z1', { state: 'probing', reason: 'timeout', pick_weight: 10 }), z(4, 'z2'), z(5, 'z2'), host(6)]) },
          ...picks(40, 100, 2),
          { op: 'route', state: state(3, [z(1, 'z1', { state: 'overloaded', reason: 'timeout', pick_weight: 0 }), z(2, 'z1', { state: 'draining', reason: 'removed', pick_weight: 0 }), z(4, 'z2'), z(5, 'z2'), host(6)]) },
          ...picks(10, 300, 2),
        ],
      }),
    );
  }
  out.push(
    runPickScript({
      ...BASE,
      zone: 'z2',
      seed: 5,
      name: 'zone hash: a key keeps its zone',
      strategy: 'hash',
      steps: [{ op: 'route', state: state(1, [z(1, 'z1'), z(2, 'z2', { state: 'probing', reason: 'timeout', pick_weight: 40 }), z(3, 'z2'), z(4, 'z2', { state: 'overloaded', reason: 'timeout', pick_weight: 0 })]) }, ...picks(30, 0, 1, keys)],
    }),
  );
  return out;
}
