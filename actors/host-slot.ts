/**
 * One host of a route (`HostSlot`): identity, the host machine's fields, the
 * per-report counters and its load figures, all plain fields (the report path
 * reads and writes them with no allocation); and its checkpoint
 * (`HostCheckpoint`) with the round trip.
 *
 * Which fields a checkpoint keeps, under which name and type, and what a
 * checkpoint written before a field existed gives for it is one list,
 * `HOST_FIELDS`: writing a host's checkpoint, reading it back and checking
 * one read from a store (`parseCheckpoint`, ./checkpoint.ts) all follow it,
 * so a new per-host field is a property of the slot, one entry in the list
 * and its line in `HostCheckpoint`. A unit test fails for a property of the
 * slot that is neither in the list nor named in `NOT_CHECKPOINTED`.
 */
import type { AdminMark } from '../schemas/contract.ts';
import type { HostState, Reason, RegistryHost, RouteHost } from '../schemas/messages.ts';
import { ejectionMs, type EjectionTimes } from './ejection.ts';
import { INITIAL_STATE, initialContext, restore, type HostMachine } from './host-machine.ts';
import { NO_TIME, type LoadHost } from './load-weights.ts';
import type { PolicyHost } from './profiles/types.ts';

/** One host of a route: identity, machine fields, the per-report counters and its load figures. */
export class HostSlot implements PolicyHost, LoadHost {
  readonly ip: string;
  readonly port: number;
  readonly key: string;
  weight: number;
  zone: string | undefined;
  // machine fields (changed only through the machine)
  state: HostState;
  since: number;
  reason: Reason;
  ejections: number;
  ejectUntil: number;
  // Lars counters
  vsucc = 0;
  verr = 0;
  rsucc = 0;
  rerr = 0;
  continSucc = 0;
  continErr = 0;
  /** Start of the current window (Lars idle_ts). */
  windowStart: number;
  // default profile
  latency = 0;
  latCalls = 0;
  probeErr = 0;
  /** Crossed an ejection threshold but the ejection cap held it in. */
  suspect = false;
  lastDecay: number;
  /** An operator's mark in force (registry `admin`): the host takes no traffic and its reports judge nothing. */
  admin: AdminMark | undefined = undefined;
  // load weights and slow start (./load-weights.ts)
  loadCalls = 0;
  loadErrors = 0;
  utilSum = 0;
  utilSamples = 0;
  loadWeight = 0;
  loadSince = NO_TIME;
  loadTs = NO_TIME;
  rampStart = NO_TIME;
  balance = 0;
  /** Probing: the one agent that may send it trial calls now (undefined: none named), and when it last reported the host (or was named or dropped). */
  trialAgent: string | undefined = undefined;
  trialTs = 0;

  /** A host in the machine's initial state, created at `now`. */
  constructor(h: RegistryHost, now: number) {
    this.ip = h.ip;
    this.port = h.port;
    this.key = `${h.ip}:${h.port}`;
    this.weight = h.weight;
    this.zone = h.zone ?? undefined;
    const c = initialContext({ now });
    this.state = INITIAL_STATE;
    this.since = c.since;
    this.reason = c.reason;
    this.ejections = c.ejections;
    this.ejectUntil = c.ejectUntil;
    this.windowStart = now;
    this.lastDecay = now;
  }
}

/**
 * What agents see of host `s` in the route state: picked with `pickWeight`,
 * and its trial agent named when `trials` (outside panic, with
 * probe_trial_timeout on) and it is probing.
 */
export function publishedHost(s: HostSlot, pickWeight: number, trials: boolean): RouteHost {
  const h: RouteHost = { ip: s.ip, port: s.port, weight: s.weight, state: s.state, reason: s.reason, since: s.since, pick_weight: pickWeight };
  if (s.zone !== undefined) h.zone = s.zone;
  if (trials && s.trialAgent !== undefined && s.state === 'probing') h.trial_agent = s.trialAgent;
  return h;
}

/** One host: registry fields, machine fields, Lars' counters (Lars' names) and the default profile's extras. */
export interface HostCheckpoint {
  ip: string;
  port: number;
  weight: number;
  zone?: string;
  state: HostState;
  reason: Reason;
  /** When the host entered `state`, ms. */
  since: number;
  ejections: number;
  /** When the current ejection ends, ms (0: never ejected). */
  eject_until: number;
  vsucc: number;
  verr: number;
  rsucc: number;
  rerr: number;
  contin_succ: number;
  contin_err: number;
  /** Start of the current window, ms (Lars idle_ts). */
  idle_ts: number;
  /** Moving average of the latency, ms, over `lat_calls` samples. */
  latency: number;
  lat_calls: number;
  probe_err: number;
  suspect: boolean;
  /** Last ejection-count decay, ms. */
  last_decay: number;
  // Load weights and slow start (actors/load-weights.ts); absent in checkpoints written before them (then 0, or -1 for a time: none).
  /** Calls and errors reported in the current load period. */
  load_calls?: number;
  load_errors?: number;
  /** Utilization samples of the current load period: sum and count. */
  util_sum?: number;
  util_samples?: number;
  /** The host's load weight at its last renewal (0: none), since when it has had one and when it was renewed, ms (-1: none). */
  load_weight?: number;
  load_since?: number;
  load_ts?: number;
  /** When its slow start began, ms (-1: not ramping). */
  ramp_start?: number;
  /** The pick weight in force from load weights and slow start (0: the registry weight). */
  balance?: number;
  /** Probing: the agent named for its trial calls, and when it last reported the host (or was named), ms. */
  trial_agent?: string;
  trial_ts?: number;
}

/** How one per-host field is kept in a checkpoint. */
export interface HostField {
  /** The slot's property... */
  readonly slot: keyof HostSlot;
  /** ...and the checkpoint's key for it (Lars' names for its counters). */
  readonly cp: keyof HostCheckpoint;
  /** What a checkpoint holds for it (`parseCheckpoint` checks it): a finite number, a string, a boolean, a host state or a reason. */
  readonly type: 'number' | 'string' | 'boolean' | 'state' | 'reason';
  /**
   * How it is read back: copied (absent), as the registry host the slot is
   * created from (`identity`), or through the machine (`machine`: RESTORE).
   */
  readonly kind?: 'identity' | 'machine';
  /** Written only when set; absent from the checkpoint otherwise. */
  readonly optional?: true;
  /** What a checkpoint written before the field existed gives for it (absent: every checkpoint has it). */
  readonly absent?: number;
}

/** Every per-host field a checkpoint keeps, in the order a checkpoint lists them. */
export const HOST_FIELDS: readonly HostField[] = [
  { slot: 'ip', cp: 'ip', type: 'string', kind: 'identity' },
  { slot: 'port', cp: 'port', type: 'number', kind: 'identity' },
  { slot: 'weight', cp: 'weight', type: 'number', kind: 'identity' },
  { slot: 'state', cp: 'state', type: 'state', kind: 'machine' },
  { slot: 'reason', cp: 'reason', type: 'reason', kind: 'machine' },
  { slot: 'since', cp: 'since', type: 'number', kind: 'machine' },
  { slot: 'ejections', cp: 'ejections', type: 'number', kind: 'machine' },
  { slot: 'ejectUntil', cp: 'eject_until', type: 'number', kind: 'machine' },
  { slot: 'vsucc', cp: 'vsucc', type: 'number' },
  { slot: 'verr', cp: 'verr', type: 'number' },
  { slot: 'rsucc', cp: 'rsucc', type: 'number' },
  { slot: 'rerr', cp: 'rerr', type: 'number' },
  { slot: 'continSucc', cp: 'contin_succ', type: 'number' },
  { slot: 'continErr', cp: 'contin_err', type: 'number' },
  { slot: 'windowStart', cp: 'idle_ts', type: 'number' },
  { slot: 'latency', cp: 'latency', type: 'number' },
  { slot: 'latCalls', cp: 'lat_calls', type: 'number' },
  { slot: 'probeErr', cp: 'probe_err', type: 'number' },
  { slot: 'suspect', cp: 'suspect', type: 'boolean' },
  { slot: 'lastDecay', cp: 'last_decay', type: 'number' },
  // load weights and slow start: absent in checkpoints written before them
  { slot: 'loadCalls', cp: 'load_calls', type: 'number', absent: 0 },
  { slot: 'loadErrors', cp: 'load_errors', type: 'number', absent: 0 },
  { slot: 'utilSum', cp: 'util_sum', type: 'number', absent: 0 },
  { slot: 'utilSamples', cp: 'util_samples', type: 'number', absent: 0 },
  { slot: 'loadWeight', cp: 'load_weight', type: 'number', absent: 0 },
  { slot: 'loadSince', cp: 'load_since', type: 'number', absent: NO_TIME },
  { slot: 'loadTs', cp: 'load_ts', type: 'number', absent: NO_TIME },
  { slot: 'rampStart', cp: 'ramp_start', type: 'number', absent: NO_TIME },
  { slot: 'balance', cp: 'balance', type: 'number', absent: 0 },
  // probing trials: absent in checkpoints written before them
  { slot: 'trialTs', cp: 'trial_ts', type: 'number', absent: 0 },
  { slot: 'trialAgent', cp: 'trial_agent', type: 'string', optional: true },
  { slot: 'zone', cp: 'zone', type: 'string', kind: 'identity', optional: true },
];


/** The slot's properties a checkpoint does not keep, and why. */
export const NOT_CHECKPOINTED: Readonly<Partial<Record<keyof HostSlot, string>>> = {
  key: 'derived from ip and port',
  admin: "the registry entry applied after a resume sets the operator's mark again",
};

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * A function compiled from HOST_FIELDS (names checked as identifiers; no
 * input reaches it): straight-line code as if written by hand. A loop over
 * the list with computed names costs five times as much per host, and every
 * route's checkpoint is written with each of its stored states and read back
 * on every takeover.
 */
function compile<F>(args: readonly string[], body: string): F {
  for (const f of HOST_FIELDS) if (!NAME.test(f.slot) || !NAME.test(f.cp)) throw new Error(`host field ${f.slot}/${f.cp} is not an identifier`);
  // eslint-disable-next-line @typescript-eslint/no-implied-eval -- built from HOST_FIELDS above, see the comment
  return new Function(...args, `'use strict';\n${body}`) as F;
}

const writeHost = compile<(s: HostSlot) => HostCheckpoint>(
  ['s'],
  [
    `const h = { ${HOST_FIELDS.filter((f) => f.optional !== true).map((f) => `${f.cp}: s.${f.slot}`).join(', ')} };`,
    ...HOST_FIELDS.filter((f) => f.optional === true).map((f) => `if (s.${f.slot} !== undefined) h.${f.cp} = s.${f.slot};`),
    'return h;',
  ].join('\n'),
);

const readCopied = compile<(s: HostSlot, h: HostCheckpoint) => void>(
  ['s', 'h'],
  HOST_FIELDS.filter((f) => f.kind === undefined)
    .map((f) => `s.${f.slot} = h.${f.cp}${f.absent !== undefined ? ` ?? ${JSON.stringify(f.absent)}` : ''};`)
    .join('\n'),
);

/** What a field of `type` must be, for the message that names the field. */
const MUST: Record<HostField['type'], string> = { number: 'must be a number', string: 'must be a string', boolean: 'must be a boolean', state: 'is unknown', reason: 'is unknown' };

/** The test a value of field `f` (held in `v`) fails, as an expression. */
function failsType(f: HostField, v: string): string {
  switch (f.type) {
    case 'number':
      return `(typeof ${v} !== 'number' || !Number.isFinite(${v}))`;
    case 'string':
    case 'boolean':
      return `typeof ${v} !== '${f.type}'`;
    case 'state':
      return `!isState(${v})`;
    case 'reason':
      return `!isReason(${v})`;
  }
}

/**
 * The first field of a host's checkpoint read from a store that is not what
 * HOST_FIELDS says, as "<key> must be a number" (or a string, a boolean; a
 * state or reason "is unknown"); undefined when every field is. Fields that
 * older checkpoints lack, or that are written only when set, may be absent.
 */
export const hostFieldError = compile<(h: Record<string, unknown>, isState: (x: unknown) => boolean, isReason: (x: unknown) => boolean) => string | undefined>(
  ['h', 'isState', 'isReason'],
  [
    'let v;',
    ...HOST_FIELDS.map((f) => {
      const absentOk = f.optional === true || f.absent !== undefined;
      return `v = h.${f.cp}; if (${absentOk ? 'v !== undefined && ' : ''}${failsType(f, 'v')}) return '${f.cp} ${MUST[f.type]}';`;
    }),
    'return undefined;',
  ].join('\n'),
);

/** The host's checkpoint: every field of HOST_FIELDS under its checkpoint name (optional ones only when set). */
export function hostCheckpoint(s: HostSlot): HostCheckpoint {
  return writeHost(s);
}

/** The slot a host's checkpoint describes, exactly: identity, the machine state it recorded (RESTORE, with `machine`'s rules), every other field. */
export function resumeHost(machine: HostMachine, h: HostCheckpoint, now: number): HostSlot {
  const reg: RegistryHost = { ip: h.ip, port: h.port, weight: h.weight };
  if (h.zone !== undefined) reg.zone = h.zone;
  const s = new HostSlot(reg, now);
  restore(machine, s, { type: 'RESTORE', state: h.state, since: h.since, reason: h.reason, ejections: h.ejections, ejectUntil: h.eject_until });
  readCopied(s, h);
  return s;
}

/**
 * A new slot `s` resumes host `r` of a published route state, which carries
 * its state, reason and since but no counters: an ejected (overloaded or
 * probing) host counts one ejection, ending one first ejection's length from
 * `now` (`ejectionMs` with the published reason not weighed). A host the
 * state does not list, or lists draining, is not resumed (false).
 */
export function resumePublished(machine: HostMachine, s: HostSlot, r: RouteHost | undefined, ejection: EjectionTimes, now: number): boolean {
  if (r === undefined || r.state === 'draining') return false;
  const out = r.state === 'overloaded' || r.state === 'probing';
  restore(machine, s, { type: 'RESTORE', state: r.state, since: r.since, reason: r.reason, ejections: out ? 1 : 0, ejectUntil: out ? now + ejectionMs(ejection, undefined, 1) : 0 });
  return true;
}
