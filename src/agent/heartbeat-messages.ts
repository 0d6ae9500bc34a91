/**
 * What `registerSelf` and its heartbeat thread (self-register-worker.ts) say
 * to each other: the worker's start data and the messages both ways.
 */
import type { SelfRegistration } from '../../schemas/messages.ts';
import type { ConnectSettings } from '../nats/connect.ts';

export interface HeartbeatWorkerData {
  /** Where to connect and how to log in (files read by the main thread). */
  connect: ConnectSettings;
  name: string;
  prefix: string | undefined;
  record: SelfRegistration;
  heartbeatMs: number;
  maxStallMs: number;
  /** BigInt64Array(1) on a SharedArrayBuffer: the main thread's last pulse, ms since the epoch. */
  pulse: SharedArrayBuffer;
}

export type WorkerToMain =
  | { type: 'ready' }
  | { type: 'beat'; count: number }
  | { type: 'withheld'; stalledMs: number }
  | { type: 'error'; message: string; fatal: boolean }
  | { type: 'stopped' };
export type MainToWorker = { type: 'stop'; drainMs: number };
