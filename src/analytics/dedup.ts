/**
 * Exactly-once rows: which messages (and which of their UTC days) are in
 * ClickHouse already, looked up by the primary key (route, time range) and
 * `seq`, and leaving those out of an insert.
 */
import type { JetStreamManager } from '@nats-io/jetstream';
import { TABLES } from '../../schemas/clickhouse/migrations.ts';
import type { Features } from '../../schemas/clickhouse/features.ts';
import type { AnalyticsEngine } from './engine.ts';
import type { Item, RowSource } from './items.ts';
import type { PipelineName, PipelineStats } from './types.ts';

/**
 * A time constant of the column's own type. On DateTime64 columns a DateTime
 * constant in an upper bound (`time < toDateTime(X)`) is turned into
 * `time <= X - 1` by the index analysis of ClickHouse 26.x, which drops the
 * rows in the last second's fraction: compare with a DateTime64 there.
 */
export function timeAt(sec: number, f: Features): string {
  return f.dateTime64 ? `toDateTime64(${sec}, 3, 'UTC')` : `toDateTime(${sec})`;
}

function spanFilter(items: Item[], f: Features): string {
  const routes = new Set<string>();
  let lo = Infinity;
  let hi = -Infinity;
  for (const i of items) {
    if (!i.span) continue;
    routes.add(`(${i.span.modid}, ${i.span.cmdid})`);
    lo = Math.min(lo, i.span.minMs);
    hi = Math.max(hi, i.span.maxMs);
  }
  const seqs = items.map((i) => i.seq).join(', ');
  return (
    `(modid, cmdid) IN (${[...routes].join(', ')}) AND time >= ${timeAt(Math.floor(lo / 1000), f)} ` +
    `AND time < ${timeAt(Math.floor(hi / 1000) + 1, f)} AND seq IN (${seqs})`
  );
}

async function storedBySeq(engine: AnalyticsEngine, sql: string): Promise<Map<number, Set<number>>> {
  const rows = await engine.query<{ seq: number | string; day: number | string }>(sql);
  const out = new Map<number, Set<number>>();
  for (const r of rows) {
    const s = Number(r.seq);
    let set = out.get(s);
    if (!set) out.set(s, (set = new Set()));
    set.add(Number(r.day));
  }
  return out;
}

/** The table a pipeline's rows are looked up in (the raw table, not the ingest one). */
export function storedTable(p: PipelineName): string {
  return p === 'reports' ? TABLES.reports : TABLES.events;
}

export class Dedup {
  private readonly engine: AnalyticsEngine;
  private readonly pipeline: PipelineName;
  private readonly rows: RowSource;
  private readonly stats: PipelineStats;

  constructor(engine: AnalyticsEngine, pipeline: PipelineName, rows: RowSource, stats: PipelineStats) {
    this.engine = engine;
    this.pipeline = pipeline;
    this.rows = rows;
    this.stats = stats;
  }

  /** For each seq whose rows are stored: the UTC day numbers stored (0 for events). */
  findStored(items: Item[]): Promise<Map<number, Set<number>>> {
    const db = this.engine.database;
    const f = this.engine.features;
    const where = spanFilter(items, f);
    return this.pipeline === 'reports'
      ? storedBySeq(this.engine, `SELECT seq, toUInt32(toDate(time)) AS day FROM ${db}.${TABLES.reports} WHERE ${where} GROUP BY seq, day`)
      : storedBySeq(this.engine, `SELECT seq, 0 AS day FROM ${db}.${TABLES.events} WHERE ${where} GROUP BY seq`);
  }

  /** Leaves out messages (or their days) whose rows are already in ClickHouse; only `suspects` are looked up. */
  async dropStored(items: Item[], suspects: Item[] = items): Promise<Item[]> {
    if (suspects.length === 0) return items;
    const stored = await this.findStored(suspects);
    if (stored.size === 0) return items;
    const out: Item[] = [];
    for (const i of items) {
      const days = stored.get(i.seq);
      if (!days) {
        out.push(i);
        continue;
      }
      const rest = this.rows.without(i, days);
      if (rest) out.push(rest);
      else this.stats.duplicatesSkipped++;
    }
    return out;
  }
}

/**
 * The highest sequence already stored from this stream's retained messages.
 * A consumer made anew (first start, or after someone deleted it) replays
 * the stream from its start as first deliveries: messages up to this
 * sequence are then looked up before being stored, like redeliveries.
 */
export async function storedHighWater(jsm: JetStreamManager, stream: string, engine: AnalyticsEngine, table: string): Promise<number> {
  const st = (await jsm.streams.info(stream)).state;
  if (st.messages === 0) return 0;
  const first = Date.parse(st.first_ts);
  const from = Number.isFinite(first) ? Math.max(0, Math.floor(first / 1000) - 86_400) : 0;
  const r = await engine.query<{ s: number | string }>(`SELECT max(seq) AS s FROM ${engine.database}.${table} WHERE time >= ${timeAt(from, engine.features)}`);
  return Number(r[0]?.s ?? 0);
}
