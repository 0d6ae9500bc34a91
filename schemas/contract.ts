/**
 * The one definition of every wire message of the Lars-on-NATS contract
 * (version 1), as TypeBox schemas. The TypeScript types (`Static<>`), the
 * runtime validators (messages.ts, through TypeBox's compiler) and the
 * committed `*.schema.json` files (generate.ts) all come from here.
 *
 * Rules JSON Schema cannot express are listed in each message's
 * `description` and checked in code next to the compiled schema
 * (messages.ts): they are few and cheap.
 *
 * This module imports TypeBox and the contract's own subjects and values
 * (contract-values.ts) modules only.
 */
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { UINT32_MAX } from './subjects.ts';
import { SCHEMA_VERSION, LIMITS, HostState, Profile, PickStrategy, Reason, AttemptKind, ReportSide, RejectKind, AdminMark, SelfState } from './contract-values.ts';

export * from './contract-values.ts';

/**
 * The reject kind of any failed constraint on a schema, when it is not the
 * default one (see `rejectKindOf` in messages.ts). A symbol key, so it never
 * reaches the JSON Schema files.
 */
export const RejectAs: unique symbol = Symbol.for('lars.contract.rejectAs');

function rejectAs<T extends TSchema>(schema: T, kind: RejectKind): T {
  (schema as T & { [RejectAs]?: RejectKind })[RejectAs] = kind;
  return schema;
}

// ------------------------------------------------------------------ fields

/** Dotted-decimal IPv4 without leading zeros (JSON Schema `pattern`). */
export const IPV4_PATTERN = '^(25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)(\\.(25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)){3}$';

const Version = rejectAs(Type.Literal(SCHEMA_VERSION, { description: 'schema version' }), 'bad_version');
const Uint32 = () => Type.Integer({ minimum: 0, maximum: UINT32_MAX });
const Sender = () => Type.String({ minLength: 1, maxLength: LIMITS.maxSenderLength, description: 'id of the process that wrote the message' });
const TimeMs = (description: string) => Type.Number({ minimum: 0, maximum: LIMITS.maxTimeMs, description });
const Ipv4 = () => Type.String({ maxLength: 15, pattern: IPV4_PATTERN, description: 'IPv4, dotted decimal, no leading zeros' });
const Port = () => Type.Integer({ minimum: 1, maximum: 65535 });
const Weight = () => Type.Integer({ minimum: LIMITS.minWeight, maximum: LIMITS.maxWeight });
/** Absent and nil both mean "no zone" (msgpack writers in other languages often send nil). */
const Zone = () => Type.Optional(Type.Union([Type.String({ maxLength: LIMITS.maxZoneLength }), Type.Null()]));
const RouteVersion = (description: string) => Type.Integer({ minimum: 1, maximum: LIMITS.maxVersion, description });
const HostStateSchema = () => Type.Union(Object.values(HostState).map((s) => Type.Literal(s)));
export const ProfileSchema = () => Type.Union([Type.Literal(Profile.default), Type.Literal(Profile.lars)]);
const StrategySchema = (description: string) => Type.Union(Object.values(PickStrategy).map((s) => Type.Literal(s)), { description });
/**
 * Readers accept any short string as a reason, so a reason added later does
 * not make older agents drop whole route states; writers send a `Reason`.
 */
const ReasonSchema = () =>
  Type.Unsafe<Reason>(Type.String({ maxLength: LIMITS.maxReasonLength, description: `one of: ${Object.values(Reason).join(', ')}` }));

// ---------------------------------------------------------------- messages

/**
 * One call result inside a batch: `[host_index, retcode, latency_ms, offset_ms]`.
 * Any value of the tuple that is a number but not an allowed one (fraction,
 * NaN, out of bounds) is `out_of_range`.
 */
export const ReportTupleSchema = Type.Tuple(
  [
    rejectAs(Type.Integer({ minimum: 0, description: 'host_index: index into hosts (< hosts.length, checked in code)' }), 'out_of_range'),
    rejectAs(Type.Integer({ minimum: LIMITS.minRetcode, maximum: LIMITS.maxRetcode, description: 'retcode: 0 success, anything else an error (int32, Lars)' }), 'out_of_range'),
    rejectAs(Type.Number({ minimum: 0, maximum: LIMITS.maxLatencyMs, description: 'latency_ms' }), 'out_of_range'),
    rejectAs(Type.Integer({ minimum: 0, maximum: LIMITS.maxOffsetMs, description: 'offset_ms: the call ended at ts + offset_ms' }), 'out_of_range'),
  ],
  { description: '[host_index, retcode, latency_ms, offset_ms]' },
);

/**
 * One host's own report of how busy it is: `[host_index, utilization]`,
 * utilization from 0 (idle) to 1 (fully busy). Any value of the pair that is
 * a number but not an allowed one (fraction of an index, NaN, out of bounds)
 * is `out_of_range`.
 */
export const UtilizationTupleSchema = Type.Tuple(
  [
    rejectAs(Type.Integer({ minimum: 0, description: 'host_index: index into hosts (< hosts.length, checked in code)' }), 'out_of_range'),
    rejectAs(
      Type.Number({ minimum: 0, maximum: 1, description: 'utilization: the busy share of the host, 0..1, as it reported it with the answer to one of the calls of the batch (the latest one)' }),
      'out_of_range',
    ),
  ],
  { description: '[host_index, utilization]' },
);

/**
 * One report's attempt mark inside a batch: `[report_index, attempt, kind]`.
 * Any value that is a number but not an allowed one is `out_of_range`.
 */
export const AttemptTupleSchema = Type.Tuple(
  [
    rejectAs(Type.Integer({ minimum: 0, description: 'report_index: index into reports (< reports.length, checked in code)' }), 'out_of_range'),
    rejectAs(Type.Integer({ minimum: 1, maximum: LIMITS.maxAttempt, description: 'attempt: 1 for the first attempt of a logical call, 2 for the next, ...' }), 'out_of_range'),
    rejectAs(
      Type.Union([Type.Literal(AttemptKind.first), Type.Literal(AttemptKind.retry), Type.Literal(AttemptKind.hedge)], { description: 'kind: 0 first attempt, 1 retry, 2 hedge' }),
      'out_of_range',
    ),
  ],
  { description: '[report_index, attempt, kind]' },
);

export const ReportBatchSchema = Type.Object(
  {
    v: Version,
    sender: Sender(),
    modid: Uint32(),
    cmdid: Uint32(),
    ts: TimeMs('batch base time, ms since the Unix epoch'),
    zone: Zone(),
    hosts: Type.Array(Type.Tuple([Ipv4(), Port()]), {
      minItems: 1,
      maxItems: LIMITS.maxBatchHosts,
      description: 'the distinct hosts the reports refer to: [ip, port]',
    }),
    reports: Type.Array(ReportTupleSchema, { minItems: 1, maxItems: LIMITS.maxBatchReports }),
    utilization: Type.Optional(
      Type.Array(UtilizationTupleSchema, {
        maxItems: LIMITS.maxBatchHosts,
        description:
          "optional: the utilization the hosts reported with their answers (at most one pair per host is written; a reader takes each pair as one sample); the route node turns it into load-driven pick weights. Absent: the hosts' utilization is not known",
      }),
    ),
    side: Type.Optional(
      Type.Union([Type.Literal(ReportSide.client), Type.Literal(ReportSide.server)], {
        description:
          "optional: who wrote the batch: 'server' when the host that served the calls reported them itself (a server-side reporter, for callers that report nothing, such as proxyless gRPC over xDS); absent or 'client': the callers",
      }),
    ),
    attempts: Type.Optional(
      Type.Array(AttemptTupleSchema, {
        maxItems: LIMITS.maxBatchReports,
        description:
          'optional: attempt marks of the reports that were not first attempts (retries and hedges of one logical call), at most one per report; a report without a mark is a first attempt. Absent: every report is a first attempt',
      }),
    ),
  },
  {
    title: 'ReportBatch',
    description:
      'A batch of call results for one route, agent → route node. Subject <prefix>.report.<partition>.<modid>.<cmdid>. ' +
      'Checked in code as well: every reports[i][0] and utilization[i][0] (host_index) is < hosts.length; every attempts[i][0] (report_index) is < reports.length.',
  },
);

export const RouteHostSchema = Type.Object({
  ip: Ipv4(),
  port: Port(),
  weight: Weight(),
  zone: Zone(),
  state: HostStateSchema(),
  reason: ReasonSchema(),
  since: TimeMs('when the host entered state, ms since the Unix epoch'),
  pick_weight: Type.Number({
    minimum: 0,
    maximum: LIMITS.maxWeight,
    description:
      'the weight agents pick with: weight when healthy (or the load-driven weight when the hosts report their utilization, and less during slow start), a fraction when probing, 0 when overloaded or draining; in panic every non-draining host gets weight',
  }),
  trial_agent: Type.Optional(
    Type.String({
      minLength: 1,
      maxLength: LIMITS.maxSenderLength,
      description:
        "optional, probing hosts outside panic: the id (report batches' sender) of the one agent that may send the host trial calls now; every other agent picks it with weight 0. Absent: every agent may",
    }),
  ),
});

export const RouteStateSchema = Type.Object(
  {
    v: Version,
    sender: Sender(),
    modid: Uint32(),
    cmdid: Uint32(),
    version: RouteVersion('monotonic per route; agents keep the highest they have seen'),
    ts: TimeMs('ms since the Unix epoch'),
    profile: ProfileSchema(),
    panic: Type.Boolean({ description: 'too few hosts are healthy: agents spread over every non-draining host' }),
    removed: Type.Boolean({ description: 'the route was deleted from the registry; agents forget it' }),
    probe_num: Type.Integer({ minimum: 0, description: "Lars' probe_num: the lars strategy sends one pick in probe_num + 1 to an overloaded host" }),
    strategy: Type.Optional(
      StrategySchema("the pick strategy agents use for this route unless their caller overrides it (the registry entry's, or 'lars' for a lars-profile route that names none); absent: the agent's default"),
    ),
    retry_budget: Type.Optional(
      Type.Number({
        minimum: 0,
        maximum: LIMITS.maxRetryBudget,
        description:
          "optional call policy: retries an agent may add per first attempt of the route, over the route's sliding window (computed by the route node from every caller's reports). Absent: the node does not compute budgets; the agent keeps its own default",
      }),
    ),
    retry_floor: Type.Optional(
      Type.Number({ minimum: 0, maximum: LIMITS.maxRetryFloor, description: 'optional call policy: retries per second an agent may make whatever its first attempts (its share of the route-wide floor)' }),
    ),
    hedge_delay_ms: Type.Optional(
      Type.Number({
        minimum: 0,
        maximum: LIMITS.maxLatencyMs,
        description: "optional call policy: an idempotent call without an answer after this long, ms, may be hedged to another host (a percentile of the route's measured latency, bounded). Absent: no hedging",
      }),
    ),
    hedge_budget: Type.Optional(Type.Number({ minimum: 0, maximum: 1, description: 'optional call policy: hedges an agent may add per first attempt of the route, over the sliding window' })),
    shed: Type.Optional(
      Type.Number({
        minimum: 0,
        maximum: 1,
        description:
          "optional call policy: the route is shedding: the share of new calls an agent refuses locally (client-side adaptive throttling over the route's accept ratio). Absent or 0: not shedding",
      }),
    ),
    hosts: Type.Array(RouteHostSchema, { maxItems: LIMITS.maxRouteHosts }),
  },
  {
    title: 'RouteState',
    description: 'Full effective route, route node → agents. Subject <prefix>.route.<modid>.<cmdid> and KV <prefix>_routes key <modid>.<cmdid>.',
  },
);

const Figure = () => Type.Number();
export const EventFiguresSchema = Type.Object(
  {
    err_rate: Type.Optional(Figure()),
    succ_rate: Type.Optional(Figure()),
    window_err_rate: Type.Optional(Figure()),
    consecutive_errors: Type.Optional(Figure()),
    consecutive_successes: Type.Optional(Figure()),
    latency_ms: Type.Optional(Figure()),
    peer_latency_ms: Type.Optional(Figure()),
    calls: Type.Optional(Figure()),
    ejections: Type.Optional(Figure()),
    ejection_ms: Type.Optional(Figure()),
  },
  { additionalProperties: Figure(), description: 'figures behind a transition: finite numbers, each absent when not applicable' },
);

const StateOrNone = () => Type.Union([Type.Literal('none'), ...Object.values(HostState).map((s) => Type.Literal(s))]);

export const RouteEventSchema = Type.Object(
  {
    v: Version,
    sender: Sender(),
    modid: Uint32(),
    cmdid: Uint32(),
    ts: TimeMs('ms since the Unix epoch'),
    ip: Ipv4(),
    port: Port(),
    from: StateOrNone(),
    to: StateOrNone(),
    reason: ReasonSchema(),
    version: RouteVersion('the route version that carries this transition'),
    figures: EventFiguresSchema,
    by: Type.Optional(
      Type.String({ minLength: 1, maxLength: LIMITS.maxSenderLength, description: "who asked, for an operator's action (reasons admin_*): the registry's admin.by, or updated_by for undrain and clear" }),
    ),
  },
  {
    title: 'RouteEvent',
    description: "One host state transition, route node → anyone. Subject <prefix>.event.<modid>.<cmdid>. from 'none': the host just appeared; to 'none': it left the route.",
  },
);

export const RegistryHostSchema = Type.Object({
  ip: Ipv4(),
  port: Port(),
  weight: Weight(),
  zone: Zone(),
  admin: Type.Optional(
    Type.Object(
      {
        state: Type.Union([Type.Literal(AdminMark.drained), Type.Literal(AdminMark.ejected)]),
        by: Type.String({ minLength: 1, maxLength: LIMITS.maxSenderLength, description: 'who did it' }),
        ts: TimeMs('when, ms since the Unix epoch'),
      },
      { description: 'an operator action in force on the host (lars host drain / eject)' },
    ),
  ),
});

export const RegistryEntrySchema = Type.Object(
  {
    v: Version,
    modid: Uint32(),
    cmdid: Uint32(),
    profile: Type.Optional(ProfileSchema()),
    params: Type.Optional(Type.Record(Type.String(), Type.Number(), { description: "overrides of the profile's parameters, by parameter name" })),
    strategy: Type.Optional(StrategySchema('the pick strategy agents should use for this route (default: lars for the lars profile, else the agent\'s default)')),
    hosts: Type.Array(RegistryHostSchema, { maxItems: LIMITS.maxRouteHosts }),
    updated_by: Type.String({ description: 'who wrote the entry' }),
    ts: TimeMs('when, ms since the Unix epoch'),
  },
  {
    title: 'RegistryEntry',
    description:
      'Admin-set hosts of one route. KV <prefix>_registry key <modid>.<cmdid>. ' +
      'Checked in code as well: no two hosts share the same ip:port.',
  },
);

export const SelfRegistrationSchema = Type.Object(
  {
    v: Version,
    modid: Uint32(),
    cmdid: Uint32(),
    ip: Ipv4(),
    port: Port(),
    weight: Weight(),
    zone: Zone(),
    state: Type.Union([Type.Literal(SelfState.up), Type.Literal(SelfState.draining)]),
    instance: Type.String({ minLength: 1, maxLength: LIMITS.maxInstanceLength, description: 'who registered (the service instance or sidecar), for operators' }),
    ttl_ms: Type.Integer({ minimum: LIMITS.minSelfTtlMs, maximum: LIMITS.maxSelfTtlMs, description: 'the host leaves the route when no heartbeat came for this long' }),
    ts: TimeMs('when the heartbeat was sent, ms since the Unix epoch'),
  },
  {
    title: 'SelfRegistration',
    description:
      'A host that registered itself for a route (elastic scaling), refreshed by heartbeats. ' +
      'KV <prefix>_selfreg key <modid>.<cmdid>.<ip with - for .>_<port>. Route nodes merge these hosts with the admin registry; ' +
      'an admin entry for the same ip:port wins.',
  },
);

/**
 * One call result as a local service posts it to the sidecar
 * (`POST /v1/report`, JSON). Unknown fields are refused, so a typo is not
 * silently dropped.
 */
export const PostedReportSchema = Type.Object(
  {
    modid: Uint32(),
    cmdid: Uint32(),
    ip: Ipv4(),
    port: Port(),
    retcode: Type.Integer({ minimum: LIMITS.minRetcode, maximum: LIMITS.maxRetcode, description: 'retcode: 0 success, anything else an error (int32, Lars)' }),
    latency_ms: Type.Optional(Type.Number({ minimum: 0, maximum: LIMITS.maxLatencyMs, description: 'latency of the call, ms; absent: 0' })),
    utilization: Type.Optional(Type.Number({ minimum: 0, maximum: 1, description: "the host's busy share it answered with, 0..1; the route node weighs hosts by it" })),
  },
  {
    title: 'PostedReport',
    description: 'One call result posted to the sidecar (POST /v1/report, JSON), alone or in a PostedReports batch.',
    additionalProperties: false,
  },
);

export const PostedReportsSchema = Type.Object(
  { reports: Type.Array(PostedReportSchema, { maxItems: LIMITS.maxBatchReports }) },
  { title: 'PostedReports', description: 'Several call results posted to the sidecar at once (POST /v1/report, JSON): all are taken or none.', additionalProperties: false },
);

/** One call result inside a batch: `[host_index, retcode, latency_ms, offset_ms]`. */
export type ReportTuple = Static<typeof ReportTupleSchema>;
/** One report's attempt mark inside a batch: `[report_index, attempt, kind]`. */
export type AttemptTuple = Static<typeof AttemptTupleSchema>;
/** One host's reported utilization inside a batch: `[host_index, utilization]`. */
export type UtilizationTuple = Static<typeof UtilizationTupleSchema>;
/** A batch of call results for one route. Subject `<prefix>.report.<partition>.<modid>.<cmdid>`. */
export type ReportBatch = Static<typeof ReportBatchSchema>;
/** One host as published in the effective route. */
export type RouteHost = Static<typeof RouteHostSchema>;
/** Full effective route. Subject `<prefix>.route.<modid>.<cmdid>` and KV `<prefix>_routes` key `<modid>.<cmdid>`. */
export type RouteState = Static<typeof RouteStateSchema>;
/** Figures behind a transition (all numbers; absent when not applicable). */
export type EventFigures = Static<typeof EventFiguresSchema>;
/** One host state transition. Subject `<prefix>.event.<modid>.<cmdid>`. */
export type RouteEvent = Static<typeof RouteEventSchema>;
export type RegistryHost = Static<typeof RegistryHostSchema>;
/** Admin-set hosts of one route. KV `<prefix>_registry` key `<modid>.<cmdid>`. */
export type RegistryEntry = Static<typeof RegistryEntrySchema>;
/** A self-registered host. KV `<prefix>_selfreg` key `<modid>.<cmdid>.<ip-dashed>_<port>`. */
export type SelfRegistration = Static<typeof SelfRegistrationSchema>;

/** One call result posted to the sidecar (`POST /v1/report`). */
export type PostedReport = Static<typeof PostedReportSchema>;
/** Call results posted to the sidecar at once: `{"reports": [...]}`. */
export type PostedReports = Static<typeof PostedReportsSchema>;

/** Every message schema, by the base name of its `.schema.json` file. */
export const MESSAGE_SCHEMAS = {
  'report-batch': ReportBatchSchema,
  'route-state': RouteStateSchema,
  'route-event': RouteEventSchema,
  'registry-entry': RegistryEntrySchema,
  'self-registration': SelfRegistrationSchema,
  'posted-report': PostedReportSchema,
  'posted-reports': PostedReportsSchema,
} as const;
