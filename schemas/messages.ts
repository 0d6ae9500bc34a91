/**
 * Validators of the wire messages of the Lars-on-NATS contract (version 1).
 * Every message is a msgpack map (plain msgpack: no extension types, no
 * records) with snake_case keys, and carries `v` (the schema version) and,
 * except the registry entry, `sender`.
 *
 * The shapes, bounds and types come from one definition, contract.ts
 * (TypeBox); this module compiles it, adds the few rules JSON Schema cannot
 * express, and names each rejection with a RejectKind and the field's path.
 * schemas/README.md is the prose form; the `*.schema.json` files are
 * generated from the same definition (`npm run schemas`).
 */
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import { ValueErrorType, type ValueError } from '@sinclair/typebox/errors';
import { Type, type TSchema } from '@sinclair/typebox';
import {
  IPV4_PATTERN,
  RejectAs,
  RegistryEntrySchema,
  ReportBatchSchema,
  RouteEventSchema,
  RouteHostSchema,
  RouteStateSchema,
  SCHEMA_VERSION,
  SelfRegistrationSchema,
  type RegistryEntry,
  type SelfRegistration,
  type RejectKind,
  type ReportBatch,
  type RouteEvent,
  type RouteHost,
  type RouteState,
} from './contract.ts';

export { SCHEMA_VERSION, LIMITS, HostState, Profile, Reason, RejectKind, SelfState, AdminMark, AttemptKind, ReportSide, CallRetcode } from './contract.ts';
export type { ReportTuple, UtilizationTuple, AttemptTuple, ReportBatch, RouteHost, RouteState, EventFigures, RouteEvent, RegistryHost, RegistryEntry, SelfRegistration } from './contract.ts';

export type Validated<T> = { ok: true; value: T } | { ok: false; kind: RejectKind; detail: string };

const IPV4 = new RegExp(IPV4_PATTERN);

export function isIPv4(s: unknown): s is string {
  return typeof s === 'string' && s.length <= 15 && IPV4.test(s);
}

export function isPort(n: unknown): n is number {
  return typeof n === 'number' && Number.isInteger(n) && n >= 1 && n <= 65535;
}

function fail<T>(kind: RejectKind, detail: string): Validated<T> {
  return { ok: false, kind, detail };
}

// ------------------------------------------------------------ reject kinds

/**
 * The kind of one failed constraint. A value of the wrong type (including a
 * number that is not an integer, NaN or ±Infinity where a number is due) is
 * `wrong_type`; a value of the right type outside its bounds, pattern or set
 * is `out_of_range`; too many items is `oversize`; a schema may override the
 * kind of its own failures (RejectAs: the version, the report tuple).
 */
export function rejectKindOf(e: ValueError): RejectKind {
  const own = (e.schema as { [RejectAs]?: RejectKind })[RejectAs];
  switch (e.type) {
    case ValueErrorType.Union: {
      // The variant whose type matched says what is wrong with the value.
      for (const variant of e.errors) {
        const first = variant.First();
        if (first === undefined) continue;
        const k = rejectKindOf(first);
        if (k !== 'wrong_type') return k;
      }
      return own ?? 'wrong_type';
    }
    case ValueErrorType.ArrayMaxItems:
      return 'oversize';
    case ValueErrorType.ObjectRequiredProperty:
      return own === 'bad_version' ? own : 'wrong_type';
    case ValueErrorType.Literal: {
      const c = (e.schema as { const?: unknown }).const;
      return own ?? (typeof e.value === typeof c ? 'out_of_range' : 'wrong_type');
    }
    case ValueErrorType.Number:
    case ValueErrorType.Integer:
      return typeof e.value === 'number' ? (own ?? 'wrong_type') : 'wrong_type';
    case ValueErrorType.Array:
    case ValueErrorType.Object:
    case ValueErrorType.String:
    case ValueErrorType.Boolean:
    case ValueErrorType.Null:
    case ValueErrorType.Tuple:
    case ValueErrorType.TupleLength:
      return 'wrong_type';
    default:
      return own ?? 'out_of_range';
  }
}

/** `/hosts/0/1` → `hosts[0][1]`, `/figures/x` → `figures.x`. */
export function fieldPath(pointer: string): string {
  let out = '';
  for (const raw of pointer.split('/').slice(1)) {
    const seg = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    out += /^\d+$/.test(seg) ? `[${seg}]` : out === '' ? seg : `.${seg}`;
  }
  return out === '' ? 'message' : out;
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/** The rejection of a message its compiled schema refused. Off the hot path. */
function rejection<T>(check: TypeCheck<TSchema>, m: unknown, what: string): Validated<T> {
  if (!isObject(m)) return fail('wrong_type', `${what} must be a map`);
  // Another version is judged by its version alone: its other rules may differ.
  if (m['v'] !== SCHEMA_VERSION) return fail('bad_version', `unsupported version ${String(m['v'])}`);
  const e = check.Errors(m).First();
  if (e === undefined) return fail('malformed', `${what} refused without a reason`);
  return fail(rejectKindOf(e), `${fieldPath(e.path)}: ${e.message}`);
}

// -------------------------------------------------------------- validators

const reportBatchCheck = TypeCompiler.Compile(ReportBatchSchema);
const routeStateCheck = TypeCompiler.Compile(RouteStateSchema);
// The route state's two halves, for a reader that validates only what changed (src/agent/route-state-reader.ts).
const routeStateHeadCheck = TypeCompiler.Compile(Type.Omit(RouteStateSchema, ['hosts']));
const routeHostCheck = TypeCompiler.Compile(RouteHostSchema);
const routeEventCheck = TypeCompiler.Compile(RouteEventSchema);
const registryEntryCheck = TypeCompiler.Compile(RegistryEntrySchema);
const selfRegistrationCheck = TypeCompiler.Compile(SelfRegistrationSchema);

/** The rules beyond the schema: every host_index (of a report or a utilization) points into `hosts`, every attempt mark's report_index into `reports`. */
function checkHostIndexes(b: ReportBatch): Validated<ReportBatch> {
  const nh = b.hosts.length;
  const reports = b.reports;
  for (let i = 0; i < reports.length; i++) {
    const hi = (reports[i] as ReportBatch['reports'][number])[0];
    if (hi >= nh) return fail('out_of_range', `reports[${i}][0]: host index ${hi} is not below the ${nh} hosts of the batch`);
  }
  const util = b.utilization;
  if (util !== undefined) {
    for (let i = 0; i < util.length; i++) {
      const hi = util[i]![0];
      if (hi >= nh) return fail('out_of_range', `utilization[${i}][0]: host index ${hi} is not below the ${nh} hosts of the batch`);
    }
  }
  const marks = b.attempts;
  if (marks !== undefined) {
    const nr = reports.length;
    for (let i = 0; i < marks.length; i++) {
      const ri = marks[i]![0];
      if (ri >= nr) return fail('out_of_range', `attempts[${i}][0]: report index ${ri} is not below the ${nr} reports of the batch`);
    }
  }
  return { ok: true, value: b };
}

/**
 * Validates a decoded report batch: the contract's schema plus the host
 * index rule. Runs on every batch a route node or the sink takes.
 */
export function validateReportBatch(m: unknown): Validated<ReportBatch> {
  if (reportBatchCheck.Check(m)) return checkHostIndexes(m);
  return rejection(reportBatchCheck, m, 'batch');
}

export function validateRouteState(m: unknown): Validated<RouteState> {
  if (routeStateCheck.Check(m)) return { ok: true, value: m };
  return rejection(routeStateCheck, m, 'route state');
}

/**
 * A route state's fields other than `hosts` are valid. With every host valid
 * (`isRouteHost`) and at most LIMITS.maxRouteHosts of them, the whole state
 * is: `validateRouteState` would accept it.
 */
export function isRouteStateHead(m: object): boolean {
  return routeStateHeadCheck.Check(m);
}

/** One host of a route state is valid (the `hosts[i]` part of `validateRouteState`). */
export function isRouteHost(h: unknown): h is RouteHost {
  return routeHostCheck.Check(h);
}

export function validateRouteEvent(m: unknown): Validated<RouteEvent> {
  if (routeEventCheck.Check(m)) return { ok: true, value: m };
  return rejection(routeEventCheck, m, 'route event');
}

/** The contract's schema plus one rule: no two hosts share `ip:port`. */
export function validateRegistryEntry(m: unknown): Validated<RegistryEntry> {
  if (!registryEntryCheck.Check(m)) return rejection(registryEntryCheck, m, 'registry entry');
  const seen = new Set<string>();
  for (let i = 0; i < m.hosts.length; i++) {
    const h = m.hosts[i]!;
    const key = `${h.ip}:${h.port}`;
    if (seen.has(key)) return fail('out_of_range', `hosts[${i}]: duplicate host ${key}`);
    seen.add(key);
  }
  return { ok: true, value: m };
}

export function validateSelfRegistration(m: unknown): Validated<SelfRegistration> {
  if (selfRegistrationCheck.Check(m)) return { ok: true, value: m };
  return rejection(selfRegistrationCheck, m, 'self-registration');
}
