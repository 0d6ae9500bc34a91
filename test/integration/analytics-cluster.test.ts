/**
 * Analytics on a ClickHouse cluster: two Debian clickhouse-servers as two
 * shards, local tables on each and a Distributed table of the same name over
 * them. Two sink workers store every report exactly once across the shards,
 * each shard holds a share, and the stats queries read the Distributed tables
 * unchanged.
 */
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { names, type Names } from '../../schemas/subjects.ts';
import { TABLES } from '../../schemas/clickhouse/migrations.ts';
import { localDatabase } from '../../schemas/clickhouse/cluster.ts';
import { startNatsServer, type NatsServer } from '../../src/nats/natsd.ts';
import { connectNats, type NatsConnection } from '../../src/nats/connect.ts';
import { ensureStreams } from '../../src/nats/streams.ts';
import { openEngine, type AnalyticsEngine } from '../../src/analytics/engine.ts';
import { runMigrations } from '../../src/analytics/migrate.ts';
import { startSink, type Sink } from '../../src/analytics/sink.ts';
import { runStats } from '../../src/analytics/stats.ts';
import { faultScenario, publishBatches } from '../helpers/analytics-fixtures.ts';
import { countRows, randomDatabase, rowsPerSeq, waitFor, TEST_STREAM_LIMITS } from '../helpers/clickhouse-server.ts';
import { startClickHouseCluster, type ClickHouseCluster } from '../helpers/clickhouse-cluster.ts';

describe('analytics on a ClickHouse cluster (two shards, clickhouse-server 18.16)', function () {
  this.timeout(90_000);
  let nats: NatsServer;
  let nc: NatsConnection;
  let cluster: ClickHouseCluster;
  let engine: AnalyticsEngine;
  let n: Names;
  const sinks: Sink[] = [];

  before(async () => {
    [nats, cluster] = await Promise.all([startNatsServer(), startClickHouseCluster(2)]);
    nc = await connectNats({ url: nats.url });
    n = names(`t${randomBytes(4).toString('hex')}`);
    await ensureStreams(nc, n, TEST_STREAM_LIMITS);
    engine = await openEngine({ url: cluster.shards.map((s) => s.url).join(','), database: randomDatabase(), cluster: { name: cluster.name, replicated: false }, requestTimeoutMs: 10_000 });
    await runMigrations(engine);
  });

  after(async () => {
    for (const s of sinks.splice(0)) await s.stop();
    await engine?.close();
    await nc?.close();
    await Promise.all([nats?.stop(), cluster?.destroy()]);
  });

  it('analytics cluster - migrations lay out local tables on every shard and Distributed tables over them', async () => {
    for (const s of cluster.shards) {
      const local = await engine.atServer(s.url, localDatabase(engine.database));
      try {
        const rows = await local.query<{ name: string; engine: string }>(
          `SELECT name, engine FROM system.tables WHERE database IN ('${engine.database}', '${local.database}') AND name = '${TABLES.reports}' ORDER BY database`,
        );
        expect(rows.map((r) => r.engine)).to.deep.equal(['Distributed', 'MergeTree']);
      } finally {
        await local.close();
      }
    }
  });

  it('analytics cluster - a Distributed table made before a migration added a column gets it when the migrations run again', async () => {
    const actorColumns = async (): Promise<string[]> => {
      const out: string[] = [];
      for (const s of cluster.shards) {
        const at = await engine.atServer(s.url, engine.database);
        try {
          const r = await at.query<{ name: string }>(`SELECT name FROM system.columns WHERE database = '${engine.database}' AND table = '${TABLES.events}' AND name = 'actor'`);
          out.push(...r.map((x) => `${s.url}:${x.name}`));
        } finally {
          await at.close();
        }
      }
      return out;
    };
    expect(await actorColumns()).to.have.length(cluster.shards.length);
    // as a deployment from before migration 5 has it: the Distributed layer without the column
    for (const s of cluster.shards) {
      const at = await engine.atServer(s.url, engine.database);
      try {
        await at.command(`ALTER TABLE ${engine.database}.${TABLES.events} DROP COLUMN actor`);
      } finally {
        await at.close();
      }
    }
    expect(await actorColumns()).to.deep.equal([]);
    await runMigrations(engine);
    expect(await actorColumns()).to.have.length(cluster.shards.length);
  });

  it('analytics cluster - two sink workers store every report once across the shards; stats read the Distributed tables', async () => {
    const sc = faultScenario(300, 3, Date.now() - 120_000);
    for (let i = 0; i < 2; i++) sinks.push(await startSink({ id: `w${i}`, nc, names: n, engine, batch: { maxWaitMs: 100 } }));
    await publishBatches(nc, n, sc.batches);
    await waitFor(async () => (await countRows(engine, TABLES.reports)) >= sc.reports, 'every report through the Distributed table', 60_000, 100);
    expect(await countRows(engine, TABLES.reports)).to.equal(sc.reports);
    const per = await rowsPerSeq(engine, TABLES.reports);
    expect(per.size).to.equal(sc.batches.length);
    expect([...per.values()].every((c) => c === 10)).to.equal(true);
    // Each shard holds a share, and the shares add up.
    let sum = 0;
    for (const s of cluster.shards) {
      const local = await engine.atServer(s.url, localDatabase(engine.database));
      try {
        const c = await countRows(local, TABLES.reports);
        expect(c, `rows on ${s.url}`).to.be.greaterThan(0);
        sum += c;
      } finally {
        await local.close();
      }
    }
    expect(sum).to.equal(sc.reports);
    const errors = await runStats(engine, 'errors', { route: { modid: 300, cmdid: 3 }, fromMs: Date.now() - 3_600_000, limit: 10 });
    const calls = errors.reduce((k, r) => k + Number(r['calls'] ?? 0), 0);
    expect(calls).to.equal(sc.reports);
    expect(errors.some((r) => Number(r['errors']) > 0)).to.equal(true);
  });
});
