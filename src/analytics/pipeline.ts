/**
 * The fetch-and-batch pipeline of one stream: pulls from the durable
 * consumer only what fits the batch being filled, cuts batches by rows,
 * bytes, messages and time, hands them to the writer one at a time, and
 * keeps every held message alive with in-progress acks (inserting ones too)
 * so that only a dead worker's messages are redelivered.
 *
 * Memory is bounded: at most one batch inserting, one queued and one
 * filling; no fetch while two batches wait.
 */
import type { Consumer, ConsumerMessages, ConsumerNotification, JsMsg } from '@nats-io/jetstream';
import { deadline } from '@nats-io/transport-node';
import type { Logger } from '../lib/log.ts';
import type { RateLimitedLog } from '../lib/ratelog.ts';
import type { Binding, DurableConsumer } from './consumer.ts';
import { isConsumerGone } from './consumer.ts';
import { backoffDelay, sleep, type BackoffOptions } from './failures.ts';
import type { Item, RowSource } from './items.ts';
import type { BatchLimits, PipelineName, PipelineStats } from './types.ts';
import { RunState, type BatchWriter } from './writer.ts';

export interface PipelineOptions {
  name: PipelineName;
  durable: DurableConsumer;
  /** The first binding (made by the caller, so that start fails when the consumer cannot be made). */
  bound: Binding;
  rows: RowSource;
  writer: BatchWriter;
  stats: PipelineStats;
  run: RunState;
  limits: BatchLimits;
  ackWaitMs: number;
  fetchExpiresMs: number;
  backoff: BackoffOptions;
  stopTimeoutMs: number;
  log: Logger;
  rlog: RateLimitedLog;
  now: () => number;
}

/** About the most message bytes one fetch brings in (by the mean message size). */
const FETCH_MAX_BYTES = 4 * 2 ** 20;

/** How often a fetch loop that gets nothing checks that its consumer still exists, ms. */
const LOOK_INTERVAL_MS = 10_000;

/** A batch being filled. */
class Batch {
  items: Item[] = [];
  seqs = new Set<number>();
  rows = 0;
  bytes = 0;
  /** When its oldest message was delivered or last kept alive (clock ms). */
  aliveAt = 0;
  /**
   * Not kept alive for a whole ack wait (this process was stopped or
   * starved): the stream may have given its messages to another worker,
   * which stores them. They are neither stored nor acknowledged here: the
   * stream delivers them again (to this worker or another), and a
   * redelivery is looked up before it is stored.
   */
  stale = false;

  full(l: BatchLimits): boolean {
    return this.items.length >= l.maxMessages || this.rows >= l.maxRows || this.bytes >= l.maxBytes;
  }
}

export class Pipeline {
  readonly name: PipelineName;
  readonly stats: PipelineStats;
  private readonly p: PipelineOptions;
  private readonly run: RunState;
  private consumer: Consumer;
  private highWater: number;
  /** Highest stream sequence this worker has received. */
  private maxSeen = 0;
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
  /** Mean rows and bytes per message, to size fetches to the batch being filled. */
  private rowsPerMessage = 1;
  private bytesPerMessage = 1024;
  /** When the consumer was last checked after an empty fetch. */
  private lastLook: number;
  /** The last fetch failed (the consumer lost, its stream away): unbound until a fetch succeeds again. */
  private failing = false;
  /**
   * After a fetch failed (a server lost or restarted, a leadership change),
   * the consumer's acknowledged position may have fallen back: messages
   * another worker stored can come again as first deliveries. Until the
   * stored high-water mark is read again, every message is looked up.
   */
  private suspect = false;
  private refreshing: Promise<void> | undefined;

  constructor(p: PipelineOptions) {
    this.p = p;
    this.name = p.name;
    this.stats = p.stats;
    this.run = p.run;
    this.consumer = p.bound.consumer;
    this.highWater = p.bound.highWater;
    this.lastLook = p.now();
  }

  /** Stores messages recovered from the stream (Reconciler) in turn with the pipeline's batches. */
  storeRecovered(items: Item[]): Promise<void> {
    const run = this.chain.then(() => this.p.writer.flush(items));
    this.chain = run.catch((err: unknown) => this.p.log.error({ err }, 'recovered messages not stored'));
    return run;
  }

  /** Whether the last fetch from the consumer worked (readiness: a sink whose consumers are not bound is not doing its work). */
  isBound(): boolean {
    return !this.failing;
  }

  heldMessages(): number {
    let n = this.current.items.length;
    for (const b of this.held) n += b.items.length;
    return n;
  }

  start(): void {
    this.loop = this.fetchLoop().catch((err: unknown) => this.p.log.error({ err }, 'sink loop failed'));
    this.heartbeat = setInterval(() => this.keepAlive(), Math.max(250, Math.floor(this.p.ackWaitMs / 3)));
    this.heartbeat.unref();
  }

  async stop(): Promise<void> {
    this.run.stopping = true;
    this.run.stopDeadline = this.p.now() + this.p.stopTimeoutMs;
    this.run.stopCtl.abort();
    await this.fetch?.close().catch(() => undefined);
    await this.loop;
    this.cut();
    await this.chain;
    if (this.heartbeat) clearInterval(this.heartbeat);
  }

  async abort(): Promise<void> {
    this.run.aborted = true;
    this.run.stopping = true;
    this.run.stopCtl.abort();
    if (this.timer) clearTimeout(this.timer);
    if (this.heartbeat) clearInterval(this.heartbeat);
    await this.fetch?.close().catch(() => undefined);
    await this.loop;
    await this.chain;
  }

  private async fetchLoop(): Promise<void> {
    let failures = 0;
    while (!this.run.stopping) {
      await this.waitForRoom();
      if (this.run.stopping) break;
      const l = this.p.limits;
      const c = this.current;
      const room = Math.min(l.maxMessages - c.items.length, Math.ceil((l.maxRows - c.rows) / this.rowsPerMessage));
      if (room <= 0 || c.full(l)) {
        this.cut();
        continue;
      }
      let got = 0;
      const seen = new Set<ConsumerNotification['type']>();
      let statusDone: Promise<void> = Promise.resolve();
      // A fetch asks for a message count sized to about FETCH_MAX_BYTES by
      // the mean message size. Not a byte-bounded fetch: with nats.js 3.4 on
      // nats-server 2.9 one of those delivers at most 100 messages, then ends
      // with a 409 (the next message does not fit) or waits for heartbeats
      // the server no longer sends, an error and a stall after every fetch.
      const count = Math.max(1, Math.min(room, 10_000, Math.floor(FETCH_MAX_BYTES / this.bytesPerMessage)));
      try {
        const iter = await this.consumer.fetch({ max_messages: count, expires: this.p.fetchExpiresMs });
        this.fetch = iter;
        statusDone = watchStatus(iter, (s) => seen.add(s.type));
        for await (const m of iter) {
          if (this.run.aborted) break;
          this.add(m);
          got++;
        }
        failures = 0;
        this.failing = false;
        // A quiet stream, or a consumer someone deleted (fetches then just
        // come back empty): look now and then.
        if (got === 0 && this.p.now() - this.lastLook > LOOK_INTERVAL_MS && !this.run.stopping) {
          this.lastLook = this.p.now();
          await this.consumer.info().catch((err: unknown) => this.rebind(err));
        }
      } catch (err) {
        if (this.run.stopping) break;
        // The notifications the fetch sent before it ended say why it ended.
        await deadline(statusDone, 1_000).catch(() => undefined);
        const gone = seen.has('consumer_deleted') || seen.has('consumer_not_found') || seen.has('stream_not_found') || isConsumerGone(err);
        this.stats.lastError = (err as Error).message;
        this.failing = true;
        this.refreshHighWater();
        this.p.rlog.warn(`fetch-${this.name}`, { err, got, gone }, 'fetch from the stream failed; retrying');
        await sleep(backoffDelay(failures++, this.p.backoff), this.run.stopCtl.signal);
        if (!this.run.stopping && (failures >= 3 || gone)) await this.rebind(err);
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
    // A filling batch that went stale while this process was stopped is left to the stream; new messages start a new one.
    if (this.current.items.length > 0 && this.isStale(this.current)) this.cut();
    const item = this.p.rows.prepare(m);
    // At or below what is stored, or below what this worker has seen already
    // (the consumer's position fell back, e.g. acks lost in a server crash):
    // may be stored, so it is looked up before it is inserted.
    if (this.suspect || seq <= this.highWater || seq <= this.maxSeen) item.redelivered = true;
    if (seq > this.maxSeen) this.maxSeen = seq;
    if (item.rows > 0) this.rowsPerMessage += (item.rows - this.rowsPerMessage) / 16;
    this.bytesPerMessage += (m.data.length - this.bytesPerMessage) / 16;
    const c = this.current;
    c.items.push(item);
    c.seqs.add(seq);
    c.rows += item.rows;
    c.bytes += item.line.length;
    if (c.items.length === 1) {
      c.aliveAt = this.p.now();
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
      .then(() => {
        if (this.isStale(b)) return this.dropStale(b);
        return this.p.writer.flush(b.items);
      })
      .catch((err: unknown) => this.p.log.error({ err }, 'batch flush failed'))
      .finally(() => {
        this.held.delete(b);
        for (const s of b.seqs) if (this.heldSeqs.get(s) === b) this.heldSeqs.delete(s);
        const w = this.roomWaiters;
        this.roomWaiters = [];
        for (const r of w) r();
      });
  }

  /** Reads the stored high-water mark again (see `suspect`); one read at a time, retried on the next failure if it fails. */
  private refreshHighWater(): void {
    this.suspect = true;
    if (this.refreshing) return;
    this.refreshing = this.p.durable
      .storedHighWater()
      .then((hw) => {
        this.highWater = Math.max(this.highWater, hw);
        this.suspect = false;
      })
      .catch((err: unknown) => {
        this.p.rlog.warn(`highwater-${this.name}`, { err: errText(err) }, 'stored high-water mark not read; looking every message up until it is');
      })
      .finally(() => {
        this.refreshing = undefined;
      });
  }

  /** Binds to the durable consumer again, making it when it is gone (deleted, or its stream re-created). */
  private async rebind(cause: unknown): Promise<void> {
    try {
      const r = await this.p.durable.bind();
      this.consumer = r.consumer;
      this.highWater = Math.max(this.highWater, r.highWater);
      if (r.created) this.p.log.warn({ cause: errText(cause), highWater: r.highWater }, 'sink consumer re-created');
      else this.p.log.info({ cause: errText(cause) }, 'sink consumer bound again');
    } catch (e) {
      this.p.rlog.warn(`reopen-${this.name}`, { err: e }, 'could not re-create the sink consumer');
    }
  }

  private async waitForRoom(): Promise<void> {
    while (this.held.size >= 2 && !this.run.stopping) {
      await new Promise<void>((r) => this.roomWaiters.push(r));
    }
  }

  /**
   * In-progress acks for held messages (inserting, queued, filling) that
   * have gone a quarter of the ack wait without one, so that only a dead
   * worker's messages are redelivered. Runs every third of the ack wait: a
   * held message hears from us within 7/12 of it; a batch stored quickly
   * costs no in-progress ack at all.
   */
  /** Whether the batch went a whole ack wait without being kept alive (checked, and marked, now). */
  private isStale(b: Batch): boolean {
    if (!b.stale && b.items.length > 0 && this.p.now() - b.aliveAt >= this.p.ackWaitMs) b.stale = true;
    return b.stale;
  }

  private dropStale(b: Batch): void {
    this.stats.staleDropped += b.items.length;
    this.p.rlog.warn(`stale-${this.name}`, { messages: b.items.length, ackWaitMs: this.p.ackWaitMs }, 'held messages went a whole ack wait without in-progress acks (the process was stopped or starved): left to the stream to deliver again, not stored here');
  }

  private keepAlive(): void {
    const now = this.p.now();
    const due = this.p.ackWaitMs / 4;
    try {
      for (const b of [...this.held, this.current]) {
        // Too late to keep alive: the messages may be another worker's now (see Batch.stale).
        if (this.isStale(b)) continue;
        if (b.items.length === 0 || now - b.aliveAt < due) continue;
        for (const i of b.items) i.msg.working();
        b.aliveAt = now;
      }
    } catch (err) {
      // The connection is closed: nothing can be kept alive any more, and the messages go back to the stream.
      this.p.rlog.warn(`working-${this.name}`, { err }, 'could not send in-progress acks');
    }
  }
}

function errText(err: unknown): string | undefined {
  return err instanceof Error ? err.message : typeof err === 'string' ? err : undefined;
}

/** Feeds a fetch's notifications (consumer deleted, heartbeats missed, ...) to `on` until the fetch ends. */
async function watchStatus(iter: ConsumerMessages, on: (s: ConsumerNotification) => void): Promise<void> {
  try {
    for await (const s of iter.status()) on(s);
  } catch {
    // the fetch ended
  }
}
