/**
 * Analytics: every raw report and route event in ClickHouse (chdb embedded,
 * or a server), through a durable JetStream sink; the queries behind
 * `lars stats`. `startAnalytics` is the one call a process makes to run it.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import type { Retention } from '../../schemas/clickhouse/migrations.ts';
import { names } from '../../schemas/subjects.ts';
import type { LarsConfig } from '../lib/config.ts';
import type { Logger } from '../lib/log.ts';
import { ensureStreams, type Replicas } from '../nats/streams.ts';
import { engineOptionsFromConfig, openEngine, type AnalyticsEngine } from './engine.ts';
import { runMigrations } from './migrate.ts';
import { startSink, type Sink, type SinkOptions } from './sink.ts';

export { openEngine, engineOptionsFromConfig, type AnalyticsEngine, type EngineOptions } from './engine.ts';
export { runMigrations, enforceRetention, resolveRetention } from './migrate.ts';
export { startSink, DEFAULT_ACK_WAIT_MS, DEFAULT_BATCH_LIMITS, type Sink, type SinkOptions, type BatchLimits, type PipelineStats } from './sink.ts';
export { STATS, runStats, formatTable, type StatsKind, type StatsParams, type StatsRow } from './stats.ts';

export interface Analytics {
  engine: AnalyticsEngine;
  sink: Sink;
  /** Stops the sink (storing what it holds) and closes the engine. */
  close(): Promise<void>;
}

export interface StartAnalyticsOptions {
  retention?: Partial<Retention>;
  /** Replicas of the report and event streams when made or adopted; default `auto` (3 on a cluster, 1 on one server). */
  replicas?: Replicas;
  sink?: Partial<Omit<SinkOptions, 'nc' | 'names' | 'engine' | 'log'>>;
}

/** Streams, engine (per config: chdb under dataDir/clickhouse, or LARS_CLICKHOUSE_URL), schema, sink. */
export async function startAnalytics(cfg: LarsConfig, nc: NatsConnection, log: Logger, opts: StartAnalyticsOptions = {}): Promise<Analytics> {
  const n = names(cfg.prefix);
  await ensureStreams(nc, n, { replicas: opts.replicas, log });
  const engine = await openEngine(engineOptionsFromConfig(cfg, log.child({ mod: 'clickhouse' })));
  try {
    await runMigrations(engine, { retention: opts.retention, log });
    const sink = await startSink({ id: cfg.nodeId, ...opts.sink, retention: opts.retention, nc, names: n, engine, log });
    return {
      engine,
      sink,
      async close() {
        await sink.stop();
        await engine.close();
      },
    };
  } catch (err) {
    await engine.close();
    throw err;
  }
}
