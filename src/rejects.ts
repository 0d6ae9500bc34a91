/**
 * Counted, rate-limited rejection of bad input from the bus: every dropped
 * message is counted by kind; at most one log line per kind per interval,
 * carrying how many were suppressed and a truncated sample of the payload.
 */
import type { Logger } from 'pino';
import type { RejectKind } from '../schemas/messages.ts';

export class RejectCounter {
  private readonly counts = new Map<string, number>();
  private readonly lastLog = new Map<string, number>();
  private readonly suppressed = new Map<string, number>();

  private readonly log: Logger;
  private readonly intervalMs: number;
  private readonly clock: () => number;

  constructor(log: Logger, intervalMs = 10_000, clock: () => number = Date.now) {
    this.log = log;
    this.intervalMs = intervalMs;
    this.clock = clock;
  }

  /** Counts one rejection (or `n`) and logs it unless the kind was logged within the interval. */
  reject(kind: RejectKind, detail: string, ctx: { subject?: string; payload?: Uint8Array } = {}, n = 1): void {
    this.counts.set(kind, (this.counts.get(kind) ?? 0) + n);
    const now = this.clock();
    const last = this.lastLog.get(kind);
    if (last !== undefined && now - last < this.intervalMs) {
      this.suppressed.set(kind, (this.suppressed.get(kind) ?? 0) + n);
      return;
    }
    this.lastLog.set(kind, now);
    const suppressed = this.suppressed.get(kind) ?? 0;
    this.suppressed.set(kind, 0);
    const sample = ctx.payload ? Buffer.from(ctx.payload.subarray(0, 64)).toString('hex') : undefined;
    this.log.warn({ kind, detail, subject: ctx.subject, untrusted: sample, bytes: ctx.payload?.length, suppressed }, 'rejected inbound message');
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
