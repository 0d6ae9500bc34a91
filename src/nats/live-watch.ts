/**
 * A watch on every key of a KV bucket that stays alive: it delivers a full
 * view of the bucket (`onSnapshot`: every key's last value, what is absent
 * being absent), then every change (`onEntry`), and starts over with a new
 * full view whenever it ends (its consumer lost with a server, the bucket
 * made anew on a fresh store) or is told to (`restart`, e.g. after a
 * reconnect). A view of the bus is a cache: this keeps it from going stale
 * for good.
 */
import type { KV, KvEntry } from '@nats-io/kv';
import type { Logger } from '../lib/log.ts';
import { watchBucket, type BucketWatch } from './buckets.ts';

export interface LiveWatchOptions {
  kv: KV;
  /** What the watch is of, for the log. */
  what: string;
  log: Logger;
  /** Every key's last value when a watch (re)starts; keys absent from it are absent from the bucket. */
  onSnapshot: (entries: ReadonlyMap<string, KvEntry>) => void;
  /** A change after the snapshot. */
  onEntry: (e: KvEntry) => void;
  /** At most this long waiting for the initial values, ms (a partial view is then delivered). */
  initTimeoutMs?: number;
  /** Pauses before starting again after a watch ended or failed to start, ms, by consecutive failure. */
  retryMs?: readonly number[];
}

const RETRY_MS = [100, 250, 500, 1000, 2000] as const;

export class LiveWatch {
  private readonly o: LiveWatchOptions;
  private current: BucketWatch | undefined;
  /** Bumped on every (re)start: entries of an older watch are ignored. */
  private generation = 0;
  private failures = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private stopped = false;
  /** Restarts so far (the first start not counted). */
  restarts = 0;

  constructor(o: LiveWatchOptions) {
    this.o = o;
  }

  /** Starts the watch; resolves once the first snapshot has been delivered (or the start failed: it is retried). */
  async start(): Promise<void> {
    await this.run();
  }

  /** Drops the current watch and starts a new one with a fresh snapshot. */
  restart(why: string): void {
    if (this.stopped) return;
    this.o.log.debug({ what: this.o.what, why }, 'watch restarted');
    this.restarts++;
    this.current?.stop();
    this.current = undefined;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    void this.run();
  }

  stop(): void {
    this.stopped = true;
    this.generation++;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.current?.stop();
  }

  private async run(): Promise<void> {
    const gen = ++this.generation;
    const initial = new Map<string, KvEntry>();
    let live = false;
    const ended = (err: unknown): void => {
      if (gen !== this.generation || this.stopped) return;
      this.o.log.warn({ what: this.o.what, err: err instanceof Error ? err.message : err }, 'watch ended; starting it again');
      this.later();
    };
    try {
      const w = await watchBucket(
        this.o.kv,
        (e) => {
          if (gen !== this.generation) return;
          if (live) this.o.onEntry(e);
          else initial.set(e.key, e);
        },
        { initTimeoutMs: this.o.initTimeoutMs ?? 3000, onError: ended, onEnd: () => ended('consumer closed') },
      );
      if (gen !== this.generation) {
        w.stop();
        return;
      }
      this.current = w;
      await w.initialized;
      if (gen !== this.generation) return;
      live = true;
      this.failures = 0;
      this.o.onSnapshot(initial);
    } catch (err) {
      if (gen !== this.generation || this.stopped) return;
      this.o.log.warn({ what: this.o.what, err: err instanceof Error ? err.message : err }, 'watch could not start; trying again');
      this.later();
    }
  }

  private later(): void {
    if (this.stopped || this.timer !== undefined) return;
    this.current?.stop();
    this.current = undefined;
    const retry = this.o.retryMs ?? RETRY_MS;
    const ms = retry[Math.min(this.failures, retry.length - 1)]!;
    this.failures++;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.restarts++;
      void this.run();
    }, ms);
    this.timer.unref?.();
  }
}
