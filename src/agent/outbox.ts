/**
 * The report outbox: every report batch stays here until JetStream has
 * acknowledged it, across disconnects, reconnects and server failovers.
 *
 * Batches are JetStream publishes on their report subject (core subscribers,
 * the route nodes, still receive them), up to `window` outstanding at once:
 * one at a time would cap a client at the round trip rate. Each carries a
 * `Nats-Msg-Id` (`reportMsgId`, schemas/msg-id.ts), so a publish of a batch the stream had
 * stored already, inside the stream's duplicate window, is stored once: any
 * batch may be published again at any time, and is whenever a publish may
 * have been lost, without waiting for its ack timeout:
 * - The stream answers the publishes of one connection in the order they
 *   were sent. An ack for a publish means every publish sent before it that
 *   is still unanswered was lost on the way (to a server that died, to a
 *   stream leader that is gone): those are published again at once.
 * - When nothing is acknowledged for `probeMs` while publishes are out (a
 *   stream leader lost: its successor is elected in 4-9 s on nats-server
 *   2.9), or a publish fails, the outbox stalls: it holds the window and
 *   publishes only the oldest batch again, every `probeMs` for the first
 *   `fastRetryMs` after the last ack, then along `backoffMs`. The first ack
 *   ends the stall; by the rule above it brings back everything older at once.
 * - A reconnect (kick) starts a stall with a probe at once.
 * - An acknowledgement given around a stall is confirmed: nats-server 2.9
 *   has been seen to lose a few acknowledged publishes when its servers all
 *   restart or a leader is lost (the nemesis, docs/chaos.md). Batches
 *   acknowledged from just before a stall began until `confirmDelayMs` after
 *   it ended are published once more then, with their own msg ids: a stream
 *   that has them answers "duplicate" and stores nothing, one that lost one
 *   stores it. Such a batch counts as pending again until confirmed.
 * The ack timeout only frees a publish nobody answers. Only overflow of the
 * bound drops reports: the oldest batches not on the wire first.
 */
import { backoff } from '@nats-io/transport-node';
import { silentLogger, type Logger } from '../lib/log.ts';
import { ClosedError } from '../lib/errors.ts';
import { RateLimitedLog } from '../lib/ratelog.ts';
import { reportMsgId } from '../../schemas/msg-id.ts';
import { AckedBatches, BatchQueue, PendingBatch } from './batch-queue.ts';
import { classifyPublishError, logPublishFailure, PublishFailure, type PublishFn } from './publisher.ts';
import { SettleWaiters } from './settle-waiters.ts';

/** The outbox's defaults (OutboxOptions). */
export const OUTBOX_DEFAULTS = { window: 64, probeMs: 250, fastRetryMs: 20_000, backoffMs: [500, 1000, 2000, 5000], confirmDelayMs: 5000 } as const;

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
  /** No ack for this long while publishes are out is a stall; during one, the oldest batch is published again this often, ms; default 250. */
  probeMs?: number;
  /** A stall probes every `probeMs` until this long after the last ack (or reconnect), ms; default 20000 (a stream leader's election and more). */
  fastRetryMs?: number;
  /** After that, the pauses between probes, ms, by probe; default [500, 1000, 2000, 5000]. */
  backoffMs?: number[];
  /** What the operator should do when no stream captures the reports. */
  noStreamHint?: string;
  log?: Logger;
  clock?: () => number;
  /** At most one log line per failure kind per interval, ms; default 10000. */
  logIntervalMs?: number;
  /** How long after a stall ends the batches acknowledged around it are published once more to confirm them, ms; default 5000; 0: never. */
  confirmDelayMs?: number;
}

export interface OutboxStats {
  /** Reports in batches not yet acknowledged (queued or on the wire). */
  pendingReports: number;
  /** Batches not yet acknowledged. */
  pendingBatches: number;
  ackedBatches: number;
  ackedReports: number;
  /** Publishes of a batch after its first (probes, and publishes found lost). */
  retriedBatches: number;
  /** Reports given up: overflow of the bound, or still unacknowledged at close. */
  droppedReports: number;
  /** Batches acknowledged around a stall and published once more to confirm them. */
  confirmedBatches: number;
}

export class Outbox {
  private readonly publishFn: PublishFn;
  private readonly classify: (err: unknown) => PublishFailure;
  private readonly sender: string;
  private readonly instance: string;
  private readonly window: number;
  private readonly maxReports: number;
  private readonly extraPending: () => number;
  private readonly probeMs: number;
  private readonly fastRetryMs: number;
  private readonly policy: ReturnType<typeof backoff>;
  private readonly noStreamHint: string;
  private readonly log: Logger;
  private readonly rateLog: RateLimitedLog;
  private readonly clock: () => number;
  /** Batches waiting to be sent, in seq order. */
  private readonly queue = new BatchQueue();
  /** Every batch not yet settled (acked or dropped), in seq order: its first key is the oldest. */
  private readonly unsettled = new Map<number, PendingBatch>();
  /** Batches in flight by the number of their latest publish: in the order those were sent. */
  private readonly outstanding = new Map<number, PendingBatch>();
  private inflightReports = 0;
  private seq = 0;
  private sends = 0;
  /** Holding the window: only probes go out until an ack arrives. */
  private stalled = false;
  private nextProbeAt = 0;
  /** Probes since the fast phase of a stall ended (the backoff's index). */
  private slowProbes = 0;
  /** Last ack, or reconnect, or the start: the fast phase of a stall runs from here. */
  private lastGoodAt: number;
  /** Last ack, probe, or first publish after none was out: the stall check runs from here. */
  private lastProgressAt: number;
  private wake: ReturnType<typeof setTimeout> | undefined;
  private wakeAt = 0;
  private readonly waiters = new SettleWaiters();
  private stopped = false;
  private closedConnection = false;
  private readonly counters = { pendingReports: 0, ackedBatches: 0, ackedReports: 0, retriedBatches: 0, droppedReports: 0, confirmedBatches: 0 };
  private readonly confirmDelayMs: number;
  /** Batches acknowledged lately (oldest first), kept for a confirmation after a stall. */
  private readonly acked = new AckedBatches();
  /** When the current (or last) stall began; undefined when none since the last confirmation. */
  private stallFrom: number | undefined;
  private confirmTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(opts: OutboxOptions) {
    this.publishFn = opts.publish;
    this.classify = opts.classify ?? classifyPublishError;
    this.sender = opts.sender;
    this.instance = opts.instance;
    this.window = Math.max(1, opts.window ?? OUTBOX_DEFAULTS.window);
    this.maxReports = Math.max(1, opts.maxReports);
    this.extraPending = opts.extraPending ?? (() => 0);
    this.probeMs = Math.max(1, opts.probeMs ?? OUTBOX_DEFAULTS.probeMs);
    this.fastRetryMs = Math.max(0, opts.fastRetryMs ?? OUTBOX_DEFAULTS.fastRetryMs);
    this.policy = backoff(opts.backoffMs ?? [...OUTBOX_DEFAULTS.backoffMs]);
    this.noStreamHint = opts.noStreamHint ?? 'create the stream that captures the report subjects';
    this.log = (opts.log ?? silentLogger()).child({ mod: 'outbox' });
    this.clock = opts.clock ?? Date.now;
    this.rateLog = new RateLimitedLog(this.log, opts.logIntervalMs ?? 10_000, this.clock);
    this.lastGoodAt = this.lastProgressAt = this.clock();
    this.confirmDelayMs = Math.max(0, opts.confirmDelayMs ?? OUTBOX_DEFAULTS.confirmDelayMs);
  }

  /** Sequence of the last batch added (0 before the first). */
  get lastSeq(): number {
    return this.seq;
  }

  /** Queues an encoded batch of `reports` reports and sends what the window allows. */
  add(subject: string, data: Uint8Array, reports: number): void {
    const seq = ++this.seq;
    const e = new PendingBatch(seq, reportMsgId(this.sender, this.instance, seq), subject, data, reports);
    this.unsettled.set(seq, e);
    this.queue.push(e);
    this.counters.pendingReports += reports;
    this.enforceBound();
    this.pump();
  }

  /**
   * The connection is back (a reconnect): what was out on the old one may be
   * lost. Probes at once with the oldest batch; its ack brings back the rest.
   */
  kick(): void {
    if (this.stopped) return;
    const now = this.clock();
    this.lastGoodAt = now;
    this.slowProbes = 0;
    if (this.unsettled.size === 0) return;
    this.beginStall(now);
    this.probe(now);
    this.arm();
  }

  /**
   * Resolves when every batch up to `upTo` (default: all added so far) is
   * acknowledged or dropped; rejects with a LARS_TIMEOUT error after `timeoutMs`.
   */
  settled(timeoutMs: number, upTo = this.seq): Promise<void> {
    if (this.oldestUnsettled() > upTo) return Promise.resolve();
    if (this.closedConnection) return Promise.reject(new ClosedError('NATS connection'));
    return this.waiters.wait(upTo, timeoutMs, () => this.counters.pendingReports);
  }

  stats(): OutboxStats {
    return { ...this.counters, pendingBatches: this.unsettled.size };
  }

  /** Stops sending and gives up what is not acknowledged (counted as dropped); returns how many reports. */
  abandon(): number {
    this.stopped = true;
    this.disarm();
    if (this.confirmTimer !== undefined) clearTimeout(this.confirmTimer);
    this.acked.clear();
    let n = 0;
    for (const e of this.unsettled.values()) {
      e.settled = true;
      // A confirmation given up is no report lost: the batch was acknowledged once.
      if (!e.confirming) n += e.reports;
    }
    this.unsettled.clear();
    this.outstanding.clear();
    this.queue.clear();
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

  private enforceBound(): void {
    let dropped = 0;
    let batches = 0;
    while (this.counters.pendingReports + this.extraPending() > this.maxReports && this.queue.size > 0) {
      const e = this.queue.shift()!;
      e.settled = true;
      this.unsettled.delete(e.seq);
      this.counters.pendingReports -= e.reports;
      // A confirmation given up is no report lost: the batch was acknowledged once.
      if (e.confirming) continue;
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
    if (!this.stalled) {
      while (this.outstanding.size < this.window && this.queue.size > 0) {
        const e = this.queue.peek()!;
        if (!this.fits(e)) break;
        this.queue.shift();
        this.send(e);
      }
    } else this.sendFresh();
    this.arm();
  }

  /** What is on the wire stays within the bound too (a batch alone always goes). */
  private readonly fits = (e: PendingBatch): boolean => this.outstanding.size === 0 || this.inflightReports + e.reports <= this.maxReports;
  private readonly sendOne = (e: PendingBatch): void => this.send(e);

  /**
   * During a stall, batches never sent yet go out once all the same (only
   * retries wait for the probe): the route nodes take reports on the subject
   * whether the stream stores them or not, so the routes are judged through
   * a stream's leader election; what the stream missed is sent again once it
   * answers.
   */
  private sendFresh(): void {
    this.queue.takeFresh(this.fits, this.sendOne);
  }

  private send(e: PendingBatch): void {
    if (e.attempts > 0) this.counters.retriedBatches++;
    e.attempts++;
    if (e.inFlight) this.outstanding.delete(e.sendNo);
    else {
      if (this.outstanding.size === 0) this.lastProgressAt = this.clock();
      e.inFlight = true;
      this.inflightReports += e.reports;
    }
    const no = ++this.sends;
    e.sendNo = no;
    this.outstanding.set(no, e);
    this.publishFn(e.subject, e.data, e.msgId).then(
      () => this.onAck(e, no),
      (err: unknown) => this.onFail(e, no, err),
    );
  }

  /** Takes a batch off the wire (its latest publish answered, or the batch settled). */
  private land(e: PendingBatch): void {
    if (!e.inFlight) return;
    this.outstanding.delete(e.sendNo);
    e.inFlight = false;
    this.inflightReports -= e.reports;
  }

  private onAck(e: PendingBatch, no: number): void {
    if (this.stopped) return;
    const now = this.clock();
    this.lastGoodAt = this.lastProgressAt = now;
    this.stalled = false;
    this.slowProbes = 0;
    if (!e.settled) {
      e.settled = true;
      this.land(e);
      this.queue.remove(e);
      this.unsettled.delete(e.seq);
      this.counters.pendingReports -= e.reports;
      if (e.confirming) this.counters.confirmedBatches++;
      else {
        this.counters.ackedBatches++;
        this.counters.ackedReports += e.reports;
        this.keepAcked(e, now);
      }
    }
    if (this.stallFrom !== undefined) this.scheduleConfirm();
    // Sent before this one and still unanswered: lost on the way (the stream answers in order).
    let lost: PendingBatch[] | undefined;
    for (const [k, x] of this.outstanding) {
      if (k > no) break;
      (lost ??= []).push(x);
    }
    if (lost !== undefined) for (const x of lost) this.send(x);
    this.checkWaiters();
    this.pump();
  }

  private onFail(e: PendingBatch, no: number, err: unknown): void {
    // An answer for a settled batch, or for a publish a newer one of the same batch replaced, changes nothing.
    if (this.stopped || e.settled || no !== e.sendNo) return;
    this.land(e);
    this.queue.requeue(e);
    const kind = this.classify(err);
    logPublishFailure(this.rateLog, kind, { subject: e.subject, pendingReports: this.counters.pendingReports, pendingBatches: this.unsettled.size }, err, this.noStreamHint);
    if (kind === PublishFailure.closed) {
      // Nothing will reconnect this connection: keep the batches for close() to count; waiting flushes fail now.
      this.stopped = true;
      this.closedConnection = true;
      this.disarm();
      this.waiters.rejectAll(() => new ClosedError('NATS connection'));
      return;
    }
    if (!this.stalled) {
      const now = this.clock();
      this.beginStall(now);
      this.nextProbeAt = now + this.probeDelay(now);
    }
    this.pump();
  }

  private beginStall(now: number): void {
    this.stalled = true;
    // Acks given a little before the stall was seen may be lost with it too.
    this.stallFrom = Math.min(this.stallFrom ?? Infinity, now - this.probeMs * 2);
    if (this.confirmTimer !== undefined) {
      clearTimeout(this.confirmTimer);
      this.confirmTimer = undefined;
    }
  }

  /** Keeps an acknowledged batch for a while, for a confirmation after a stall. */
  private keepAcked(e: PendingBatch, now: number): void {
    if (this.confirmDelayMs === 0) return;
    // What no confirmation can ask for any more: acknowledged before the stall under way, or long ago.
    const keepFrom = Math.min(this.stallFrom ?? Infinity, now - this.confirmDelayMs - this.probeMs * 4);
    this.acked.keep(e, now, keepFrom, this.maxReports);
  }

  /** After a stall ended: the confirmation, `confirmDelayMs` after the last ack (each ack while it waits moves it on, up to that delay). */
  private scheduleConfirm(): void {
    if (this.confirmDelayMs === 0 || this.stopped || this.stalled || this.confirmTimer !== undefined) return;
    this.confirmTimer = setTimeout(() => {
      this.confirmTimer = undefined;
      this.confirm();
    }, this.confirmDelayMs);
    this.confirmTimer.unref?.();
  }

  /** Publishes once more every batch acknowledged since the stall began: see the module's comment. */
  private confirm(): void {
    const from = this.stallFrom;
    if (this.stopped || from === undefined) return;
    if (this.stalled) return; // another stall: confirmed after it
    this.stallFrom = undefined;
    const again = this.acked.takeSince(from);
    if (again.length === 0) return;
    for (const old of again) {
      if (this.unsettled.has(old.seq)) continue;
      const e = new PendingBatch(old.seq, old.msgId, old.subject, old.data, old.reports);
      e.confirming = true;
      this.unsettled.set(e.seq, e);
      this.counters.pendingReports += e.reports;
      this.queue.requeue(e);
    }
    // `unsettled` stays in seq order (its first key is the oldest).
    const all = [...this.unsettled.values()].sort((a, b) => a.seq - b.seq);
    this.unsettled.clear();
    for (const e of all) this.unsettled.set(e.seq, e);
    this.log.info({ batches: again.length }, 'report batches acknowledged around a stall published once more to confirm them');
    this.pump();
  }

  /** Publishes the oldest batch again (or for the first time) and schedules the next probe. */
  private probe(now: number): void {
    let e: PendingBatch | undefined;
    for (const x of this.unsettled.values()) {
      e = x;
      break;
    }
    if (e === undefined) return;
    // The oldest batch, when queued, heads the queue (it is in seq order).
    if (e.queued) this.queue.shift();
    this.send(e);
    this.lastProgressAt = now;
    this.nextProbeAt = now + this.probeDelay(now);
  }

  private probeDelay(now: number): number {
    if (now - this.lastGoodAt < this.fastRetryMs) return this.probeMs;
    return this.policy.backoff(this.slowProbes++);
  }

  /** Sets the timer for the next stall check or probe, unless one is set for that time or sooner. */
  private arm(): void {
    if (this.stopped || this.unsettled.size === 0) return this.disarm();
    let at: number;
    if (this.stalled) at = this.nextProbeAt;
    else if (this.outstanding.size > 0) at = this.lastProgressAt + this.probeMs;
    else return this.disarm();
    if (this.wake !== undefined && this.wakeAt <= at) return;
    this.disarm();
    this.wakeAt = at;
    this.wake = setTimeout(() => this.onTimer(), Math.max(0, at - this.clock()));
    // never what keeps a process alive (the connection is)
    this.wake.unref?.();
  }

  private disarm(): void {
    if (this.wake !== undefined) clearTimeout(this.wake);
    this.wake = undefined;
  }

  private onTimer(): void {
    this.wake = undefined;
    if (this.stopped) return;
    const now = this.clock();
    if (this.stalled) {
      if (now >= this.nextProbeAt) this.probe(now);
    } else if (this.outstanding.size > 0 && now - this.lastProgressAt >= this.probeMs) {
      this.rateLog.emit('warn', 'stall', { pendingReports: this.counters.pendingReports, pendingBatches: this.unsettled.size, waitedMs: now - this.lastProgressAt }, 'report batches not acknowledged in time (stream leader lost, or server away); probing with the oldest batch');
      this.beginStall(now);
      this.probe(now);
    }
    this.arm();
  }

  private checkWaiters(): void {
    if (this.waiters.size > 0) this.waiters.release(this.oldestUnsettled());
  }
}
