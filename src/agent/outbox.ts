/**
 * The report outbox: every report batch stays here until JetStream has
 * acknowledged it, across disconnects, reconnects and server failovers.
 *
 * Batches are JetStream publishes on their report subject (core subscribers,
 * the route nodes, still receive them), up to `window` outstanding at once:
 * one at a time would cap a client at the round trip rate. Each carries a
 * `Nats-Msg-Id` (see `reportMsgId`), so a retry of a batch the stream had
 * stored already, inside the stream's duplicate window, is stored once.
 * A failed publish goes back to the queue; sending pauses with backoff and
 * resumes at once on reconnect. Only overflow of the bound drops reports:
 * the oldest batches not on the wire first.
 */
import { backoff, ClosedConnectionError, DrainingConnectionError, NoRespondersError, TimeoutError, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, JetStreamApiError } from '@nats-io/jetstream';
import { silentLogger, type Logger } from '../log.ts';
import { LarsError, ErrorCode, ClosedError } from '../errors.ts';
import { RateLimitedLog } from '../ratelog.ts';

/**
 * `Nats-Msg-Id` of a report batch: `<sender>/<instance>/<seq>`. `sender` is
 * the batch's sender (the agent id), `instance` a random token per agent
 * process (so a restarted agent with a fixed id never reuses an id), `seq`
 * the agent's batch sequence from 1, over all routes. A consumer that sees
 * the same id twice (a retried batch whose first publish did arrive) can
 * drop the second.
 */
export function reportMsgId(sender: string, instance: string, seq: number): string {
  return `${sender}/${instance}/${seq}`;
}

/** The parts of a `reportMsgId`, or undefined when `id` is not one. */
export function parseReportMsgId(id: string): { sender: string; instance: string; seq: number } | undefined {
  const b = id.lastIndexOf('/');
  if (b <= 0) return undefined;
  const a = id.lastIndexOf('/', b - 1);
  if (a <= 0) return undefined;
  const seq = Number(id.slice(b + 1));
  if (!Number.isSafeInteger(seq) || seq < 1) return undefined;
  const instance = id.slice(a + 1, b);
  if (instance.length === 0) return undefined;
  return { sender: id.slice(0, a), instance, seq };
}

/** Why a publish was not acknowledged. */
export const PublishFailure = {
  /** Nothing answers on the subject: no stream captures it (or JetStream is off). */
  noStream: 'no_stream',
  /** No ack in time: server away, restarting, or the only listener a core subscriber. */
  timeout: 'timeout',
  /** The stream refused the message (a JetStream API error). */
  refused: 'refused',
  /** The connection is closed for good. */
  closed: 'closed',
  other: 'other',
} as const;
export type PublishFailure = (typeof PublishFailure)[keyof typeof PublishFailure];

function inChain(err: unknown, test: (e: unknown) => boolean): boolean {
  for (let e = err, i = 0; e !== undefined && e !== null && i < 5; e = (e as { cause?: unknown }).cause, i++) if (test(e)) return true;
  return false;
}

export function classifyPublishError(err: unknown): PublishFailure {
  if (inChain(err, (e) => e instanceof NoRespondersError)) return PublishFailure.noStream;
  if (inChain(err, (e) => e instanceof TimeoutError)) return PublishFailure.timeout;
  if (inChain(err, (e) => e instanceof ClosedConnectionError || e instanceof DrainingConnectionError)) return PublishFailure.closed;
  if (err instanceof JetStreamApiError) return PublishFailure.refused;
  return PublishFailure.other;
}

/** Publishes one batch; resolves on the stream's ack, rejects otherwise. */
export type PublishFn = (subject: string, data: Uint8Array, msgId: string) => Promise<void>;

/** A PublishFn over JetStream publish (ack awaited, at most `ackTimeoutMs`). */
export function jetStreamPublisher(nc: NatsConnection, ackTimeoutMs: number): PublishFn {
  const js = jetstream(nc, { timeout: ackTimeoutMs });
  return async (subject, data, msgId) => {
    await js.publish(subject, data, { msgID: msgId, timeout: ackTimeoutMs });
  };
}

export interface OutboxOptions {
  publish: PublishFn;
  classify?: (err: unknown) => PublishFailure;
  /** Sender part of the msg ids. */
  sender: string;
  /** Instance part of the msg ids; default random. */
  instance: string;
  /** Publishes outstanding at once; default 64. */
  window?: number;
  /** Reports kept unacknowledged (plus `extraPending()`); beyond it the oldest batches not on the wire are dropped. */
  maxReports: number;
  /** Reports held elsewhere that count against the bound (the batcher's buffers). */
  extraPending?: () => number;
  /** Pauses after failed publishes, ms, by consecutive failure; default [100, 250, 500, 1000, 2000, 5000]. */
  backoffMs?: number[];
  /** What the operator should do when no stream captures the reports. */
  noStreamHint?: string;
  log?: Logger;
  clock?: () => number;
  /** At most one log line per failure kind per interval, ms; default 10000. */
  logIntervalMs?: number;
}

export interface OutboxStats {
  /** Reports in batches not yet acknowledged (queued or on the wire). */
  pendingReports: number;
  /** Batches not yet acknowledged. */
  pendingBatches: number;
  ackedBatches: number;
  ackedReports: number;
  /** Publishes of a batch after its first. */
  retriedBatches: number;
  /** Reports given up: overflow of the bound, or still unacknowledged at close. */
  droppedReports: number;
}

class Entry {
  readonly seq: number;
  readonly msgId: string;
  readonly subject: string;
  readonly data: Uint8Array;
  readonly reports: number;
  attempts = 0;
  constructor(seq: number, msgId: string, subject: string, data: Uint8Array, reports: number) {
    this.seq = seq;
    this.msgId = msgId;
    this.subject = subject;
    this.data = data;
    this.reports = reports;
  }
}

interface Waiter {
  upTo: number;
  resolve: () => void;
  reject: (err: Error) => void;
  timer: ReturnType<typeof setTimeout> | undefined;
}

export class Outbox {
  private readonly publishFn: PublishFn;
  private readonly classify: (err: unknown) => PublishFailure;
  private readonly sender: string;
  private readonly instance: string;
  private readonly window: number;
  private readonly maxReports: number;
  private readonly extraPending: () => number;
  private readonly policy: ReturnType<typeof backoff>;
  private readonly noStreamHint: string;
  private readonly log: Logger;
  private readonly rateLog: RateLimitedLog;
  private readonly clock: () => number;
  /** Batches waiting to be sent, oldest first (a retried batch goes back in seq order). */
  private queue: Entry[] = [];
  private head = 0;
  /** Every batch not yet settled (acked or dropped), in seq order: its first key is the oldest. */
  private readonly unsettled = new Map<number, Entry>();
  private inflight = 0;
  private inflightReports = 0;
  private seq = 0;
  private failures = 0;
  private pausedUntil = 0;
  private wake: ReturnType<typeof setTimeout> | undefined;
  private waiters: Waiter[] = [];
  private stopped = false;
  private closedConnection = false;
  private readonly counters = { pendingReports: 0, ackedBatches: 0, ackedReports: 0, retriedBatches: 0, droppedReports: 0 };

  constructor(opts: OutboxOptions) {
    this.publishFn = opts.publish;
    this.classify = opts.classify ?? classifyPublishError;
    this.sender = opts.sender;
    this.instance = opts.instance;
    this.window = Math.max(1, opts.window ?? 64);
    this.maxReports = Math.max(1, opts.maxReports);
    this.extraPending = opts.extraPending ?? (() => 0);
    this.policy = backoff(opts.backoffMs ?? [100, 250, 500, 1000, 2000, 5000]);
    this.noStreamHint = opts.noStreamHint ?? 'create the stream that captures the report subjects';
    this.log = (opts.log ?? silentLogger()).child({ mod: 'outbox' });
    this.clock = opts.clock ?? Date.now;
    this.rateLog = new RateLimitedLog(this.log, opts.logIntervalMs ?? 10_000, this.clock);
  }

  /** Sequence of the last batch added (0 before the first). */
  get lastSeq(): number {
    return this.seq;
  }

  /** Queues an encoded batch of `reports` reports and sends what the window allows. */
  add(subject: string, data: Uint8Array, reports: number): void {
    const seq = ++this.seq;
    const e = new Entry(seq, reportMsgId(this.sender, this.instance, seq), subject, data, reports);
    this.unsettled.set(seq, e);
    this.queue.push(e);
    this.counters.pendingReports += reports;
    this.enforceBound();
    this.pump();
  }

  /** Resumes sending now (after a reconnect): the backoff starts over. */
  kick(): void {
    this.failures = 0;
    this.pausedUntil = 0;
    if (this.wake !== undefined) clearTimeout(this.wake);
    this.wake = undefined;
    this.pump();
  }

  /**
   * Resolves when every batch up to `upTo` (default: all added so far) is
   * acknowledged or dropped; rejects with a LARS_TIMEOUT error after `timeoutMs`.
   */
  settled(timeoutMs: number, upTo = this.seq): Promise<void> {
    if (this.oldestUnsettled() > upTo) return Promise.resolve();
    if (this.closedConnection) return Promise.reject(new ClosedError('NATS connection'));
    return new Promise<void>((resolve, reject) => {
      const w: Waiter = { upTo, resolve, reject, timer: undefined };
      w.timer = setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x !== w);
        reject(new LarsError(ErrorCode.timeout, `report batches not acknowledged within ${timeoutMs} ms (${this.counters.pendingReports} reports pending)`));
      }, timeoutMs);
      this.waiters.push(w);
    });
  }

  stats(): OutboxStats {
    return { ...this.counters, pendingBatches: this.unsettled.size };
  }

  /** Stops sending and gives up what is not acknowledged (counted as dropped); returns how many reports. */
  abandon(): number {
    this.stopped = true;
    if (this.wake !== undefined) clearTimeout(this.wake);
    this.wake = undefined;
    let n = 0;
    for (const e of this.unsettled.values()) n += e.reports;
    this.unsettled.clear();
    this.queue = [];
    this.head = 0;
    this.counters.pendingReports = 0;
    this.counters.droppedReports += n;
    if (n > 0) this.log.warn({ reports: n }, 'closing with unacknowledged report batches; they are dropped');
    this.checkWaiters();
    return n;
  }

  // ---------------------------------------------------------------- internals

  private oldestUnsettled(): number {
    for (const k of this.unsettled.keys()) return k;
    return Infinity;
  }

  private queued(): number {
    return this.queue.length - this.head;
  }

  private shift(): Entry | undefined {
    if (this.head >= this.queue.length) return undefined;
    const e = this.queue[this.head++];
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    return e;
  }

  private enforceBound(): void {
    let dropped = 0;
    let batches = 0;
    while (this.counters.pendingReports + this.extraPending() > this.maxReports && this.queued() > 0) {
      const e = this.shift()!;
      this.unsettled.delete(e.seq);
      this.counters.pendingReports -= e.reports;
      this.counters.droppedReports += e.reports;
      dropped += e.reports;
      batches++;
    }
    if (dropped > 0) {
      this.rateLog.emit('warn', 'overflow', { reports: dropped, batches, maxPendingReports: this.maxReports }, 'more reports unacknowledged than maxPendingReports; the oldest are dropped');
      this.checkWaiters();
    }
  }

  private pump(): void {
    if (this.stopped) return;
    if (this.pausedUntil > 0) {
      const wait = this.pausedUntil - this.clock();
      if (wait > 0) {
        if (this.wake === undefined) {
          this.wake = setTimeout(() => {
            this.wake = undefined;
            this.pump();
          }, wait);
        }
        return;
      }
      this.pausedUntil = 0;
    }
    while (this.inflight < this.window && this.queued() > 0) {
      const e = this.queue[this.head]!;
      // What is on the wire stays within the bound too (a batch alone always goes).
      if (this.inflight > 0 && this.inflightReports + e.reports > this.maxReports) break;
      this.shift();
      this.send(e);
    }
  }

  private send(e: Entry): void {
    if (e.attempts > 0) this.counters.retriedBatches++;
    e.attempts++;
    this.inflight++;
    this.inflightReports += e.reports;
    this.publishFn(e.subject, e.data, e.msgId).then(
      () => this.onAck(e),
      (err: unknown) => this.onFail(e, err),
    );
  }

  private onAck(e: Entry): void {
    this.inflight--;
    this.inflightReports -= e.reports;
    if (this.stopped || !this.unsettled.delete(e.seq)) return;
    this.counters.pendingReports -= e.reports;
    this.counters.ackedBatches++;
    this.counters.ackedReports += e.reports;
    this.failures = 0;
    this.checkWaiters();
    this.pump();
  }

  private onFail(e: Entry, err: unknown): void {
    this.inflight--;
    this.inflightReports -= e.reports;
    if (this.stopped || !this.unsettled.has(e.seq)) return;
    this.requeue(e);
    const kind = this.classify(err);
    this.logFailure(kind, e, err);
    if (kind === PublishFailure.closed) {
      // Nothing will reconnect this connection: keep the batches for close() to count; waiting flushes fail now.
      this.stopped = true;
      this.closedConnection = true;
      for (const w of this.waiters.splice(0)) {
        if (w.timer) clearTimeout(w.timer);
        w.reject(new ClosedError('NATS connection'));
      }
      return;
    }
    const now = this.clock();
    // A burst of failures (a whole window timing out together) counts as one.
    if (now >= this.pausedUntil) {
      this.pausedUntil = now + this.policy.backoff(this.failures);
      this.failures++;
    }
    this.pump();
  }

  /** Puts a failed batch back in seq order (failed batches are the oldest: the scan is short). */
  private requeue(e: Entry): void {
    let i = this.head;
    while (i < this.queue.length && this.queue[i]!.seq < e.seq) i++;
    if (i === this.head && this.head > 0) this.queue[--this.head] = e;
    else this.queue.splice(i, 0, e);
  }

  private logFailure(kind: PublishFailure, e: Entry, err: unknown): void {
    const ctx = { subject: e.subject, pendingReports: this.counters.pendingReports, pendingBatches: this.unsettled.size };
    switch (kind) {
      case PublishFailure.noStream:
        this.rateLog.emit('error', kind, ctx, `no JetStream stream captures ${e.subject}: report batches are held and retried; ${this.noStreamHint}`);
        break;
      case PublishFailure.timeout:
        this.rateLog.emit('warn', kind, ctx, 'report batch not acknowledged in time (server away or restarting, or no stream captures the subject); retrying');
        break;
      case PublishFailure.closed:
        this.rateLog.emit('error', kind, ctx, 'the connection is closed; report batches can no longer be sent');
        break;
      default:
        this.rateLog.emit('warn', kind, { ...ctx, err }, 'report batch publish failed; retrying');
    }
  }

  private checkWaiters(): void {
    if (this.waiters.length === 0) return;
    const oldest = this.oldestUnsettled();
    const keep: Waiter[] = [];
    for (const w of this.waiters) {
      if (oldest > w.upTo) {
        if (w.timer) clearTimeout(w.timer);
        w.resolve();
      } else keep.push(w);
    }
    this.waiters = keep;
  }
}
