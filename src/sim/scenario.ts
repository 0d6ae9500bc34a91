/**
 * Balancing scenarios: the file format (JSON or YAML) a user writes to describe
 * hosts, load and caller timeouts, its TypeBox schema (the one definition:
 * types and validation come from it) and its parser. docs/simulate.md
 * documents every field.
 *
 * A scenario says what the world does (hosts' latencies, errors, capacity and
 * their changes over time; the callers' load and timeout), never how the
 * simulator works, except in `system` (the delays of the real system that a
 * virtual-time run has to model). A real-time runner reads the same file
 * and ignores `system`.
 */
import { Kind, Type, type Static, type TSchema } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { ValueErrorType, type ValueError } from '@sinclair/typebox/errors';
import { Value } from '@sinclair/typebox/value';
import { parse as parseYaml } from 'yaml';
import { resolveParams } from '../../actors/params.ts';
import { StrategyName } from '../../actors/strategies/index.ts';

const Ms = Type.Number({ minimum: 0 });

export const LatencySchema = Type.Union([
  Type.Object({ dist: Type.Literal('fixed'), ms: Ms }, { additionalProperties: false }),
  Type.Object({ dist: Type.Literal('normal'), mean_ms: Ms, sd_ms: Ms }, { additionalProperties: false }),
  Type.Object({ dist: Type.Literal('lognormal'), median_ms: Ms, sigma: Type.Number({ minimum: 0 }) }, { additionalProperties: false }),
  Type.Object({ dist: Type.Literal('exponential'), mean_ms: Ms }, { additionalProperties: false }),
  Type.Object(
    { dist: Type.Literal('choice'), ms: Type.Array(Ms, { minItems: 1 }), weights: Type.Optional(Type.Array(Type.Number({ minimum: 0 }), { minItems: 1 })) },
    { additionalProperties: false },
  ),
]);
/** How long a host takes to answer one call once it starts serving it. */
export type Latency = Static<typeof LatencySchema>;

export const ErrorsSchema = Type.Object(
  {
    /** Probability that a call fails (0..1). */
    rate: Type.Number({ minimum: 0, maximum: 1 }),
    /** A failing call answers after this long instead of the latency draw (fail fast); default: the latency draw. */
    latency_ms: Type.Optional(Ms),
  },
  { additionalProperties: false },
);
export type Errors = Static<typeof ErrorsSchema>;

export const StallsSchema = Type.Object(
  {
    /** Probability that a call (one that does not fail) stalls (0..1). */
    rate: Type.Number({ minimum: 0, maximum: 1 }),
    /** A stalled call's service time instead of the latency draw. */
    latency: LatencySchema,
  },
  { additionalProperties: false },
);
export type Stalls = Static<typeof StallsSchema>;

export const ChangeSchema = Type.Object(
  {
    /** Starts this many seconds into the run. */
    at_s: Type.Number({ minimum: 0 }),
    /** Lasts this long (default: to the end). */
    for_s: Type.Optional(Type.Number({ exclusiveMinimum: 0 })),
    /** Repeats with this period (flapping); needs for_s. */
    every_s: Type.Optional(Type.Number({ exclusiveMinimum: 0 })),
    latency: Type.Optional(LatencySchema),
    errors: Type.Optional(ErrorsSchema),
    capacity: Type.Optional(Type.Integer({ minimum: 1 })),
    /** Shown on the picture's change marks. */
    label: Type.Optional(Type.String({ maxLength: 64 })),
  },
  { additionalProperties: false },
);
/** A change of a host's behaviour for a while; overrides the host's own fields while active. */
export type Change = Static<typeof ChangeSchema>;

export const HostGroupSchema = Type.Object(
  {
    /** Label of the group's hosts (numbered when count > 1); default h1, h2, ... by position. */
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 32 })),
    /** Hosts alike in this group (default 1). */
    count: Type.Optional(Type.Integer({ minimum: 1, maximum: 1024 })),
    latency: LatencySchema,
    errors: Type.Optional(ErrorsSchema),
    /** Rare stalls (a pause, a collection, a flush): a call stalls with probability `rate` and takes a draw of `latency` instead. Absent: none. */
    stalls: Type.Optional(StallsSchema),
    /** Calls served at once; more wait in a FIFO queue. Absent: unlimited. */
    capacity: Type.Optional(Type.Integer({ minimum: 1 })),
    /** With a capacity: calls that would wait beyond this many queued are refused at once as overloaded (retcode -4). Absent: the queue is unbounded. */
    queue_limit: Type.Optional(Type.Integer({ minimum: 0 })),
    /** With a queue_limit: each refusal costs the host this much service time, ms, paid by the next call a slot of it starts (time spent refusing is not spent serving). Default 0. */
    refuse_ms: Type.Optional(Ms),
    /** Registry weight (default 100). */
    weight: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000 })),
    /** The host answers each call with its utilization, which the agent reports (default: when it has a capacity). */
    report_utilization: Type.Optional(Type.Boolean()),
    /** An attempt its caller aborts (a hedge that lost, an attempt past its timeout; callers with `call`): `stop`, the host stops working on it (default), or `finish`. */
    on_cancel: Type.Optional(Type.Union([Type.Literal('stop'), Type.Literal('finish')])),
    changes: Type.Optional(Type.Array(ChangeSchema)),
  },
  { additionalProperties: false },
);
export type HostGroup = Static<typeof HostGroupSchema>;

export const LoadSchema = Type.Union([
  Type.Object(
    {
      kind: Type.Literal('open'),
      rate_per_s: Type.Number({ exclusiveMinimum: 0 }),
      /** Poisson arrivals (default) or one call every 1/rate s. */
      arrivals: Type.Optional(Type.Union([Type.Literal('poisson'), Type.Literal('fixed')])),
      /** Other rates for a while (a surge): from at_s for for_s (to the end without it); a later one wins. */
      changes: Type.Optional(
        Type.Array(
          Type.Object(
            { at_s: Type.Number({ minimum: 0 }), for_s: Type.Optional(Type.Number({ exclusiveMinimum: 0 })), rate_per_s: Type.Number({ exclusiveMinimum: 0 }), label: Type.Optional(Type.String({ maxLength: 64 })) },
            { additionalProperties: false },
          ),
        ),
      ),
    },
    { additionalProperties: false },
  ),
  Type.Object(
    {
      kind: Type.Literal('closed'),
      /** Callers each with one call in flight at a time. */
      callers: Type.Integer({ minimum: 1 }),
      /** Pause between a caller's answer and its next call, ms (default 0). */
      think_ms: Type.Optional(Ms),
    },
    { additionalProperties: false },
  ),
]);
export type Load = Static<typeof LoadSchema>;

/** An open load's rate at `t` ms: its last change in force, else its own. */
export function rateAt(load: Load & { kind: 'open' }, t: number): number {
  let rate = load.rate_per_s;
  for (const c of load.changes ?? []) if (t >= c.at_s * 1000 && (c.for_s === undefined || t < (c.at_s + c.for_s) * 1000)) rate = c.rate_per_s;
  return rate;
}

export const SystemSchema = Type.Object(
  {
    /** Route node publish → agent's strategy updated, ms. */
    propagation_ms: Type.Optional(Ms),
    /** Agent batch sent → route actor ingests it, ms (one NATS hop). */
    report_delay_ms: Type.Optional(Ms),
    /** A batch leaves when its first report is this old, ms... */
    batch_max_delay_ms: Type.Optional(Ms),
    /** ...or when it holds this many reports. */
    batch_max_reports: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000 })),
    /** Route actor tick period, ms. */
    tick_ms: Type.Optional(Type.Number({ exclusiveMinimum: 0 })),
  },
  { additionalProperties: false },
);

/**
 * Callers that make calls under the route's call policy, as the SDK's
 * `agent.call` does (retries to another host within the budget, hedges,
 * shedding), instead of single picks. Absent: single picks.
 */
export const CallSchema = Type.Object(
  {
    /** Attempts of a call at most, the first included (default 3). */
    max_attempts: Type.Optional(Type.Integer({ minimum: 1, maximum: 10 })),
    /** The call may run twice: it is hedged after the route's hedge delay (default false). */
    idempotent: Type.Optional(Type.Boolean()),
    /** Whether a host's error may be retried (default true: as a connection error; a timeout always may). */
    retry_errors: Type.Optional(Type.Boolean()),
    /** A request waits for this many calls made at once, each to its own host (fan-out; default 1). */
    fanout: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000 })),
  },
  { additionalProperties: false },
);
export type CallSpec = Static<typeof CallSchema>;

export const ScenarioSchema = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 64 }),
    description: Type.Optional(Type.String()),
    /** Load runs this long, s... */
    duration_s: Type.Optional(Type.Number({ exclusiveMinimum: 0 })),
    /** ...or until this many calls were made (whichever comes first). */
    calls: Type.Optional(Type.Integer({ minimum: 1 })),
    load: LoadSchema,
    /** The caller gives up after this long and reports an error with this latency (default 1000). */
    timeout_ms: Type.Optional(Type.Number({ exclusiveMinimum: 0 })),
    /** Agents (processes picking hosts) the callers are spread over (default 4). */
    agents: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
    hosts: Type.Array(HostGroupSchema, { minItems: 1 }),
    route: Type.Optional(
      Type.Object(
        {
          profile: Type.Optional(Type.Union([Type.Literal('default'), Type.Literal('lars')])),
          params: Type.Optional(Type.Record(Type.String(), Type.Number())),
        },
        { additionalProperties: false },
      ),
    ),
    /** Strategies compared when none are named on the command line. */
    strategies: Type.Optional(Type.Array(Type.String())),
    seed: Type.Optional(Type.Integer({ minimum: 0, maximum: 0xffffffff })),
    system: Type.Optional(SystemSchema),
    /** Calls under the route's call policy (retries, hedges, fan-out); absent: single picks. */
    call: Type.Optional(CallSchema),
  },
  { additionalProperties: false },
);
export type Scenario = Static<typeof ScenarioSchema>;

/**
 * Defaults of the real system's delays. propagation_ms: the median route
 * propagation measured by `npm run bench -- core` (route_propagation_p50_ms,
 * 2.9 to 5.4 ms on the reference machine), rounded to 5; report_delay_ms: one
 * NATS hop on loopback; batching and tick: the agent's and node's defaults.
 */
export const SYSTEM_DEFAULTS = {
  propagation_ms: 5,
  report_delay_ms: 0.3,
  batch_max_delay_ms: 20,
  batch_max_reports: 1000,
  tick_ms: 100,
} as const;

export const SCENARIO_DEFAULTS = {
  timeout_ms: 1000,
  agents: 4,
  weight: 100,
} as const;

/** Strategies compared when neither the command line nor the scenario names any. */
export const DEFAULT_SIM_STRATEGIES: readonly StrategyName[] = [StrategyName.swrr, StrategyName.p2c, StrategyName.p2c_ewma, StrategyName.lars];

const check = TypeCompiler.Compile(ScenarioSchema);

export type ScenarioResult = { ok: true; scenario: Scenario } | { ok: false; error: string };

/** Problems named in one error message; the rest are counted. */
const MAX_PROBLEMS = 3;

/** A JSON pointer (`/hosts/0/latency`) as the field path docs/simulate.md uses (`hosts.0.latency`). */
function dotted(pointer: string): string {
  return pointer.replace(/^\//, '').replaceAll('/', '.');
}

/** A value as the error shows it: JSON, cut at 60 characters. */
function shown(v: unknown): string {
  if (v === undefined) return 'nothing';
  const j = JSON.stringify(v);
  return j.length > 60 ? `${j.slice(0, 57)}...` : j;
}

/** The literal a schema stands for, when it is one. */
function literalOf(schema: TSchema): string | number | boolean | undefined {
  return schema[Kind] === 'Literal' ? (schema as TSchema & { const: string | number | boolean }).const : undefined;
}

/**
 * What is wrong with `value` at `path` where the schema is a union: which
 * choice it must be (a union of literals), or, for a union of objects told
 * apart by one field (`dist`, `kind`), that field, or the first thing wrong
 * within the object that field chose.
 */
function unionProblem(path: string, schema: TSchema, value: unknown): { path: string; message: string } {
  const variants = (schema as { anyOf?: TSchema[] }).anyOf ?? [];
  const literals = variants.map(literalOf);
  if (variants.length > 0 && literals.every((l) => l !== undefined)) return { path, message: `must be one of ${literals.join(', ')}, got ${shown(value)}` };
  const props = variants.map((v) => (v as { properties?: Record<string, TSchema> }).properties ?? {});
  const key = Object.keys(props[0] ?? {}).find((k) => props.every((p) => p[k] !== undefined && literalOf(p[k]) !== undefined));
  if (key === undefined) return { path, message: 'matches none of the forms it may take' };
  const choices = props.map((p) => literalOf(p[key]!));
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { path, message: `must be an object with ${key} one of ${choices.join(', ')}, got ${shown(value)}` };
  }
  const tag = (value as Record<string, unknown>)[key];
  const i = choices.findIndex((c) => c === tag);
  if (i < 0) return { path: path ? `${path}.${key}` : key, message: `must be one of ${choices.join(', ')}, got ${shown(tag)}` };
  const inner = Value.Errors(variants[i]!, value).First();
  return inner ? problemOf(inner, path) : { path, message: 'invalid' };
}

/** One schema error as a field path and what is wrong there; `base` is the path the error's own is relative to. */
function problemOf(e: ValueError, base = ''): { path: string; message: string } {
  const own = dotted(e.path);
  const path = base && own ? `${base}.${own}` : base || own;
  if (e.type === ValueErrorType.Union) return unionProblem(path, e.schema, e.value);
  if (e.type === ValueErrorType.ObjectRequiredProperty) return { path, message: 'required, missing' };
  if (e.type === ValueErrorType.ObjectAdditionalProperties) return { path, message: 'unknown field' };
  return { path, message: `${e.message.replace(/^Expected/, 'expected')}, got ${shown(e.value)}` };
}

/**
 * The schema's complaints about a scenario, each field once (a missing field
 * is not also the wrong type), in the order of the file, as one line:
 * `name: required, missing; hosts.0.latency: must be an object with dist one of ...`.
 */
export function scenarioProblems(value: unknown): string {
  const seen = new Set<string>();
  const out: string[] = [];
  let more = 0;
  for (const e of check.Errors(value)) {
    const p = problemOf(e);
    const at = dotted(e.path);
    if (seen.has(at)) continue;
    seen.add(at);
    if (out.length < MAX_PROBLEMS) out.push(`${p.path || '(root)'}: ${p.message}`);
    else more++;
  }
  return `${out.join('; ')}${more > 0 ? `; and ${more} more` : ''}` || '(root): invalid';
}

/** Validates a parsed JSON value as a scenario: the schema, then the rules it cannot say. */
export function parseScenario(value: unknown): ScenarioResult {
  if (!check.Check(value)) return { ok: false, error: scenarioProblems(value) };
  const s = value;
  if (s.duration_s === undefined && s.calls === undefined) return { ok: false, error: 'duration_s or calls is required (the load stops at the first reached)' };
  let hosts = 0;
  for (const [gi, g] of s.hosts.entries()) {
    hosts += g.count ?? 1;
    const lat = [g.latency, ...(g.changes ?? []).flatMap((c) => (c.latency ? [c.latency] : []))];
    for (const l of lat) {
      if (l.dist === 'choice' && l.weights && l.weights.length !== l.ms.length) return { ok: false, error: `hosts.${gi}: choice weights must match ms in length` };
      if (l.dist === 'choice' && l.weights && !l.weights.some((w) => w > 0)) return { ok: false, error: `hosts.${gi}: choice weights must not all be 0` };
    }
    if (g.report_utilization === true && g.capacity === undefined && !(g.changes ?? []).some((c) => c.capacity !== undefined)) {
      return { ok: false, error: `hosts.${gi}: report_utilization needs a capacity (utilization is the share of it in use)` };
    }
    for (const [ci, c] of (g.changes ?? []).entries()) {
      if (c.every_s !== undefined && c.for_s === undefined) return { ok: false, error: `hosts.${gi}.changes.${ci}: every_s needs for_s` };
      if (c.every_s !== undefined && c.for_s! > c.every_s) return { ok: false, error: `hosts.${gi}.changes.${ci}: for_s must not exceed every_s` };
    }
  }
  if (hosts > 1024) return { ok: false, error: `at most 1024 hosts, got ${hosts}` };
  const profile = s.route?.profile ?? 'default';
  const p = resolveParams(profile, s.route?.params ?? {});
  if (!p.ok) return { ok: false, error: `route.params: ${p.error}` };
  for (const n of s.strategies ?? []) {
    if (!isStrategyName(n)) return { ok: false, error: `strategies: unknown strategy ${JSON.stringify(n)}; use ${Object.values(StrategyName).join(', ')}` };
  }
  return { ok: true, scenario: s };
}

/** The formats a scenario file may be written in. */
export type ScenarioFormat = 'json' | 'yaml';

/** The format of a scenario file by its name: `.yaml` or `.yml` is YAML, anything else JSON. */
export function scenarioFormatOf(path: string): ScenarioFormat {
  return /\.ya?ml$/i.test(path) ? 'yaml' : 'json';
}

/** Parses scenario text, JSON or YAML (1.2: a superset of JSON; duplicate keys and more than 100 aliases are errors). */
export function parseScenarioText(text: string, format: ScenarioFormat = 'json'): ScenarioResult {
  let v: unknown;
  try {
    v = format === 'yaml' ? parseYaml(text) : JSON.parse(text);
  } catch (err) {
    // the YAML parser's message ends with a code frame: its first line says what and where
    return { ok: false, error: `not ${format === 'yaml' ? 'YAML' : 'JSON'}: ${(err as Error).message.split('\n')[0]!.replace(/:$/, '')}` };
  }
  return parseScenario(v);
}

export function isStrategyName(n: string): n is StrategyName {
  return (Object.values(StrategyName) as string[]).includes(n);
}

/** The start and end times of every change, ms, with their labels (for the picture's marks), before `endMs`. */
export function changeMarks(s: Scenario, endMs: number): Array<{ t: number; label: string }> {
  const marks: Array<{ t: number; label: string }> = [];
  let hostNo = 0;
  for (const g of s.hosts) {
    const n = g.count ?? 1;
    const who = g.name ?? (n === 1 ? `h${hostNo + 1}` : `h${hostNo + 1}..h${hostNo + n}`);
    for (const c of g.changes ?? []) {
      const label = c.label ?? `${who} changes`;
      const period = c.every_s === undefined ? Infinity : c.every_s * 1000;
      for (let t = c.at_s * 1000; t < endMs; t += period) {
        marks.push({ t, label });
        if (c.for_s !== undefined && t + c.for_s * 1000 < endMs) marks.push({ t: t + c.for_s * 1000, label: `${who} back` });
        if (!Number.isFinite(period)) break;
      }
    }
    hostNo += n;
  }
  for (const c of s.load.kind === 'open' ? (s.load.changes ?? []) : []) {
    if (c.at_s * 1000 < endMs) marks.push({ t: c.at_s * 1000, label: c.label ?? `load ${c.rate_per_s}/s` });
    if (c.for_s !== undefined && (c.at_s + c.for_s) * 1000 < endMs) marks.push({ t: (c.at_s + c.for_s) * 1000, label: 'load back' });
  }
  return marks.sort((a, b) => a.t - b.t);
}
