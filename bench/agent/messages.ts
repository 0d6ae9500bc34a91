/** Configuration and IPC messages between bench/agent.ts and its child processes. */
import type { StrategyName } from '../../actors/strategies/types.ts';

export interface SidecarChildConfig {
  url: string;
  prefix: string;
  partitions: number;
  /** Any of the contract's strategy names. */
  strategy: StrategyName;
  /** Threads serving the UDP ports. */
  threads: number;
}

export type ToSidecar = { type: 'cpu' } | { type: 'settle'; timeoutMs: number } | { type: 'stop' };
export type FromSidecar =
  | { type: 'ready'; udpPorts: number[]; httpPort: number }
  | { type: 'cpu'; us: number; stats: Record<string, unknown> }
  /** After the agent's flush: its report counters (accepted, still pending, dropped) and the UDP reports received. */
  | { type: 'settled'; reports: number; pending: number; dropped: number; udpReports: number; flushError?: string };

export interface UdpLoadConfig {
  ports: number[];
  /** Routes the slots cycle over (each on its Lars port). */
  routes: Array<[number, number]>;
  /** `pairs`: GetHost then Report, as fast as replies come; `poll`: one GetHost per slot every `pollEveryMs`. */
  mode: 'pairs' | 'poll';
  sockets: number;
  /** Requests in flight per socket. */
  inflight: number;
  pollEveryMs: number;
}

export interface HttpLoadConfig {
  port: number;
  path: string;
  connections: number;
  /** Requests in flight per connection (HTTP/1.1 pipelining). */
  pipelining: number;
}

export interface SseConfig {
  port: number;
  path: string;
  streams: number;
}

/** Parent → load child: measure for `ms`, then answer `result`. */
/** `sent`: the UDP generator stops sending and answers with every Report it has sent (`FromLoad` `sent`). */
export type ToLoad = { type: 'run'; ms: number } | { type: 'sent' } | { type: 'stop' };
export type FromLoad =
  | { type: 'ready' }
  | {
      type: 'result';
      done: number;
      failed: number;
      lost: number;
      ms: number;
      cpuUs: number;
      events?: number;
      /** UDP pairs: Reports sent in the window. */
      reports?: number;
      /** UDP: GetHost round trips timed in the window, and their latency quantiles (µs, 1 µs buckets). */
      timed?: number;
      p50Us?: number;
      p99Us?: number;
    }
  /** UDP pairs: every Report sent since the generator started (it sends no more). */
  | { type: 'sent'; reports: number };
