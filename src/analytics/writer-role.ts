/**
 * Whether this sink is the writer, a standby, or taking over: holds the
 * writer lease (writer-lease.ts), renews it, raises the fence on taking over
 * (fence.ts), and runs a term of pipelines while it writes. A term ends when
 * the lease is lost (another sink holds it, or it went unrenewed for a lease
 * time) or the writer finds itself fenced after an insert: its pipelines are
 * aborted, nothing they hold is acknowledged, and the stream gives it to the
 * next writer, which looks it up before storing it.
 */
import type { Logger } from '../lib/log.ts';
import type { RateLimitedLog } from '../lib/ratelog.ts';
import { errText } from '../lib/ratelog.ts';
import type { Fence } from './fence.ts';
import type { WriterLease } from './writer-lease.ts';

export const SinkRole = { writer: 'writer', standby: 'standby', takingOver: 'taking_over' } as const;
export type SinkRole = (typeof SinkRole)[keyof typeof SinkRole];

/** What a writer runs while it holds the lease. */
export interface Term {
  bound(): boolean;
  /** Stores what it holds and acknowledges it (a graceful stop). */
  stop(): Promise<void>;
  /** Stops at once, acknowledging nothing more. */
  abort(): Promise<void>;
}

export interface WriterRoleOptions {
  lease: WriterLease;
  fence: Fence;
  /** Starts the pipelines of a term writing with `epoch` as their fence. */
  startTerm: (epoch: number) => Promise<Term>;
  /** Lease time, ms: renewals every third of it. */
  ttlMs: number;
  /** How often a standby tries to take the lease, ms. */
  standbyPollMs: number;
  log: Logger;
  rlog: RateLimitedLog;
}

export class WriterRole {
  private readonly o: WriterRoleOptions;
  private current: SinkRole = SinkRole.standby;
  private term: Term | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private busy: Promise<void> = Promise.resolve();
  private stopped = false;
  /** Terms started (takeovers) and ended by a loss. */
  terms = 0;
  losses = 0;

  constructor(o: WriterRoleOptions) {
    this.o = o;
  }

  role(): SinkRole {
    return this.current;
  }

  /** A standby is where it should be; a writer is bound when its pipelines are; taking over is not bound yet. */
  bound(): boolean {
    if (this.current === SinkRole.standby) return true;
    return this.current === SinkRole.writer && this.term !== undefined && this.term.bound();
  }

  /** First attempt at once (a lone sink writes as soon as it starts), then on a timer. */
  async start(): Promise<void> {
    await this.step();
    this.schedule();
  }

  /** The writer found its fence raised past: end its term now. */
  fenced(): void {
    this.serially(() => this.lose('fenced by another writer'));
  }

  async stop(): Promise<void> {
    await (await this.halt())?.stop();
    await this.o.lease.release().catch((err: unknown) => this.o.rlog.warn('lease-release', { err: errText(err) }, 'writer lease not released; it expires by itself'));
    this.current = SinkRole.standby;
  }

  async abort(): Promise<void> {
    await (await this.halt())?.abort();
  }

  /** No more steps: waits for the one under way and hands back the term to end (stop or abort). */
  private async halt(): Promise<Term | undefined> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.busy;
    const t = this.term;
    this.term = undefined;
    return t;
  }

  private schedule(): void {
    if (this.stopped) return;
    const ms = this.current === SinkRole.standby ? this.o.standbyPollMs : Math.max(100, Math.floor(this.o.ttlMs / 3));
    this.timer = setTimeout(() => {
      this.serially(() => this.step());
      void this.busy.then(() => this.schedule());
    }, ms);
    this.timer.unref?.();
  }

  private serially(fn: () => Promise<void>): void {
    this.busy = this.busy.then(fn).catch((err: unknown) => this.o.log.error({ err }, 'sink writer role step failed'));
  }

  private async step(): Promise<void> {
    if (this.stopped) return;
    const { lease, log, rlog } = this.o;
    if (this.current === SinkRole.standby) {
      const epoch = await lease.acquire().catch((err: unknown) => {
        rlog.warn('lease-acquire', { err: errText(err) }, 'writer lease not readable; trying again');
        return 0;
      });
      if (epoch === 0) return;
      this.current = SinkRole.takingOver;
      log.info({ epoch }, 'writer lease taken: raising the fence');
    } else {
      if (lease.expired()) return this.lose('writer lease not renewed within its time');
      let held: boolean;
      try {
        held = await lease.renew();
      } catch (err) {
        rlog.warn('lease-renew', { err: errText(err) }, 'writer lease renewal failed; trying again');
        if (lease.expired()) return this.lose('writer lease not renewed within its time');
        return;
      }
      if (!held) return this.lose('another sink holds the writer lease');
    }
    if (this.current === SinkRole.takingOver) await this.takeOver();
  }

  private async takeOver(): Promise<void> {
    const { lease, fence, log, rlog } = this.o;
    const epoch = lease.epoch;
    try {
      await fence.raise(epoch);
      if (this.stopped || lease.epoch !== epoch) return;
      this.term = await this.o.startTerm(epoch);
    } catch (err) {
      rlog.warn('take-over', { err: errText(err), epoch }, 'taking over as the writer failed; trying again with the lease held');
      return;
    }
    this.current = SinkRole.writer;
    this.terms++;
    log.info({ epoch }, 'writing: this sink stores the streams');
  }

  private async lose(why: string): Promise<void> {
    if (this.current === SinkRole.standby) return;
    this.current = SinkRole.standby;
    this.losses++;
    this.o.lease.forget();
    const t = this.term;
    this.term = undefined;
    this.o.log.warn({ why }, 'no longer the writer: what this sink holds is left to the next one');
    await t?.abort();
  }
}
