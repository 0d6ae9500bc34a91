/**
 * The durable JetStream → ClickHouse sink. One worker runs two pipelines
 * (reports, route events); each pulls from a durable consumer that any number
 * of workers may share, batches by rows, bytes, messages and time, inserts,
 * and acknowledges only after ClickHouse has the batch.
 *
 * Exactly-once rows (see docs/analytics.md for the guarantee per version):
 * - every row carries the JetStream stream sequence (`seq`) of its message;
 * - a message that may already be stored (JetStream redelivered it) is looked
 *   up by (route, time range, seq) before the insert and skipped when its rows
 *   are there; a partial write across day partitions is completed for the
 *   missing days only;
 * - on servers with `insert_deduplication_token` every insert carries a token
 *   derived from its messages' sequences, and a failed insert is retried
 *   exactly as it was: the server drops what landed, in the rollup too;
 * - on servers without (18.16) a failed insert may have landed in part, so
 *   the retry looks every message up first.
 *
 * Memory is bounded: at most one batch inserting, one queued and one filling;
 * the worker fetches only what fits the batch being filled, and stops fetching
 * while two batches wait. During a ClickHouse outage it retries with backoff
 * and keeps the held messages alive with in-progress acks.
 *
 * Messages that do not decode or validate, and messages ClickHouse rejects
 * (found by splitting the failing batch), go to the `quarantine` table with
 * their bytes; they are counted, logged at a bounded rate, and acknowledged,
 * so the stream keeps flowing.
 */
import { createHash } from 'node:crypto';
import {
  AckPolicy,
  DeliverPolicy,
  JetStreamApiError,
  jetstream,
  jetstreamManager,
  type Consumer,
  type ConsumerMessages,
  type JetStreamManager,
  type JsMsg,
} from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { TABLES, eventColumns, type Retention } from '../../schemas/clickhouse/migrations.ts';
import type { Features } from '../../schemas/clickhouse/features.ts';
import { validateReportBatch, validateRouteEvent, type RejectKind, type ReportBatch } from '../../schemas/messages.ts';
import { parseRouteTail, type Names } from '../../schemas/subjects.ts';
import { tryDecode } from '../codec.ts';
import { silentLogger, type Logger } from '../log.ts';
import type { AnalyticsEngine } from './engine.ts';
import { DEFAULT_BACKOFF, FailureKind, RateLimitedLog, backoffDelay, classifyFailure, sleep, type BackoffOptions } from './failures.ts';
import { enforceRetention, runMigrations } from './migrate.ts';
import { DAY_MS, eventLine, ingestLine, quarantineLine, reportSpan, type RowSpan } from './rows.ts';
import { transcodeReportBatch } from './transcode.ts';

export interface BatchLimits {
  /** Rows (calls) per insert. */
  maxRows: number;
  /** Bytes of insert payload per insert. */
  maxBytes: number;
  /** Messages per insert (bounded by the consumer's max_ack_pending too). */
  maxMessages: number;
  /** Longest a message waits for its batch to fill, ms. */
  maxWaitMs: number;
}

export const DEFAULT_BATCH_LIMITS: BatchLimits = {
  maxRows: 200_000,
  maxBytes: 16 * 2 ** 20,
  maxMessages: 4_000,
  maxWaitMs: 1_000,
};

export const PipelineName = { reports: 'reports', events: 'events' } as const;
export type PipelineName = (typeof PipelineName)[keyof typeof PipelineName];

export interface SinkHooks {
  /** After a batch is in ClickHouse and before its messages are acknowledged (tests simulate a crash here). */
  afterInsert?(info: { pipeline: PipelineName; seqs: number[] }): void | Promise<void>;
}

export interface SinkOptions {
  nc: NatsConnection;
  names: Names;
  engine: AnalyticsEngine;
  /** This worker's id (in logs and quarantine rows). */
  id?: string;
  log?: Logger;
  /** Durable consumer names are `<durablePrefix>_reports` and `<durablePrefix>_events`. */
  durablePrefix?: string;
  pipelines?: PipelineName[];
  batch?: Partial<BatchLimits>;
  /** Consumer ack wait, ms: a message held longer without progress is redelivered. */
  ackWaitMs?: number;
  maxAckPending?: number;
  /** How long one fetch waits for messages, ms. */
  fetchExpiresMs?: number;
  backoff?: Partial<BackoffOptions>;
  /** On stop, how long to keep retrying the last batches before handing them back (nak). */
  stopTimeoutMs?: number;
  retention?: Partial<Retention>;
  /** How often to drop expired partitions on servers without TTL, ms. */
  retentionIntervalMs?: number;
  /** Clock, epoch ms (log rate limits, quarantine and retention times). */
  now?: () => number;
  hooks?: SinkHooks;
}

export interface PipelineStats {
  /** Messages taken from the stream (redeliveries included). */
  received: number;
  /** Rows this worker inserted. */
  rows: number;
  batches: number;
  acked: number;
  redelivered: number;
  /** Messages skipped because their rows were already stored. */
  duplicatesSkipped: number;
  /** Quarantined messages by reason (a RejectKind, or `rejected` when ClickHouse refused the rows). */
  quarantined: Record<string, number>;
  /** Failed insert attempts that were retried. */
  retries: number;
  lastError: string | undefined;
  /** Messages held right now (filling, queued and inserting batches): bounded by about 3 batches. */
  held: number;
}

export interface Sink {
  readonly id: string;
  stats(): Record<PipelineName, PipelineStats>;
  /** Stops fetching, stores what it holds (retrying up to stopTimeoutMs), acks, returns. */
  stop(): Promise<void>;
  /** Stops at once without acking or naking anything: what a crash leaves behind (tests). */
  abort(): Promise<void>;
}

export function durableName(prefix: string, p: PipelineName): string {
  return `${prefix}_${p}`;
}

export async function startSink(opts: SinkOptions): Promise<Sink> {
  const log = (opts.log ?? silentLogger()).child({ mod: 'sink' });
  const id = opts.id ?? `sink-${process.pid}`;
  const now = opts.now ?? Date.now;
  const jsm = await jetstreamManager(opts.nc);
  const js = jetstream(opts.nc);
  const prefix = opts.durablePrefix ?? `${opts.names.prefix}_sink`;
  const ackWaitMs = opts.ackWaitMs ?? 60_000;
  const maxAckPending = opts.maxAckPending ?? 20_000;
  const limits: BatchLimits = { ...DEFAULT_BATCH_LIMITS, ...opts.batch };
  limits.maxMessages = Math.max(1, Math.min(limits.maxMessages, Math.floor(maxAckPending / 3)));
  const rlog = new RateLimitedLog(log, 10_000, now);
  const which = opts.pipelines ?? [PipelineName.reports, PipelineName.events];
  const pipelines: Pipeline[] = [];
  for (const p of which) {
    const stream = p === PipelineName.reports ? opts.names.reportsStream : opts.names.eventsStream;
    const durable = durableName(prefix, p);
    const table = p === PipelineName.reports ? TABLES.reports : TABLES.events;
    const reopen = async (): Promise<{ consumer: Consumer; highWater: number }> => {
      const created = await ensureConsumer(jsm, stream, durable, ackWaitMs, maxAckPending, log);
      const highWater = created ? await storedHighWater(jsm, stream, opts.engine, table) : 0;
      if (highWater > 0) log.warn({ stream, durable, highWater }, 'new sink consumer on a stream already stored in part: replayed messages are looked up first');
      return { consumer: await js.consumers.get(stream, durable), highWater };
    };
    const { consumer, highWater } = await reopen();
    const writer = p === PipelineName.reports ? reportsWriter(opts.engine, stream) : eventsWriter(opts.engine, stream);
    pipelines.push(
      new Pipeline({
        name: p,
        id,
        consumer,
        highWater,
        reopen,
        writer,
        engine: opts.engine,
        limits,
        ackWaitMs,
        fetchExpiresMs: opts.fetchExpiresMs ?? 2_000,
        backoff: { ...DEFAULT_BACKOFF, ...opts.backoff },
        stopTimeoutMs: opts.stopTimeoutMs ?? 5_000,
        log: log.child({ pipeline: p }),
        rlog,
        now,
        hooks: opts.hooks ?? {},
        retention: opts.retention,
      }),
    );
  }
  for (const p of pipelines) p.start();
  let retentionTimer: NodeJS.Timeout | undefined;
  if (!opts.engine.features.ttl) {
    const enforce = () => {
      enforceRetention(opts.engine, opts.retention, now(), log).catch((err: unknown) =>
        rlog.warn('retention', { err }, 'could not drop expired partitions'),
      );
    };
    enforce();
    retentionTimer = setInterval(enforce, opts.retentionIntervalMs ?? 3_600_000);
    retentionTimer.unref();
  }
  log.info({ id, pipelines: which, limits, engine: opts.engine.description }, 'sink started');
  const stopAll = async (how: 'stop' | 'abort') => {
    if (retentionTimer) clearInterval(retentionTimer);
    await Promise.all(pipelines.map((p) => (how === 'stop' ? p.stop() : p.abort())));
  };
  return {
    id,
    stats() {
      const out = {} as Record<PipelineName, PipelineStats>;
      for (const p of pipelines) out[p.name] = { ...p.stats, quarantined: { ...p.stats.quarantined }, held: p.heldMessages() };
      return out;
    },
    async stop() {
      await stopAll('stop');
      log.info({ id }, 'sink stopped');
    },
    abort: () => stopAll('abort'),
  };
}

/** Makes sure the durable consumer exists; true when this call created it (it starts at the stream's first message). */
async function ensureConsumer(jsm: JetStreamManager, stream: string, durable: string, ackWaitMs: number, maxAckPending: number, log: Logger): Promise<boolean> {
  const ack_wait = ackWaitMs * 1_000_000;
  let existed = true;
  try {
    await jsm.consumers.info(stream, durable);
  } catch (err) {
    if (!(err instanceof JetStreamApiError) || err.code !== CONSUMER_NOT_FOUND) throw err;
    existed = false;
  }
  if (!existed) {
    try {
      await jsm.consumers.add(stream, {
        durable_name: durable,
        ack_policy: AckPolicy.Explicit,
        deliver_policy: DeliverPolicy.All,
        ack_wait,
        max_ack_pending: maxAckPending,
        max_deliver: -1,
      });
      return true;
    } catch (err) {
      // Another worker created it first, perhaps with other options: use theirs.
      if (!(err instanceof JetStreamApiError)) throw err;
    }
  }
  try {
    // Bring the tunables in line with this worker's options.
    const info = await jsm.consumers.info(stream, durable);
    if (info.config.ack_wait !== ack_wait || info.config.max_ack_pending !== maxAckPending) {
      await jsm.consumers.update(stream, durable, { ack_wait, max_ack_pending: maxAckPending });
    }
  } catch (e) {
    log.warn({ err: e, stream, durable }, 'could not update the sink consumer; using it as it is');
  }
  return false;
}

const CONSUMER_NOT_FOUND = 10014;

/**
 * The highest sequence already stored from this stream's retained messages.
 * A consumer made anew (first start, or after someone deleted it) replays
 * the stream from its start as first deliveries: messages up to this
 * sequence are then looked up before being stored, like redeliveries.
 */
async function storedHighWater(jsm: JetStreamManager, stream: string, engine: AnalyticsEngine, table: string): Promise<number> {
  const st = (await jsm.streams.info(stream)).state;
  if (st.messages === 0) return 0;
  const first = Date.parse(st.first_ts);
  const from = Number.isFinite(first) ? Math.max(0, Math.floor(first / 1000) - 86_400) : 0;
  const r = await engine.query<{ s: number | string }>(`SELECT max(seq) AS s FROM ${engine.database}.${table} WHERE time >= ${timeAt(from, engine.features)}`);
  return Number(r[0]?.s ?? 0);
}

// ---------------------------------------------------------------- writers

/** One message in a batch. */
interface Item {
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

interface Writer {
  readonly stream: string;
  /** Qualified table the lines go to. */
  readonly table: string;
  readonly columns?: readonly string[];
  prepare(m: JsMsg): Item;
  /** For each seq whose rows are stored: the UTC day numbers stored. */
  findStored(items: Item[]): Promise<Map<number, Set<number>>>;
  /** The item without the rows of `days`; undefined when nothing is left. */
  without(item: Item, days: ReadonlySet<number>): Item | undefined;
}

/** `kind`: a RejectKind, or the sink's own `rejected`. */
function reject(m: JsMsg, kind: RejectKind | 'rejected', detail: string): Item {
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
 * A time constant of the column's own type. On DateTime64 columns a DateTime
 * constant in an upper bound (`time < toDateTime(X)`) is turned into
 * `time <= X - 1` by the index analysis of ClickHouse 26.x, which drops the
 * rows in the last second's fraction: compare with a DateTime64 there.
 */
function timeAt(sec: number, f: Features): string {
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

function reportsWriter(engine: AnalyticsEngine, stream: string): Writer {
  const f = engine.features;
  const db = engine.database;
  return {
    stream,
    table: `${db}.${TABLES.reportsIngest}`,
    prepare(m) {
      const t = transcodeReportBatch(m.data, m.seq, f);
      if (t && subjectMatches(m.subject, t.span.modid, t.span.cmdid)) {
        return { msg: m, seq: m.seq, redelivered: m.redelivered, line: t.line, rows: t.rows, span: t.span };
      }
      const b = decodeBatch(m);
      if (!b.ok) return b.item;
      return { msg: m, seq: m.seq, redelivered: m.redelivered, line: ingestLine(b.value, m.seq, f), rows: b.value.reports.length, span: reportSpan(b.value) };
    },
    findStored(items) {
      return storedBySeq(
        engine,
        `SELECT seq, toUInt32(toDate(time)) AS day FROM ${db}.${TABLES.reports} WHERE ${spanFilter(items, f)} GROUP BY seq, day`,
      );
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

function eventsWriter(engine: AnalyticsEngine, stream: string): Writer {
  const f = engine.features;
  const db = engine.database;
  return {
    stream,
    table: `${db}.${TABLES.events}`,
    columns: eventColumns(f),
    prepare(m) {
      const d = tryDecode(m.data);
      if (!d.ok) return reject(m, 'malformed', d.error.message);
      const v = validateRouteEvent(d.value);
      if (!v.ok) return reject(m, v.kind, v.detail);
      const e = v.value;
      if (!Number.isSafeInteger(e.version) || e.version < 0) return reject(m, 'out_of_range', 'version must be a non-negative integer');
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
    findStored(items) {
      return storedBySeq(engine, `SELECT seq, 0 AS day FROM ${db}.${TABLES.events} WHERE ${spanFilter(items, f)} GROUP BY seq`);
    },
    without() {
      return undefined; // one row per message: stored means all of it
    },
  };
}

// ---------------------------------------------------------------- pipeline

interface PipelineParts {
  name: PipelineName;
  id: string;
  consumer: Consumer;
  /** Messages up to this stream sequence may be stored already (a new consumer replaying the stream). */
  highWater: number;
  /** Re-creates the durable consumer (someone deleted it, or the stream) and binds to it again. */
  reopen(): Promise<{ consumer: Consumer; highWater: number }>;
  writer: Writer;
  engine: AnalyticsEngine;
  limits: BatchLimits;
  ackWaitMs: number;
  fetchExpiresMs: number;
  backoff: BackoffOptions;
  stopTimeoutMs: number;
  log: Logger;
  rlog: RateLimitedLog;
  now: () => number;
  hooks: SinkHooks;
  retention: Partial<Retention> | undefined;
}

/** Most message bytes one fetch brings in. */
const FETCH_MAX_BYTES = 4 * 2 ** 20;

class Aborted extends Error {
  constructor() {
    super('sink aborted');
    this.name = 'Aborted';
  }
}

/** A batch being filled. */
class Batch {
  items: Item[] = [];
  seqs = new Set<number>();
  rows = 0;
  bytes = 0;

  full(l: BatchLimits): boolean {
    return this.items.length >= l.maxMessages || this.rows >= l.maxRows || this.bytes >= l.maxBytes;
  }
}

class Pipeline {
  readonly name: PipelineName;
  readonly stats: PipelineStats = {
    received: 0,
    rows: 0,
    batches: 0,
    acked: 0,
    redelivered: 0,
    duplicatesSkipped: 0,
    quarantined: {},
    retries: 0,
    lastError: undefined,
    held: 0,
  };
  private readonly p: PipelineParts;
  private consumer: Consumer;
  private highWater: number;
  private current = new Batch();
  /** Batches cut and not yet acked (inserting or queued). */
  private readonly held = new Set<Batch>();
  /** Sequences in held batches: a redelivery of one of them is acked with it, not stored twice. */
  private readonly heldSeqs = new Map<number, Batch>();
  private chain: Promise<void> = Promise.resolve();
  private roomWaiters: Array<() => void> = [];
  private timer: NodeJS.Timeout | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private fetch: ConsumerMessages | undefined;
  private loop: Promise<void> = Promise.resolve();
  private stopping = false;
  private aborted = false;
  private stopDeadline = Infinity;
  private readonly abortCtl = new AbortController();
  /** Wakes retry sleeps when stopping (aborting wakes them too). */
  private readonly stopCtl = new AbortController();
  /** Mean rows and bytes per message, to size fetches to the batch being filled. */
  private rowsPerMessage = 1;
  /** When the consumer was last checked after an empty fetch. */
  private lastLook = Date.now();
  private bytesPerMessage = 1024;

  constructor(p: PipelineParts) {
    this.p = p;
    this.name = p.name;
    this.consumer = p.consumer;
    this.highWater = p.highWater;
  }

  heldMessages(): number {
    let n = this.current.items.length;
    for (const b of this.held) n += b.items.length;
    return n;
  }

  start(): void {
    this.loop = this.run().catch((err: unknown) => this.p.log.error({ err }, 'sink loop failed'));
    this.heartbeat = setInterval(() => this.keepAlive(), Math.max(250, Math.floor(this.p.ackWaitMs / 3)));
    this.heartbeat.unref();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.stopDeadline = Date.now() + this.p.stopTimeoutMs;
    this.stopCtl.abort();
    await this.fetch?.close().catch(() => undefined);
    await this.loop;
    this.cut();
    await this.chain;
    if (this.heartbeat) clearInterval(this.heartbeat);
  }

  async abort(): Promise<void> {
    this.aborted = true;
    this.stopping = true;
    this.abortCtl.abort();
    this.stopCtl.abort();
    if (this.timer) clearTimeout(this.timer);
    if (this.heartbeat) clearInterval(this.heartbeat);
    await this.fetch?.close().catch(() => undefined);
    await this.loop;
    await this.chain;
  }

  private async run(): Promise<void> {
    let failures = 0;
    while (!this.stopping) {
      await this.waitForRoom();
      if (this.stopping) break;
      const l = this.p.limits;
      const c = this.current;
      const room = Math.min(l.maxMessages - c.items.length, Math.ceil((l.maxRows - c.rows) / this.rowsPerMessage));
      if (room <= 0 || c.full(l)) {
        this.cut();
        continue;
      }
      try {
        // Bytes bound the memory a fetch brings in; when messages are small,
        // the message count keeps the batch within its limits instead.
        const small = this.bytesPerMessage * room < FETCH_MAX_BYTES;
        const iter = await this.consumer.fetch(
          small
            ? { max_messages: Math.max(1, Math.min(room, 10_000)), expires: this.p.fetchExpiresMs }
            : { max_bytes: FETCH_MAX_BYTES, expires: this.p.fetchExpiresMs },
        );
        this.fetch = iter;
        let got = 0;
        for await (const m of iter) {
          if (this.aborted) break;
          this.add(m);
          got++;
        }
        failures = 0;
        // A quiet stream, or a consumer someone deleted (fetches then just
        // come back empty): look now and then.
        if (got === 0 && Date.now() - this.lastLook > 10_000 && !this.stopping) {
          this.lastLook = Date.now();
          await this.consumer.info().catch(() => this.reopen());
        }
      } catch (err) {
        if (this.stopping) break;
        this.stats.lastError = (err as Error).message;
        this.p.rlog.warn(`fetch-${this.name}`, { err }, 'fetch from the stream failed; retrying');
        await sleep(backoffDelay(failures++, this.p.backoff), this.stopCtl.signal);
        if (!this.stopping && (failures >= 3 || /consumer (deleted|not found)|stream not found/i.test((err as Error).message ?? ''))) {
          await this.reopen();
        }
      } finally {
        this.fetch = undefined;
      }
    }
  }

  private add(m: JsMsg): void {
    this.stats.received++;
    if (m.redelivered) this.stats.redelivered++;
    const seq = m.seq;
    // The same message twice while we still hold it (redelivered after a
    // long wait): keep one copy, ack the other with its batch.
    const b = this.current.seqs.has(seq) ? this.current : this.heldSeqs.get(seq);
    if (b) {
      b.items.push({ msg: m, seq, redelivered: true, line: '', rows: 0, dup: true });
      return;
    }
    const item = this.p.writer.prepare(m);
    if (seq <= this.highWater) item.redelivered = true;
    if (item.rows > 0) this.rowsPerMessage += (item.rows - this.rowsPerMessage) / 16;
    this.bytesPerMessage += (m.data.length - this.bytesPerMessage) / 16;
    const c = this.current;
    c.items.push(item);
    c.seqs.add(seq);
    c.rows += item.rows;
    c.bytes += item.line.length;
    if (c.items.length === 1) {
      this.timer = setTimeout(() => this.cut(), this.p.limits.maxWaitMs);
    }
    if (c.full(this.p.limits)) this.cut();
  }

  /** Hands the filling batch to the insert chain (does not wait). */
  private cut(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    const b = this.current;
    if (b.items.length === 0) return;
    this.current = new Batch();
    this.held.add(b);
    for (const s of b.seqs) this.heldSeqs.set(s, b);
    this.chain = this.chain
      .then(() => this.flush(b))
      .catch((err: unknown) => this.p.log.error({ err }, 'batch flush failed'))
      .finally(() => {
        this.held.delete(b);
        for (const s of b.seqs) if (this.heldSeqs.get(s) === b) this.heldSeqs.delete(s);
        const w = this.roomWaiters;
        this.roomWaiters = [];
        for (const r of w) r();
      });
  }

  /** Makes the durable consumer again (deleted, or its stream re-created) and binds to it. */
  private async reopen(): Promise<void> {
    try {
      const r = await this.p.reopen();
      this.consumer = r.consumer;
      this.highWater = Math.max(this.highWater, r.highWater);
      this.p.log.warn('sink consumer re-created');
    } catch (e) {
      this.p.rlog.warn(`reopen-${this.name}`, { err: e }, 'could not re-create the sink consumer');
    }
  }

  private async waitForRoom(): Promise<void> {
    while (this.held.size >= 2 && !this.stopping) {
      await new Promise<void>((r) => this.roomWaiters.push(r));
    }
  }

  /** In-progress acks for every held message, so a long outage does not redeliver them. */
  private keepAlive(): void {
    for (const b of [...this.held, this.current]) for (const i of b.items) i.msg.working();
  }

  private async flush(b: Batch): Promise<void> {
    const good = b.items.filter((i) => !i.bad && !i.dup);
    const bad = b.items.filter((i) => i.bad && !i.dup);
    // First try: only redelivered messages can be stored already.
    let check: 'redelivered' | 'all' = 'redelivered';
    // With dedup tokens, a retry repeats the first attempt exactly (same rows,
    // same token) and the server drops whatever of it landed, in the raw table
    // and in the rollup alike; unless the batch had to be split.
    const tokens = this.p.engine.features.dedupToken;
    let fixed: Item[] | undefined;
    const split = { started: false };
    for (let attempt = 0; ; attempt++) {
      if (this.aborted) return;
      try {
        let rows: number;
        if (tokens && !split.started) {
          fixed ??= await this.dropStored(good, good.filter((i) => i.redelivered));
          rows = fixed.length > 0 ? await this.insertOrSplit(fixed, split) : 0;
        } else {
          rows = await this.store(good, check, split);
        }
        if (bad.length > 0) await this.quarantine(bad);
        await this.p.hooks.afterInsert?.({ pipeline: this.name, seqs: good.map((i) => i.seq) });
        if (this.aborted) return;
        for (const i of b.items) i.msg.ack();
        this.stats.acked += b.items.length;
        this.stats.rows += rows;
        this.stats.batches++;
        return;
      } catch (err) {
        if (this.aborted || err instanceof Aborted) return;
        const f = classifyFailure(err);
        this.stats.retries++;
        this.stats.lastError = f.message;
        // Whatever failed may have landed in part: look before the next try.
        check = 'all';
        if (this.stopping && Date.now() >= this.stopDeadline) {
          // Redelivered once our last pull request has expired: nats-server 2.9
          // would otherwise hand them straight back to it, and our closed inbox
          // would leave them waiting a full ack wait.
          for (const i of b.items) i.msg.nak(this.p.fetchExpiresMs + 500);
          this.p.log.warn({ messages: b.items.length, err: f.message }, 'stopping with ClickHouse unavailable: batch handed back to the stream');
          return;
        }
        this.p.rlog.warn(`insert-${this.name}`, { err: f.message, code: f.code, kind: f.kind, attempt }, 'ClickHouse insert failed; backing off');
        if (f.kind === FailureKind.missingSchema) {
          await runMigrations(this.p.engine, { repair: true, retention: this.p.retention, log: this.p.log }).catch((e: unknown) =>
            this.p.rlog.warn('migrate', { err: e }, 'could not re-create the schema'),
          );
        }
        let delay = backoffDelay(attempt, this.p.backoff);
        if (this.stopping) delay = Math.min(delay, Math.max(0, this.stopDeadline - Date.now()));
        await sleep(delay, this.stopCtl.signal);
      }
    }
  }

  /** Stores the items' rows; returns the rows inserted. Throws on a failure that is not about the data. */
  private async store(items: Item[], check: 'redelivered' | 'all', split: { started: boolean }): Promise<number> {
    const todo = await this.dropStored(items, check === 'redelivered' ? items.filter((i) => i.redelivered) : items);
    if (todo.length === 0) return 0;
    return this.insertOrSplit(todo, split);
  }

  /** Leaves out messages (or their days) whose rows are already in ClickHouse; only `suspects` are looked up. */
  private async dropStored(items: Item[], suspects: Item[] = items): Promise<Item[]> {
    if (suspects.length === 0) return items;
    const stored = await this.p.writer.findStored(suspects);
    if (stored.size === 0) return items;
    const out: Item[] = [];
    for (const i of items) {
      const days = stored.get(i.seq);
      if (!days) {
        out.push(i);
        continue;
      }
      const rest = this.p.writer.without(i, days);
      if (rest) out.push(rest);
      else this.stats.duplicatesSkipped++;
    }
    return out;
  }

  private async insertOrSplit(items: Item[], split: { started: boolean }): Promise<number> {
    if (this.aborted) throw new Aborted();
    try {
      await this.insert(items);
      return items.reduce((n, i) => n + i.rows, 0);
    } catch (err) {
      const f = classifyFailure(err);
      if (f.kind !== FailureKind.data) throw err;
      // The server refused something in these rows. A refused insert may
      // still have written the raw table before a view failed: look first.
      split.started = true;
      const rest = await this.dropStored(items);
      if (rest.length === 0) return 0;
      if (rest.length === 1) {
        await this.quarantine(rest.map((i) => ({ ...i, bad: { kind: 'rejected', detail: f.message } })));
        return 0;
      }
      const mid = rest.length >> 1;
      return (await this.insertOrSplit(rest.slice(0, mid), split)) + (await this.insertOrSplit(rest.slice(mid), split));
    }
  }

  private async insert(items: Item[]): Promise<void> {
    if (this.p.log.isLevelEnabled('debug')) {
      this.p.log.debug({ first: items[0]?.seq, last: items[items.length - 1]?.seq, messages: items.length }, 'insert');
    }
    const h = createHash('sha1').update(this.p.writer.stream);
    for (const i of items) h.update(i.variant ? `,${i.seq}:${i.variant}` : `,${i.seq}`);
    let body = '';
    for (const i of items) body += i.line;
    await this.p.engine.insertTsv(this.p.writer.table, this.p.writer.columns, body, { token: h.digest('hex') });
  }

  private async quarantine(items: Item[]): Promise<void> {
    const at = this.p.now();
    let body = '';
    for (const i of items) {
      const bad = i.bad ?? { kind: 'rejected', detail: '' };
      body += quarantineLine({
        at,
        stream: this.p.writer.stream,
        seq: i.seq,
        subject: i.msg.subject,
        kind: bad.kind,
        detail: bad.detail,
        sink: this.p.id,
        payload: i.msg.data,
      });
    }
    const h = createHash('sha1').update(`q:${this.p.writer.stream}`);
    for (const i of items) h.update(`,${i.seq}`);
    let lost = false;
    try {
      await this.p.engine.insertTsv(`${this.p.engine.database}.${TABLES.quarantine}`, undefined, body, { token: h.digest('hex') });
    } catch (err) {
      // ClickHouse refusing the quarantine rows themselves (someone changed
      // that table) must not stop the stream either; anything else is retried.
      if (classifyFailure(err).kind !== FailureKind.data) throw err;
      lost = true;
      this.p.rlog.error(`quarantine-lost-${this.name}`, { err, messages: items.length }, 'quarantine table refused rows; messages dropped');
    }
    for (const i of items) {
      const kind = lost ? 'lost' : (i.bad?.kind ?? 'rejected');
      this.stats.quarantined[kind] = (this.stats.quarantined[kind] ?? 0) + 1;
      this.p.rlog.warn(
        `quarantine-${this.name}-${kind}`,
        { seq: i.seq, subject: i.msg.subject, kind, detail: i.bad?.detail.slice(0, 300) },
        'message quarantined',
      );
    }
  }
}
