/**
 * The ClickHouse schema of Lars on NATS as versioned migrations. Each
 * migration renders its DDL for one database and one server's `Features`, so
 * Debian's 18.16 and a modern server get the same tables and column names with
 * the best types each supports (see README.md beside this file).
 *
 * Rules for new migrations: append, never edit an applied one (the runner
 * stores a checksum and warns on drift); every statement must be safe to run
 * twice (`IF NOT EXISTS`), because several sink workers may start at once.
 *
 * This module imports nothing outside schemas/.
 */
import type { Features } from './features.ts';

/** Days each table keeps. TTL on servers that have it; the sink drops old partitions on the rest. */
export interface Retention {
  reportsDays: number;
  rollupDays: number;
  eventsDays: number;
  quarantineDays: number;
}

export const DEFAULT_RETENTION: Retention = {
  reportsDays: 30,
  rollupDays: 400,
  eventsDays: 400,
  quarantineDays: 30,
};

export interface RenderContext {
  /** Database name (already validated as an identifier). */
  db: string;
  features: Features;
  retention: Retention;
}

export interface Migration {
  version: number;
  name: string;
  statements(ctx: RenderContext): string[];
}

/** Table names, one place. */
export const TABLES = {
  migrations: 'schema_migrations',
  reports: 'reports',
  reportsIngest: 'reports_ingest',
  reportsIngestMv: 'reports_ingest_mv',
  rollup: 'reports_1m',
  rollupMv: 'reports_1m_mv',
  events: 'route_events',
  quarantine: 'quarantine',
  /** Since migration 6 the sink inserts here: the ingest row with the batch's attempt marks. */
  reportsIngestV2: 'reports_ingest_v2',
  reportsIngestV2Mv: 'reports_ingest_v2_mv',
  rollupV2Mv: 'reports_1m_v2_mv',
  /** One row per marked report (a retry or a hedge), with its attempt number and kind. */
  attempts: 'report_attempts',
  attemptsMv: 'report_attempts_mv',
  /** Since migration 7: each writer's fence; inserts whose fence is below the highest are dropped by the views. */
  sinkFences: 'sink_fences',
  /** Since migration 7 the sink inserts reports here: the v2 ingest row with its writer's fence first. */
  reportsIngestV3: 'reports_ingest_v3',
  reportsIngestV3Mv: 'reports_ingest_v3_mv',
  rollupV3Mv: 'reports_1m_v3_mv',
  attemptsV3Mv: 'report_attempts_v3_mv',
  /** Since migration 7 the sink inserts route events here, with its writer's fence. */
  eventsIngest: 'route_events_ingest',
  eventsIngestMv: 'route_events_ingest_mv',
} as const;

export interface RetentionRule {
  table: string;
  /** Partition key granularity: what the sink needs to drop old partitions itself where TTL is missing. */
  partitionBy: 'day' | 'month';
  retention: keyof Retention;
  /** The DateTime expression the TTL counts from. */
  ttlFrom(f: Features): string;
}

export const RETENTION_TABLES: readonly RetentionRule[] = [
  { table: TABLES.reports, partitionBy: 'day', retention: 'reportsDays', ttlFrom: (f) => (f.dateTime64 ? 'toDateTime(time)' : 'time') },
  { table: TABLES.rollup, partitionBy: 'month', retention: 'rollupDays', ttlFrom: () => 'minute' },
  { table: TABLES.events, partitionBy: 'month', retention: 'eventsDays', ttlFrom: (f) => (f.dateTime64 ? 'toDateTime(time)' : 'time') },
  { table: TABLES.quarantine, partitionBy: 'month', retention: 'quarantineDays', ttlFrom: () => 'time' },
  { table: TABLES.attempts, partitionBy: 'day', retention: 'reportsDays', ttlFrom: (f) => (f.dateTime64 ? 'toDateTime(time)' : 'time') },
];

function ttlOf(table: string, f: Features, retention: Retention): string {
  const rule = RETENTION_TABLES.find((r) => r.table === table);
  if (!rule || !f.ttl) return '';
  return ` TTL ${rule.ttlFrom(f)} + INTERVAL ${retention[rule.retention]} DAY`;
}

/** Names of the route-event figure columns (schemas/messages.ts `EventFigures`), in column order. */
export const EVENT_FIGURES = [
  'err_rate',
  'succ_rate',
  'window_err_rate',
  'consecutive_errors',
  'consecutive_successes',
  'latency_ms',
  'peer_latency_ms',
  'calls',
  'ejections',
  'ejection_ms',
] as const;

/** Blocks remembered for insert deduplication on servers with tokens. */
export const DEDUP_WINDOW = 1000;

// ---------------------------------------------------------------- type helpers

function timeType(f: Features): string {
  return f.dateTime64 ? "DateTime64(3, 'UTC')" : "DateTime('UTC')";
}
function ipType(f: Features): string {
  return f.ipv4Type ? 'IPv4' : 'UInt32';
}
function lc(f: Features): string {
  return f.lowCardinality ? 'LowCardinality(String)' : 'String';
}
/** `ts_ms`: stored where `time` has whole seconds only, derived where `time` keeps ms. */
function tsMsColumn(f: Features): string {
  return f.dateTime64 ? 'ts_ms UInt64 ALIAS toUnixTimestamp64Milli(time)' : 'ts_ms UInt64';
}
function dedupSettings(f: Features): string {
  return f.dedupToken ? ` SETTINGS non_replicated_deduplication_window = ${DEDUP_WINDOW}` : '';
}
/** The row time from epoch ms, as the `time` column's type. */
function timeFromMs(f: Features, ms: string): string {
  return f.dateTime64 ? `fromUnixTimestamp64Milli(toInt64(${ms}), 'UTC')` : `toDateTime(intDiv(${ms}, 1000), 'UTC')`;
}

/** Column list of the raw reports table, in insert order (ALIAS columns excluded). */
export function reportColumns(f: Features): string[] {
  const cols = ['time'];
  if (!f.dateTime64) cols.push('ts_ms');
  cols.push('modid', 'cmdid', 'ip', 'port', 'retcode', 'latency_ms', 'caller', 'zone', 'seq');
  return cols;
}

/** Column list of the route events table, in insert order. */
export function eventColumns(f: Features): string[] {
  const cols = ['time'];
  if (!f.dateTime64) cols.push('ts_ms');
  cols.push('modid', 'cmdid', 'ip', 'port', 'from_state', 'to_state', 'reason', 'version', 'sender');
  cols.push(...EVENT_FIGURES, 'extra_names', 'extra_values', 'seq', 'actor');
  return cols;
}

/** Column list of the reports ingest table (one row per report batch). */
export const INGEST_COLUMNS = ['ts', 'modid', 'cmdid', 'caller', 'zone', 'seq', 'host_ip', 'host_port', 'r_host', 'r_retcode', 'r_latency', 'r_offset'] as const;

/** Column list of the ingest table the sink writes since migration 6: the batch's attempt marks as three more parallel arrays. */
export const INGEST_V2_COLUMNS = [...INGEST_COLUMNS, 'a_index', 'a_attempt', 'a_kind'] as const;

/** Column list of the quarantine table. */
export const QUARANTINE_COLUMNS = ['time', 'stream', 'seq', 'subject', 'kind', 'detail', 'sink', 'payload'] as const;

// ---------------------------------------------------------------- migrations

/** The per-report expressions over `reports_ingest` after `ARRAY JOIN` of the report columns. */
const X_JOIN = 'ARRAY JOIN r_host AS x_host, r_retcode AS x_retcode, r_latency AS x_latency, r_offset AS x_offset';
const X_MS = 'ts + x_offset';
const X_IP = 'host_ip[x_host + 1]';
const X_PORT = 'host_port[x_host + 1]';
/** A marked report's time, after `ARRAY JOIN` of the attempt marks (`y_index`: the report's index). */
const Y_MS = 'ts + r_offset[y_index + 1]';

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'raw reports, ingest table and its view',
    statements: ({ db, features: f, retention }) => [
      `CREATE TABLE IF NOT EXISTS ${db}.${TABLES.reports} (
  time ${timeType(f)},
  ${tsMsColumn(f)},
  modid UInt32,
  cmdid UInt32,
  ip ${ipType(f)},
  port UInt16,
  retcode Int32,
  latency_ms Float32,
  caller ${lc(f)},
  zone ${lc(f)},
  seq UInt64
) ENGINE = MergeTree PARTITION BY toDate(time) ORDER BY (modid, cmdid, time)${ttlOf(TABLES.reports, f, retention)}${dedupSettings(f)}`,
      // One row per report batch, as it arrives: the batch's hosts and its
      // reports as parallel arrays, which the views below expand into one row
      // per call. Null engine: stores nothing.
      `CREATE TABLE IF NOT EXISTS ${db}.${TABLES.reportsIngest} (
  ts UInt64,
  modid UInt32,
  cmdid UInt32,
  caller String,
  zone String,
  seq UInt64,
  host_ip Array(${ipType(f)}),
  host_port Array(UInt16),
  r_host Array(UInt16),
  r_retcode Array(Int32),
  r_latency Array(Float32),
  r_offset Array(UInt32)
) ENGINE = Null`,
      `CREATE MATERIALIZED VIEW IF NOT EXISTS ${db}.${TABLES.reportsIngestMv} TO ${db}.${TABLES.reports} AS
SELECT
  ${timeFromMs(f, X_MS)} AS time,${f.dateTime64 ? '' : `\n  ${X_MS} AS ts_ms,`}
  modid,
  cmdid,
  ${X_IP} AS ip,
  ${X_PORT} AS port,
  x_retcode AS retcode,
  x_latency AS latency_ms,
  caller,
  zone,
  seq
FROM ${db}.${TABLES.reportsIngest} ${X_JOIN}`,
    ],
  },
  {
    version: 2,
    name: 'per-minute per-host rollup',
    statements: ({ db, features: f, retention }) => [
      `CREATE TABLE IF NOT EXISTS ${db}.${TABLES.rollup} (
  minute DateTime('UTC'),
  modid UInt32,
  cmdid UInt32,
  ip ${ipType(f)},
  port UInt16,
  calls AggregateFunction(count),
  errors AggregateFunction(sum, UInt64),
  latency_sum AggregateFunction(sum, Float64),
  latency_max AggregateFunction(max, Float32),
  latency AggregateFunction(quantileTDigest, Float32)
) ENGINE = AggregatingMergeTree PARTITION BY toYYYYMM(minute) ORDER BY (modid, cmdid, minute, ip, port)${ttlOf(TABLES.rollup, f, retention)}${dedupSettings(f)}`,
      // Fed from the ingest table, not from `reports`: 18.16 does not cascade
      // views, and one source keeps both versions alike.
      `CREATE MATERIALIZED VIEW IF NOT EXISTS ${db}.${TABLES.rollupMv} TO ${db}.${TABLES.rollup} AS
SELECT
  toDateTime(intDiv(${X_MS}, 60000) * 60, 'UTC') AS minute,
  modid,
  cmdid,
  ${X_IP} AS ip,
  ${X_PORT} AS port,
  countState() AS calls,
  sumState(toUInt64(x_retcode != 0)) AS errors,
  sumState(toFloat64(x_latency)) AS latency_sum,
  maxState(x_latency) AS latency_max,
  quantileTDigestState(x_latency) AS latency
FROM ${db}.${TABLES.reportsIngest} ${X_JOIN}
GROUP BY minute, modid, cmdid, ip, port`,
    ],
  },
  {
    version: 3,
    name: 'route events',
    statements: ({ db, features: f, retention }) => [
      `CREATE TABLE IF NOT EXISTS ${db}.${TABLES.events} (
  time ${timeType(f)},
  ${tsMsColumn(f)},
  modid UInt32,
  cmdid UInt32,
  ip ${ipType(f)},
  port UInt16,
  from_state ${lc(f)},
  to_state ${lc(f)},
  reason ${lc(f)},
  version UInt64,
  sender ${lc(f)},
${EVENT_FIGURES.map((n) => `  ${n} Nullable(Float64),`).join('\n')}
  extra_names Array(String),
  extra_values Array(Float64),
  seq UInt64
) ENGINE = MergeTree PARTITION BY toYYYYMM(time) ORDER BY (modid, cmdid, time)${ttlOf(TABLES.events, f, retention)}${dedupSettings(f)}`,
    ],
  },
  {
    version: 4,
    name: 'quarantine',
    statements: ({ db, features: f, retention }) => [
      `CREATE TABLE IF NOT EXISTS ${db}.${TABLES.quarantine} (
  time DateTime('UTC'),
  stream ${lc(f)},
  seq UInt64,
  subject String,
  kind ${lc(f)},
  detail String,
  sink String,
  payload String
) ENGINE = MergeTree PARTITION BY toYYYYMM(time) ORDER BY (stream, time)${ttlOf(TABLES.quarantine, f, retention)}${dedupSettings(f)}`,
    ],
  },
  {
    version: 5,
    name: 'route events: who asked',
    // The operator behind an admin_* transition (RouteEvent.by); empty for the node's own judgements.
    // 18.16 has no ADD COLUMN IF NOT EXISTS: the runner takes "column already exists" as done (two sinks may migrate at once).
    statements: ({ db, features: f }) => [`ALTER TABLE ${db}.${TABLES.events} ADD COLUMN actor ${lc(f)} DEFAULT ''`],
  },
  {
    version: 6,
    name: 'attempt marks: ingest table v2, report_attempts',
    // A second ingest table rather than new columns on the first: a sink of an
    // earlier version goes on inserting its rows into reports_ingest (whose
    // views stay), a new one inserts into reports_ingest_v2, and neither
    // loses or doubles a row while both run.
    statements: ({ db, features: f, retention }) => [
      `CREATE TABLE IF NOT EXISTS ${db}.${TABLES.attempts} (
  time ${timeType(f)},
  ${tsMsColumn(f)},
  modid UInt32,
  cmdid UInt32,
  ip ${ipType(f)},
  port UInt16,
  retcode Int32,
  latency_ms Float32,
  caller ${lc(f)},
  zone ${lc(f)},
  seq UInt64,
  attempt UInt8,
  kind UInt8
) ENGINE = MergeTree PARTITION BY toDate(time) ORDER BY (modid, cmdid, time)${ttlOf(TABLES.attempts, f, retention)}${dedupSettings(f)}`,
      ingestV2Table(db, f, TABLES.reportsIngestV2),
      ...ingestV2Views(db, f, TABLES.reportsIngestV2, { reports: TABLES.reportsIngestV2Mv, rollup: TABLES.rollupV2Mv, attempts: TABLES.attemptsMv }),
    ],
  },
  {
    version: 7,
    name: 'fenced ingest: sink_fences, reports_ingest_v3, route_events_ingest',
    // One sink writes a stream at a time (it holds the stream's writer lease); the fence
    // it records on taking over turns the inserts of every earlier writer into
    // no-ops, even one paused mid-batch that wakes up later: each view
    // compares the insert's fence with the highest recorded one when the
    // insert runs. The ingest tables of earlier versions and their views stay
    // (sinks of those versions are not fenced).
    statements: ({ db, features: f }) => {
      const where = (pipeline: string) => `WHERE fence >= (SELECT max(epoch) FROM ${db}.${TABLES.sinkFences} WHERE pipeline = '${pipeline}')`;
      const events = eventColumns(f).join(', ');
      return [
        `CREATE TABLE IF NOT EXISTS ${db}.${TABLES.sinkFences} (
  pipeline String,
  epoch UInt64,
  slot UInt32,
  sink String,
  time DateTime('UTC')
) ENGINE = MergeTree ORDER BY (pipeline, epoch)`,
        ingestV2Table(db, f, TABLES.reportsIngestV3, 'fence UInt64,\n  '),
        ...ingestV2Views(db, f, TABLES.reportsIngestV3, { reports: TABLES.reportsIngestV3Mv, rollup: TABLES.rollupV3Mv, attempts: TABLES.attemptsV3Mv }, where('reports')),
        `CREATE TABLE IF NOT EXISTS ${db}.${TABLES.eventsIngest} ENGINE = Null AS SELECT toUInt64(0) AS fence, ${events} FROM ${db}.${TABLES.events} WHERE 0`,
        `CREATE MATERIALIZED VIEW IF NOT EXISTS ${db}.${TABLES.eventsIngestMv} TO ${db}.${TABLES.events} AS\nSELECT ${events} FROM ${db}.${TABLES.eventsIngest} ${where('events')}`,
      ];
    },
  },
];

/** The ingest table of migration 6 (one row per report batch, with its attempt marks), `lead` columns first. */
function ingestV2Table(db: string, f: Features, table: string, lead = ''): string {
  return `CREATE TABLE IF NOT EXISTS ${db}.${table} (
  ${lead}ts UInt64,
  modid UInt32,
  cmdid UInt32,
  caller String,
  zone String,
  seq UInt64,
  host_ip Array(${ipType(f)}),
  host_port Array(UInt16),
  r_host Array(UInt16),
  r_retcode Array(Int32),
  r_latency Array(Float32),
  r_offset Array(UInt32),
  a_index Array(UInt16),
  a_attempt Array(UInt8),
  a_kind Array(UInt8)
) ENGINE = Null`;
}

/** The three views of an ingest table of migration 6's shape (raw reports, the rollup, the attempt marks), each filtered by `where` when given. */
  function ingestV2Views(db: string, f: Features, from: string, views: { reports: string; rollup: string; attempts: string }, where = ''): string[] {
  const w = where ? `\n${where}` : '';
  return [
    `CREATE MATERIALIZED VIEW IF NOT EXISTS ${db}.${views.reports} TO ${db}.${TABLES.reports} AS
SELECT
  ${timeFromMs(f, X_MS)} AS time,${f.dateTime64 ? '' : `\n  ${X_MS} AS ts_ms,`}
  modid,
  cmdid,
  ${X_IP} AS ip,
  ${X_PORT} AS port,
  x_retcode AS retcode,
  x_latency AS latency_ms,
  caller,
  zone,
  seq
FROM ${db}.${from} ${X_JOIN}${w}`,
    `CREATE MATERIALIZED VIEW IF NOT EXISTS ${db}.${views.rollup} TO ${db}.${TABLES.rollup} AS
SELECT
  toDateTime(intDiv(${X_MS}, 60000) * 60, 'UTC') AS minute,
  modid,
  cmdid,
  ${X_IP} AS ip,
  ${X_PORT} AS port,
  countState() AS calls,
  sumState(toUInt64(x_retcode != 0)) AS errors,
  sumState(toFloat64(x_latency)) AS latency_sum,
  maxState(x_latency) AS latency_max,
  quantileTDigestState(x_latency) AS latency
FROM ${db}.${from} ${X_JOIN}${w}
GROUP BY minute, modid, cmdid, ip, port`,
    `CREATE MATERIALIZED VIEW IF NOT EXISTS ${db}.${views.attempts} TO ${db}.${TABLES.attempts} AS
SELECT
  ${timeFromMs(f, Y_MS)} AS time,${f.dateTime64 ? '' : `\n  ${Y_MS} AS ts_ms,`}
  modid,
  cmdid,
  host_ip[r_host[y_index + 1] + 1] AS ip,
  host_port[r_host[y_index + 1] + 1] AS port,
  r_retcode[y_index + 1] AS retcode,
  r_latency[y_index + 1] AS latency_ms,
  caller,
  zone,
  seq,
  y_attempt AS attempt,
  y_kind AS kind
FROM ${db}.${from} ARRAY JOIN a_index AS y_index, a_attempt AS y_attempt, a_kind AS y_kind${w}`,
  ];
}

/** DDL of the table the runner records applied migrations in. */
export function migrationsTableDdl(db: string): string {
  return `CREATE TABLE IF NOT EXISTS ${db}.${TABLES.migrations} (
  version UInt32,
  name String,
  checksum String,
  server_version String,
  applied_at DateTime('UTC')
) ENGINE = MergeTree ORDER BY version`;
}

/** Legal database name: what the runner accepts before splicing it into DDL. */
export function isValidDatabaseName(name: string): boolean {
  return /^[A-Za-z_][A-Za-z0-9_]{0,62}$/.test(name);
}
