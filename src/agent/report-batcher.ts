/**
 * Per-route batching of call results: a route's reports leave as one
 * ReportBatch when it holds `maxReports` reports or its first report is
 * `maxDelayMs` old (or its hosts or offsets reach the contract's limits).
 * A report may carry the utilization the host answered with: the batch
 * carries the latest one per host (the contract's `utilization` pairs).
 *
 * The hot path does no string building for a host it has seen in the
 * current batch by object identity (an agent's pick results are
 * preallocated, one object per host), and no validation: the agent checks
 * its input before calling `add`.
 */
import { partitionOf, type Names } from '../../schemas/subjects.ts';
import { LIMITS, ReportSide, type AttemptTuple, type ReportBatch, type ReportTuple, type UtilizationTuple } from '../../schemas/messages.ts';
import type { AttemptKind } from '../../schemas/contract.ts';

/** A report's attempt mark: its attempt number within its logical call (2 or more) and why it was made. */
export interface AttemptMark {
  readonly attempt: number;
  readonly kind: AttemptKind;
}

/** Receives each full (or flushed) batch; `reports` is `batch.reports.length`. */
export type BatchSink = (subject: string, batch: ReportBatch, reports: number) => void;

/** The batcher's defaults: a batch leaves at this many reports, or when its oldest is this old, ms. */
export const BATCH_DEFAULTS = { maxReports: 1000, maxDelayMs: 20 } as const;

export interface ReportBatcherOptions {
  names: Names;
  partitions: number;
  /** `sender` of every batch. */
  sender: string;
  /** Stamped on every batch when set. */
  zone?: string | undefined;
  /** `server`: every batch is marked as written by the host that served the calls (the contract's `side`). */
  side?: ReportSide | undefined;
  /** Reports per batch; default 1000, at most LIMITS.maxBatchReports. */
  maxReports?: number;
  /** Age of a batch's first report when it is sent anyway, ms; default 20. */
  maxDelayMs?: number;
  clock?: () => number;
  sink: BatchSink;
}

class RouteBuffer {
  readonly modid: number;
  readonly cmdid: number;
  readonly subject: string;
  hostIndex = new Map<string, number>();
  /** Index by the caller's host object (usually a pick result): the fast path. */
  objIndex = new Map<object, number>();
  hosts: Array<[string, number]> = [];
  reports: ReportTuple[] = [];
  /** The latest utilization per host index (undefined: none reported in this batch), and how many hosts have one. */
  util: Array<number | undefined> = [];
  utilHosts = 0;
  /** Attempt marks of the reports that were not first attempts (the contract's `attempts`). */
  marks: AttemptTuple[] = [];
  ts = 0;

  constructor(modid: number, cmdid: number, subject: string) {
    this.modid = modid;
    this.cmdid = cmdid;
    this.subject = subject;
  }

  reset(): void {
    this.hostIndex = new Map();
    this.objIndex = new Map();
    this.hosts = [];
    this.reports = [];
    if (this.utilHosts > 0) {
      this.util = [];
      this.utilHosts = 0;
    }
    if (this.marks.length > 0) this.marks = [];
    this.ts = 0;
  }

  /** The batch's utilization pairs, host by host. */
  utilization(): UtilizationTuple[] {
    const out: UtilizationTuple[] = [];
    for (let h = 0; h < this.util.length; h++) {
      const u = this.util[h];
      if (u !== undefined) out.push([h, u]);
    }
    return out;
  }
}

export class ReportBatcher {
  private readonly names: Names;
  private readonly partitions: number;
  private readonly sender: string;
  private readonly zone: string | undefined;
  private readonly side: ReportSide | undefined;
  readonly maxReports: number;
  readonly maxDelayMs: number;
  private readonly clock: () => number;
  private readonly sink: BatchSink;
  private readonly buffers = new Map<number, Map<number, RouteBuffer>>();
  private timer: ReturnType<typeof setTimeout> | undefined;
  /** Reports buffered now, across routes. */
  buffered = 0;
  /** Batches handed to the sink. */
  batches = 0;

  constructor(opts: ReportBatcherOptions) {
    this.names = opts.names;
    this.partitions = opts.partitions;
    this.sender = opts.sender;
    this.zone = opts.zone;
    this.side = opts.side === ReportSide.server ? ReportSide.server : undefined;
    this.maxReports = Math.max(1, Math.min(opts.maxReports ?? BATCH_DEFAULTS.maxReports, LIMITS.maxBatchReports));
    this.maxDelayMs = opts.maxDelayMs ?? BATCH_DEFAULTS.maxDelayMs;
    this.clock = opts.clock ?? Date.now;
    this.sink = opts.sink;
  }

  /**
   * Adds one validated report (latency already capped at LIMITS.maxLatencyMs;
   * utilization, when the host answered with one, already within 0..1; a
   * mark, when the call was a retry or a hedge, already checked).
   */
  add(modid: number, cmdid: number, host: { ip: string; port: number }, retcode: number, latencyMs: number, utilization?: number, mark?: AttemptMark): void {
    const now = this.clock();
    let inner = this.buffers.get(modid);
    if (inner === undefined) {
      inner = new Map();
      this.buffers.set(modid, inner);
    }
    let b = inner.get(cmdid);
    if (b === undefined) {
      b = new RouteBuffer(modid, cmdid, this.names.report(partitionOf(modid, cmdid, this.partitions), modid, cmdid));
      inner.set(cmdid, b);
    }
    if (b.reports.length === 0) b.ts = now;
    let hi = b.objIndex.get(host);
    if (hi === undefined) {
      const hk = `${host.ip}:${host.port}`;
      hi = b.hostIndex.get(hk);
      if (hi === undefined) {
        hi = b.hosts.length;
        b.hosts.push([host.ip, host.port]);
        b.hostIndex.set(hk, hi);
      }
      b.objIndex.set(host, hi);
    }
    let off = now - b.ts;
    if (off < 0) off = 0;
    if (mark !== undefined) b.marks.push([b.reports.length, mark.attempt, mark.kind]);
    b.reports.push([hi, retcode | 0, latencyMs, off > LIMITS.maxOffsetMs ? LIMITS.maxOffsetMs : Math.floor(off)]);
    if (utilization !== undefined) {
      if (b.util[hi] === undefined) b.utilHosts++;
      b.util[hi] = utilization;
    }
    this.buffered++;
    if (b.reports.length >= this.maxReports || b.hosts.length >= LIMITS.maxBatchHosts || off >= LIMITS.maxOffsetMs) this.emit(b);
    else if (this.timer === undefined) this.timer = setTimeout(() => this.flush(), this.maxDelayMs);
  }

  /** Hands every buffered report to the sink now. */
  flush(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    for (const inner of this.buffers.values()) for (const b of inner.values()) this.emit(b);
  }

  /** Stops the age timer (buffered reports stay until the next flush). */
  stop(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private emit(b: RouteBuffer): void {
    const n = b.reports.length;
    if (n === 0) return;
    const batch: ReportBatch = { v: 1, sender: this.sender, modid: b.modid, cmdid: b.cmdid, ts: b.ts, hosts: b.hosts, reports: b.reports };
    if (this.zone !== undefined) batch.zone = this.zone;
    if (this.side !== undefined) batch.side = this.side;
    if (b.utilHosts > 0) batch.utilization = b.utilization();
    if (b.marks.length > 0) batch.attempts = b.marks;
    b.reset();
    this.buffered -= n;
    this.batches++;
    this.sink(b.subject, batch, n);
  }
}
