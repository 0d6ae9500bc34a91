/**
 * What the console asks ClickHouse: one host's calls, error rate and latency
 * over time with its state changes, the audit trail of a route or host, and
 * the last transition (with its figures) of every host of a route. The SQL
 * runs the same on ClickHouse 18.16 and modern servers/chdb: times are read
 * as whole seconds through `toDateTime`, hosts compared as dotted strings.
 */
import { EVENT_FIGURES, TABLES } from '../../schemas/clickhouse/migrations.ts';
import type { AnalyticsEngine } from '../analytics/engine.ts';

export interface RouteRef {
  modid: number;
  cmdid: number;
}
export interface HostRef {
  ip: string;
  port: number;
}

/**
 * One host's calls per time bucket; `t` (bucket starts, seconds since the
 * epoch) is dense: every bucket from `fromS` up to the last whole one before
 * `toS` is there, with zero calls and errors and null latency where the host
 * had no calls, so a chart shows a hole as a hole (never a line joining the
 * calls on either side). The bucket `toS` falls in, still filling, is added
 * only when it has calls already (the sink stores a batch a moment after
 * the calls: an empty one would draw a drop that did not happen).
 */
export interface HostSeries {
  bucketS: number;
  fromS: number;
  toS: number;
  t: number[];
  calls: number[];
  errors: number[];
  p50: Array<number | null>;
  p99: Array<number | null>;
  marks: StateMark[];
}

/** A state change on the chart's time axis. */
export interface StateMark {
  t: number;
  from: string;
  to: string;
  reason: string;
}

export interface AuditRow {
  t: number;
  host: string;
  from: string;
  to: string;
  reason: string;
  version: number;
  sender: string;
  /** Who asked, for an operator's action (empty for the node's own judgements). */
  by: string;
  figures: Record<string, number>;
}

const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

/** A dotted quad safe to put between quotes (checked, never escaped). */
function quad(ip: string): string {
  if (!IPV4.test(ip)) throw new RangeError(`not an IPv4 address: ${JSON.stringify(ip)}`);
  return ip;
}

function routeWhere(r: RouteRef): string {
  return `modid = ${r.modid >>> 0} AND cmdid = ${r.cmdid >>> 0}`;
}

function hostWhere(h: HostRef): string {
  return `IPv4NumToString(ip) = '${quad(h.ip)}' AND port = ${h.port & 0xffff}`;
}

/** Bucket width for a window: about 120 points, at least 5 s, in whole seconds that divide a minute or an hour. */
export function bucketFor(windowS: number): number {
  const steps = [5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600];
  return steps.find((s) => windowS / s <= 120) ?? 3600;
}

const num = (v: unknown): number => (typeof v === 'number' ? v : Number(v));

/** `figures` from an events row: the named columns that are set, and the extra pairs. */
function figuresOf(r: Record<string, unknown>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const f of EVENT_FIGURES) {
    const v = r[f];
    if (v !== null && v !== undefined) out[f] = num(v);
  }
  const names = r['extra_names'];
  const values = r['extra_values'];
  if (Array.isArray(names) && Array.isArray(values)) names.forEach((n, i) => (out[String(n)] = num(values[i])));
  return out;
}

/** The shortest window a picture shows, so a host that started calling a minute ago still gets several points. */
export const MIN_WINDOW_S = 120;

/**
 * One host's calls over at most `windowS` seconds up to now: the window
 * starts where the host's calls start (at least MIN_WINDOW_S back), so a
 * young host is drawn in fine buckets instead of one point at the edge.
 */
export async function hostSeries(engine: AnalyticsEngine, route: RouteRef, host: HostRef, nowMs: number, windowS: number): Promise<HostSeries> {
  const toS = Math.floor(nowMs / 1000);
  const db = engine.database;
  const first = await engine.query<Record<string, unknown>>(
    `SELECT min(toUInt32(toDateTime(time))) AS first, count() AS n FROM ${db}.${TABLES.reports}
WHERE ${routeWhere(route)} AND ${hostWhere(host)} AND time >= toDateTime(${toS - windowS})`,
  );
  const firstS = num(first[0]?.['n']) > 0 ? num(first[0]?.['first']) : toS - windowS;
  const spanS = Math.min(windowS, Math.max(MIN_WINDOW_S, Math.ceil((toS - firstS) * 1.05)));
  const bucketS = bucketFor(spanS);
  const fromS = Math.floor((toS - spanS) / bucketS) * bucketS;
  const [rows, marks] = await Promise.all([
    engine.query<Record<string, unknown>>(
      `SELECT intDiv(toUInt32(toDateTime(time)), ${bucketS}) * ${bucketS} AS t, count() AS calls, countIf(retcode != 0) AS errors,
  quantile(0.5)(latency_ms) AS p50, quantile(0.99)(latency_ms) AS p99
FROM ${db}.${TABLES.reports}
WHERE ${routeWhere(route)} AND ${hostWhere(host)} AND time >= toDateTime(${fromS})
GROUP BY t ORDER BY t`,
    ),
    engine.query<Record<string, unknown>>(
      `SELECT toUInt32(toDateTime(time)) AS t, from_state, to_state, reason
FROM ${db}.${TABLES.events}
WHERE ${routeWhere(route)} AND ${hostWhere(host)} AND time >= toDateTime(${fromS}) AND from_state != 'none'
ORDER BY time, version`,
    ),
  ]);
  // Dense in TypeScript: ORDER BY ... WITH FILL came in ClickHouse 19.14, after Debian's 18.16.
  const s = denseSeries(bucketS, fromS, toS, rows);
  for (const m of marks) s.marks.push({ t: num(m['t']), from: String(m['from_state']), to: String(m['to_state']), reason: String(m['reason']) });
  return s;
}

/** A bucket's figures as ClickHouse returned them (only buckets with calls). */
interface BucketRow {
  t: number;
  calls: number;
  errors: number;
  p50: number;
  p99: number;
}

const round2 = (v: number): number => Math.round(v * 100) / 100;

/** Every bucket from `fromS` on: the rows where there are calls, zero calls and null latency where there are none (see HostSeries). */
export function denseSeries(bucketS: number, fromS: number, toS: number, rows: readonly Record<string, unknown>[]): HostSeries {
  const byT = new Map<number, BucketRow>();
  for (const r of rows) {
    const b: BucketRow = { t: num(r['t']), calls: num(r['calls']), errors: num(r['errors']), p50: num(r['p50']), p99: num(r['p99']) };
    if (b.calls > 0) byT.set(b.t, b);
  }
  const current = Math.floor(toS / bucketS) * bucketS;
  const s: HostSeries = { bucketS, fromS, toS, t: [], calls: [], errors: [], p50: [], p99: [], marks: [] };
  for (let t = fromS; t <= current; t += bucketS) {
    const b = byT.get(t);
    if (t === current && !b) break;
    s.t.push(t);
    s.calls.push(b?.calls ?? 0);
    s.errors.push(b?.errors ?? 0);
    s.p50.push(b ? round2(b.p50) : null);
    s.p99.push(b ? round2(b.p99) : null);
  }
  return s;
}

const EVENT_COLUMNS = `toUInt32(toDateTime(time)) AS t, IPv4NumToString(ip) AS host, port, from_state, to_state, reason, version, sender, actor, ${EVENT_FIGURES.join(', ')}, extra_names, extra_values`;

function auditRow(r: Record<string, unknown>): AuditRow {
  return {
    t: num(r['t']),
    host: `${String(r['host'])}:${num(r['port'])}`,
    from: String(r['from_state']),
    to: String(r['to_state']),
    reason: String(r['reason']),
    version: num(r['version']),
    sender: String(r['sender']),
    by: typeof r['actor'] === 'string' ? r['actor'] : '',
    figures: figuresOf(r),
  };
}

/** Transitions of a route (or of one of its hosts), newest first. */
export async function auditTrail(engine: AnalyticsEngine, route: RouteRef, host: HostRef | undefined, sinceMs: number, limit: number): Promise<AuditRow[]> {
  const rows = await engine.query<Record<string, unknown>>(
    `SELECT ${EVENT_COLUMNS}
FROM ${engine.database}.${TABLES.events}
WHERE ${routeWhere(route)}${host ? ` AND ${hostWhere(host)}` : ''} AND time >= toDateTime(${Math.floor(sinceMs / 1000)})
ORDER BY time DESC, version DESC
LIMIT ${Math.max(1, Math.min(10_000, Math.floor(limit)))}`,
  );
  return rows.map(auditRow);
}

/** The newest transition of every host of a route that has one, by `ip:port`. */
export async function lastTransitions(engine: AnalyticsEngine, route: RouteRef, sinceMs: number): Promise<Map<string, AuditRow>> {
  const rows = await engine.query<Record<string, unknown>>(
    `SELECT ${EVENT_COLUMNS}
FROM ${engine.database}.${TABLES.events}
WHERE ${routeWhere(route)} AND time >= toDateTime(${Math.floor(sinceMs / 1000)})
ORDER BY time DESC, version DESC
LIMIT 1 BY ip, port`,
  );
  return new Map(rows.map((r) => [`${String(r['host'])}:${num(r['port'])}`, auditRow(r)]));
}
