/**
 * fast-check arbitraries mirroring the contract (schemas/contract.ts): valid
 * messages of every kind, and single mutations that break one rule each with
 * the reject kind the validators must give. Shared by the contract and
 * transcode property tests.
 */
import fc from 'fast-check';
import { HostState, LIMITS, Reason, type RejectKind } from '../../schemas/messages.ts';
import { UINT32_MAX } from '../../schemas/subjects.ts';

type Msg = Record<string, unknown>;

const ABSENT = Symbol('absent');
/** Drops the keys whose value is ABSENT (optional fields left out). */
function present(o: Record<string, unknown>): Msg {
  const out: Msg = {};
  for (const [k, v] of Object.entries(o)) if (v !== ABSENT) out[k] = v;
  return out;
}

export const uint32 = fc.oneof(
  fc.constantFrom(0, 1, UINT32_MAX),
  fc.tuple(fc.nat(0xffff), fc.nat(0xffff)).map(([hi, lo]) => hi * 0x10000 + lo),
);
export const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((p) => p.join('.'));
export const port = fc.integer({ min: 1, max: 65535 });
const weight = fc.integer({ min: LIMITS.minWeight, max: LIMITS.maxWeight });
export const timeMs = fc.oneof(
  fc.constantFrom(0, 1_795_000_000_000, 1_795_000_000_000.5, LIMITS.maxTimeMs),
  fc.integer({ min: 0, max: 0x7fffffff }).map((s) => s * 1000 + (s % 1000)),
  fc.double({ min: 0, max: LIMITS.maxTimeMs, noNaN: true, noDefaultInfinity: true }),
);
const sender = fc.string({ minLength: 1, maxLength: LIMITS.maxSenderLength });
const zone = fc.oneof(fc.constant<typeof ABSENT>(ABSENT), fc.constant(null), fc.string({ maxLength: LIMITS.maxZoneLength }));
const state = fc.constantFrom(...Object.values(HostState));
const reason = fc.oneof(fc.constantFrom(...Object.values(Reason)), fc.string({ maxLength: LIMITS.maxReasonLength }));
const version = fc.oneof(fc.constantFrom(1, LIMITS.maxVersion), fc.integer({ min: 1, max: 0x7fffffff }));
const finite = fc.double({ noNaN: true, noDefaultInfinity: true });
const key = fc.stringMatching(/^[a-z_]{1,16}$/).filter((k) => k !== '__proto__');
const int32 = fc.integer({ min: LIMITS.minRetcode, max: LIMITS.maxRetcode });
const latency = fc.oneof(fc.nat(LIMITS.maxLatencyMs), fc.double({ min: 0, max: LIMITS.maxLatencyMs, noNaN: true }));

export const reportBatch = fc
  .uniqueArray(fc.tuple(ipv4, port), { minLength: 1, maxLength: 8, selector: (h) => `${h[0]}:${h[1]}` })
  .chain((hosts) =>
    fc.record({
      v: fc.constant(1),
      sender,
      modid: uint32,
      cmdid: uint32,
      ts: timeMs,
      zone,
      hosts: fc.constant(hosts),
      reports: fc.array(fc.tuple(fc.nat(hosts.length - 1), int32, latency, fc.nat(LIMITS.maxOffsetMs)), { minLength: 1, maxLength: 30 }),
      // optional: batches of agents that know no utilization leave it out
      utilization: fc.oneof(
        fc.constant<typeof ABSENT>(ABSENT),
        fc.array(fc.tuple(fc.nat(hosts.length - 1), fc.oneof(fc.constantFrom(0, 1), fc.double({ min: 0, max: 1, noNaN: true }))), { maxLength: hosts.length }),
      ),
      // optional: batches of agents that mark no attempts leave it out (indexes fitted to the reports below)
      attempts: fc.oneof(
        fc.constant<typeof ABSENT>(ABSENT),
        fc.array(fc.tuple(fc.nat(29), fc.integer({ min: 1, max: LIMITS.maxAttempt }), fc.constantFrom(0, 1, 2)), { maxLength: 5 }),
      ),
    }),
  )
  .map((m) => {
    const a = m.attempts;
    if (a === ABSENT) return m;
    return { ...m, attempts: a.map(([i, n, k]): [number, number, number] => [i % m.reports.length, n, k]) };
  })
  .map(present);

const routeHost = fc
  .record({
    ip: ipv4,
    port,
    weight,
    zone,
    state,
    reason,
    since: timeMs,
    pick_weight: fc.double({ min: 0, max: LIMITS.maxWeight, noNaN: true }),
    // optional: states of nodes that name no trial agent leave it out
    trial_agent: fc.oneof(fc.constant<typeof ABSENT>(ABSENT), sender),
  })
  .map(present);

export const routeState = fc.record({
  v: fc.constant(1),
  sender,
  modid: uint32,
  cmdid: uint32,
  version,
  ts: timeMs,
  profile: fc.constantFrom('default', 'lars'),
  panic: fc.boolean(),
  removed: fc.boolean(),
  probe_num: fc.nat(),
  hosts: fc.array(routeHost, { maxLength: 6 }),
  // optional: the call policy, after the hosts as route nodes write it; states of nodes that compute none leave it out
  retry_budget: fc.oneof(fc.constant<typeof ABSENT>(ABSENT), fc.double({ min: 0, max: LIMITS.maxRetryBudget, noNaN: true })),
  retry_floor: fc.oneof(fc.constant<typeof ABSENT>(ABSENT), fc.double({ min: 0, max: 100, noNaN: true })),
  hedge_delay_ms: fc.oneof(fc.constant<typeof ABSENT>(ABSENT), fc.double({ min: 0, max: LIMITS.maxLatencyMs, noNaN: true })),
  hedge_budget: fc.oneof(fc.constant<typeof ABSENT>(ABSENT), fc.double({ min: 0, max: 1, noNaN: true })),
  shed: fc.oneof(fc.constant<typeof ABSENT>(ABSENT), fc.constantFrom(0, 0.5, 0.9)),
}).map(present);

export const routeEvent = fc.record({
  v: fc.constant(1),
  sender,
  modid: uint32,
  cmdid: uint32,
  ts: timeMs,
  ip: ipv4,
  port,
  from: fc.constantFrom('none', ...Object.values(HostState)),
  to: fc.constantFrom('none', ...Object.values(HostState)),
  reason,
  version,
  figures: fc.dictionary(key, finite, { maxKeys: 6 }),
});

export const registryEntry = fc
  .record({
    v: fc.constant(1),
    modid: uint32,
    cmdid: uint32,
    profile: fc.oneof(fc.constant<typeof ABSENT>(ABSENT), fc.constantFrom('default', 'lars')),
    params: fc.oneof(fc.constant<typeof ABSENT>(ABSENT), fc.dictionary(key, finite, { maxKeys: 4 })),
    hosts: fc.uniqueArray(fc.record({ ip: ipv4, port, weight, zone }).map(present), {
      maxLength: 6,
      selector: (h) => `${String(h['ip'])}:${String(h['port'])}`,
    }),
    updated_by: fc.string(),
    ts: timeMs,
  })
  .map(present);

// ---------------------------------------------------------------- mutations

/**
 * One broken rule. `at` picks an element (0 ≤ at < 1) where the mutation
 * touches an array. `codeOnly`: a rule JSON Schema cannot express, so the
 * JSON Schema files accept the message and only the validator refuses it.
 */
export interface Mutation {
  name: string;
  kind: RejectKind;
  apply(m: Msg, at: number): unknown;
  codeOnly?: boolean;
}

function set(path: Array<string | number | ((m: Msg, at: number) => number)>, value: unknown) {
  return (m: Msg, at: number): unknown => {
    const root = structuredClone(m);
    let o: Record<string | number, unknown> = root;
    for (let i = 0; i < path.length; i++) {
      const step = path[i]!;
      const k = typeof step === 'function' ? step(root, at) : step;
      if (i === path.length - 1) {
        if (value === ABSENT) delete o[k];
        else o[k] = typeof value === 'function' ? (value as (old: unknown) => unknown)(o[k]) : value;
      } else {
        o = o[k] as Record<string | number, unknown>;
      }
    }
    return root;
  };
}

const pick = (field: string) => (m: Msg, at: number) => Math.floor(at * (m[field] as unknown[]).length);
const absent = ABSENT;

/** Mutations of the header every message but the registry entry shares. */
function headerMutations(withSender: boolean): Mutation[] {
  const out: Mutation[] = [
    { name: 'not a map (array)', kind: 'wrong_type', apply: (m) => [m] },
    { name: 'not a map (null)', kind: 'wrong_type', apply: () => null },
    { name: 'v 2', kind: 'bad_version', apply: set(['v'], 2) },
    { name: "v '1'", kind: 'bad_version', apply: set(['v'], '1') },
    { name: 'v missing', kind: 'bad_version', apply: set(['v'], absent) },
    { name: 'ts negative', kind: 'out_of_range', apply: set(['ts'], -1) },
    { name: 'ts past the Date range', kind: 'out_of_range', apply: set(['ts'], LIMITS.maxTimeMs + 1024) },
    { name: 'ts NaN', kind: 'wrong_type', apply: set(['ts'], NaN) },
    { name: 'ts Infinity', kind: 'wrong_type', apply: set(['ts'], Infinity) },
    { name: 'ts string', kind: 'wrong_type', apply: set(['ts'], 'now') },
    { name: 'ts missing', kind: 'wrong_type', apply: set(['ts'], absent) },
  ];
  for (const f of ['modid', 'cmdid']) {
    out.push(
      { name: `${f} negative`, kind: 'out_of_range', apply: set([f], -1) },
      { name: `${f} 2^32`, kind: 'out_of_range', apply: set([f], 2 ** 32) },
      { name: `${f} fraction`, kind: 'wrong_type', apply: set([f], 1.5) },
      { name: `${f} NaN`, kind: 'wrong_type', apply: set([f], NaN) },
      { name: `${f} -Infinity`, kind: 'wrong_type', apply: set([f], -Infinity) },
      { name: `${f} string`, kind: 'wrong_type', apply: set([f], '1') },
      { name: `${f} nested`, kind: 'wrong_type', apply: set([f], (x: unknown) => [x]) },
      { name: `${f} missing`, kind: 'wrong_type', apply: set([f], absent) },
    );
  }
  if (withSender) {
    out.push(
      { name: 'sender number', kind: 'wrong_type', apply: set(['sender'], 5) },
      { name: 'sender empty', kind: 'out_of_range', apply: set(['sender'], '') },
      { name: 'sender too long', kind: 'out_of_range', apply: set(['sender'], 's'.repeat(LIMITS.maxSenderLength + 1)) },
      { name: 'sender nested', kind: 'wrong_type', apply: set(['sender'], (x: unknown) => [x]) },
      { name: 'sender missing', kind: 'wrong_type', apply: set(['sender'], absent) },
    );
  }
  return out;
}

const ZONE: Mutation[] = [
  { name: 'zone number', kind: 'wrong_type', apply: set(['zone'], 7) },
  { name: 'zone too long', kind: 'out_of_range', apply: set(['zone'], 'z'.repeat(LIMITS.maxZoneLength + 1)) },
  { name: 'zone nested', kind: 'wrong_type', apply: set(['zone'], ['z']) },
];

const hostAt = pick('hosts');
const reportAt = pick('reports');
const utilAt = pick('utilization');
const attemptAt = pick('attempts');

/** An attempt-mark mutation needs a mark to mutate: the batch gets one when it has none. */
function withAttempts(muts: Mutation[]): Mutation[] {
  return muts.map((mu) => ({
    ...mu,
    apply: (m: Msg, at: number) => {
      const list = m['attempts'] as unknown[] | undefined;
      return mu.apply(list !== undefined && list.length > 0 ? m : { ...m, attempts: [[0, 2, 1]] }, at);
    },
  }));
}

/** A utilization mutation needs a pair to mutate: the batch gets one when it has none. */
function withUtilization(muts: Mutation[]): Mutation[] {
  return muts.map((mu) => ({
    ...mu,
    apply: (m: Msg, at: number) => {
      const list = m['utilization'] as unknown[] | undefined;
      return mu.apply(list !== undefined && list.length > 0 ? m : { ...m, utilization: [[0, 0.5]] }, at);
    },
  }));
}

export const reportBatchMutations: Mutation[] = [
  ...headerMutations(true),
  ...ZONE,
  { name: 'hosts empty', kind: 'out_of_range', apply: set(['hosts'], []) },
  { name: 'hosts not an array', kind: 'wrong_type', apply: set(['hosts'], 'x') },
  { name: 'hosts missing', kind: 'wrong_type', apply: set(['hosts'], absent) },
  {
    name: 'hosts over the limit',
    kind: 'oversize',
    apply: set(['hosts'], (hs: unknown) => [...(hs as unknown[]), ...Array.from({ length: LIMITS.maxBatchHosts }, (_, i) => [`10.${i >> 8}.${i & 255}.9`, 9])]),
  },
  { name: 'host without port', kind: 'wrong_type', apply: set(['hosts', hostAt], (h: unknown) => [(h as unknown[])[0]]) },
  { name: 'host with a third value', kind: 'wrong_type', apply: set(['hosts', hostAt], (h: unknown) => [...(h as unknown[]), 1]) },
  { name: 'host as a map', kind: 'wrong_type', apply: set(['hosts', hostAt], (h: unknown) => ({ ip: (h as unknown[])[0], port: (h as unknown[])[1] })) },
  { name: 'host ip out of range', kind: 'out_of_range', apply: set(['hosts', hostAt, 0], '256.0.0.1') },
  { name: 'host ip with a leading zero', kind: 'out_of_range', apply: set(['hosts', hostAt, 0], '10.0.0.01') },
  { name: 'host ip number', kind: 'wrong_type', apply: set(['hosts', hostAt, 0], 167772161) },
  { name: 'host port 0', kind: 'out_of_range', apply: set(['hosts', hostAt, 1], 0) },
  { name: 'host port 65536', kind: 'out_of_range', apply: set(['hosts', hostAt, 1], 65536) },
  { name: 'host port fraction', kind: 'wrong_type', apply: set(['hosts', hostAt, 1], 80.5) },
  { name: 'host port NaN', kind: 'wrong_type', apply: set(['hosts', hostAt, 1], NaN) },
  { name: 'reports empty', kind: 'out_of_range', apply: set(['reports'], []) },
  { name: 'reports a map', kind: 'wrong_type', apply: set(['reports'], { 0: [0, 0, 1, 0] }) },
  { name: 'reports missing', kind: 'wrong_type', apply: set(['reports'], absent) },
  { name: 'reports over the limit', kind: 'oversize', apply: set(['reports'], () => Array.from({ length: LIMITS.maxBatchReports + 1 }, () => [0, 0, 1, 0])) },
  { name: 'report of 3', kind: 'wrong_type', apply: set(['reports', reportAt], (r: unknown) => (r as unknown[]).slice(0, 3)) },
  { name: 'report of 5', kind: 'wrong_type', apply: set(['reports', reportAt], (r: unknown) => [...(r as unknown[]), 0]) },
  { name: 'report as a map', kind: 'wrong_type', apply: set(['reports', reportAt], (r: unknown) => ({ ...(r as unknown[]) })) },
  { name: 'report value a string', kind: 'wrong_type', apply: set(['reports', reportAt, 1], '0') },
  { name: 'report value nested', kind: 'wrong_type', apply: set(['reports', reportAt, 2], (x: unknown) => [x]) },
  { name: 'host index past the hosts', kind: 'out_of_range', codeOnly: true, apply: (m, at) => set(['reports', reportAt, 0], (m['hosts'] as unknown[]).length)(m, at) },
  { name: 'host index negative', kind: 'out_of_range', apply: set(['reports', reportAt, 0], -1) },
  { name: 'host index fraction', kind: 'out_of_range', apply: set(['reports', reportAt, 0], 0.5) },
  { name: 'host index NaN', kind: 'out_of_range', apply: set(['reports', reportAt, 0], NaN) },
  { name: 'retcode past int32', kind: 'out_of_range', apply: set(['reports', reportAt, 1], 2 ** 31) },
  { name: 'retcode below int32', kind: 'out_of_range', apply: set(['reports', reportAt, 1], -(2 ** 31) - 1) },
  { name: 'retcode fraction', kind: 'out_of_range', apply: set(['reports', reportAt, 1], 0.5) },
  { name: 'latency negative', kind: 'out_of_range', apply: set(['reports', reportAt, 2], -0.001) },
  { name: 'latency over an hour', kind: 'out_of_range', apply: set(['reports', reportAt, 2], LIMITS.maxLatencyMs + 0.5) },
  { name: 'latency NaN', kind: 'out_of_range', apply: set(['reports', reportAt, 2], NaN) },
  { name: 'latency Infinity', kind: 'out_of_range', apply: set(['reports', reportAt, 2], Infinity) },
  { name: 'offset fraction', kind: 'out_of_range', apply: set(['reports', reportAt, 3], 1.5) },
  { name: 'offset negative', kind: 'out_of_range', apply: set(['reports', reportAt, 3], -1) },
  { name: 'offset over an hour', kind: 'out_of_range', apply: set(['reports', reportAt, 3], LIMITS.maxOffsetMs + 1) },
  { name: 'utilization not an array', kind: 'wrong_type', apply: set(['utilization'], 0.5) },
  {
    name: 'utilization over the hosts limit',
    kind: 'oversize',
    apply: set(['utilization'], () => Array.from({ length: LIMITS.maxBatchHosts + 1 }, () => [0, 0.5])),
  },
  ...withUtilization([
    { name: 'utilization pair of 1', kind: 'wrong_type', apply: set(['utilization', utilAt], (p: unknown) => (p as unknown[]).slice(0, 1)) },
    { name: 'utilization pair of 3', kind: 'wrong_type', apply: set(['utilization', utilAt], (p: unknown) => [...(p as unknown[]), 0]) },
    { name: 'utilization a string', kind: 'wrong_type', apply: set(['utilization', utilAt, 1], '0.5') },
    { name: 'utilization over 1', kind: 'out_of_range', apply: set(['utilization', utilAt, 1], 1.0001) },
    { name: 'utilization negative', kind: 'out_of_range', apply: set(['utilization', utilAt, 1], -0.1) },
    { name: 'utilization NaN', kind: 'out_of_range', apply: set(['utilization', utilAt, 1], NaN) },
    { name: 'utilization host index fraction', kind: 'out_of_range', apply: set(['utilization', utilAt, 0], 0.5) },
    { name: 'utilization host index negative', kind: 'out_of_range', apply: set(['utilization', utilAt, 0], -1) },
    {
      name: 'utilization host index past the hosts',
      kind: 'out_of_range',
      codeOnly: true,
      apply: (m, at) => set(['utilization', utilAt, 0], (m['hosts'] as unknown[]).length)(m, at),
    },
  ]),
  { name: 'attempts not an array', kind: 'wrong_type', apply: set(['attempts'], 2) },
  ...withAttempts([
    { name: 'attempt mark of 2', kind: 'wrong_type', apply: set(['attempts', attemptAt], (p: unknown) => (p as unknown[]).slice(0, 2)) },
    { name: 'attempt number 0', kind: 'out_of_range', apply: set(['attempts', attemptAt, 1], 0) },
    { name: 'attempt number over the limit', kind: 'out_of_range', apply: set(['attempts', attemptAt, 1], LIMITS.maxAttempt + 1) },
    { name: 'attempt kind 3', kind: 'out_of_range', apply: set(['attempts', attemptAt, 2], 3) },
    { name: 'attempt report index fraction', kind: 'out_of_range', apply: set(['attempts', attemptAt, 0], 0.5) },
    {
      name: 'attempt report index past the reports',
      kind: 'out_of_range',
      codeOnly: true,
      apply: (m, at) => set(['attempts', attemptAt, 0], (m['reports'] as unknown[]).length)(m, at),
    },
  ]),
];

function nonEmpty(field: string, muts: Mutation[]): Mutation[] {
  // Host mutations need a host to mutate: add one first when the list is empty.
  return muts.map((mu) => ({
    ...mu,
    apply: (m: Msg, at: number) => {
      const list = m[field] as Msg[];
      return mu.apply(list.length > 0 ? m : { ...m, [field]: [{ ip: '10.0.0.1', port: 80, weight: 1, state: 'healthy', reason: 'registered', since: 0, pick_weight: 1 }] }, at);
    },
  }));
}

const objHostAt = pick('hosts');
function objectHostMutations(): Mutation[] {
  return [
    { name: 'host not a map', kind: 'wrong_type', apply: set(['hosts', objHostAt], ['10.0.0.1', 80]) },
    { name: 'host ip bad', kind: 'out_of_range', apply: set(['hosts', objHostAt, 'ip'], '1.2.3') },
    { name: 'host ip missing', kind: 'wrong_type', apply: set(['hosts', objHostAt, 'ip'], absent) },
    { name: 'host port 0', kind: 'out_of_range', apply: set(['hosts', objHostAt, 'port'], 0) },
    { name: 'host weight 0', kind: 'out_of_range', apply: set(['hosts', objHostAt, 'weight'], 0) },
    { name: 'host weight over the limit', kind: 'out_of_range', apply: set(['hosts', objHostAt, 'weight'], LIMITS.maxWeight + 1) },
    { name: 'host weight fraction', kind: 'wrong_type', apply: set(['hosts', objHostAt, 'weight'], 1.5) },
    { name: 'host zone number', kind: 'wrong_type', apply: set(['hosts', objHostAt, 'zone'], 1) },
    { name: 'host zone too long', kind: 'out_of_range', apply: set(['hosts', objHostAt, 'zone'], 'z'.repeat(LIMITS.maxZoneLength + 1)) },
  ];
}

export const routeStateMutations: Mutation[] = [
  ...headerMutations(true),
  { name: 'version 0', kind: 'out_of_range', apply: set(['version'], 0) },
  { name: 'version past 2^53', kind: 'out_of_range', apply: set(['version'], 2 ** 53) },
  { name: 'version fraction', kind: 'wrong_type', apply: set(['version'], 1.5) },
  { name: 'profile unknown', kind: 'out_of_range', apply: set(['profile'], 'x') },
  { name: 'profile number', kind: 'wrong_type', apply: set(['profile'], 1) },
  { name: 'panic number', kind: 'wrong_type', apply: set(['panic'], 0) },
  { name: 'removed missing', kind: 'wrong_type', apply: set(['removed'], absent) },
  { name: 'probe_num negative', kind: 'out_of_range', apply: set(['probe_num'], -1) },
  { name: 'hosts over the limit', kind: 'oversize', apply: set(['hosts'], () => Array.from({ length: LIMITS.maxRouteHosts + 1 }, () => ({}))) },
  ...nonEmpty('hosts', [
    ...objectHostMutations(),
    { name: 'host state unknown', kind: 'out_of_range', apply: set(['hosts', objHostAt, 'state'], 'sick') },
    { name: 'host reason too long', kind: 'out_of_range', apply: set(['hosts', objHostAt, 'reason'], 'r'.repeat(LIMITS.maxReasonLength + 1)) },
    { name: 'host since NaN', kind: 'wrong_type', apply: set(['hosts', objHostAt, 'since'], NaN) },
    { name: 'host pick_weight negative', kind: 'out_of_range', apply: set(['hosts', objHostAt, 'pick_weight'], -1) },
    { name: 'host pick_weight missing', kind: 'wrong_type', apply: set(['hosts', objHostAt, 'pick_weight'], absent) },
    { name: 'host trial_agent empty', kind: 'out_of_range', apply: set(['hosts', objHostAt, 'trial_agent'], '') },
    { name: 'host trial_agent too long', kind: 'out_of_range', apply: set(['hosts', objHostAt, 'trial_agent'], 'a'.repeat(LIMITS.maxSenderLength + 1)) },
    { name: 'host trial_agent number', kind: 'wrong_type', apply: set(['hosts', objHostAt, 'trial_agent'], 7) },
  ]),
];

export const routeEventMutations: Mutation[] = [
  ...headerMutations(true),
  { name: 'ip bad', kind: 'out_of_range', apply: set(['ip'], '10.0.0') },
  { name: 'port 0', kind: 'out_of_range', apply: set(['port'], 0) },
  { name: 'to unknown', kind: 'out_of_range', apply: set(['to'], 'gone') },
  { name: 'from missing', kind: 'wrong_type', apply: set(['from'], absent) },
  { name: 'reason number', kind: 'wrong_type', apply: set(['reason'], 1) },
  { name: 'version 0', kind: 'out_of_range', apply: set(['version'], 0) },
  { name: 'version negative', kind: 'out_of_range', apply: set(['version'], -1) },
  { name: 'version fraction', kind: 'wrong_type', apply: set(['version'], 2.5) },
  { name: 'version string', kind: 'wrong_type', apply: set(['version'], '2') },
  { name: 'figures an array', kind: 'wrong_type', apply: set(['figures'], [1]) },
  { name: 'figure a string', kind: 'wrong_type', apply: set(['figures', 'x'], 'y') },
  { name: 'known figure NaN', kind: 'wrong_type', apply: set(['figures', 'err_rate'], NaN) },
];

export const registryEntryMutations: Mutation[] = [
  ...headerMutations(false),
  { name: 'profile unknown', kind: 'out_of_range', apply: set(['profile'], 'x') },
  { name: 'params an array', kind: 'wrong_type', apply: set(['params'], [1]) },
  { name: 'param a string', kind: 'wrong_type', apply: set(['params'], { err_rate: 'a' }) },
  { name: 'updated_by missing', kind: 'wrong_type', apply: set(['updated_by'], absent) },
  { name: 'hosts over the limit', kind: 'oversize', apply: set(['hosts'], () => Array.from({ length: LIMITS.maxRouteHosts + 1 }, () => ({}))) },
  ...nonEmpty('hosts', objectHostMutations()),
  {
    name: 'duplicate host',
    kind: 'out_of_range',
    codeOnly: true,
    apply: (m) => {
      const hs = m['hosts'] as Msg[];
      const h = hs[0] ?? { ip: '10.0.0.1', port: 80, weight: 1 };
      return { ...m, hosts: [...hs, { ...h }, { ...h, weight: 2 }] };
    },
  },
];
