/**
 * The common analyst questions behind `lars stats`, as SQL that runs the same
 * on ClickHouse 18.16 and on modern servers/chdb (see docs/analytics.md for
 * the cookbook these come from). Time windows are computed from an injected
 * clock, so tests get exact windows.
 */
import { TABLES } from '../../schemas/clickhouse/migrations.ts';
import { isUint32 } from '../../schemas/subjects.ts';
import type { AnalyticsEngine } from './engine.ts';

export const StatsKind = {
  errors: 'errors',
  latency: 'latency',
  ejections: 'ejections',
  callers: 'callers',
  events: 'events',
  deploy: 'deploy',
  quarantine: 'quarantine',
} as const;
export type StatsKind = (typeof StatsKind)[keyof typeof StatsKind];

export interface StatsParams {
  route?: { modid: number; cmdid: number };
  /** Window start, epoch ms. */
  fromMs: number;
  /** For `deploy`: the deploy time, epoch ms, and the window on each side. */
  atMs?: number;
  windowMs?: number;
  limit: number;
}

export interface StatsSpec {
  kind: StatsKind;
  summary: string;
  /** Default look-back when no --since is given, ms; 'today' = since 00:00 UTC. */
  defaultSince: number | 'today';
  columns: string[];
  /** Columns holding numbers (18.16 sends 64-bit integers as strings). */
  numeric: string[];
  sql(db: string, p: StatsParams): string;
}

function sec(ms: number): number {
  return Math.floor(ms / 1000);
}

function routeFilter(p: StatsParams): string {
  return p.route ? ` AND modid = ${p.route.modid} AND cmdid = ${p.route.cmdid}` : '';
}

const HOUR = 3_600_000;

export const STATS: Record<StatsKind, StatsSpec> = {
  errors: {
    kind: StatsKind.errors,
    summary: 'error rate per host (per-minute rollup)',
    defaultSince: HOUR,
    columns: ['modid', 'cmdid', 'host', 'port', 'calls', 'errors', 'error_rate'],
    numeric: ['modid', 'cmdid', 'port', 'calls', 'errors', 'error_rate'],
    sql: (db, p) =>
      `SELECT modid, cmdid, IPv4NumToString(ip) AS host, port, countMerge(calls) AS calls, sumMerge(errors) AS errors, round(errors / calls, 4) AS error_rate
FROM ${db}.${TABLES.rollup}
WHERE minute >= toDateTime(${sec(p.fromMs)})${routeFilter(p)}
GROUP BY modid, cmdid, ip, port
ORDER BY error_rate DESC, calls DESC, host, port
LIMIT ${p.limit}`,
  },
  latency: {
    kind: StatsKind.latency,
    summary: 'p50/p90/p99 latency per route per minute (per-minute rollup)',
    defaultSince: HOUR,
    columns: ['minute', 'modid', 'cmdid', 'calls', 'p50_ms', 'p90_ms', 'p99_ms', 'max_ms'],
    numeric: ['modid', 'cmdid', 'calls', 'p50_ms', 'p90_ms', 'p99_ms', 'max_ms'],
    sql: (db, p) =>
      `SELECT minute, modid, cmdid, countMerge(calls) AS calls,
  round(quantileTDigestMerge(0.5)(latency), 2) AS p50_ms,
  round(quantileTDigestMerge(0.9)(latency), 2) AS p90_ms,
  round(quantileTDigestMerge(0.99)(latency), 2) AS p99_ms,
  round(maxMerge(latency_max), 2) AS max_ms
FROM ${db}.${TABLES.rollup}
WHERE minute >= toDateTime(${sec(p.fromMs)})${routeFilter(p)}
GROUP BY minute, modid, cmdid
ORDER BY modid, cmdid, minute
LIMIT ${p.limit}`,
  },
  ejections: {
    kind: StatsKind.ejections,
    summary: 'hosts ejected (to overloaded) and why',
    defaultSince: 'today',
    columns: ['time', 'modid', 'cmdid', 'host', 'port', 'from_state', 'reason', 'err_rate', 'consecutive_errors', 'latency_ms', 'sender'],
    numeric: ['modid', 'cmdid', 'port', 'err_rate', 'consecutive_errors', 'latency_ms'],
    sql: (db, p) =>
      `SELECT time, modid, cmdid, IPv4NumToString(ip) AS host, port, from_state, reason, err_rate, consecutive_errors, latency_ms, sender
FROM ${db}.${TABLES.events}
WHERE to_state = 'overloaded' AND time >= toDateTime(${sec(p.fromMs)})${routeFilter(p)}
ORDER BY time, modid, cmdid, host, port
LIMIT ${p.limit}`,
  },
  callers: {
    kind: StatsKind.callers,
    summary: 'callers seeing the most errors (raw reports)',
    defaultSince: HOUR,
    columns: ['caller', 'calls', 'errors', 'error_rate'],
    numeric: ['calls', 'errors', 'error_rate'],
    sql: (db, p) =>
      `SELECT caller, count() AS calls, countIf(retcode != 0) AS errors, round(errors / calls, 4) AS error_rate
FROM ${db}.${TABLES.reports}
WHERE time >= toDateTime(${sec(p.fromMs)})${routeFilter(p)}
GROUP BY caller
ORDER BY errors DESC, calls DESC, caller
LIMIT ${p.limit}`,
  },
  events: {
    kind: StatsKind.events,
    summary: 'route events, newest first (the audit trail)',
    defaultSince: 24 * HOUR,
    columns: ['time', 'modid', 'cmdid', 'host', 'port', 'from_state', 'to_state', 'reason', 'version', 'sender', 'actor'],
    numeric: ['modid', 'cmdid', 'port', 'version'],
    sql: (db, p) =>
      `SELECT time, modid, cmdid, IPv4NumToString(ip) AS host, port, from_state, to_state, reason, version, sender, actor
FROM ${db}.${TABLES.events}
WHERE time >= toDateTime(${sec(p.fromMs)})${routeFilter(p)}
ORDER BY time DESC, version DESC
LIMIT ${p.limit}`,
  },
  deploy: {
    kind: StatsKind.deploy,
    summary: 'error rate and latency before vs after a deploy (--at, --window)',
    defaultSince: HOUR,
    columns: ['period', 'calls', 'errors', 'error_rate', 'p50_ms', 'p99_ms'],
    numeric: ['calls', 'errors', 'error_rate', 'p50_ms', 'p99_ms'],
    sql: (db, p) => deploySql(db, p),
  },
  quarantine: {
    kind: StatsKind.quarantine,
    summary: 'quarantined messages by stream and reason',
    defaultSince: 24 * HOUR,
    columns: ['stream', 'kind', 'messages', 'first', 'last'],
    numeric: ['messages'],
    sql: (db, p) =>
      `SELECT stream, kind, count() AS messages, min(time) AS first, max(time) AS last
FROM ${db}.${TABLES.quarantine}
WHERE time >= toDateTime(${sec(p.fromMs)})
GROUP BY stream, kind
ORDER BY messages DESC, stream, kind
LIMIT ${p.limit}`,
  },
};

const MINUTE = 60_000;

/**
 * Before [at − window, at) and after [at, at + window), to the millisecond:
 * the whole minutes of each side from the per-minute rollup, the part
 * minutes at its ends from the raw reports (a few minutes of rows at most),
 * merged as aggregate states. Rounding `at` to the minute moved calls to the
 * wrong side, and dropped the minute still running when the after side ends
 * now (the default `--at`).
 */
function deploySql(db: string, p: StatsParams): string {
  const at = Math.round(p.atMs ?? 0);
  const w = Math.max(1, Math.round(p.windowMs ?? 30 * MINUTE));
  const whole: string[] = [];
  const parts: string[] = [];
  for (const [a, b] of [
    [at - w, at],
    [at, at + w],
  ] as const) {
    const m0 = Math.ceil(a / MINUTE) * MINUTE;
    const m1 = Math.floor(b / MINUTE) * MINUTE;
    if (m0 < m1) {
      whole.push(`(minute >= toDateTime(${sec(m0)}) AND minute < toDateTime(${sec(m1)}))`);
      if (a < m0) parts.push(rawSpan(a, m0));
      if (m1 < b) parts.push(rawSpan(m1, b));
    } else parts.push(rawSpan(a, b));
  }
  const period = (ms: string): string => `if(${ms} < ${at}, 'before', 'after')`;
  const sources: string[] = [];
  if (whole.length > 0) {
    sources.push(`SELECT ${period('toUInt64(toUInt32(minute)) * 1000')} AS period, calls, errors, latency
  FROM ${db}.${TABLES.rollup}
  WHERE (${whole.join(' OR ')})${routeFilter(p)}`);
  }
  if (parts.length > 0) {
    sources.push(`SELECT ${period('ts_ms')} AS period, countState() AS calls, sumState(toUInt64(retcode != 0)) AS errors, quantileTDigestState(latency_ms) AS latency
  FROM ${db}.${TABLES.reports}
  WHERE (${parts.join(' OR ')})${routeFilter(p)}
  GROUP BY period`);
  }
  return `SELECT period, countMerge(calls) AS calls, sumMerge(errors) AS errors,
  round(errors / calls, 4) AS error_rate,
  round(quantileTDigestMerge(0.5)(latency), 2) AS p50_ms,
  round(quantileTDigestMerge(0.99)(latency), 2) AS p99_ms
FROM (
  ${sources.join('\n  UNION ALL\n  ')}
)
GROUP BY period
ORDER BY period DESC
LIMIT ${p.limit}`;
}

/** Raw reports in [fromMs, toMs): `time` bounds the read (the sort key, whole seconds on 18.16), `ts_ms` cuts it to the millisecond. */
function rawSpan(fromMs: number, toMs: number): string {
  return `(time >= toDateTime(${sec(fromMs)}) AND time < toDateTime(${Math.ceil(toMs / 1000)}) AND ts_ms >= ${fromMs} AND ts_ms < ${toMs})`;
}

export function isStatsKind(s: string): s is StatsKind {
  return Object.prototype.hasOwnProperty.call(STATS, s);
}

export type StatsRow = Record<string, string | number | null>;

export async function runStats(engine: AnalyticsEngine, kind: StatsKind, p: StatsParams): Promise<StatsRow[]> {
  const spec = STATS[kind];
  const rows = await engine.query<Record<string, unknown>>(spec.sql(engine.database, p));
  const numeric = new Set(spec.numeric);
  return rows.map((r) => {
    const out: StatsRow = {};
    for (const c of spec.columns) {
      const v = r[c];
      if (v === null || v === undefined) out[c] = null;
      else if (numeric.has(c)) out[c] = typeof v === 'number' ? v : Number(v);
      else out[c] = typeof v === 'string' ? v : JSON.stringify(v);
    }
    return out;
  });
}

/** `90s`, `15m`, `1h`, `2d`, `1w` → ms. */
export function parseDuration(s: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)$/.exec(s.trim());
  if (!m) return undefined;
  const n = Number(m[1]);
  const unit = { ms: 1, s: 1000, m: 60_000, h: HOUR, d: 24 * HOUR, w: 7 * 24 * HOUR }[m[2] as 'ms' | 's' | 'm' | 'h' | 'd' | 'w'];
  return n * unit;
}

/** `modid.cmdid` → the pair, or undefined. */
export function parseRouteArg(s: string): { modid: number; cmdid: number } | undefined {
  const m = /^(\d{1,10})\.(\d{1,10})$/.exec(s.trim());
  if (!m) return undefined;
  const modid = Number(m[1]);
  const cmdid = Number(m[2]);
  return isUint32(modid) && isUint32(cmdid) ? { modid, cmdid } : undefined;
}

/** An ISO time or epoch ms → epoch ms. */
export function parseTime(s: string): number | undefined {
  if (/^\d{12,}$/.test(s)) return Number(s);
  const t = Date.parse(s);
  return Number.isNaN(t) ? undefined : t;
}

export function startOfUtcDay(ms: number): number {
  return Math.floor(ms / 86_400_000) * 86_400_000;
}

/** Aligned text table: numbers right, text left. */
export function formatTable(columns: string[], rows: StatsRow[]): string[] {
  if (rows.length === 0) return ['(no rows)'];
  const cells = rows.map((r) => columns.map((c) => (r[c] === null || r[c] === undefined ? '-' : String(r[c]))));
  const widths = columns.map((c, i) => Math.max(c.length, ...cells.map((row) => (row[i] ?? '').length)));
  const isNum = columns.map((c) => rows.every((r) => r[c] === null || typeof r[c] === 'number'));
  const line = (vals: string[]) =>
    vals
      .map((v, i) => (isNum[i] ? v.padStart(widths[i] ?? 0) : v.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(columns), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.map(line)];
}
