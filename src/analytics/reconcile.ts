/**
 * The sink's check of its own consumer: every message at or below the
 * durable consumer's acknowledgement floor has been stored or quarantined,
 * since a sink acknowledges only what ClickHouse has. A consumer can pass a
 * message without ever delivering it: after servers are paused or restarted
 * nats-server may move a consumer's position past messages it never handed
 * out (nats-io/nats-server#8036, seen by the nemesis on 2.9.10), and nothing
 * would deliver them again. Every `intervalMs` this reads the stored
 * sequences of the stretch acknowledged since its last pass, fetches any
 * message missing from ClickHouse straight from the stream by sequence, and
 * stores it the usual way (looked up first, so a message stored meanwhile is
 * not stored twice). Two sinks do not both store one message: each claims it
 * first with a create in a small bucket of claims.
 */
import type { JetStreamManager, JsMsg, StoredMsg } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import { TABLES } from '../../schemas/clickhouse/migrations.ts';
import type { Logger } from '../lib/log.ts';
import type { RateLimitedLog } from '../lib/ratelog.ts';
import { errText } from '../lib/ratelog.ts';
import { isConflict } from '../nats/buckets.ts';
import { timeAt } from './dedup.ts';
import type { AnalyticsEngine } from './engine.ts';
import type { Item, RowSource } from './items.ts';

export interface ReconcilerOptions {
  jsm: JetStreamManager;
  stream: string;
  durable: string;
  engine: AnalyticsEngine;
  rows: RowSource;
  /** The table the stream's rows are stored in (reports or route_events). */
  table: string;
  /** Stores recovered messages the usual way (the pipeline's insert chain). */
  store: (items: Item[]) => Promise<void>;
  /** Claims of messages being recovered, by `<stream>.<seq>` (absent: no claims, for a single sink). */
  claims?: KV;
  /** Counts what it recovers (the pipeline's `recovered`). */
  stats: { recovered: number };
  log: Logger;
  rlog: RateLimitedLog;
  intervalMs: number;
  now: () => number;
}

/** Sequences looked at in one pass at most (the rest in the next passes). */
const WINDOW = 50_000;
/** On its first pass, how far below the floor it looks. */
const FIRST_LOOKBACK = 50_000;
/** Messages recovered in one pass at most. */
const MAX_RECOVERED = 2_000;
/** Rows carry the caller's time, which may be older than the stream's: the stored-sequence read reaches this far before it. */
const TIME_SLACK_S = 3600;

export class Reconciler {
  private readonly o: ReconcilerOptions;
  private upTo: number | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  passes = 0;

  constructor(o: ReconcilerOptions) {
    this.o = o;
  }

  start(): void {
    this.later();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
  }

  private later(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.pass()
        .then(() => undefined)
        .catch((err: unknown) => {
          this.o.rlog.warn(`reconcile-${this.o.stream}`, { err: errText(err) }, 'consumer check failed; trying again later');
        })
        .finally(() => {
          this.running = undefined;
          this.later();
        });
    }, this.o.intervalMs);
    this.timer.unref?.();
  }

  /** One pass; resolves with the messages recovered. */
  async pass(): Promise<number> {
    const { jsm, stream, durable } = this.o;
    const floor = (await jsm.consumers.info(stream, durable)).ack_floor.stream_seq;
    const first = (await jsm.streams.info(stream)).state.first_seq;
    this.upTo ??= Math.max(0, floor - FIRST_LOOKBACK);
    const lo = Math.max(this.upTo + 1, first);
    const hi = Math.min(floor, lo + WINDOW - 1);
    this.passes++;
    if (hi < lo) return 0;
    const head = await this.message(lo);
    const fromS = Math.floor((head?.time.getTime() ?? this.o.now()) / 1000) - TIME_SLACK_S;
    const have = await this.storedSeqs(lo, hi, fromS);
    const missing: number[] = [];
    let last = hi;
    for (let s = lo; s <= hi; s++) {
      if (have.has(s)) continue;
      if (missing.length === MAX_RECOVERED) {
        last = s - 1;
        break;
      }
      missing.push(s);
    }
    let recovered = 0;
    if (missing.length > 0) {
      const items: Item[] = [];
      for (const s of missing) {
        const m = await this.message(s);
        // Gone from the stream (its limits removed it), or claimed by another sink.
        if (m === undefined || !(await this.claim(s))) continue;
        items.push(this.o.rows.prepare(asDelivered(m)));
      }
      if (items.length > 0) {
        await this.o.store(items);
        recovered = items.length;
        this.o.stats.recovered += recovered;
        this.o.log.warn({ stream, messages: recovered, from: lo, to: last }, 'messages the consumer passed without delivering them were fetched from the stream and stored');
      }
    }
    this.upTo = last;
    return recovered;
  }

  private async message(seq: number): Promise<StoredMsg | undefined> {
    try {
      return (await this.o.jsm.streams.getMessage(this.o.stream, { seq })) ?? undefined;
    } catch {
      return undefined;
    }
  }

  /** Sequences in [lo, hi] with rows in the table or a quarantine record. */
  private async storedSeqs(lo: number, hi: number, fromS: number): Promise<Set<number>> {
    const { engine, table, stream } = this.o;
    const db = engine.database;
    const range = `seq >= ${lo} AND seq <= ${hi}`;
    const [rows, bad] = await Promise.all([
      engine.query<{ seq: number | string }>(`SELECT DISTINCT seq FROM ${db}.${table} WHERE time >= ${timeAt(fromS, engine.features)} AND ${range}`),
      engine.query<{ seq: number | string }>(`SELECT DISTINCT seq FROM ${db}.${TABLES.quarantine} WHERE stream = '${stream.replace(/'/g, "\\'")}' AND ${range}`),
    ]);
    const out = new Set<number>();
    for (const r of rows) out.add(Number(r.seq));
    for (const r of bad) out.add(Number(r.seq));
    return out;
  }

  /** True when this sink may store the message (it made the claim, or claims are off or out of reach). */
  private async claim(seq: number): Promise<boolean> {
    const kv = this.o.claims;
    if (kv === undefined) return true;
    try {
      await kv.create(`${this.o.stream}.${seq}`, new Uint8Array(0));
      return true;
    } catch (err) {
      // A conflict: another sink has it. Anything else: store it anyway (it is looked up first).
      return !isConflict(err);
    }
  }
}

/** A message read from the stream by sequence, as the rows expect a delivered one (a redelivery: looked up before it is stored; nothing to acknowledge). */
function asDelivered(m: StoredMsg): JsMsg {
  const noop = (): void => undefined;
  return { subject: m.subject, seq: m.seq, data: m.data, headers: m.header, redelivered: true, ack: noop, nak: noop, working: noop, term: noop } as unknown as JsMsg;
}
