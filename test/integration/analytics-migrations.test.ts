/**
 * The schema on both engines: migrations create every table, re-apply
 * cleanly, race safely, repair what was dropped, and gate types by version;
 * retention by TTL where the server has it, by dropping partitions where not.
 */
import { expect } from 'chai';
import { TABLES, MIGRATIONS, type Migration } from '../../schemas/clickhouse/migrations.ts';
import type { AnalyticsEngine } from '../../src/analytics/engine.ts';
import { enforceRetention, runMigrations } from '../../src/analytics/migrate.ts';
import { ingestLine } from '../../src/analytics/rows.ts';
import { reportBatch } from '../helpers/analytics-fixtures.ts';
import { countRows, engineCases, randomDatabase, startClickHouseServer, type ClickHouseServer } from '../helpers/clickhouse-server.ts';

async function tables(e: AnalyticsEngine): Promise<string[]> {
  const r = await e.query<{ name: string }>(`SELECT name FROM system.tables WHERE database = '${e.database}' ORDER BY name`);
  return r.map((x) => x.name);
}

async function columnTypes(e: AnalyticsEngine, table: string): Promise<Record<string, string>> {
  const r = await e.query<{ name: string; type: string }>(`SELECT name, type FROM system.columns WHERE database = '${e.database}' AND table = '${table}'`);
  return Object.fromEntries(r.map((x) => [x.name, x.type]));
}

describe('analytics migrations', function () {
  this.timeout(60_000);
  let ch: ClickHouseServer;
  before(async () => {
    ch = await startClickHouseServer();
  });
  after(async () => {
    await ch?.destroy();
  });

  for (const ec of engineCases(() => ch)) {
    describe(ec.name, () => {
      let engine: AnalyticsEngine;
      beforeEach(async () => {
        engine = await ec.open(randomDatabase());
      });
      afterEach(async () => {
        await engine.close();
      });

      it(`migrations (${ec.name}) - create every table, then re-apply as a no-op`, async () => {
        const first = await runMigrations(engine);
        expect(first.applied).to.deep.equal(MIGRATIONS.map((m) => m.version));
        expect(await tables(engine)).to.deep.equal(Object.values(TABLES).sort());
        const again = await runMigrations(engine);
        expect(again).to.deep.equal({ applied: [], drifted: [], retentionChanged: [] });
        const recorded = await engine.query<{ version: number | string }>(`SELECT version FROM ${engine.database}.${TABLES.migrations} ORDER BY version`);
        expect(recorded.map((r) => Number(r.version))).to.deep.equal(MIGRATIONS.map((m) => m.version));
      });

      it(`migrations (${ec.name}) - a batch's attempt marks: every call in reports, the retries and hedges in report_attempts too`, async () => {
        await runMigrations(engine);
        const b = reportBatch({ modid: 3, cmdid: 4, ts: Date.now(), sender: 's', hosts: [['10.0.0.1', 1], ['10.0.0.2', 2]], reports: [[0, -1, 30, 0], [1, 0, 4, 35], [1, 0, 5, 40]] });
        b.attempts = [[1, 2, 1], [2, 2, 2]];
        await engine.insertTsv(`${engine.database}.${TABLES.reportsIngestV2}`, undefined, ingestLine(b, 7, engine.features));
        expect(await countRows(engine, TABLES.reports)).to.equal(3);
        const rows = await engine.query<{ port: number | string; attempt: number | string; kind: number | string; retcode: number | string }>(
          `SELECT port, attempt, kind, retcode FROM ${engine.database}.${TABLES.attempts} ORDER BY kind`,
        );
        expect(rows.map((r) => [Number(r.port), Number(r.attempt), Number(r.kind), Number(r.retcode)])).to.deep.equal([
          [2, 2, 1, 0],
          [2, 2, 2, 0],
        ]);
      });

      it(`migrations (${ec.name}) - several processes migrating at once all succeed`, async () => {
        const results = await Promise.all([runMigrations(engine), runMigrations(engine), runMigrations(engine)]);
        expect(results.every((r) => r.drifted.length === 0)).to.equal(true);
        expect(await tables(engine)).to.deep.equal(Object.values(TABLES).sort());
        expect(await runMigrations(engine)).to.deep.include({ applied: [] });
      });

      it(`migrations (${ec.name}) - a new migration applies on top, an edited one is reported, a dropped view is repaired`, async () => {
        await runMigrations(engine);
        const extra: Migration = {
          version: MIGRATIONS.length + 1,
          name: 'test extra table',
          statements: ({ db }) => [`CREATE TABLE IF NOT EXISTS ${db}.extra (x UInt8) ENGINE = MergeTree ORDER BY x`],
        };
        expect((await runMigrations(engine, { migrations: [...MIGRATIONS, extra] })).applied).to.deep.equal([extra.version]);
        const edited: Migration = { ...extra, statements: ({ db }) => [`CREATE TABLE IF NOT EXISTS ${db}.extra (x UInt16) ENGINE = MergeTree ORDER BY x`] };
        expect((await runMigrations(engine, { migrations: [...MIGRATIONS, edited] })).drifted).to.deep.equal([extra.version]);
        await engine.command(`DROP TABLE ${engine.database}.${TABLES.rollupMv}`);
        await runMigrations(engine, { repair: true });
        expect(await tables(engine)).to.include(TABLES.rollupMv);
      });

      it(`migrations (${ec.name}) - column types follow the server version`, async () => {
        await runMigrations(engine);
        const t = await columnTypes(engine, TABLES.reports);
        if (engine.features.dateTime64) {
          expect(t).to.deep.include({ time: "DateTime64(3, 'UTC')", ip: 'IPv4', caller: 'LowCardinality(String)', ts_ms: 'UInt64' });
        } else {
          expect(engine.version.major).to.equal(18);
          expect(t).to.deep.include({ ts_ms: 'UInt64', ip: 'UInt32', caller: 'String', zone: 'String' });
          expect(t['time']).to.match(/^DateTime/);
        }
        expect(Object.keys(await columnTypes(engine, TABLES.events))).to.include.members(['from_state', 'to_state', 'reason', 'err_rate', 'consecutive_errors', 'extra_names', 'seq']);
      });

      it(`migrations (${ec.name}) - retention: a TTL where the server has one, dropped partitions where not`, async () => {
        await runMigrations(engine, { retention: { reportsDays: 7 } });
        const now = Date.now();
        const old = reportBatch({ modid: 1, cmdid: 1, ts: now - 10 * 86_400_000, sender: 's', hosts: [['10.0.0.1', 1]], reports: [[0, 0, 1, 0]] });
        const fresh = { ...old, ts: now };
        await engine.insertTsv(`${engine.database}.${TABLES.reportsIngestV2}`, undefined, ingestLine(old, 1, engine.features) + ingestLine(fresh, 2, engine.features));
        if (engine.features.ttl) {
          const ddl = await engine.query<{ engine_full: string }>(`SELECT engine_full FROM system.tables WHERE database = '${engine.database}' AND name = 'reports'`);
          expect(ddl[0]?.engine_full).to.match(/toIntervalDay\(7\)|INTERVAL 7 DAY/);
          expect((await runMigrations(engine, { retention: { reportsDays: 9 } })).retentionChanged, 'report_attempts keeps as long as reports').to.deep.equal(['reports', 'report_attempts']);
          // Rows already past the TTL are dropped when their part is written or merged.
          await engine.command(`OPTIMIZE TABLE ${engine.database}.reports FINAL`);
          expect(await countRows(engine, 'reports')).to.equal(1);
        } else {
          expect(await countRows(engine, 'reports')).to.equal(2);
          const dropped = await enforceRetention(engine, { reportsDays: 7 }, now);
          expect(dropped).to.have.length(1);
          expect(dropped[0]).to.match(/^reports:/);
          expect(await countRows(engine, 'reports', 'seq = 2')).to.equal(1);
          expect(await countRows(engine, 'reports')).to.equal(1);
        }
      });
    });
  }
});
