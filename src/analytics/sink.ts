/**
 * The durable JetStream → ClickHouse sink. One worker runs two pipelines
 * (reports, route events); each pulls from a durable consumer, batches by
 * rows, bytes, messages and time, inserts, and acknowledges only after
 * ClickHouse has the batch. Any number of workers may run: one writes (it
 * holds the writer lease), the others stand by and take over within a lease
 * time when it stops renewing.
 *
 * The parts, one job each:
 * - consumer.ts: the durable consumer (made when missing, tuned, bound again);
 * - pipeline.ts: fetch and batch, bounded memory, in-progress acks;
 * - items.ts: a message to its rows (decode, validate, render);
 * - writer.ts: insert with dedup token, retries with backoff, split, ack/nak;
 * - dedup.ts: which messages are stored already (exactly-once rows);
 * - quarantine.ts: what cannot be stored, with its bytes;
 * - writer-lease.ts, writer-role.ts, fence.ts: one writer at a time, and the
 *   fence that turns an earlier writer's late inserts into no-ops.
 *
 * Exactly-once rows (see docs/analytics.md for the guarantee per version):
 * - every row carries the JetStream stream sequence (`seq`) of its message;
 * - a message that may already be stored (JetStream redelivered it) is looked
 *   up by (route, time range, seq) before the insert and skipped when its rows
 *   are there; a partial write across day partitions is completed for the
 *   missing days only;
 * - on servers with `insert_deduplication_token` every insert carries a token
 *   derived from its messages' sequences, and a failed insert is retried
 *   exactly as it was: the server drops what landed, in the rollup too;
 * - on servers without (18.16) a failed insert may have landed in part, so
 *   the retry looks every message up first;
 * - two workers never insert the same message at once: only the writer
 *   inserts, every insert carries its fence, a new writer raises the fence
 *   and waits for the old one's inserts to end before it starts, and a
 *   writer acknowledges a batch only when its fence is still the highest.
 */
import { randomUUID } from 'node:crypto';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { TABLES } from '../../schemas/clickhouse/migrations.ts';
import { silentLogger } from '../lib/log.ts';
import { RateLimitedLog } from '../lib/ratelog.ts';
import { DurableConsumer, durableName } from './consumer.ts';
import { Dedup } from './dedup.ts';
import { Fence } from './fence.ts';
import { DEFAULT_BACKOFF } from './failures.ts';
import { eventRows, reportRows } from './items.ts';
import { enforceRetention } from './migrate.ts';
import { Pipeline } from './pipeline.ts';
import { Quarantine } from './quarantine.ts';
import { Reconciler } from './reconcile.ts';
import { errText } from '../lib/ratelog.ts';
import { openTtlBucket } from '../nats/buckets.ts';
import {
  DEFAULT_ACK_WAIT_MS,
  DEFAULT_BATCH_LIMITS,
  PipelineName,
  emptyStats,
  type BatchLimits,
  type PipelineStats,
  type Sink,
  type SinkOptions,
} from './types.ts';
import { BatchWriter, RunState } from './writer.ts';
import { DEFAULT_WRITER_TTL_MS, KEY_PREFIX, WriterLease, sinkLeaseBucket } from './writer-lease.ts';
import { SinkRole, WriterRole, type Term } from './writer-role.ts';

export { durableName } from './consumer.ts';
export {
  DEFAULT_ACK_WAIT_MS,
  DEFAULT_BATCH_LIMITS,
  PipelineName,
  type BatchLimits,
  type PipelineStats,
  type Sink,
  type SinkHooks,
  type SinkOptions,
} from './types.ts';

/** Claims of recovered messages age out after this long (a claim only needs to outlive one pass of each sink). */
const CLAIMS_TTL_MS = 10 * 60_000;

/** Writer lease options (see writer-lease.ts). */
function leaseTimes(opts: SinkOptions): { ttlMs: number; standbyPollMs: number } {
  const ttlMs = opts.writerLeaseMs ?? DEFAULT_WRITER_TTL_MS;
  return { ttlMs, standbyPollMs: Math.max(100, Math.min(1_000, Math.floor(ttlMs / 6))) };
}

export async function startSink(opts: SinkOptions): Promise<Sink> {
  const log = (opts.log ?? silentLogger()).child({ mod: 'sink' });
  const id = opts.id ?? `sink-${process.pid}`;
  const now = opts.now ?? Date.now;
  const jsm = await jetstreamManager(opts.nc);
  const js = jetstream(opts.nc);
  const prefix = opts.durablePrefix ?? `${opts.names.prefix}_sink`;
  const ackWaitMs = opts.ackWaitMs ?? DEFAULT_ACK_WAIT_MS;
  const maxAckPending = opts.maxAckPending ?? 20_000;
  const limits: BatchLimits = { ...DEFAULT_BATCH_LIMITS, ...opts.batch };
  limits.maxMessages = Math.max(1, Math.min(limits.maxMessages, Math.floor(maxAckPending / 3)));
  const rlog = new RateLimitedLog(log, 10_000, now);
  const backoff = { ...DEFAULT_BACKOFF, ...opts.backoff };
  const fetchExpiresMs = opts.fetchExpiresMs ?? 2_000;
  const which = opts.pipelines ?? [PipelineName.reports, PipelineName.events];
  const reconcileMs = opts.reconcileMs ?? 30_000;
  const claims =
    reconcileMs > 0
      ? await openTtlBucket(opts.nc, `${opts.names.prefix}_sink_claims`, CLAIMS_TTL_MS).catch((err: unknown) => {
          rlog.warn('claims', { err: errText(err) }, 'recovery claims bucket not opened; recovering without claims');
          return undefined;
        })
      : undefined;
  // Aborted when the sink stops: a takeover waiting for an earlier writer's inserts gives up.
  const stopping = new AbortController();
  const times = leaseTimes(opts);
  const leaseKv = await openTtlBucket(opts.nc, sinkLeaseBucket(opts.names.prefix), times.ttlMs);
  const owner = `${id}-${randomUUID().slice(0, 8)}`;

  /** One stream: its consumer, rows and counters outlive its writer's terms; its role holds the stream's writer lease. */
  const parts = which.map((name) => {
    const reports = name === PipelineName.reports;
    const stream = reports ? opts.names.reportsStream : opts.names.eventsStream;
    const table = reports ? TABLES.reports : TABLES.events;
    const durable = new DurableConsumer({ jsm, js, engine: opts.engine, stream, durable: durableName(prefix, name), table, ackWaitMs, maxAckPending, log });
    const rows = reports ? reportRows(opts.engine, stream) : eventRows(opts.engine, stream);
    const stats = emptyStats();
    const fence = new Fence({ engine: opts.engine, pipeline: name, sink: id, log, signal: stopping.signal });
    let current: Pipeline | undefined;

    /** A term of this stream's writer: its pipeline bound to the consumer and its reconciler, writing with `epoch`. */
    const startTerm = async (epoch: number): Promise<Term> => {
      const plog = log.child({ pipeline: name, epoch });
      const bound = await durable.bind();
      const run = new RunState();
      const writer = new BatchWriter({
        pipeline: name,
        engine: opts.engine,
        rows,
        dedup: new Dedup(opts.engine, name, rows, stats),
        quarantine: new Quarantine({ engine: opts.engine, pipeline: name, stream, sinkId: id, stats, rlog, now }),
        fence: { epoch, check: () => fence.check(epoch), fenced: () => role.fenced() },
        stats,
        run,
        hooks: opts.hooks ?? {},
        backoff,
        fetchExpiresMs,
        retention: opts.retention,
        log: plog,
        rlog,
        now,
      });
      const p = new Pipeline({ name, durable, bound, rows, writer, stats, run, limits, ackWaitMs, fetchExpiresMs, backoff, stopTimeoutMs: opts.stopTimeoutMs ?? 5_000, log: plog, rlog, now });
      p.start();
      // The check that what the consumer acknowledged past is stored (see Reconciler).
      const rec =
        reconcileMs > 0
          ? new Reconciler({ jsm, stream, durable: durableName(prefix, name), engine: opts.engine, rows, table, store: (items) => p.storeRecovered(items), claims, stats, log: plog, rlog, intervalMs: reconcileMs, now })
          : undefined;
      rec?.start();
      current = p;
      // The pipeline first and synchronously: an abort marks it aborted before any pending insert can ack.
      const end = async (how: 'stop' | 'abort') => void (await Promise.all([how === 'stop' ? p.stop() : p.abort(), rec?.stop()]));
      return { bound: () => p.isBound(), stop: () => end('stop'), abort: () => end('abort') };
    };
    const lease = new WriterLease({ kv: leaseKv, key: `${KEY_PREFIX}${name}`, owner, sink: id, ttlMs: times.ttlMs, now });
    const role = new WriterRole({ lease, fence, startTerm, ...times, log: log.child({ pipeline: name }), rlog });
    return { name, stats, role, held: () => (role.role() === SinkRole.writer && current ? current.heldMessages() : 0) };
  });
  await Promise.all(parts.map((p) => p.role.start()));
  /** The sink's role: writer of any stream, else taking over any, else standby. */
  const roleOf = (): SinkRole => {
    const roles = parts.map((p) => p.role.role());
    return roles.includes(SinkRole.writer) ? SinkRole.writer : roles.includes(SinkRole.takingOver) ? SinkRole.takingOver : SinkRole.standby;
  };

  let retentionTimer: NodeJS.Timeout | undefined;
  if (!opts.engine.features.ttl) {
    const enforce = () => {
      enforceRetention(opts.engine, opts.retention, now(), log).catch((err: unknown) => rlog.warn('retention', { err }, 'could not drop expired partitions'));
    };
    enforce();
    retentionTimer = setInterval(enforce, opts.retentionIntervalMs ?? 3_600_000);
    retentionTimer.unref();
  }
  log.info({ id, pipelines: which, limits, ackWaitMs, engine: opts.engine.description, roles: parts.map((p) => p.role.role()) }, 'sink started');
  return {
    id,
    stats() {
      const out = {} as Record<PipelineName, PipelineStats>;
      for (const part of parts) out[part.name] = { ...part.stats, quarantined: { ...part.stats.quarantined }, held: part.held() };
      return out;
    },
    bound: () => parts.every((p) => p.role.bound()),
    role: roleOf,
    async stop() {
      stopping.abort();
      if (retentionTimer) clearInterval(retentionTimer);
      await Promise.all(parts.map((p) => p.role.stop()));
      log.info({ id }, 'sink stopped');
    },
    async abort() {
      stopping.abort();
      if (retentionTimer) clearInterval(retentionTimer);
      await Promise.all(parts.map((p) => p.role.abort()));
    },
  };
}
