/**
 * Counted, rate-limited rejection of bad input from the bus: every dropped
 * message is counted by kind; at most one log line per kind per interval,
 * carrying how many were suppressed and a truncated sample of the payload.
 */
import type { Logger } from 'pino';
import type { RejectKind } from '../../schemas/messages.ts';
import { RateLimitedLog } from './ratelog.ts';

export class RejectCounter {
  private readonly counts = new Map<string, number>();
  private readonly log: Logger;
  private readonly rlog: RateLimitedLog;

  constructor(log: Logger, intervalMs = 10_000, clock: () => number = Date.now) {
    this.log = log;
    this.rlog = new RateLimitedLog(log, intervalMs, clock);
  }

  /** Counts one rejection (or `n`) and logs it unless the kind was logged within the interval. */
  reject(kind: RejectKind, detail: string, ctx: { subject?: string; payload?: Uint8Array } = {}, n = 1): void {
    this.counts.set(kind, (this.counts.get(kind) ?? 0) + n);
    const t = this.rlog.take(kind, n);
    if (!t) return;
    const sample = ctx.payload ? Buffer.from(ctx.payload.subarray(0, 64)).toString('hex') : undefined;
    this.log.warn({ kind, detail, subject: ctx.subject, untrusted: sample, bytes: ctx.payload?.length, suppressed: t.suppressed }, 'rejected inbound message');
  }

  count(kind: RejectKind): number {
    return this.counts.get(kind) ?? 0;
  }

  total(): number {
    let t = 0;
    for (const v of this.counts.values()) t += v;
    return t;
  }

  snapshot(): Record<string, number> {
    return Object.fromEntries(this.counts);
  }
}
