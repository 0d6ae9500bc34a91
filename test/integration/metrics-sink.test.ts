import { jetstreamManager } from '@nats-io/jetstream';
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { names, partitionOf, DEFAULT_PARTITIONS, type Names } from '../../schemas/subjects.ts';
import { startNatsServer, type NatsServer } from '../../src/nats/natsd.ts';
import { connectNats, type NatsConnection } from '../../src/nats/connect.ts';
import { ensureStreams } from '../../src/nats/streams.ts';
import { openEngine, type AnalyticsEngine } from '../../src/analytics/engine.ts';
import { runMigrations } from '../../src/analytics/migrate.ts';
import { startSink, type Sink } from '../../src/analytics/sink.ts';
import { publishBatches, randomBatches } from '../helpers/analytics-fixtures.ts';
import { serveSinkHttp, type ProcessHttp } from '../../src/cli/metrics.ts';
import { parsePrometheusText, sampleValue } from '../helpers/metrics-parse.ts';
import { silentLogger } from '../../src/lib/log.ts';
import { countRows, randomDatabase, sharedChdbPath, TEST_STREAM_LIMITS } from '../helpers/clickhouse-server.ts';
import { waitFor } from '../helpers/wait.ts';

async function get(port: number, path: string): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  return { status: res.status, body: await res.text() };
}

describe('metrics - sink /metrics and /readyz (real nats-server, embedded ClickHouse)', function () {
  this.timeout(60_000);
  let server: NatsServer;
  let nc: NatsConnection;
  let n: Names;
  let engine: AnalyticsEngine;
  let sink: Sink | undefined;
  let web: ProcessHttp<Sink> | undefined;

  before(async () => {
    server = await startNatsServer();
    nc = await connectNats({ url: server.url, name: 'metrics-sink' });
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
    await web?.close();
    web = undefined;
    await sink?.stop();
    sink = undefined;
    await engine.close();
  });

  it('metrics - sink rows, batches, quarantine and stream lag by table; ready only when bound and caught up', async () => {
    web = await serveSinkHttp({ settings: { port: 0, metrics: true }, nc, log: silentLogger(), names: n, readyMaxPending: 5 });
    const notBound = await get(web.port, '/readyz');
    expect(notBound.status).to.equal(503);
    expect(JSON.parse(notBound.body)).to.deep.include({ reason: 'consumers not bound yet' });

    const good = randomBatches({ batches: 6, reportsPerBatch: 50, ts: Date.now() - 10_000, seed: 5 });
    await publishBatches(nc, n, good);
    nc.publish(n.report(partitionOf(1, 1, DEFAULT_PARTITIONS), 1, 1), new Uint8Array([0xc1, 0xff, 0x00]));
    await nc.flush();
    sink = await startSink({ nc, names: n, engine, batch: { maxWaitMs: 100 }, log: silentLogger() });
    await web.attach(sink);
    await waitFor(async () => (await countRows(engine, 'reports')) === 300, { what: 'rows stored', timeoutMs: 30_000 });
    // Acknowledged and the consumer's lag read afresh: nothing pending.
    const m = await waitFor(
      async () => {
        const r = await get(web!.port, '/metrics');
        const f = parsePrometheusText(r.body);
        return sampleValue(f, 'lars_sink_messages_acked_total', { table: 'reports' }) === 7 && sampleValue(f, 'lars_sink_stream_pending', { table: 'reports' }) === 0 ? f : undefined;
      },
      { what: 'acked and caught up' },
    );
    expect(sampleValue(m, 'lars_sink_rows_inserted_total', { table: 'reports' })).to.equal(300);
    expect(sampleValue(m, 'lars_sink_batches_total', { table: 'reports' })).to.be.at.least(1);
    expect(sampleValue(m, 'lars_sink_quarantined_total', { table: 'reports', reason: 'malformed' })).to.equal(1);
    expect(sampleValue(m, 'lars_sink_rows_inserted_total', { table: 'route_events' })).to.equal(0);
    expect(sampleValue(m, 'lars_sink_stream_pending', { table: 'reports', stream: n.reportsStream, consumer: `${n.prefix}_sink_reports` })).to.equal(0);
    expect(sampleValue(m, 'lars_nats_connected')).to.equal(1);
    expect((await get(web.port, '/readyz')).status).to.equal(200);

    // The sink stops taking messages: the backlog grows past the bound and readiness follows.
    await sink.stop();
    sink = undefined;
    await publishBatches(nc, n, randomBatches({ batches: 8, reportsPerBatch: 5, ts: Date.now() - 5_000, seed: 6 }));
    const behind = await waitFor(
      async () => {
        const r = await get(web!.port, '/readyz');
        return r.status === 503 ? r : undefined;
      },
      { what: '/readyz 503 behind' },
    );
    expect((JSON.parse(behind.body) as { reason: string }).reason).to.equal(`consumer ${n.prefix}_sink_reports is 8 messages behind (ready at 5 or fewer)`);
    const lag = parsePrometheusText((await get(web.port, '/metrics')).body);
    expect(sampleValue(lag, 'lars_sink_stream_pending', { table: 'reports' })).to.equal(8);
  });

  it('metrics - a sink whose stream went away is not ready until its consumer is bound again, then stores what comes', async () => {
    web = await serveSinkHttp({ settings: { port: 0, metrics: true }, nc, log: silentLogger(), names: n, pipelines: ['reports'], readyMaxPending: 1000 });
    sink = await startSink({ nc, names: n, engine, pipelines: ['reports'], batch: { maxWaitMs: 50 }, fetchExpiresMs: 1000, log: silentLogger() });
    await web.attach(sink);
    await waitFor(async () => (await get(web!.port, '/readyz')).status === 200, { what: 'ready' });

    // The reports stream is lost (as on a server that came back on a fresh store): the sink cannot fetch.
    const jsm = await jetstreamManager(nc);
    await jsm.streams.delete(n.reportsStream);
    const unbound = await waitFor(
      async () => {
        const r = await get(web!.port, '/readyz');
        return r.status === 503 ? (JSON.parse(r.body) as { reason: string }) : undefined;
      },
      { what: '/readyz 503 while the consumer is not bound', timeoutMs: 20_000 },
    );
    expect(unbound.reason).to.equal('a consumer is not bound (its last fetch failed; binding it again)');

    // The stream comes back (a route node or lars dev makes it again): the sink binds, is ready, and stores.
    await ensureStreams(nc, n, TEST_STREAM_LIMITS);
    await publishBatches(nc, n, randomBatches({ batches: 3, reportsPerBatch: 10, ts: Date.now() - 1_000, seed: 9 }));
    await waitFor(async () => (await countRows(engine, 'reports')) === 30, { what: 'rows stored after the stream came back', timeoutMs: 30_000 });
    await waitFor(async () => (await get(web!.port, '/readyz')).status === 200, { what: 'ready again', timeoutMs: 20_000 });
  });
});
