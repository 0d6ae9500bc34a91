/**
 * A route's calls over its sliding window (call_window seconds, in slots of
 * one second), from every caller's report batches: first attempts, retries,
 * hedges (the batches' attempt marks), accepted calls, the callers heard, and
 * a latency histogram. The call policy the route publishes is computed from
 * these totals (./call-policy.ts).
 *
 * Pure: time comes in as `now` (ms). Ingest does no allocation except for a
 * caller not heard before in the window (bounded by MAX_CALLERS).
 */
import { AttemptKind } from '../schemas/contract.ts';
import type { ReportBatch } from '../schemas/messages.ts';

/** One slot of the window, ms. */
export const SLOT_MS = 1000;
/** Callers counted at most (more count as this many): the route-wide floor is shared among them. */
export const MAX_CALLERS = 4096;

/**
 * Latency histogram in units of 1/64 ms: bucket 4·k + j holds the latencies
 * in [2^k·(1 + j/4), 2^k·(1 + (j + 1)/4)) units (4 linear buckets per
 * doubling, each at most 25 % wide), found with integer operations only:
 * the report path pays no logarithm.
 */
export const HISTOGRAM_BUCKETS = 128;
const UNITS_PER_MS = 64;

/** The histogram bucket of a latency, ms. */
export function latencyBucket(ms: number): number {
  // 3,600,000 ms × 64 is below 2^31: one int32
  const q = (ms * UNITS_PER_MS) | 0;
  if (q < 4) return q < 0 ? 0 : q;
  const k = 31 - Math.clz32(q);
  return (k << 2) | ((q >>> (k - 2)) & 3);
}

/** Latencies a batch adds to the histogram at most (about; see addLatencies). */
const HIST_SAMPLES = 64;

/**
 * A batch's latencies into the histogram `hist`: every report of a batch of
 * up to HIST_SAMPLES; of a larger one every k-th, counted k times, so that
 * each batch weighs as many reports as it holds (the histogram gives only a
 * percentile, and a 1,000-report batch costs 64 updates, not 1,000).
 */
export function addLatencies(hist: Uint32Array, reports: ReadonlyArray<readonly [number, number, number, ...unknown[]]>): void {
  const n = reports.length;
  const k = n <= HIST_SAMPLES ? 1 : Math.floor(n / HIST_SAMPLES);
  for (let i = 0; i < n; i += k) hist[latencyBucket(reports[i]![2])]! += k;
}

/** The largest latency bucket `b` holds, ms (its exclusive upper end). */
export function bucketUpperMs(b: number): number {
  if (b < 4) return (b + 1) / UNITS_PER_MS;
  const k = b >> 2;
  return (2 ** k * (1 + ((b & 3) + 1) / 4)) / UNITS_PER_MS;
}

/** Fields of a slot, in the slot array. */
const FIRSTS = 0;
const RETRIES = 1;
const HEDGES = 2;
const ACCEPTS = 3;
const FIELDS = 4;

/** The window's totals. */
export interface WindowTotals {
  firsts: number;
  retries: number;
  hedges: number;
  /** Calls that succeeded (retcode 0): what the hosts accepted. */
  accepts: number;
  /** Seconds the window covers so far (≥ 1, ≤ call_window). */
  spanSec: number;
  /** Distinct callers heard in the window (≥ 1 once any was). */
  callers: number;
}

export class CallWindow {
  /** Slots in the window. */
  readonly slots: number;
  private readonly counts: Float64Array;
  /** The current slot's index and start, ms. */
  private head = 0;
  private slotStart: number;
  /** When the window started counting, ms (its span grows from here to call_window). */
  private readonly started: number;
  /** Two latency histograms, each of half the window: the current half and the one before. */
  private cur = new Uint32Array(HISTOGRAM_BUCKETS);
  private prev = new Uint32Array(HISTOGRAM_BUCKETS);
  private halfSlots: number;
  private slotsInHalf = 0;
  /** Callers by when they were last heard, ms. */
  private readonly callers = new Map<string, number>();

  constructor(windowSec: number, now: number) {
    this.slots = Math.max(1, Math.ceil(windowSec));
    this.counts = new Float64Array(this.slots * FIELDS);
    this.halfSlots = Math.max(1, Math.ceil(this.slots / 2));
    this.slotStart = now;
    this.started = now;
  }

  /** Moves the window to `now`: slots older than the window are dropped. */
  advance(now: number): void {
    const elapsed = Math.floor((now - this.slotStart) / SLOT_MS);
    if (elapsed <= 0) return;
    const steps = Math.min(elapsed, this.slots + this.halfSlots * 2);
    for (let i = 0; i < steps; i++) {
      this.head = (this.head + 1) % this.slots;
      this.counts.fill(0, this.head * FIELDS, this.head * FIELDS + FIELDS);
      if (++this.slotsInHalf >= this.halfSlots) {
        const old = this.prev;
        this.prev = this.cur;
        old.fill(0);
        this.cur = old;
        this.slotsInHalf = 0;
      }
    }
    this.slotStart += elapsed * SLOT_MS;
    const oldest = now - this.slots * SLOT_MS;
    if (this.callers.size > 0) for (const [c, t] of this.callers) if (t <= oldest) this.callers.delete(c);
  }

  /** One validated report batch at `now` (`begin`, each report into the histogram, `end`). */
  ingest(batch: ReportBatch, now: number): void {
    const hist = this.begin(batch.sender, now);
    const reports = batch.reports;
    let accepts = 0;
    for (let i = 0; i < reports.length; i++) if (reports[i]![1] === 0) accepts++;
    addLatencies(hist, reports);
    this.end(batch, accepts);
  }

  /**
   * A batch from `sender` begins at `now`: the window moves there and the
   * sender is heard. Returns the histogram the batch's latencies go into
   * (`addLatencies`); the route actor counts the accepted reports in its own
   * pass over them, then calls `end`.
   */
  begin(sender: string, now: number): Uint32Array {
    this.advance(now);
    if (this.callers.has(sender) || this.callers.size < MAX_CALLERS) this.callers.set(sender, now);
    return this.cur;
  }

  /** The batch begun last ends: its reports, `accepts` of them accepted, and its attempt marks are counted. */
  end(batch: ReportBatch, accepts: number): void {
    let retries = 0;
    let hedges = 0;
    const marks = batch.attempts;
    if (marks !== undefined) {
      for (let i = 0; i < marks.length; i++) {
        const k = marks[i]![2];
        if (k === AttemptKind.retry) retries++;
        else if (k === AttemptKind.hedge) hedges++;
      }
    }
    const at = this.head * FIELDS;
    const c = this.counts;
    c[at + FIRSTS]! += batch.reports.length - retries - hedges;
    c[at + RETRIES]! += retries;
    c[at + HEDGES]! += hedges;
    c[at + ACCEPTS]! += accepts;
  }

  /** The window's totals at `now`. */
  totals(now: number): WindowTotals {
    this.advance(now);
    const t: WindowTotals = { firsts: 0, retries: 0, hedges: 0, accepts: 0, spanSec: 1, callers: Math.max(1, this.callers.size) };
    const c = this.counts;
    for (let i = 0; i < c.length; i += FIELDS) {
      t.firsts += c[i + FIRSTS]!;
      t.retries += c[i + RETRIES]!;
      t.hedges += c[i + HEDGES]!;
      t.accepts += c[i + ACCEPTS]!;
    }
    t.spanSec = Math.min(this.slots, Math.max(1, (now - this.started) / SLOT_MS));
    return t;
  }

  /** Calls (any attempt) and accepted calls of the last `n` slots, the current one included. */
  recent(n: number, now: number): { requests: number; accepts: number } {
    this.advance(now);
    const c = this.counts;
    let requests = 0;
    let accepts = 0;
    for (let k = 0; k < Math.min(n, this.slots); k++) {
      const at = ((this.head - k + this.slots) % this.slots) * FIELDS;
      requests += c[at + FIRSTS]! + c[at + RETRIES]! + c[at + HEDGES]!;
      accepts += c[at + ACCEPTS]!;
    }
    return { requests, accepts };
  }

  /** Calls in the window (any attempt). */
  get calls(): number {
    const c = this.counts;
    let n = 0;
    for (let i = 0; i < c.length; i += FIELDS) n += c[i + FIRSTS]! + c[i + RETRIES]! + c[i + HEDGES]!;
    return n;
  }

  /**
   * The `p`-th percentile (0..100) of the latencies of the last half window
   * to the last whole one, ms: the upper end of the bucket it falls in
   * (buckets are at most 25 % wide). Undefined with fewer than `minSamples` latencies.
   */
  percentile(p: number, minSamples: number): number | undefined {
    let total = 0;
    for (let b = 0; b < HISTOGRAM_BUCKETS; b++) total += this.cur[b]! + this.prev[b]!;
    if (total < minSamples || total === 0) return undefined;
    const rank = Math.max(1, Math.ceil((p / 100) * total));
    let seen = 0;
    for (let b = 0; b < HISTOGRAM_BUCKETS; b++) {
      seen += this.cur[b]! + this.prev[b]!;
      if (seen >= rank) return bucketUpperMs(b);
    }
    return bucketUpperMs(HISTOGRAM_BUCKETS - 1);
  }

  /** The next slot boundary, ms: when the totals can next change by time alone. */
  dueAt(): number {
    return this.slotStart + SLOT_MS;
  }
}
