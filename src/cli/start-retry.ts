/**
 * Starting a long-running process while the bus is settling: a JetStream
 * request that times out, a stream or bucket whose replicas have no leader
 * yet or cannot be placed, are worth waiting for (a server restarting, an
 * election after one was lost). A process started then keeps trying, with
 * a pause that grows to 5 s and one log line per attempt, until it starts or
 * is told to stop; anything else (a misconfiguration: JetStream off, a bad
 * ClickHouse URL) fails at once, as before.
 */
import { JetStreamApiError } from '@nats-io/jetstream';
import { TimeoutError } from '@nats-io/transport-node';
import type { Logger } from '../lib/log.ts';
import { errText } from '../lib/ratelog.ts';

/** JetStream API codes of a cluster that is settling: no leader yet, replicas not placeable yet. */
const SETTLING_CODES = new Set([10008 /* JetStream temporarily unavailable */, 10005 /* no suitable peers for placement */, 10074 /* cluster has no meta leader */]);

/** The error (or one in its cause chain) is one that goes away once the servers have settled. */
export function settling(err: unknown): boolean {
  for (let e = err, i = 0; e !== undefined && e !== null && i < 6; e = (e as { cause?: unknown }).cause, i++) {
    if (e instanceof TimeoutError) return true;
    if (e instanceof JetStreamApiError && SETTLING_CODES.has(e.code)) return true;
    if (e instanceof Error && e.name === 'TimeoutError') return true;
  }
  return false;
}

/** Runs `start` until it resolves; retries only while the bus is settling, until `stop` resolves (then the last error is thrown). */
export async function startWhenSettled<T>(what: string, start: () => Promise<T>, log: Logger, stop?: Promise<void>): Promise<T> {
  let stopped = false;
  void stop?.then(() => (stopped = true));
  for (let attempt = 1; ; attempt++) {
    try {
      return await start();
    } catch (err) {
      if (stopped || !settling(err)) throw err;
      const ms = Math.min(5000, 250 * 2 ** Math.min(attempt - 1, 5));
      log.warn({ err: errText(err), attempt, retryInMs: ms }, `${what} could not start: the servers are settling; trying again`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, ms);
        void stop?.then(() => {
          clearTimeout(t);
          r();
        });
      });
      if (stopped) throw err;
    }
  }
}
