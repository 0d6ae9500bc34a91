/**
 * Log lines that do not flood: one line per key per interval, carrying how
 * many were suppressed in between (bad input from the bus and an unreachable
 * dependency); one summary line per burst of per-partition events (a node
 * taking 64 leases at start); and errors of routine retries as their one-line
 * message, with the stack only at level debug. Time comes from the injected
 * clock.
 */
import type { Logger } from 'pino';

export type RateLogLevel = 'warn' | 'error';

/** An error as one short line for a log: `Name: message` (an expected failure needs no stack). */
export function errText(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}

/**
 * What a warning logs under `err`: the one-line text of the error, or the
 * error itself (message and stack, by pino's serializer) when the logger
 * writes debug lines.
 */
export function errField(log: Logger, err: unknown): unknown {
  return err instanceof Error && log.isLevelEnabled('debug') ? err : errText(err);
}

export class RateLimitedLog {
  private readonly last = new Map<string, { at: number; suppressed: number }>();
  private readonly log: Logger;
  private readonly intervalMs: number;
  private readonly now: () => number;

  constructor(log: Logger, intervalMs = 10_000, now: () => number = Date.now) {
    this.log = log;
    this.intervalMs = intervalMs;
    this.now = now;
  }

  /**
   * Logs unless `key` was logged within the interval; `n` is how many events
   * this call stands for. An error under `obj.err` is logged as its message
   * (the stack at level debug): a warning is a routine retry.
   */
  warn(key: string, obj: Record<string, unknown>, msg: string, n = 1): boolean {
    return this.emit('warn', key, obj, msg, n);
  }

  error(key: string, obj: Record<string, unknown>, msg: string, n = 1): boolean {
    return this.emit('error', key, obj, msg, n);
  }

  /** True when the line was written, false when it was counted as suppressed. */
  emit(level: RateLogLevel, key: string, obj: Record<string, unknown>, msg: string, n = 1): boolean {
    const t = this.take(key, n);
    if (!t) return false;
    const fields = level === 'warn' && obj['err'] instanceof Error ? { ...obj, err: errField(this.log, obj['err']) } : obj;
    this.log[level](t.suppressed > 0 ? { ...fields, suppressed: t.suppressed } : fields, msg);
    return true;
  }

  /**
   * The rate limit without the logging, for callers that build their line
   * only when it is written: undefined while `key` is muted (the `n` events
   * are counted as suppressed), else how many were suppressed since the last line.
   */
  take(key: string, n = 1): { suppressed: number } | undefined {
    const t = this.now();
    const e = this.last.get(key);
    if (e && t - e.at < this.intervalMs) {
      e.suppressed += n;
      return undefined;
    }
    const suppressed = e?.suppressed ?? 0;
    this.last.set(key, { at: t, suppressed: 0 });
    return { suppressed };
  }
}

/** Partition numbers as ranges: `0-3,7,9-10` (sorted, each once). */
export function partitionRanges(partitions: Iterable<number>): string {
  const ps = [...new Set(partitions)].sort((a, b) => a - b);
  const out: string[] = [];
  for (let i = 0; i < ps.length; ) {
    let j = i;
    while (j + 1 < ps.length && ps[j + 1] === ps[j]! + 1) j++;
    out.push(i === j ? String(ps[i]) : `${ps[i]}-${ps[j]}`);
    i = j + 1;
  }
  return out.join(',');
}

export interface PartitionLogOptions {
  /** Level of the summary line; each event is logged at debug. */
  level: 'info' | 'warn';
  /** The summary's message, followed by `: <count> (<ranges>)`, e.g. `partitions taken`. */
  msg: string;
  /** The debug line of each event. */
  eventMsg: string;
  /** A field of the events counted per value in the summary (`how`: { create: 60, takeover: 4 }); with one value only, it is said in the message. */
  groupBy?: string;
  /** A burst is the events within this long of its first, ms (default 250). */
  windowMs?: number;
}

/**
 * One line for a burst of events of one kind on many partitions: a node that
 * starts takes all 64 leases, a node that wakes from a pause loses all of
 * them. Each event is logged at debug as it happens; the burst, as one line
 * at the summary's level once `windowMs` have passed since its first event
 * (or at `flush()`): `partitions taken: 64 (0-63)`.
 */
export class PartitionLog {
  private readonly log: Logger;
  private readonly o: PartitionLogOptions;
  private pending: Array<{ partition: number; fields: Record<string, unknown> }> = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(log: Logger, o: PartitionLogOptions) {
    this.log = log;
    this.o = o;
  }

  add(partition: number, fields: Record<string, unknown> = {}): void {
    this.log.debug({ partition, ...fields }, this.o.eventMsg);
    this.pending.push({ partition, fields });
    if (this.timer === undefined) {
      this.timer = setTimeout(() => this.flush(), this.o.windowMs ?? 250);
      // a summary due must not keep a stopping process alive: its owner flushes when it closes
      this.timer.unref();
    }
  }

  /** Writes the summary of the events so far, if any. */
  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const events = this.pending;
    if (events.length === 0) return;
    this.pending = [];
    const partitions = [...new Set(events.map((e) => e.partition))].sort((a, b) => a - b);
    let msg = `${this.o.msg}: ${partitions.length} (${partitionRanges(partitions)})`;
    const obj: Record<string, unknown> = { partitions: partitionRanges(partitions), count: partitions.length };
    const key = this.o.groupBy;
    if (key !== undefined) {
      const counts: Record<string, number> = {};
      for (const e of events) {
        const v = e.fields[key];
        if (v === undefined) continue;
        const k = typeof v === 'string' ? v : JSON.stringify(v);
        counts[k] = (counts[k] ?? 0) + 1;
      }
      const values = Object.keys(counts);
      if (values.length === 1) msg += `: ${values[0]}`;
      else if (values.length > 1) obj[key] = counts;
    }
    this.log[this.o.level](obj, msg);
  }
}
