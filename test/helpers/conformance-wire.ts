/**
 * Conformance vectors of the wire (schemas/conformance/wire.json), from the
 * contract's own code: message samples with what the reference reader
 * makes of them (accepted, or the rejection kind), report batches as the
 * agent's batcher encodes them byte for byte, message ids, the hashes and
 * the partition function.
 */
import { encode, tryDecode } from '../../schemas/codec.ts';
import { fmix32, fnv1a32 } from '../../schemas/fnv.ts';
import { validateRegistryEntry, validateReportBatch, validateRouteEvent, validateRouteState, validateSelfRegistration, type Validated } from '../../schemas/messages.ts';
import { parseReportMsgId, reportMsgId } from '../../schemas/msg-id.ts';
import { names, partitionOf } from '../../schemas/subjects.ts';
import { ReportBatcher } from '../../src/agent/report-batcher.ts';
import { AttemptKind, CallRetcode } from '../../schemas/contract-values.ts';
import { host, state } from './conformance-picks.ts';

/** The message kinds of the samples, by the name an SDK reads them with. */
const READERS = {
  route_state: validateRouteState,
  report_batch: validateReportBatch,
  route_event: validateRouteEvent,
  registry_entry: validateRegistryEntry,
  self_registration: validateSelfRegistration,
} as const satisfies Record<string, (m: unknown) => Validated<unknown>>;
type MessageKind = keyof typeof READERS;

/** One sample: its bytes, and `ok` or the rejection kind. */
export interface MessageVector {
  kind: MessageKind;
  name: string;
  hex: string;
  want: string;
  /** The reader's detail for a rejection (informational: an SDK need not word it the same). */
  detail?: string;
}

function judge(kind: MessageKind, name: string, bytes: Uint8Array): MessageVector {
  const hex = Buffer.from(bytes).toString('hex');
  const d = tryDecode(bytes);
  if (!d.ok) return { kind, name, hex, want: 'malformed', detail: d.error.message };
  const v = READERS[kind](d.value);
  return v.ok ? { kind, name, hex, want: 'ok' } : { kind, name, hex, want: v.kind, detail: v.detail };
}

type Obj = Record<string, unknown>;
const clone = (o: Obj): Obj => structuredClone(o);

/** A sample and its variants, each one change from the valid base. */
function variants(kind: MessageKind, base: Obj, changes: Array<[string, (m: Obj) => unknown]>): MessageVector[] {
  const out = [judge(kind, 'valid', encode(base))];
  for (const [name, change] of changes) {
    const m = clone(base);
    const r = change(m);
    out.push(judge(kind, name, encode(r === undefined ? m : r)));
  }
  return out;
}

const routeHost = (m: Obj, i = 0): Obj => (m['hosts'] as Obj[])[i]!;
/** A route's call policy (the optional fields a route node publishes when it computes budgets). */
const CALL_POLICY = { retry_budget: 0.2, retry_floor: 10, hedge_delay_ms: 35.5, hedge_budget: 0.05, shed: 0.25 } as const;

function messageVectors(): MessageVector[] {
  const rs = state(7, [host(1, { zone: 'z1' }), host(2, { state: 'probing', reason: 'timeout', pick_weight: 12.5, trial_agent: 'agent-a' }), host(3)], { strategy: 'swrr' }) as unknown as Obj;
  const out: MessageVector[] = [];
  out.push(
    ...variants('route_state', rs, [
      ['no strategy, no zone', (m) => void (delete m['strategy'], delete routeHost(m)['zone'])],
      ['extra keys are ignored', (m) => void ((m['future'] = [1, 2]), (routeHost(m)['x'] = 'y'))],
      ['zone nil', (m) => void (routeHost(m)['zone'] = null)],
      ['empty hosts', (m) => void (m['hosts'] = [])],
      ['bad version', (m) => void (m['v'] = 2)],
      ['version as text', (m) => void (m['v'] = '1')],
      ['no version', (m) => void delete m['v']],
      ['not a map', () => [1, 2, 3]],
      ['sender missing', (m) => void delete m['sender']],
      ['sender empty', (m) => void (m['sender'] = '')],
      ['sender too long', (m) => void (m['sender'] = 's'.repeat(129))],
      ['modid negative', (m) => void (m['modid'] = -1)],
      ['modid above uint32', (m) => void (m['modid'] = 4294967296)],
      ['modid fraction', (m) => void (m['modid'] = 1.5)],
      ['cmdid text', (m) => void (m['cmdid'] = '1')],
      ['route version 0', (m) => void (m['version'] = 0)],
      ['route version above 2^53', (m) => void (m['version'] = 2 ** 53)],
      ['ts negative', (m) => void (m['ts'] = -1)],
      ['ts NaN', (m) => void (m['ts'] = NaN)],
      ['ts infinite', (m) => void (m['ts'] = Infinity)],
      ['profile unknown', (m) => void (m['profile'] = 'other')],
      ['panic not bool', (m) => void (m['panic'] = 1)],
      ['removed missing', (m) => void delete m['removed']],
      ['probe_num negative', (m) => void (m['probe_num'] = -1)],
      ['strategy unknown', (m) => void (m['strategy'] = 'random')],
      ['hosts not a list', (m) => void (m['hosts'] = {})],
      ['host not a map', (m) => void (m['hosts'] = [1])],
      ['host ip bad', (m) => void (routeHost(m)['ip'] = '10.0.0.256')],
      ['host ip leading zero', (m) => void (routeHost(m)['ip'] = '10.0.0.01')],
      ['host ip number', (m) => void (routeHost(m)['ip'] = 167772161)],
      ['host port 0', (m) => void (routeHost(m)['port'] = 0)],
      ['host port 65536', (m) => void (routeHost(m)['port'] = 65536)],
      ['host weight 0', (m) => void (routeHost(m)['weight'] = 0)],
      ['host weight 10001', (m) => void (routeHost(m)['weight'] = 10001)],
      ['host zone too long', (m) => void (routeHost(m)['zone'] = 'z'.repeat(65))],
      ['host zone number', (m) => void (routeHost(m)['zone'] = 3)],
      ['host state unknown', (m) => void (routeHost(m)['state'] = 'sick')],
      ['host reason unknown but short', (m) => void (routeHost(m)['reason'] = 'a_new_reason')],
      ['host reason too long', (m) => void (routeHost(m)['reason'] = 'r'.repeat(65))],
      ['host since missing', (m) => void delete routeHost(m)['since']],
      ['host pick_weight negative', (m) => void (routeHost(m)['pick_weight'] = -0.5)],
      ['host pick_weight above max', (m) => void (routeHost(m)['pick_weight'] = 10000.5)],
      ['host pick_weight NaN', (m) => void (routeHost(m)['pick_weight'] = NaN)],
      ['host trial_agent empty', (m) => void (routeHost(m, 1)['trial_agent'] = '')],
      ['too many hosts', (m) => void (m['hosts'] = Array.from({ length: 1025 }, (_, i) => ({ ...routeHost(m), ip: `10.${i >> 8}.${i & 255}.1` })))],
      ['call policy', (m) => void Object.assign(m, CALL_POLICY)],
      ['call policy at its bounds', (m) => void Object.assign(m, { retry_budget: 100, retry_floor: 1_000_000, hedge_delay_ms: 3_600_000, hedge_budget: 1, shed: 1 })],
      ['call policy zeros', (m) => void Object.assign(m, { retry_budget: 0, retry_floor: 0, hedge_delay_ms: 0, hedge_budget: 0, shed: 0 })],
      ['retry_budget negative', (m) => void Object.assign(m, CALL_POLICY, { retry_budget: -0.1 })],
      ['retry_budget above max', (m) => void Object.assign(m, CALL_POLICY, { retry_budget: 100.5 })],
      ['retry_budget text', (m) => void Object.assign(m, CALL_POLICY, { retry_budget: '0.2' })],
      ['retry_floor above max', (m) => void Object.assign(m, CALL_POLICY, { retry_floor: 1_000_001 })],
      ['hedge_delay_ms above an hour', (m) => void Object.assign(m, CALL_POLICY, { hedge_delay_ms: 3_600_001 })],
      ['hedge_delay_ms NaN', (m) => void Object.assign(m, CALL_POLICY, { hedge_delay_ms: NaN })],
      ['hedge_budget above 1', (m) => void Object.assign(m, CALL_POLICY, { hedge_budget: 1.5 })],
      ['shed above 1', (m) => void Object.assign(m, CALL_POLICY, { shed: 1.01 })],
      ['shed negative', (m) => void Object.assign(m, CALL_POLICY, { shed: -1 })],
      ['shed nil', (m) => void Object.assign(m, CALL_POLICY, { shed: null })],
    ]),
  );
  const rb: Obj = { v: 1, sender: 'agent-7', modid: 1, cmdid: 1, ts: 1764115200000, hosts: [['10.0.0.1', 8080], ['10.0.0.2', 8080]], reports: [[0, 0, 4.2, 0], [1, 1, 30.5, 2]] };
  out.push(
    ...variants('report_batch', rb, [
      ['with zone and utilization', (m) => void ((m['zone'] = 'z1'), (m['utilization'] = [[0, 0.62], [1, 0.35]]))],
      ['zone nil', (m) => void (m['zone'] = null)],
      ['bad version', (m) => void (m['v'] = 0)],
      ['no hosts', (m) => void (m['hosts'] = [])],
      ['no reports', (m) => void (m['reports'] = [])],
      ['host index past hosts', (m) => void (m['reports'] = [[2, 0, 1, 0]])],
      ['host index negative', (m) => void (m['reports'] = [[-1, 0, 1, 0]])],
      ['retcode above int32', (m) => void (m['reports'] = [[0, 2147483648, 1, 0]])],
      ['retcode negative', (m) => void (m['reports'] = [[0, -5, 1, 0]])],
      ['latency negative', (m) => void (m['reports'] = [[0, 0, -1, 0]])],
      ['latency above an hour', (m) => void (m['reports'] = [[0, 0, 3600001, 0]])],
      ['latency NaN', (m) => void (m['reports'] = [[0, 0, NaN, 0]])],
      ['offset fraction', (m) => void (m['reports'] = [[0, 0, 1, 0.5]])],
      ['report tuple short', (m) => void (m['reports'] = [[0, 0, 1]])],
      ['report tuple text', (m) => void (m['reports'] = [[0, 0, '1', 0]])],
      ['host tuple port 0', (m) => void (m['hosts'] = [['10.0.0.1', 0]])],
      ['utilization above 1', (m) => void (m['utilization'] = [[0, 1.5]])],
      ['utilization index past hosts', (m) => void (m['utilization'] = [[5, 0.5]])],
      ['too many reports', (m) => void (m['reports'] = Array.from({ length: 10001 }, () => [0, 0, 1, 0]))],
      ['sender missing', (m) => void delete m['sender']],
      ['retcode overloaded', (m) => void (m['reports'] = [[0, -4, 1, 0]])],
      ['attempt marks', (m) => void (m['attempts'] = [[1, 2, 1]])],
      ['attempt marks of a retry and a hedge', (m) => void ((m['reports'] = [[0, 1, 3, 0], [1, 0, 2, 1], [0, 0, 2.5, 1]]), (m['attempts'] = [[1, 2, 1], [2, 3, 2]]))],
      ['attempt marks empty', (m) => void (m['attempts'] = [])],
      ['attempt mark past reports', (m) => void (m['attempts'] = [[2, 2, 1]])],
      ['attempt mark report index negative', (m) => void (m['attempts'] = [[-1, 2, 1]])],
      ['attempt 0', (m) => void (m['attempts'] = [[1, 0, 1]])],
      ['attempt above 255', (m) => void (m['attempts'] = [[1, 256, 1]])],
      ['attempt kind unknown', (m) => void (m['attempts'] = [[1, 2, 3]])],
      ['attempt kind text', (m) => void (m['attempts'] = [[1, 2, 'retry']])],
      ['attempt tuple short', (m) => void (m['attempts'] = [[1, 2]])],
      ['attempts not a list', (m) => void (m['attempts'] = { 1: 2 })],
    ]),
  );
  const ev: Obj = { v: 1, sender: 'node-1', modid: 1, cmdid: 1, ts: 1764115200000, ip: '10.0.0.1', port: 8080, from: 'healthy', to: 'overloaded', reason: 'consecutive_errors', version: 9, figures: { consecutive_errors: 10, err_rate: 0.5 } };
  out.push(
    ...variants('route_event', ev, [
      ['from none', (m) => void (m['from'] = 'none')],
      ['by set', (m) => void ((m['reason'] = 'admin_drain'), (m['by'] = 'ops'))],
      ['figure text', (m) => void ((m['figures'] as Obj)['calls'] = 'x')],
      ['to unknown', (m) => void (m['to'] = 'gone')],
    ]),
  );
  const re: Obj = { v: 1, modid: 1, cmdid: 1, hosts: [{ ip: '10.0.0.1', port: 8080, weight: 100 }, { ip: '10.0.0.2', port: 8080, weight: 50, zone: 'z1' }], updated_by: 'ops', ts: 1764115200000 };
  out.push(
    ...variants('registry_entry', re, [
      ['duplicate host', (m) => void ((m['hosts'] as Obj[])[1]!['ip'] = '10.0.0.1')],
      ['profile lars with params', (m) => void ((m['profile'] = 'lars'), (m['params'] = { probe_num: 5 }))],
    ]),
  );
  const sr: Obj = { v: 1, modid: 1, cmdid: 1, ip: '10.0.0.9', port: 9000, weight: 100, state: 'up', instance: 'svc-1', ttl_ms: 10000, ts: 1764115200000 };
  out.push(
    ...variants('self_registration', sr, [
      ['draining', (m) => void (m['state'] = 'draining')],
      ['ttl too short', (m) => void (m['ttl_ms'] = 999)],
      ['ttl fraction', (m) => void (m['ttl_ms'] = 1000.5)],
    ]),
  );
  // bytes that are no msgpack value, or not one alone
  for (const kind of Object.keys(READERS) as MessageKind[]) {
    for (const [name, hex] of [
      ['empty', ''],
      ['never-used byte', 'c1'],
      ['truncated map', '82a17601'],
      ['truncated string', 'a5616263'],
    ] as const) {
      out.push(judge(kind, name, Buffer.from(hex, 'hex')));
    }
  }
  return out;
}

/** A report as a caller makes it, at `now`; or a flush of the batcher. */
type BatchStep =
  | { op: 'report'; now: number; modid: number; cmdid: number; ip: string; port: number; retcode: number; latency_ms: number; utilization?: number; attempt?: number; attempt_kind?: AttemptKind }
  | { op: 'flush'; now: number };

export interface BatchVector {
  name: string;
  sender: string;
  zone: string | null;
  partitions: number;
  prefix: string;
  max_reports: number;
  steps: BatchStep[];
  /** Every batch the batcher made, in order: subject and msgpack bytes. */
  want: Array<{ subject: string; hex: string; reports: number }>;
}

function runBatches(v: Omit<BatchVector, 'want'>): BatchVector {
  let clock = 0;
  const want: BatchVector['want'] = [];
  const b = new ReportBatcher({
    names: names(v.prefix),
    partitions: v.partitions,
    sender: v.sender,
    zone: v.zone ?? undefined,
    maxReports: v.max_reports,
    maxDelayMs: 1_000_000,
    clock: () => clock,
    sink: (subject, batch, reports) => want.push({ subject, hex: Buffer.from(encode(batch)).toString('hex'), reports }),
  });
  for (const s of v.steps) {
    clock = s.now;
    if (s.op === 'flush') b.flush();
    else b.add(s.modid, s.cmdid, { ip: s.ip, port: s.port }, s.retcode, s.latency_ms, s.utilization, s.attempt === undefined ? undefined : { attempt: s.attempt, kind: s.attempt_kind ?? AttemptKind.retry });
  }
  b.flush();
  b.stop();
  return { ...v, want };
}

const T0 = 1_764_115_200_123;

function batchVectors(): BatchVector[] {
  const r = (now: number, ip: string, retcode: number, latency: number, utilization?: number, modid = 1, cmdid = 1): Extract<BatchStep, { op: 'report' }> => ({
    op: 'report',
    now,
    modid,
    cmdid,
    ip,
    port: 8080,
    retcode,
    latency_ms: latency,
    ...(utilization === undefined ? {} : { utilization }),
  });
  return [
    runBatches({ name: 'two hosts, flushed', sender: 'agent-7', zone: null, partitions: 64, prefix: 'lars', max_reports: 1000, steps: [r(T0, '10.0.0.1', 0, 4.2), r(T0 + 2, '10.0.0.2', 1, 30.5), r(T0 + 3, '10.0.0.1', 0, 5)] }),
    runBatches({
      name: 'full batches by count, zone, utilization, two routes',
      sender: 'agent-with-a-longer-id-0123456789abcdef',
      zone: 'eu-west-1a',
      partitions: 64,
      prefix: 'lars',
      max_reports: 3,
      steps: [
        r(T0, '10.0.0.1', 0, 0.25, 0.5),
        r(T0 + 1, '10.0.0.2', -3, 1000),
        r(T0 + 1, '192.168.100.200', 2147483647, 3600000, 0.9),
        r(T0 + 7, '10.0.0.1', 0, 12.75, 1, 100, 7),
        r(T0 + 400, '10.0.0.1', -2147483648, 0, 0, 100, 7),
        { op: 'flush', now: T0 + 500 },
        r(T0 + 70_000, '10.0.0.3', 0, 1e-3, 0.333, 4294967295, 0),
      ],
    }),
    runBatches({
      name: 'attempt marks (retries and hedges) and the overloaded retcode',
      sender: 'agent-7',
      zone: 'z1',
      partitions: 64,
      prefix: 'lars',
      max_reports: 4,
      steps: [
        r(T0, '10.0.0.1', CallRetcode.overloaded, 2),
        { ...r(T0 + 1, '10.0.0.2', 0, 3), attempt: 2, attempt_kind: AttemptKind.retry },
        r(T0 + 2, '10.0.0.1', 0, 40, 0.5),
        { ...r(T0 + 30, '10.0.0.3', 0, 12), attempt: 3, attempt_kind: AttemptKind.hedge },
        { ...r(T0 + 31, '10.0.0.3', 1, 12), attempt: 255, attempt_kind: AttemptKind.retry },
      ],
    }),
    runBatches({ name: 'another prefix and partition count', sender: 'a', zone: null, partitions: 7, prefix: 'my-lars_1', max_reports: 2, steps: [r(0, '1.2.3.4', 0, 1), r(5, '1.2.3.4', 1, 2), r(300, '1.2.3.4', 0, 2.5)] }),
  ];
}

export interface WireVectors {
  messages: MessageVector[];
  batches: BatchVector[];
  msg_ids: Array<{ sender: string; instance: string; seq: number; id: string }>;
  msg_id_parse: Array<{ id: string; want: { sender: string; instance: string; seq: number } | null }>;
  hashes: Array<{ s: string; fnv1a32: number; hash32: number }>;
  partitions: Array<{ modid: number; cmdid: number; partitions: number; partition: number }>;
}

export function wireVectors(): WireVectors {
  const ids = [['agent-7', '9f3c2a1b', 42], ['a/b/c', 'x', 1], ['agent', '0', 9007199254740991]] as const;
  const parse = ['agent-7/9f3c2a1b/42', 'a/b/c/x/1', 'agent//1', '/x/1', 'agent/x/0', 'agent/x/1.5', 'agent/x/', 'noslash', 'agent/x/9007199254740992'];
  const strs = ['', 'a', '1.1', '10.0.0.1:8000#0', '10.0.0.1:8000#159', 'user-7919', 'héllo', '日本', '😀 emoji', 'lone \ud800 surrogate'];
  const parts: Array<[number, number, number]> = [[1, 1, 64], [1, 2, 64], [100, 7, 64], [4294967295, 0, 64], [12345, 678, 4096], [1, 1, 7]];
  return {
    messages: messageVectors(),
    batches: batchVectors(),
    msg_ids: ids.map(([sender, instance, seq]) => ({ sender, instance, seq, id: reportMsgId(sender, instance, seq) })),
    msg_id_parse: parse.map((id) => ({ id, want: parseReportMsgId(id) ?? null })),
    hashes: strs.map((s) => ({ s, fnv1a32: fnv1a32(s), hash32: fmix32(fnv1a32(s)) })),
    partitions: parts.map(([modid, cmdid, p]) => ({ modid, cmdid, partitions: p, partition: partitionOf(modid, cmdid, p) })),
  };
}
