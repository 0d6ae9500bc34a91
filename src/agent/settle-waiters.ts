/**
 * The callers waiting for the outbox (./outbox.ts) to settle its batches:
 * `Agent.flush()` and `close()`, each until every batch up to its own
 * sequence is acknowledged or dropped, or its time is up.
 */
import { LarsError, ErrorCode } from '../lib/errors.ts';

interface Waiter {
  upTo: number;
  resolve: () => void;
  reject: (err: Error) => void;
  timer: ReturnType<typeof setTimeout> | undefined;
}

export class SettleWaiters {
  private waiters: Waiter[] = [];

  get size(): number {
    return this.waiters.length;
  }

  /**
   * Resolves when `release` finds every batch up to `upTo` settled; rejects
   * with a LARS_TIMEOUT error after `timeoutMs`, naming the reports then pending.
   */
  wait(upTo: number, timeoutMs: number, pendingReports: () => number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const w: Waiter = { upTo, resolve, reject, timer: undefined };
      w.timer = setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x !== w);
        reject(new LarsError(ErrorCode.timeout, `report batches not acknowledged within ${timeoutMs} ms (${pendingReports()} reports pending)`));
      }, timeoutMs);
      this.waiters.push(w);
    });
  }

  /** Resolves every waiter whose batches are all settled, `oldest` being the oldest batch that is not. */
  release(oldest: number): void {
    const keep: Waiter[] = [];
    for (const w of this.waiters) {
      if (oldest > w.upTo) {
        if (w.timer) clearTimeout(w.timer);
        w.resolve();
      } else keep.push(w);
    }
    this.waiters = keep;
  }

  /** Rejects every waiter with `err`. */
  rejectAll(err: () => Error): void {
    for (const w of this.waiters.splice(0)) {
      if (w.timer) clearTimeout(w.timer);
      w.reject(err());
    }
  }
}
