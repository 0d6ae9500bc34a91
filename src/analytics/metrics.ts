/**
 * Sink worker metrics, read at scrape time from the sink's per-pipeline
 * stats, and the lag of its durable consumers (`num_pending`: stream
 * messages not yet delivered to any worker sharing the consumer), read from
 * JetStream with a short cache so that scrapes and readiness probes cost at
 * most one consumer-info request per consumer per cache period.
 */
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { Gauge, type Registry } from 'prom-client';
import { TABLES } from '../../schemas/clickhouse/migrations.ts';
import type { Names } from '../../schemas/subjects.ts';
import { durableName, PipelineName, type PipelineStats, type Sink } from './sink.ts';
import { counterFrom, gaugeFrom, type Sample } from '../metrics/collect.ts';
import type { Readiness } from '../metrics/http.ts';
import { registerConnectionMetrics, type ConnectionState } from '../metrics/nats.ts';

export interface SinkConsumer {
  pipeline: PipelineName;
  /** The ClickHouse table the pipeline inserts into (the `table` label). */
  table: string;
  stream: string;
  durable: string;
}

/** The consumers a sink started with these names and pipelines binds to. */
export function sinkConsumers(n: Names, pipelines: readonly PipelineName[] = [PipelineName.reports, PipelineName.events], durablePrefix = `${n.prefix}_sink`): SinkConsumer[] {
  return pipelines.map((p) => ({
    pipeline: p,
    table: p === PipelineName.reports ? TABLES.reports : TABLES.events,
    stream: p === PipelineName.reports ? n.reportsStream : n.eventsStream,
    durable: durableName(durablePrefix, p),
  }));
}

export interface ConsumerLag {
  /** Messages in the stream not yet delivered to any worker. */
  pending: number;
  /** Delivered and not yet acknowledged. */
  ackPending: number;
}

/** Consumer lag read from JetStream at most once per `cacheMs`; concurrent reads share one request. */
export class PendingReader {
  private jsm: JetStreamManager | undefined;
  private last: { at: number; lag: Map<string, ConsumerLag> } | undefined;
  private inflight: Promise<Map<string, ConsumerLag> | undefined> | undefined;
  errors = 0;
  private readonly nc: NatsConnection;
  private readonly consumers: readonly SinkConsumer[];
  private readonly cacheMs: number;
  private readonly now: () => number;

  constructor(nc: NatsConnection, consumers: readonly SinkConsumer[], cacheMs = 1_000, now: () => number = Date.now) {
    this.nc = nc;
    this.consumers = consumers;
    this.cacheMs = cacheMs;
    this.now = now;
  }

  /** Lag per durable name, or undefined when JetStream could not be asked (the last answer is not reused then). */
  read(): Promise<Map<string, ConsumerLag> | undefined> {
    if (this.last && this.now() - this.last.at < this.cacheMs) return Promise.resolve(this.last.lag);
    this.inflight ??= this.fetch().finally(() => (this.inflight = undefined));
    return this.inflight;
  }

  private async fetch(): Promise<Map<string, ConsumerLag> | undefined> {
    try {
      this.jsm ??= await jetstreamManager(this.nc, { timeout: 1_000 });
      const lag = new Map<string, ConsumerLag>();
      await Promise.all(
        this.consumers.map(async (c) => {
          const ci = await this.jsm!.consumers.info(c.stream, c.durable);
          lag.set(c.durable, { pending: ci.num_pending, ackPending: ci.num_ack_pending });
        }),
      );
      this.last = { at: this.now(), lag };
      return lag;
    } catch {
      this.errors++;
      this.last = undefined;
      return undefined;
    }
  }
}

export interface SinkMetricsOptions {
  registry: Registry;
  sink: Sink;
  nc: NatsConnection;
  connection: ConnectionState;
  consumers: readonly SinkConsumer[];
  pending: PendingReader;
}

export function registerSinkMetrics(opts: SinkMetricsOptions): void {
  const { registry: r, sink, consumers, pending } = opts;
  const per = (f: (s: PipelineStats) => number) => (): Array<Sample<'table'>> => {
    const all = sink.stats();
    const out: Array<Sample<'table'>> = [];
    for (const c of consumers) {
      const s = all[c.pipeline];
      if (s) out.push([{ table: c.table }, f(s)]);
    }
    return out;
  };
  const table = ['table'] as const;
  counterFrom(r, { name: 'lars_sink_messages_received_total', help: 'Stream messages taken by this worker, redeliveries included, by target table', labelNames: table, read: per((s) => s.received) });
  counterFrom(r, { name: 'lars_sink_rows_inserted_total', help: 'Rows this worker inserted into ClickHouse, by table', labelNames: table, read: per((s) => s.rows) });
  counterFrom(r, { name: 'lars_sink_batches_total', help: 'Batches inserted, by table', labelNames: table, read: per((s) => s.batches) });
  counterFrom(r, { name: 'lars_sink_insert_errors_total', help: 'Failed insert attempts (each retried, split or quarantined), by table', labelNames: table, read: per((s) => s.retries) });
  counterFrom(r, { name: 'lars_sink_messages_acked_total', help: 'Stream messages acknowledged after their rows were stored, by table', labelNames: table, read: per((s) => s.acked) });
  counterFrom(r, { name: 'lars_sink_messages_redelivered_total', help: 'Stream messages delivered again (another worker or an earlier attempt held them), by table', labelNames: table, read: per((s) => s.redelivered) });
  counterFrom(r, { name: 'lars_sink_duplicates_skipped_total', help: 'Messages skipped because their rows were already stored, by table', labelNames: table, read: per((s) => s.duplicatesSkipped) });
  counterFrom(r, { name: 'lars_sink_stale_dropped_total', help: 'Messages left to the stream unstored because they went a whole ack wait without in-progress acks (the worker was stopped or starved), by table', labelNames: table, read: per((s) => s.staleDropped) });
  counterFrom<'table' | 'reason'>(r, {
    name: 'lars_sink_quarantined_total',
    help: 'Messages put in quarantine instead of their table, by table and reason',
    labelNames: ['table', 'reason'],
    read: () => {
      const all = sink.stats();
      const out: Array<Sample<'table' | 'reason'>> = [];
      for (const c of consumers) for (const [reason, n] of Object.entries(all[c.pipeline]?.quarantined ?? {})) out.push([{ table: c.table, reason }, n]);
      return out;
    },
  });
  gaugeFrom(r, { name: 'lars_sink_writer', help: 'Whether this sink is the writer (1; a standby or taking over: 0)', read: () => (sink.role() === 'writer' ? 1 : 0) });
  gaugeFrom(r, { name: 'lars_sink_held_messages', help: 'Messages this worker holds now (filling, queued, inserting), by table', labelNames: table, read: per((s) => s.held) });
  counterFrom(r, { name: 'lars_sink_pending_read_errors_total', help: 'Consumer-info requests for the stream lag that failed', read: () => pending.errors });
  const lagGauge = (name: string, help: string, pick: (l: ConsumerLag) => number) =>
    new Gauge<'stream' | 'consumer' | 'table'>({
      name,
      help,
      labelNames: ['stream', 'consumer', 'table'],
      registers: [r],
      async collect() {
        this.reset();
        const lag = await pending.read();
        if (!lag) return;
        for (const c of consumers) {
          const l = lag.get(c.durable);
          if (l) this.set({ stream: c.stream, consumer: c.durable, table: c.table }, pick(l));
        }
      },
    });
  lagGauge('lars_sink_stream_pending', 'Stream messages not yet delivered to the sink consumer (shared by every worker): the sink lag', (l) => l.pending);
  lagGauge('lars_sink_ack_pending', 'Messages delivered to the sink consumer and not yet acknowledged', (l) => l.ackPending);
  registerConnectionMetrics(r, opts.nc, opts.connection);
}

/** Default lag (pending messages per consumer) up to which a sink is caught up. */
export const DEFAULT_READY_MAX_PENDING = 10_000;

/**
 * A sink is ready while connected to NATS, a standby or the writer with its
 * consumers bound, and each consumer within `maxPending` messages of the
 * stream's end (a standby too: the sinks as a whole are behind).
 */
export function sinkReadiness(connection: ConnectionState, pending: PendingReader, sink: Pick<Sink, 'bound' | 'role'>, maxPending = DEFAULT_READY_MAX_PENDING): () => Promise<Readiness> {
  return async () => {
    if (sink.role() === 'taking_over') return { ready: false, reason: 'taking over as the writer: raising the fence, waiting for the last writer\'s inserts to end' };
    if (!sink.bound()) return { ready: false, reason: 'a consumer is not bound (its last fetch failed; binding it again)' };
    if (!connection.connected()) return { ready: false, reason: 'not connected to NATS' };
    const lag = await pending.read();
    if (!lag) return { ready: false, reason: 'consumer lag could not be read from JetStream' };
    for (const [durable, l] of lag) if (l.pending > maxPending) return { ready: false, reason: `consumer ${durable} is ${l.pending} messages behind (ready at ${maxPending} or fewer)` };
    return { ready: true };
  };
}
