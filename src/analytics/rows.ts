/**
 * Wire messages → ClickHouse TabSeparated rows. One report batch becomes one
 * row of `reports_ingest_v2` (columnar arrays; the views expand it into one row
 * per call), one route event one row of `route_events`.
 *
 * This runs once per message on the sink's hot path: plain loops, no
 * allocation per report. transcode.ts does the same for report batches
 * straight from their msgpack bytes.
 */
import type { Features } from '../../schemas/clickhouse/features.ts';
import { EVENT_FIGURES } from '../../schemas/clickhouse/migrations.ts';
import type { ReportBatch, RouteEvent } from '../../schemas/messages.ts';

const TSV_SPECIAL = /[\\\t\n\r\0\b\f]/;

/** Escapes a string for a TabSeparated field. */
export function escapeTsv(s: string): string {
  if (!TSV_SPECIAL.test(s)) return s;
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    switch (c) {
      case '\\': out += '\\\\'; break;
      case '\t': out += '\\t'; break;
      case '\n': out += '\\n'; break;
      case '\r': out += '\\r'; break;
      case '\0': out += '\\0'; break;
      case '\b': out += '\\b'; break;
      case '\f': out += '\\f'; break;
      default: out += c;
    }
  }
  return out;
}

/** A string as a quoted literal inside an array value (before TSV escaping). */
function quoted(s: string): string {
  return `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

/** Dotted IPv4 (already validated) → its 32-bit number. */
export function ipv4ToUint32(ip: string): number {
  let n = 0;
  let part = 0;
  for (let i = 0; i < ip.length; i++) {
    const c = ip.charCodeAt(i);
    if (c === 46) {
      n = n * 256 + part;
      part = 0;
    } else {
      part = part * 10 + (c - 48);
    }
  }
  return n * 256 + part;
}

export function uint32ToIpv4(n: number): string {
  return `${(n >>> 24) & 255}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

/** Text of a float for ClickHouse (which reads nan/inf/-inf). */
export function floatText(x: number): string {
  if (Number.isFinite(x)) return String(x);
  if (Number.isNaN(x)) return 'nan';
  return x > 0 ? 'inf' : '-inf';
}

export const DAY_MS = 86_400_000;

/** What a batch's rows cover: for the stored-rows check before a retry. */
export interface RowSpan {
  modid: number;
  cmdid: number;
  /** Earliest and latest row time, epoch ms. */
  minMs: number;
  maxMs: number;
}

export function reportSpan(b: ReportBatch): RowSpan {
  let lo = Infinity;
  let hi = -Infinity;
  const r = b.reports;
  for (let i = 0; i < r.length; i++) {
    const off = (r[i] as [number, number, number, number])[3];
    if (off < lo) lo = off;
    if (off > hi) hi = off;
  }
  const ts = Math.floor(b.ts);
  return { modid: b.modid, cmdid: b.cmdid, minMs: ts + lo, maxMs: ts + hi };
}

/** `[a,b,c]` of the hosts' ips: dotted text where the column is IPv4, numbers where UInt32. */
function hostArrays(hosts: ReadonlyArray<[string, number]>, f: Features): [string, string] {
  let ips = '[';
  let ports = '[';
  for (let i = 0; i < hosts.length; i++) {
    const h = hosts[i] as [string, number];
    if (i > 0) {
      ips += ',';
      ports += ',';
    }
    ips += f.ipv4Type ? `'${h[0]}'` : String(ipv4ToUint32(h[0]));
    ports += h[1];
  }
  return [`${ips}]`, `${ports}]`];
}

/**
 * One `reports_ingest_v2` row for a validated batch: its hosts and its reports as
 * parallel arrays. `skipDays` (UTC day numbers) leaves out the reports of days
 * already stored (a retry after a partial write on a server without dedup
 * tokens); returns '' when nothing is left.
 */
export function ingestLine(b: ReportBatch, seq: number, f: Features, skipDays?: ReadonlySet<number>): string {
  let reports = b.reports;
  let marks = b.attempts ?? [];
  if (skipDays && skipDays.size > 0) {
    const ts = Math.floor(b.ts);
    // the marks follow their reports to their new indexes
    const index = new Array<number>(reports.length).fill(-1);
    const kept: typeof reports = [];
    reports.forEach((r, i) => {
      if (skipDays.has(Math.floor((ts + r[3]) / DAY_MS))) return;
      index[i] = kept.length;
      kept.push(r);
    });
    reports = kept;
    if (reports.length === 0) return '';
    marks = marks.filter((m) => index[m[0]]! >= 0).map((m) => [index[m[0]]!, m[1], m[2]]);
  }
  const [ips, ports] = hostArrays(b.hosts, f);
  const n = reports.length;
  const hs = new Array<number>(n);
  const rcs = new Array<number>(n);
  const lats = new Array<number>(n);
  const offs = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const r = reports[i] as [number, number, number, number];
    hs[i] = r[0];
    rcs[i] = r[1];
    lats[i] = r[2];
    offs[i] = r[3];
  }
  const zone = typeof b.zone === 'string' ? escapeTsv(b.zone) : '';
  // JSON.stringify of a number array is ClickHouse's array literal, and V8 prints it fastest.
  return `${Math.floor(b.ts)}\t${b.modid}\t${b.cmdid}\t${escapeTsv(b.sender)}\t${zone}\t${seq}\t${ips}\t${ports}\t${JSON.stringify(hs)}\t${JSON.stringify(rcs)}\t${JSON.stringify(lats)}\t${JSON.stringify(offs)}\t${markColumns(marks)}\n`;
}

/** The attempt marks as the ingest table's three columns (`a_index`, `a_attempt`, `a_kind`), tab-separated. */
export function markColumns(marks: ReadonlyArray<readonly [number, number, number]>): string {
  if (marks.length === 0) return '[]\t[]\t[]';
  return `${JSON.stringify(marks.map((m) => m[0]))}\t${JSON.stringify(marks.map((m) => m[1]))}\t${JSON.stringify(marks.map((m) => m[2]))}`;
}

const FIGURE_SET: ReadonlySet<string> = new Set(EVENT_FIGURES);

/** One `route_events` row, columns as `eventColumns(f)`. */
export function eventLine(e: RouteEvent, seq: number, f: Features): string {
  const time = f.dateTime64 ? String(e.ts) : `${Math.floor(e.ts / 1000)}\t${e.ts}`;
  const ip = f.ipv4Type ? e.ip : String(ipv4ToUint32(e.ip));
  const fig = e.figures as Record<string, number | undefined>;
  let figs = '';
  for (const name of EVENT_FIGURES) {
    const v = fig[name];
    figs += typeof v === 'number' ? `\t${floatText(v)}` : '\t\\N';
  }
  const extraNames: string[] = [];
  const extraValues: string[] = [];
  for (const k of Object.keys(fig)) {
    const v = fig[k];
    if (FIGURE_SET.has(k) || typeof v !== 'number') continue;
    extraNames.push(quoted(k));
    extraValues.push(floatText(v));
  }
  return (
    `${time}\t${e.modid}\t${e.cmdid}\t${ip}\t${e.port}\t${escapeTsv(e.from)}\t${escapeTsv(e.to)}\t${escapeTsv(e.reason)}` +
    `\t${e.version}\t${escapeTsv(e.sender)}${figs}\t${escapeTsv(`[${extraNames.join(',')}]`)}\t[${extraValues.join(',')}]\t${seq}\t${escapeTsv(e.by ?? '')}\n`
  );
}

/** A message the sink could not store, as a `quarantine` row. */
export interface QuarantineRow {
  /** Epoch ms when it was quarantined. */
  at: number;
  stream: string;
  seq: number;
  subject: string;
  kind: string;
  detail: string;
  sink: string;
  payload: Uint8Array;
}

export function quarantineLine(q: QuarantineRow): string {
  const payload = Buffer.from(q.payload.buffer, q.payload.byteOffset, q.payload.byteLength).toString('base64');
  return (
    `${Math.floor(q.at / 1000)}\t${escapeTsv(q.stream)}\t${q.seq}\t${escapeTsv(q.subject)}\t${escapeTsv(q.kind)}` +
    `\t${escapeTsv(q.detail.slice(0, 2000))}\t${escapeTsv(q.sink)}\t${payload}\n`
  );
}
