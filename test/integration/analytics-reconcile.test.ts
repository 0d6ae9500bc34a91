/**
 * A consumer whose position passed messages it never delivered (what
 * nats-server does to a consumer after pauses and restarts,
 * nats-io/nats-server#8036): the sink finds them missing from ClickHouse
 * below its consumer's acknowledgement floor, fetches them from the stream
 * and stores them, each once (real nats-server, embedded ClickHouse).
 */
import { AckPolicy, DeliverPolicy, jetstreamManager } from '@nats-io/jetstream';
import { nanos } from '@nats-io/transport-node';
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { names, type Names } from '../../schemas/subjects.ts';
import { startNatsServer, type NatsServer } from '../../src/nats/natsd.ts';
import { connectNats, type NatsConnection } from '../../src/nats/connect.ts';
import { ensureStreams } from '../../src/nats/streams.ts';
import { openEngine, type AnalyticsEngine } from '../../src/analytics/engine.ts';
import { runMigrations } from '../../src/analytics/migrate.ts';
import { durableName, startSink, type Sink } from '../../src/analytics/sink.ts';
import { publishBatches, randomBatches } from '../helpers/analytics-fixtures.ts';
import { silentLogger } from '../../src/lib/log.ts';
import { countRows, randomDatabase, rowsPerSeq, sharedChdbPath, TEST_STREAM_LIMITS } from '../helpers/clickhouse-server.ts';
import { waitFor } from '../helpers/wait.ts';

describe('analytics - messages a consumer passed without delivering them (real nats-server, embedded ClickHouse)', function () {
  this.timeout(60_000);
  let server: NatsServer;
  let nc: NatsConnection;
  let n: Names;
  let engine: AnalyticsEngine;
  let sink: Sink | undefined;

  before(async () => {
    server = await startNatsServer();
    nc = await connectNats({ url: server.url, name: 'reconcile' });
  });
  after(async () => {
    await nc.close();
    await server.stop();
  });
  beforeEach(async () => {
    n = names(`t${randomBytes(4).toString('hex')}`);
    await ensureStreams(nc, n, TEST_STREAM_LIMITS);
    engine = await openEngine({ path: sharedChdbPath(), database: randomDatabase() });
    await runMigrations(engine);
  });
  afterEach(async () => {
    await sink?.stop();
    sink = undefined;
    await engine.close();
  });

  it('reconcile - messages below the consumer’s floor that it never delivered are fetched from the stream and stored, each once', async () => {
    const batches = randomBatches({ batches: 30, reportsPerBatch: 5, ts: Date.now() - 10_000, seed: 41 });
    await publishBatches(nc, n, batches);
    // The sink's durable consumer, its position already past messages 1-10 (never delivered).
    const jsm = await jetstreamManager(nc);
    await jsm.consumers.add(n.reportsStream, {
      durable_name: durableName(`${n.prefix}_sink`, 'reports'),
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: 11,
      ack_wait: nanos(5000),
      max_deliver: -1,
    });
    sink = await startSink({ nc, names: n, engine, pipelines: ['reports'], batch: { maxWaitMs: 50 }, reconcileMs: 300, log: silentLogger() });
    await waitFor(async () => (await countRows(engine, 'reports')) === 150, { what: 'every report stored, the ten messages never delivered included', timeoutMs: 30_000 });
    const perSeq = await rowsPerSeq(engine, 'reports');
    expect([...perSeq.keys()].sort((a, b) => a - b)).to.deep.equal(Array.from({ length: 30 }, (_, i) => i + 1));
    expect([...perSeq.values()].every((c) => c === 5), 'each message once').to.equal(true);
    expect(sink.stats().reports.recovered).to.equal(10);
    expect(sink.stats().reports.received, 'delivered by the consumer').to.equal(20);
  });
});
