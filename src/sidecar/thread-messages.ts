/**
 * What the sidecar's main thread and its UDP threads (udp-threads.ts,
 * udp-thread.ts) tell each other, and the shared memory they both read.
 *
 * Main → thread: the arena of a followed route (`arena`, route-arena.ts:
 * its states are written there, no message per update; posted again when a
 * state outgrows it); a route the main thread refused to follow (`refused`,
 * the route bound); `flush`; `close`. Thread → main: `ready` once it serves, `follow` for a route its
 * callers asked for, `reports` in batches (REPORT_FIELDS int32 per report),
 * `log` lines, `flushed` after the batch a `flush` sent, `closed` after its last batch.
 */
import type { FeedbackOptions } from '../../actors/strategies/feedback.ts';
import type { StrategyName } from '../../actors/strategies/types.ts';
import { UDP_COUNTER_SLOTS } from './lars-udp.ts';

/** A thread's counter slots: the UDP server's, then its picks, its refusals of new routes, and the messages (arenas, refusals) it took. */
export const THREAD_PICKS = UDP_COUNTER_SLOTS;
export const THREAD_REFUSED = UDP_COUNTER_SLOTS + 1;
export const THREAD_APPLIED = UDP_COUNTER_SLOTS + 2;
export const THREAD_COUNTER_SLOTS = UDP_COUNTER_SLOTS + 3;

/** Per report in a `reports` batch: modid, cmdid, ip (Lars' int32), port, retcode, latency µs (uint32 bits). */
export const REPORT_FIELDS = 6;

/** The pick options of the sidecar's agent, as each thread's mirror picks with them. */
export interface MirrorPickOptions {
  agentId: string;
  strategy: StrategyName | undefined;
  pickZone: string | undefined;
  zoneMinHealthyPercent: number;
  feedback: FeedbackOptions;
  probeTrials: number;
}

export interface UdpThreadData {
  /** This thread's number, 0..threads-1. */
  index: number;
  threads: number;
  /** The sidecar's UDP ports, how many. */
  ports: number;
  /** The main thread's descriptors of the ports this thread reads (it takes descriptors of its own). */
  fds: number[];
  pick: MirrorPickOptions;
  maxRoutes: number;
  /** Float64Array of THREAD_COUNTER_SLOTS: this thread's counters, read by the main thread. */
  counters: SharedArrayBuffer;
  /** Int32Array of 1: the routes the agent follows, written by the main thread. */
  routes: SharedArrayBuffer;
  logLevel: string;
}

export type MainToThread =
  | { type: 'arena'; modid: number; cmdid: number; sab: SharedArrayBuffer }
  | { type: 'refused'; modid: number; cmdid: number }
  /** Send the reports held now; answered `flushed` after them. */
  | { type: 'flush' }
  | { type: 'close' };

export type ThreadToMain =
  | { type: 'ready' }
  | { type: 'error'; message: string }
  | { type: 'follow'; modid: number; cmdid: number }
  | { type: 'reports'; n: number; data: Int32Array }
  | { type: 'log'; line: string }
  | { type: 'flushed' }
  | { type: 'closed' };
