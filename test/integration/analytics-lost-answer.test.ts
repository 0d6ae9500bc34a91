/**
 * An insert whose answer is lost (the connection broke after the request
 * was sent) may still be running on the server: the sink's retry waits for
 * it to end (`engine.settle`, by the insert's query id) before it looks its
 * rows up, or the look-up would find nothing and the retry store them twice.
 * The same wait guards a writer taking over: raising its fence waits for
 * the inserts of an earlier writer still running on the server. Real
 * clickhouse-server; a slow INSERT ... SELECT stands for an insert the
 * server is still writing.
 */
import { expect } from 'chai';
import { openEngine, type AnalyticsEngine } from '../../src/analytics/engine.ts';
import { Fence } from '../../src/analytics/fence.ts';
import { runMigrations } from '../../src/analytics/migrate.ts';
import { silentLogger } from '../../src/lib/log.ts';
import { randomDatabase, sharedChdbPath, startClickHouseServer, type ClickHouseServer } from '../helpers/clickhouse-server.ts';
import { waitFor } from '../helpers/wait.ts';

describe('analytics - an insert whose answer is lost (real clickhouse-server)', function () {
  this.timeout(60_000);
  let ch: ClickHouseServer;
  let engine: AnalyticsEngine;

  before(async () => {
    ch = await startClickHouseServer();
    engine = await openEngine({ url: ch.url, database: 'default' });
  });
  after(async () => {
    await engine?.close();
    await ch?.destroy();
  });

  it('settle - waits while an insert with that query id runs on the server, and its rows are there when it returns', async () => {
    const table = `default.${randomDatabase('settle')}`;
    await engine.command(`CREATE TABLE ${table} (x UInt32) ENGINE = MergeTree ORDER BY x`);
    const queryId = `settle-${Date.now()}`;
    // an insert that runs about 2 s on the server (sleep is per block)
    let ended = false;
    const running = engine.client
      .command({ query: `INSERT INTO ${table} SELECT toUInt32(number + sleep(2)) FROM system.numbers LIMIT 3`, query_id: queryId })
      .then(() => void (ended = true));
    await waitFor(async () => Number((await engine.query<{ n: string }>(`SELECT count() AS n FROM system.processes WHERE query_id = '${queryId}'`))[0]?.n) > 0, {
      timeoutMs: 10_000,
      what: 'the insert to run on the server',
    });
    expect(await engine.settle(queryId, 200), 'settled while the insert still runs').to.equal(false);
    expect(await engine.settle(queryId, 20_000), 'settled once it ended').to.equal(true);
    const rows = Number((await engine.query<{ n: string }>(`SELECT count() AS n FROM ${table}`))[0]?.n);
    expect(rows, 'rows visible when settle returns').to.equal(3);
    await running;
    expect(ended).to.equal(true);
    expect(await engine.settle('no-such-query', 1_000), 'an id that never ran').to.equal(true);
  });

  it('fence - raising it waits until an insert into the fenced ingest table that runs on the server has ended', async () => {
    const db = randomDatabase('fence');
    const e = await openEngine({ url: ch.url, database: db });
    try {
      await runMigrations(e);
      // an insert into the reports' ingest table that runs about 2 s on the server
      let ended = 0;
      const running = e.client
        .command({ query: `INSERT INTO ${db}.reports_ingest_v3 (fence, seq) SELECT toUInt64(0), toUInt64(number + sleep(2)) FROM system.numbers LIMIT 3` })
        .then(() => void (ended = Date.now()));
      await waitFor(async () => Number((await e.query<{ n: string }>(`SELECT count() AS n FROM system.processes WHERE query LIKE '%reports_ingest_v3%' AND query LIKE '%sleep%'`))[0]?.n) > 0, {
        timeoutMs: 10_000,
        what: 'the insert to run on the server',
      });
      const fence = new Fence({ engine: e, pipeline: 'reports', sink: 's', log: silentLogger() });
      await fence.raise(5);
      const raised = Date.now();
      expect(ended, 'the insert ended before the fence was up').to.be.above(0);
      expect(raised).to.be.at.least(ended);
      expect(await fence.current()).to.equal(5);
      // the events' writers have their own fence
      expect(await new Fence({ engine: e, pipeline: 'events', sink: 's', log: silentLogger() }).current()).to.equal(0);
      await running;
    } finally {
      await e.close();
    }
  });

  it('settle - the embedded engine (chdb) runs inserts in this process: nothing to wait for', async () => {
    const e = await openEngine({ path: sharedChdbPath(), database: randomDatabase() });
    try {
      expect(await e.settle('anything', 1_000)).to.equal(true);
    } finally {
      await e.close();
    }
  });
});
