/** The sink's public types, shared by its parts (sink.ts re-exports them). */
import type { NatsConnection } from '@nats-io/transport-node';
import type { Retention } from '../../schemas/clickhouse/migrations.ts';
import type { Names } from '../../schemas/subjects.ts';
import type { Logger } from '../lib/log.ts';
import type { AnalyticsEngine } from './engine.ts';
import type { BackoffOptions } from './failures.ts';

export interface BatchLimits {
  /** Rows (calls) per insert. */
  maxRows: number;
  /** Bytes of insert payload per insert. */
  maxBytes: number;
  /** Messages per insert (bounded by the consumer's max_ack_pending too). */
  maxMessages: number;
  /** Longest a message waits for its batch to fill, ms. */
  maxWaitMs: number;
}

export const DEFAULT_BATCH_LIMITS: BatchLimits = {
  maxRows: 200_000,
  maxBytes: 16 * 2 ** 20,
  maxMessages: 4_000,
  maxWaitMs: 1_000,
};

/**
 * Consumer ack wait, ms. Short, so that a dead worker's batch reaches another
 * worker within seconds; a live worker keeps what it holds (an insert in
 * flight too) alive with in-progress acks several times per ack wait.
 */
export const DEFAULT_ACK_WAIT_MS = 5_000;

export const PipelineName = { reports: 'reports', events: 'events' } as const;
export type PipelineName = (typeof PipelineName)[keyof typeof PipelineName];

export interface SinkHooks {
  /** After a batch is in ClickHouse and before its messages are acknowledged (tests simulate a crash here). */
  afterInsert?(info: { pipeline: PipelineName; seqs: number[] }): void | Promise<void>;
}

export interface SinkOptions {
  nc: NatsConnection;
  names: Names;
  engine: AnalyticsEngine;
  /** This worker's id (in logs and quarantine rows). */
  id?: string;
  log?: Logger;
  /** Durable consumer names are `<durablePrefix>_reports` and `<durablePrefix>_events`. */
  durablePrefix?: string;
  pipelines?: PipelineName[];
  batch?: Partial<BatchLimits>;
  /**
   * Consumer ack wait, ms (default 5 s): a message held this long without an
   * ack or an in-progress ack is redelivered to another worker.
   */
  ackWaitMs?: number;
  maxAckPending?: number;
  /** How long one fetch waits for messages, ms. */
  fetchExpiresMs?: number;
  /** How often the sink checks that every message its consumer acknowledged past is stored, ms (Reconciler); 0: never. Default 30000. */
  reconcileMs?: number;
  backoff?: Partial<BackoffOptions>;
  /** On stop, how long to keep retrying the last batches before handing them back (nak). */
  stopTimeoutMs?: number;
  retention?: Partial<Retention>;
  /** How often to drop expired partitions on servers without TTL, ms. */
  retentionIntervalMs?: number;
  /** Writer lease time, ms (default 6000): a standby takes over this long after the writer stopped renewing it. */
  writerLeaseMs?: number;
  /** Clock, epoch ms: everything the sink measures (log rate limits, deadlines, quarantine and retention times). */
  now?: () => number;
  hooks?: SinkHooks;
}

export interface PipelineStats {
  /** Messages taken from the stream (redeliveries included). */
  received: number;
  /** Rows this worker inserted. */
  rows: number;
  batches: number;
  acked: number;
  redelivered: number;
  /** Messages skipped because their rows were already stored. */
  duplicatesSkipped: number;
  /** Quarantined messages by reason (a RejectKind, or `rejected` when ClickHouse refused the rows). */
  quarantined: Record<string, number>;
  /** Failed insert attempts that were retried. */
  retries: number;
  lastError: string | undefined;
  /** Messages held right now (filling, queued and inserting batches): bounded by about 3 batches. */
  held: number;
  /** Messages left to the stream unstored because they went a whole ack wait without in-progress acks (this process stopped or starved). */
  staleDropped: number;
  /** Messages the consumer passed without delivering them, found missing from ClickHouse, fetched from the stream and stored (Reconciler). */
  recovered: number;
}

export function emptyStats(): PipelineStats {
  return { received: 0, rows: 0, batches: 0, acked: 0, redelivered: 0, duplicatesSkipped: 0, quarantined: {}, retries: 0, lastError: undefined, held: 0, staleDropped: 0, recovered: 0 };
}

export interface Sink {
  readonly id: string;
  stats(): Record<PipelineName, PipelineStats>;
  /** Per stream: a standby, or its writer with its consumer bound (its last fetch worked); false while taking over. */
  bound(): boolean;
  /** Writer (of at least one of its streams), else taking over (raising a fence), else standby. */
  role(): 'writer' | 'standby' | 'taking_over';
  /** Stops fetching, stores what it holds (retrying up to stopTimeoutMs), acks, returns. */
  stop(): Promise<void>;
  /** Stops at once without acking or naking anything: what a crash leaves behind (tests). */
  abort(): Promise<void>;
}
