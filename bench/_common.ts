/**
 * Small helpers shared by the benchmark groups and their child processes
 * (files starting with `_` are not benchmark groups).
 */
import { performance } from 'node:perf_hooks';
import type { RegistryHost } from '../schemas/messages.ts';

/**
 * Epoch milliseconds with sub-ms resolution, comparable across processes on
 * one machine: each process' timeOrigin is read from the same wall clock.
 */
export function epochMs(): number {
  return performance.timeOrigin + performance.now();
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Nearest-rank percentile of `values` (p in 0..100); NaN when empty. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const s = [...values].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * s.length));
  return s[Math.min(rank, s.length) - 1]!;
}

/** `n` hosts 10.<a>.<b>.<1..n>:8000 with the given weights (default 100 each). */
export function benchHosts(a: number, b: number, n: number, weight: (i: number) => number = () => 100): RegistryHost[] {
  return Array.from({ length: n }, (_, i) => ({ ip: `10.${a}.${b}.${i + 1}`, port: 8000, weight: weight(i) }));
}

/** Configuration handed to a child process in the BENCH_CONFIG environment variable. */
export function childConfig<T>(): T {
  const raw = process.env['BENCH_CONFIG'];
  if (!raw) throw new Error('BENCH_CONFIG is not set: this file is started by a bench group');
  return JSON.parse(raw) as T;
}

/** Sends a message to the parent over the IPC channel (fork). */
export function toParent(msg: unknown): void {
  if (!process.send) throw new Error('no IPC channel: this file is started by a bench group');
  process.send(msg);
}

/** Exits when the parent goes away (its IPC channel closes), so no child outlives a crashed bench. */
export function exitWithParent(cleanup?: () => Promise<void>): void {
  process.on('disconnect', () => {
    const done = () => process.exit(0);
    if (!cleanup) return done();
    const t = setTimeout(done, 2000);
    t.unref();
    void cleanup().finally(done);
  });
}

// ---------------------------------------------------------------- IPC messages

export interface PublisherConfig {
  url: string;
  prefix: string;
  partitions: number;
  /** Index of this publisher and how many share the credit window. */
  index: number;
  count: number;
  /** Routes to publish to: [modid, cmdid, hosts as [ip, port]]. */
  routes: Array<[number, number, Array<[string, number]>]>;
  reportsPerBatch: number;
  /** One report in `errorEvery` is an error (spread over the hosts, never consecutive for a host). */
  errorEvery: number;
  /** Batches the publishers together may have in flight beyond what the node consumed. */
  windowBatches: number;
  /**
   * `core`: plain core-NATS publishes. `jetstream`: `js.publish` with a
   * `msgID`, at most `ackWindow` publishes awaiting their ack at once.
   */
  mode: 'core' | 'jetstream';
  ackWindow: number;
}

export type ToPublisher = { type: 'credit'; consumed: number } | { type: 'start' } | { type: 'stats' } | { type: 'stop' };
export type FromPublisher =
  | { type: 'ready'; batchBytes: number }
  /**
   * Counters so far: batches published and acknowledged (= published in core
   * mode), failed JetStream publishes, ms spent waiting for node credit and
   * ms spent waiting for acks (a full ack window), process CPU µs.
   */
  | { type: 'stats'; published: number; acked: number; failed: number; waitMs: number; ackWaitMs: number; cpuUs: number; t: number }
  | { type: 'stopped'; published: number };

export interface AgentsConfig {
  url: string;
  prefix: string;
  partitions: number;
  /** First agent index and how many agents this process runs. */
  first: number;
  count: number;
  /** One NATS connection shared by this process' agents instead of one per agent. */
  sharedConnection: boolean;
  propRoute: [number, number];
  ejectRoutes: Array<[number, number]>;
  /** Picks sampled in an agent right after it sees a host ejected, to check that host is no longer picked. */
  pickSample: number;
}

/** A route version seen by an agent: ['v', agent, modid, cmdid, version, epochMs]. */
export type VersionRecord = ['v', number, number, number, number, number];
/** A host seen ejected by an agent: ['e', agent, modid, cmdid, hostKey, version, epochMs, pickedAnyway]. */
export type EjectRecord = ['e', number, number, number, string, number, number, number];

export type FromAgents =
  | { type: 'ready'; agents: number; connectMs: number }
  | { type: 'rec'; items: Array<VersionRecord | EjectRecord> }
  | { type: 'cpu'; userUs: number; systemUs: number }
  | { type: 'stopped' };
export type ToAgents = { type: 'stop' } | { type: 'cpu' };

export interface HeapConfig {
  url: string;
  prefix: string;
  partitions: number;
  routes: number;
  hostsPerRoute: number;
  /** Give up waiting for the node to load after this long, ms. */
  loadTimeoutMs: number;
}

export type FromHeap =
  | { type: 'result'; baseline: number; after: number; routes: number; hosts: number; loadMs: number; settleMs: number; rssDelta: number }
  | { type: 'error'; message: string };

export interface SendersConfig {
  url: string;
  prefix: string;
  partitions: number;
  /** First simulated agent index and how many this process runs. */
  first: number;
  count: number;
  /** NATS connections this process' agents share (agent i uses connection i % connections). */
  connections: number;
  /** Routes the agents report on (agent i on route i % routes), modid `modid`, cmdids 1..routes. */
  modid: number;
  routes: number;
  hostsPerRoute: number;
  reportsPerBatch: number;
  /** JetStream publishes each agent may have awaiting their ack. */
  window: number;
  /** One publish in `sampleEvery` has its ack latency recorded. */
  sampleEvery: number;
}

export type ToSenders = { type: 'start' } | { type: 'stats' } | { type: 'stop' };
export type FromSenders =
  | { type: 'ready'; agents: number; batchBytes: number }
  /** Counters so far; `ackMs` are the ack latencies sampled since the previous stats message. */
  | { type: 'stats'; acked: number; failed: number; cpuUs: number; t: number; ackMs: number[] }
  | { type: 'stopped'; acked: number };
