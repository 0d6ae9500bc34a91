/**
 * From a stream message to the rows it stands for: decode, validate, check
 * the subject, render the insert line. A message that cannot be stored
 * becomes an item marked `bad`, bound for quarantine.
 */
import type { JsMsg } from '@nats-io/jetstream';
import { TABLES, eventColumns } from '../../schemas/clickhouse/migrations.ts';
import { validateReportBatch, validateRouteEvent, type RejectKind, type ReportBatch, type RouteEvent } from '../../schemas/messages.ts';
import { parseRouteTail } from '../../schemas/subjects.ts';
import { tryDecode } from '../../schemas/codec.ts';
import type { AnalyticsEngine } from './engine.ts';
import { DAY_MS, eventLine, ingestLine, reportSpan, type RowSpan } from './rows.ts';
import { transcodeReportBatch } from './transcode.ts';

/** One message in a batch. */
export interface Item {
  msg: JsMsg;
  seq: number;
  redelivered: boolean;
  /** Insert payload ('' for a rejected message). */
  line: string;
  rows: number;
  span?: RowSpan;
  /** Set when the message cannot be stored: it goes to quarantine. */
  bad?: { kind: string; detail: string };
  /** Marks a line re-rendered without some days (enters the dedup token). */
  variant?: string;
  /** A second copy of a message this worker already holds: acked with the batch, stored once. */
  dup?: boolean;
}

/** How one stream's messages become rows of one table. */
export interface RowSource {
  readonly stream: string;
  /** Qualified table the lines go to (each after the writer's fence column). */
  readonly table: string;
  readonly columns?: readonly string[];
  prepare(m: JsMsg): Item;
  /** The item without the rows of `days` (UTC day numbers); undefined when nothing is left. */
  without(item: Item, days: ReadonlySet<number>): Item | undefined;
}

/** `kind`: a RejectKind, or the sink's own `rejected`. */
export function reject(m: JsMsg, kind: RejectKind | 'rejected', detail: string): Item {
  return { msg: m, seq: m.seq, redelivered: m.redelivered, line: '', rows: 0, bad: { kind, detail } };
}

function subjectMatches(subject: string, modid: number, cmdid: number): boolean {
  const t = parseRouteTail(subject);
  return t !== undefined && t.modid === modid && t.cmdid === cmdid;
}

function decodeBatch(m: JsMsg): { ok: true; value: ReportBatch } | { ok: false; item: Item } {
  const d = tryDecode(m.data);
  if (!d.ok) return { ok: false, item: reject(m, 'malformed', d.error.message) };
  const v = validateReportBatch(d.value);
  if (!v.ok) return { ok: false, item: reject(m, v.kind, v.detail) };
  if (!subjectMatches(m.subject, v.value.modid, v.value.cmdid)) {
    return { ok: false, item: reject(m, 'subject_mismatch', `subject ${m.subject} vs route ${v.value.modid}.${v.value.cmdid}`) };
  }
  return { ok: true, value: v.value };
}

/**
 * SINK-ONLY VALIDATION RULE — the one place the sink refuses a message the
 * contract (`validateRouteEvent`, schemas/messages.ts) accepts: an event's
 * `version` must be a non-negative safe integer, because it is stored in a
 * UInt64 column. Fold it into the contract's RouteEvent schema and delete
 * this function; nothing else in the sink validates on its own.
 */
export function sinkOnlyEventRule(e: RouteEvent): { kind: RejectKind; detail: string } | undefined {
  if (!Number.isSafeInteger(e.version) || e.version < 0) return { kind: 'out_of_range', detail: 'version must be a non-negative integer' };
  return undefined;
}

export function reportRows(engine: AnalyticsEngine, stream: string): RowSource {
  const f = engine.features;
  return {
    stream,
    // The ingest table of migration 7: the writer puts its fence first on every line.
    table: `${engine.database}.${TABLES.reportsIngestV3}`,
    prepare(m) {
      const t = transcodeReportBatch(m.data, m.seq, f);
      if (t && subjectMatches(m.subject, t.span.modid, t.span.cmdid)) {
        return { msg: m, seq: m.seq, redelivered: m.redelivered, line: t.line, rows: t.rows, span: t.span };
      }
      const b = decodeBatch(m);
      if (!b.ok) return b.item;
      return { msg: m, seq: m.seq, redelivered: m.redelivered, line: ingestLine(b.value, m.seq, f), rows: b.value.reports.length, span: reportSpan(b.value) };
    },
    without(item, days) {
      const b = decodeBatch(item.msg);
      if (!b.ok) return undefined;
      const line = ingestLine(b.value, item.seq, f, days);
      if (line === '') return undefined;
      const ts = Math.floor(b.value.ts);
      const rows = b.value.reports.filter((r) => !days.has(Math.floor((ts + r[3]) / DAY_MS))).length;
      return { ...item, line, rows, variant: [...days].sort().join('.') };
    },
  };
}

export function eventRows(engine: AnalyticsEngine, stream: string): RowSource {
  const f = engine.features;
  return {
    stream,
    table: `${engine.database}.${TABLES.eventsIngest}`,
    columns: ['fence', ...eventColumns(f)],
    prepare(m) {
      const d = tryDecode(m.data);
      if (!d.ok) return reject(m, 'malformed', d.error.message);
      const v = validateRouteEvent(d.value);
      if (!v.ok) return reject(m, v.kind, v.detail);
      const e = v.value;
      const extra = sinkOnlyEventRule(e);
      if (extra) return reject(m, extra.kind, extra.detail);
      if (!subjectMatches(m.subject, e.modid, e.cmdid)) {
        return reject(m, 'subject_mismatch', `subject ${m.subject} vs route ${e.modid}.${e.cmdid}`);
      }
      return {
        msg: m,
        seq: m.seq,
        redelivered: m.redelivered,
        line: eventLine(e, m.seq, f),
        rows: 1,
        span: { modid: e.modid, cmdid: e.cmdid, minMs: e.ts, maxMs: e.ts },
      };
    },
    without() {
      return undefined; // one row per message: stored means all of it
    },
  };
}
