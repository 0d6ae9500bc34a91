/**
 * At most one log line per key per interval, carrying how many were
 * suppressed in between: an unreachable stream or a flapping route must not
 * flood the caller's log. Time comes from the injected clock.
 */
import type { Logger } from '../log.ts';

export class RateLog {
  private readonly last = new Map<string, { at: number; suppressed: number }>();
  private readonly log: Logger;
  private readonly intervalMs: number;
  private readonly clock: () => number;

  constructor(log: Logger, intervalMs: number, clock: () => number) {
    this.log = log;
    this.intervalMs = intervalMs;
    this.clock = clock;
  }

  /** Logs at `level` unless `key` was logged within the interval; returns whether it was written. */
  write(level: 'info' | 'warn' | 'error', key: string, obj: Record<string, unknown>, msg: string): boolean {
    const now = this.clock();
    const e = this.last.get(key);
    if (e !== undefined && now - e.at < this.intervalMs) {
      e.suppressed++;
      return false;
    }
    const suppressed = e?.suppressed ?? 0;
    this.last.set(key, { at: now, suppressed: 0 });
    this.log[level](suppressed > 0 ? { ...obj, suppressed } : obj, msg);
    return true;
  }
}
