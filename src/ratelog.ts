/**
 * One log line per key per interval, carrying how many were suppressed in
 * between: bad input from the bus and an unreachable dependency must not
 * flood the log. Time comes from the injected clock.
 */
import type { Logger } from 'pino';

export type RateLogLevel = 'warn' | 'error';

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

  /** Logs unless `key` was logged within the interval; `n` is how many events this call stands for. */
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
    this.log[level](t.suppressed > 0 ? { ...obj, suppressed: t.suppressed } : obj, msg);
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
