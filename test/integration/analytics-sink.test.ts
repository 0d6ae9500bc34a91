/**
 * The durable sink against both engines: a fault scenario lands with exact
 * counts, bad input and rows ClickHouse rejects are quarantined while the
 * stream keeps flowing, and two workers share one durable consumer.
 */
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import { jetstreamManager } from '@nats-io/jetstream';
import { names, partitionOf, DEFAULT_PARTITIONS, type Names } from '../../schemas/subjects.ts';
import { encode } from '../../schemas/codec.ts';
import { DEFAULT_RETENTION, MIGRATIONS } from '../../schemas/clickhouse/migrations.ts';
import type { NatsConnection } from '../../src/nats/connect.ts';
import { ensureStreams } from '../../src/nats/streams.ts';
import type { AnalyticsEngine } from '../../src/analytics/engine.ts';
import { runMigrations } from '../../src/analytics/migrate.ts';
import { startSink, type Sink, type SinkOptions } from '../../src/analytics/sink.ts';
import { sinkWriters } from '../../src/analytics/writer-lease.ts';
import { faultScenario, publishBatches, publishEvents, randomBatches, reportBatch, routeEvent } from '../helpers/analytics-fixtures.ts';
import {
  countRows,
  engineCases,
  randomDatabase,
  rowsPerSeq,
  waitFor,
  TEST_STREAM_LIMITS,
  type ClickHouseServer, useNatsAndClickHouse } from '../helpers/clickhouse-server.ts';

function memoryLog() {
  const records: Array<Record<string, unknown>> = [];
  const log = pino({ level: 'info' }, { write: (s: string) => records.push(JSON.parse(s) as Record<string, unknown>) });
  return { log, records };
}

describe('analytics sink', function () {
  this.timeout(60_000);
  let ch: ClickHouseServer;
  let nc: NatsConnection;

  const servers = useNatsAndClickHouse();
  before(() => ({ ch, nc } = servers()));

  for (const ec of engineCases(() => ch)) {
    describe(ec.name, () => {
      let engine: AnalyticsEngine;
      let n: Names;
      const sinks: Sink[] = [];

      async function sink(extra: Partial<SinkOptions> = {}): Promise<Sink> {
        const s = await startSink({ nc, names: n, engine, batch: { maxWaitMs: 100 }, ...extra });
        sinks.push(s);
        return s;
      }

      beforeEach(async () => {
        n = names(`t${randomBytes(4).toString('hex')}`);
        await ensureStreams(nc, n, TEST_STREAM_LIMITS);
        engine = await ec.open(randomDatabase());
        await runMigrations(engine);
      });

      afterEach(async () => {
        for (const s of sinks.splice(0)) await s.stop();
        await engine.close();
      });

      it(`sink (${ec.name}) - a fault scenario's reports and events land with exact counts`, async () => {
        const sc = faultScenario(100, 7, Date.now() - 120_000);
        // Each stream has its own writer: a sink of the reports and one of the events both write.
        const s = await sink({ pipelines: ['reports'] });
        const e = await sink({ pipelines: ['events'] });
        expect([s.role(), e.role()]).to.deep.equal(['writer', 'writer']);
        await publishBatches(nc, n, sc.batches);
        await publishEvents(nc, n, sc.events);
        await waitFor(async () => (await countRows(engine, 'reports')) === sc.reports && (await countRows(engine, 'route_events')) === 3, 'all rows');
        const per = await rowsPerSeq(engine, 'reports');
        expect(per.size).to.equal(sc.batches.length);
        expect([...per.values()].every((c) => c === 10)).to.equal(true);
        const errors = sc.batches.reduce((k, b) => k + b.reports.filter((r) => r[1] !== 0).length, 0);
        expect(await countRows(engine, 'reports', "retcode != 0 AND IPv4NumToString(ip) = '10.1.0.2'")).to.equal(errors);
        const roll = await engine.query<{ calls: number | string; errors: number | string }>(
          `SELECT countMerge(calls) AS calls, sumMerge(errors) AS errors FROM ${engine.database}.reports_1m`,
        );
        expect(Number(roll[0]?.calls)).to.equal(sc.reports);
        expect(Number(roll[0]?.errors)).to.equal(errors);
        const ev = await engine.query<Record<string, unknown>>(
          `SELECT to_state, reason, consecutive_errors, extra_names FROM ${engine.database}.route_events ORDER BY time`,
        );
        expect(ev.map((e) => [e['to_state'], e['reason']])).to.deep.equal([
          ['overloaded', 'consecutive_errors'],
          ['probing', 'timeout'],
          ['healthy', 'probe_success'],
        ]);
        expect(Number(ev[0]?.['consecutive_errors'])).to.equal(15);
        expect(ev[2]?.['extra_names']).to.deep.equal(['custom_score']);
        expect(s.stats().reports.quarantined).to.deep.equal({});
      });

      it(`sink (${ec.name}) - malformed and invalid messages are quarantined, counted, logged, and the stream keeps flowing`, async () => {
        const { log, records } = memoryLog();
        const s = await sink({ log });
        const good = randomBatches({ batches: 6, reportsPerBatch: 50, ts: Date.now() - 10_000, seed: 3 });
        await publishBatches(nc, n, good.slice(0, 3));
        const p = (m: number, c: number) => n.report(partitionOf(m, c, DEFAULT_PARTITIONS), m, c);
        nc.publish(p(1, 1), new Uint8Array([0xc1, 0xff, 0x00])); // not msgpack
        nc.publish(p(1, 1), encode({ ...good[0], v: 9 })); // unknown version
        nc.publish(p(1, 1), encode(good[0])); // body's route is not the subject's
        nc.publish(n.event(5, 5), encode(routeEvent({ modid: 5, cmdid: 5, ts: Date.now(), ip: '10.0.0.300', port: 1, from: 'healthy', to: 'overloaded', reason: 'error_rate', version: 1 })));
        await publishBatches(nc, n, good.slice(3));
        await waitFor(async () => (await countRows(engine, 'reports')) === 300 && (await countRows(engine, 'quarantine')) === 4, 'good rows and quarantine');
        const q = await engine.query<{ stream: string; kind: string; c: number | string }>(
          `SELECT stream, kind, count() AS c FROM ${engine.database}.quarantine GROUP BY stream, kind ORDER BY stream, kind`,
        );
        expect(q.map((r) => [r.stream, r.kind, Number(r.c)])).to.deep.equal([
          [n.eventsStream, 'out_of_range', 1],
          [n.reportsStream, 'bad_version', 1],
          [n.reportsStream, 'malformed', 1],
          [n.reportsStream, 'subject_mismatch', 1],
        ]);
        const payload = await engine.query<{ payload: string }>(`SELECT payload FROM ${engine.database}.quarantine WHERE kind = 'malformed'`);
        expect(Buffer.from(payload[0]?.payload ?? '', 'base64')).to.deep.equal(Buffer.from([0xc1, 0xff, 0x00]));
        expect(s.stats().reports.quarantined).to.deep.equal({ malformed: 1, bad_version: 1, subject_mismatch: 1 });
        expect(s.stats().events.quarantined).to.deep.equal({ out_of_range: 1 });
        const logged = records.filter((r) => r['msg'] === 'message quarantined').map((r) => r['kind']);
        expect(logged.sort()).to.deep.equal(['bad_version', 'malformed', 'out_of_range', 'subject_mismatch']);
      });

      it(`sink (${ec.name}) - rows ClickHouse rejects go to quarantine and the rest are stored`, async () => {
        // A schema that refuses a value the wire format allows: zones are an enum now.
        const db = engine.database;
        const enumType = "Enum8('z1' = 1, 'z2' = 2)";
        await engine.command(`ALTER TABLE ${db}.reports MODIFY COLUMN zone ${enumType}`);
        // the view the sink's rows go through (migration 7: reports_ingest_v3 into reports)
        await engine.command(`DROP TABLE ${db}.reports_ingest_v3_mv`);
        const view = MIGRATIONS.find((m) => m.version === 7)!.statements({ db, features: engine.features, retention: DEFAULT_RETENTION })[2]!;
        expect(view).to.contain('reports_ingest_v3_mv');
        expect(view).to.contain('\n  zone,\n');
        await engine.command(view.replace('\n  zone,\n', `\n  CAST(zone AS ${enumType}) AS zone,\n`));
        const { log, records } = memoryLog();
        const s = await sink({ log, batch: { maxWaitMs: 300 } });
        const good = randomBatches({ batches: 10, reportsPerBatch: 20, ts: Date.now() - 10_000, seed: 5 });
        const bad = reportBatch({ modid: 77, cmdid: 1, ts: Date.now(), sender: 'svc-x', zone: 'mars', hosts: [['10.9.9.9', 1]], reports: [[0, 0, 1, 0]] });
        await publishBatches(nc, n, [...good.slice(0, 5), bad, ...good.slice(5)]);
        await waitFor(async () => (await countRows(engine, 'quarantine')) === 1 && (await countRows(engine, 'reports')) === 200, 'rejected row quarantined');
        const q = await engine.query<{ kind: string; detail: string; seq: number | string }>(`SELECT kind, detail, seq FROM ${engine.database}.quarantine`);
        expect(q[0]?.kind).to.equal('rejected');
        expect(q[0]?.detail).to.match(/mars/);
        expect(await countRows(engine, 'reports', 'modid = 77')).to.equal(0);
        expect(s.stats().reports.quarantined).to.deep.equal({ rejected: 1 });
        expect(records.some((r) => r['msg'] === 'message quarantined' && r['kind'] === 'rejected')).to.equal(true);
        // The stream still flows after the rejection.
        await publishBatches(nc, n, randomBatches({ batches: 2, reportsPerBatch: 20, ts: Date.now(), seed: 6 }));
        await waitFor(async () => (await countRows(engine, 'reports')) === 240, 'later rows');
      });

      it(`sink (${ec.name}) - the durable consumer deleted under a running worker is made again, and its replay stores nothing twice`, async () => {
        const { log, records } = memoryLog();
        const s = await sink({ log, backoff: { initialMs: 50, maxMs: 200 } });
        // Every call inside one second, away from its edges: the replay lookup must find
        // them even where the engine's index analysis mishandles sub-second bounds.
        const first = randomBatches({ batches: 10, reportsPerBatch: 10, ts: Math.floor(Date.now() / 1000) * 1000 - 5_000 + 100, spreadMs: 800, seed: 21 });
        await publishBatches(nc, n, first);
        await waitFor(async () => (await countRows(engine, 'reports')) === 100, 'first rows');
        const jsm = await jetstreamManager(nc);
        await jsm.consumers.delete(n.reportsStream, `${n.prefix}_sink_reports`);
        await publishBatches(nc, n, randomBatches({ batches: 10, reportsPerBatch: 10, ts: Date.now(), seed: 22 }));
        await waitFor(async () => (await countRows(engine, 'reports')) >= 200 && s.stats().reports.duplicatesSkipped >= 10, 'the replay');
        const per = await rowsPerSeq(engine, 'reports');
        expect(per.size).to.equal(20);
        expect([...per.values()].every((c) => c === 10)).to.equal(true);
        expect(records.some((r) => r['msg'] === 'sink consumer re-created')).to.equal(true);
      });

      it(`sink (${ec.name}) - two workers: one writes, the other stands by and takes over when it stops; every row once`, async () => {
        const a = await sink({ id: 'a', batch: { maxWaitMs: 50, maxMessages: 20 } });
        const b = await sink({ id: 'b', batch: { maxWaitMs: 50, maxMessages: 20 } });
        expect([a.role(), b.role()]).to.deep.equal(['writer', 'standby']);
        expect(b.bound(), 'a standby is bound (ready)').to.equal(true);
        expect((await sinkWriters(nc, n.prefix))?.map((w) => [w.stream, w.sink])).to.deep.equal([['events', 'a'], ['reports', 'a']]);
        const batches = randomBatches({ batches: 400, reportsPerBatch: 25, ts: Date.now() - 5_000, seed: 9 });
        await publishBatches(nc, n, batches.slice(0, 200));
        await waitFor(async () => (await countRows(engine, 'reports')) === 5_000, 'the first half', 30_000);
        // A graceful stop gives the lease up: the standby takes over within its poll, not a lease time.
        await a.stop();
        await waitFor(() => b.role() === 'writer', 'b to take over', 5_000);
        expect((await sinkWriters(nc, n.prefix))?.map((w) => w.sink)).to.deep.equal(['b', 'b']);
        await publishBatches(nc, n, batches.slice(200));
        await waitFor(async () => (await countRows(engine, 'reports')) === 10_000, 'all rows', 30_000);
        const per = await rowsPerSeq(engine, 'reports');
        expect(per.size).to.equal(400);
        expect([...per.values()].every((c) => c === 25)).to.equal(true);
        expect(a.stats().reports.acked + b.stats().reports.acked).to.equal(400);
        expect(a.stats().reports.acked).to.be.at.least(200);
        expect(b.stats().reports.acked).to.be.greaterThan(0);
        expect(Number((await engine.query<{ n: string }>(`SELECT count(DISTINCT epoch) AS n FROM ${engine.database}.sink_fences WHERE pipeline = 'reports'`))[0]!.n), 'two fences, one per writer').to.equal(2);
      });
    });
  }
});
