/**
 * docs/analytics.md: every cookbook query runs, as written, on both engines
 * against data seeded through the real path (publish → stream → sink), and
 * returns the expected figures. Then `lars stats` on the same data.
 */
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { names, partitionOf, DEFAULT_PARTITIONS, type Names } from '../../schemas/subjects.ts';
import type { ReportBatch, ReportTuple, RouteEvent } from '../../schemas/messages.ts';
import type { NatsConnection } from '../../src/nats/connect.ts';
import { ensureStreams } from '../../src/nats/streams.ts';
import { defaultConfig } from '../../src/lib/config.ts';
import type { AnalyticsEngine } from '../../src/analytics/engine.ts';
import { runMigrations } from '../../src/analytics/migrate.ts';
import { startSink, type Sink } from '../../src/analytics/sink.ts';
import { publishBatches, publishEvents, reportBatch, routeEvent } from '../helpers/analytics-fixtures.ts';
import { statsCommand } from '../../src/cli/commands/stats.ts';
import {
  TEST_STREAM_LIMITS,
  countRows,
  engineCases,
  randomDatabase,
  sharedChdbDataDir,
  waitFor,
  type ClickHouseServer, useNatsAndClickHouse } from '../helpers/clickhouse-server.ts';

const MIN = 60_000;

/** The cookbook's queries, by id, as docs/analytics.md has them. */
function cookbook(): Map<string, string> {
  const doc = readFileSync(new URL('../../docs/analytics.md', import.meta.url), 'utf8');
  const out = new Map<string, string>();
  for (const m of doc.matchAll(/<!-- query: ([a-z0-9-]+) -->\s*```sql\n([\s\S]*?)```/g)) out.set(m[1]!, m[2]!);
  return out;
}

function repeat(n: number, t: ReportTuple, offsetStep: number, from = 0): ReportTuple[] {
  return Array.from({ length: n }, (_, i) => [t[0], t[1], t[2], from + i * offsetStep] as ReportTuple);
}

/**
 * Route 100.7: 10.0.0.1:80 (fast, no errors) and 10.0.0.2:80 (slow, failing),
 * two minutes, callers svc-a and svc-b. Route 200.1: one host, fine 45 min
 * ago, worse 15 min ago (the "deploy"). Events for 10.0.0.2 today and
 * yesterday. One malformed message.
 */
function seed(now: number): { batches: ReportBatch[]; events: RouteEvent[] } {
  const fm = Math.floor(now / MIN) * MIN;
  const a: Array<[string, number]> = [
    ['10.0.0.1', 80],
    ['10.0.0.2', 80],
  ];
  const minuteOfA = (ts: number, sender: string, h2Errors: number): ReportBatch =>
    reportBatch({
      modid: 100,
      cmdid: 7,
      ts,
      sender,
      zone: 'z1',
      hosts: a,
      reports: [...repeat(60, [0, 0, 10, 0], 500), ...repeat(h2Errors, [1, -1, 100, 0], 500, 100), ...repeat(40 - h2Errors, [1, 0, 100, 0], 500, 200)],
    });
  const b: Array<[string, number]> = [['10.0.1.1', 80]];
  const batches = [
    minuteOfA(fm - 10 * MIN, 'svc-a', 8),
    minuteOfA(fm - 5 * MIN, 'svc-b', 12),
    reportBatch({ modid: 200, cmdid: 1, ts: fm - 45 * MIN, sender: 'svc-c', hosts: b, reports: repeat(50, [0, 0, 20, 0], 1000) }),
    reportBatch({ modid: 200, cmdid: 1, ts: fm - 15 * MIN, sender: 'svc-c', hosts: b, reports: [...repeat(40, [0, 0, 80, 0], 1000), ...repeat(10, [0, 503, 80, 0], 1000, 500)] }),
  ];
  const today = Math.max(now - 10 * MIN, Math.floor(now / 86_400_000) * 86_400_000);
  const ev = (ts: number, from: RouteEvent['from'], to: RouteEvent['to'], reason: RouteEvent['reason'], version: number, figures: Record<string, number> = {}) =>
    routeEvent({ modid: 100, cmdid: 7, ts, ip: '10.0.0.2', port: 80, from, to, reason, version, figures });
  const events = [
    ev(now - 26 * 60 * MIN, 'healthy', 'overloaded', 'error_rate', 2, { err_rate: 0.3 }),
    ev(today + 1000, 'healthy', 'overloaded', 'consecutive_errors', 5, { consecutive_errors: 15, err_rate: 0.5, latency_ms: 100, ejections: 1 }),
    ev(today + 2000, 'overloaded', 'probing', 'timeout', 6, { ejection_ms: 15_000 }),
    ev(today + 3000, 'probing', 'overloaded', 'probe_failure', 7, { ejections: 2, ejection_ms: 30_000 }),
    ev(today + 4000, 'overloaded', 'probing', 'timeout', 8, { ejection_ms: 30_000 }),
    ev(today + 5000, 'probing', 'healthy', 'probe_success', 9, { consecutive_successes: 5 }),
  ];
  return { batches, events };
}

type Row = Record<string, unknown>;
const num = (v: unknown) => Number(v);
const pick = (rows: Row[], ...cols: string[]) => rows.map((r) => cols.map((c) => (typeof r[c] === 'number' || /^-?\d+(\.\d+)?$/.test(String(r[c])) ? num(r[c]) : r[c])));

/** What each cookbook query must return on the seeded data. */
const EXPECT: Record<string, (rows: Row[]) => void> = {
  'error-rate-per-host': (rows) =>
    expect(pick(rows, 'modid', 'cmdid', 'host', 'port', 'calls', 'errors', 'error_rate')).to.deep.equal([
      [100, 7, '10.0.0.2', 80, 80, 20, 0.25],
      [200, 1, '10.0.1.1', 80, 100, 10, 0.1],
      [100, 7, '10.0.0.1', 80, 120, 0, 0],
    ]),
  'latency-per-minute': (rows) => {
    expect(rows).to.have.length(2);
    for (const r of rows) {
      expect(num(r['calls'])).to.equal(100);
      expect(num(r['p50_ms'])).to.be.closeTo(10, 0.5);
      expect(num(r['p99_ms'])).to.be.closeTo(100, 0.5);
    }
  },
  'ejected-today': (rows) =>
    expect(pick(rows, 'host', 'port', 'reason', 'err_rate', 'consecutive_errors', 'latency_ms', 'ejections')).to.deep.equal([
      ['10.0.0.2', 80, 'consecutive_errors', 0.5, 15, 100, 1],
      ['10.0.0.2', 80, 'probe_failure', null, null, null, 2],
    ]),
  'host-audit-trail': (rows) =>
    expect(pick(rows, 'from_state', 'to_state', 'reason', 'version')).to.deep.equal([
      ['healthy', 'overloaded', 'error_rate', 2],
      ['healthy', 'overloaded', 'consecutive_errors', 5],
      ['overloaded', 'probing', 'timeout', 6],
      ['probing', 'overloaded', 'probe_failure', 7],
      ['overloaded', 'probing', 'timeout', 8],
      ['probing', 'healthy', 'probe_success', 9],
    ]),
  'callers-most-errors': (rows) =>
    expect(pick(rows, 'caller', 'calls', 'errors', 'error_rate')).to.deep.equal([
      ['svc-b', 100, 12, 0.12],
      ['svc-c', 100, 10, 0.1],
      ['svc-a', 100, 8, 0.08],
    ]),
  'before-after-deploy': (rows) => {
    expect(pick(rows, 'period', 'calls', 'errors', 'error_rate')).to.deep.equal([
      ['before', 50, 0, 0],
      ['after', 50, 10, 0.2],
    ]);
    expect(num(rows[0]?.['p99_ms'])).to.be.closeTo(20, 0.5);
    expect(num(rows[1]?.['p99_ms'])).to.be.closeTo(80, 0.5);
  },
  'slowest-hosts': (rows) => {
    expect(pick(rows, 'host', 'calls', 'avg_ms')).to.deep.equal([
      ['10.0.0.2', 80, 100],
      ['10.0.1.1', 100, 50],
      ['10.0.0.1', 120, 10],
    ]);
    expect(num(rows[0]?.['p99_ms'])).to.be.closeTo(100, 0.5);
  },
  'failed-calls-of-host': (rows) => {
    expect(rows).to.have.length(20);
    expect(rows.every((r) => num(r['retcode']) === -1 && num(r['latency_ms']) === 100 && r['zone'] === 'z1')).to.equal(true);
    expect(new Set(rows.map((r) => r['caller']))).to.deep.equal(new Set(['svc-a', 'svc-b']));
  },
  'quarantine-summary': (rows) => expect(pick(rows, 'kind', 'messages')).to.deep.equal([['malformed', 1]]),
};

describe('analytics cookbook', function () {
  this.timeout(60_000);
  let ch: ClickHouseServer;
  let nc: NatsConnection;

  const servers = useNatsAndClickHouse();
  before(() => ({ ch, nc } = servers()));

  it('cookbook - every query in docs/analytics.md has expected figures here, and every expectation a query', () => {
    expect([...cookbook().keys()].sort()).to.deep.equal(Object.keys(EXPECT).sort());
  });

  for (const ec of engineCases(() => ch)) {
    describe(ec.name, () => {
      let engine: AnalyticsEngine;
      let sink: Sink;
      let n: Names;

      before(async () => {
        n = names(`c${randomBytes(4).toString('hex')}`);
        await ensureStreams(nc, n, TEST_STREAM_LIMITS);
        engine = await ec.open(randomDatabase());
        await runMigrations(engine);
        sink = await startSink({ nc, names: n, engine, batch: { maxWaitMs: 100 } });
        const { batches, events } = seed(Date.now());
        await publishBatches(nc, n, batches);
        await publishEvents(nc, n, events);
        nc.publish(n.report(partitionOf(1, 1, DEFAULT_PARTITIONS), 1, 1), new Uint8Array([0xc1]));
        const total = batches.reduce((k, b) => k + b.reports.length, 0);
        await waitFor(
          async () =>
            (await countRows(engine, 'reports')) === total &&
            (await countRows(engine, 'route_events')) === events.length &&
            (await countRows(engine, 'quarantine')) === 1,
          'seeded data',
        );
      });
      after(async () => {
        await sink?.stop();
        await engine?.close();
      });

      for (const [id, sql] of cookbook()) {
        it(`cookbook (${ec.name}) - ${id}`, async () => {
          const rows = await engine.query<Row>(sql.replace(/\blars\./g, `${engine.database}.`));
          EXPECT[id]!(rows);
        });
      }

      async function stats(args: string[], flags: Record<string, string | boolean>): Promise<Row[]> {
        const config = { ...defaultConfig(), clickhouseDatabase: engine.database };
        if (engine.kind === 'server') config.clickhouseUrl = ch.url;
        else config.dataDir = sharedChdbDataDir();
        const out: string[] = [];
        const code = await statsCommand.run(args, { ...flags, json: true }, { config, out: (l) => out.push(l), stopSignal: new Promise(() => undefined) });
        expect(code).to.equal(0);
        return JSON.parse(out.join('\n')) as Row[];
      }

      it(`stats (${ec.name}) - lars stats answers the common questions on the same data`, async () => {
        expect(pick(await stats(['errors'], { route: '100.7' }), 'host', 'calls', 'errors', 'error_rate')).to.deep.equal([
          ['10.0.0.2', 80, 20, 0.25],
          ['10.0.0.1', 120, 0, 0],
        ]);
        expect(pick(await stats(['callers'], { since: '2h' }), 'caller', 'errors')).to.deep.equal([
          ['svc-b', 12],
          ['svc-c', 10],
          ['svc-a', 8],
        ]);
        expect(pick(await stats(['ejections'], {}), 'host', 'reason', 'consecutive_errors')).to.deep.equal([
          ['10.0.0.2', 'consecutive_errors', 15],
          ['10.0.0.2', 'probe_failure', null],
        ]);
        const lat = await stats(['latency'], { route: '100.7' });
        expect(lat.map((r) => r['calls'])).to.deep.equal([100, 100]);
        expect(pick(await stats(['deploy'], { route: '200.1' }), 'period', 'calls', 'errors')).to.deep.equal([
          ['before', 50, 0],
          ['after', 50, 10],
        ]);
        expect(await stats(['events'], { route: '100.7', since: '2d', limit: '2' })).to.have.length(2);
        expect(pick(await stats(['quarantine'], {}), 'kind', 'messages')).to.deep.equal([['malformed', 1]]);
      });

      if (ec.name.startsWith('clickhouse-server')) {
        it('cookbook (clickhouse-server 18.16) - the stock clickhouse-client reads the same data', async function () {
          const bin = ['/usr/bin/clickhouse-client', '/usr/bin/clickhouse'].find((p) => existsSync(p));
          if (!bin) this.skip();
          const args = bin!.endsWith('clickhouse') ? ['client'] : [];
          const r = spawnSync(bin!, [...args, '--host', '127.0.0.1', '--port', String(ch.tcpPort), '--query', `SELECT count() FROM ${engine.database}.reports WHERE modid = 100`], { encoding: 'utf8' });
          expect(r.stderr).to.equal('');
          expect(r.stdout.trim()).to.equal('200');
        });
      }

      it(`stats (${ec.name}) - table output by default`, async () => {
        const config = { ...defaultConfig(), clickhouseDatabase: engine.database };
        if (engine.kind === 'server') config.clickhouseUrl = ch.url;
        else config.dataDir = sharedChdbDataDir();
        const out: string[] = [];
        await statsCommand.run(['errors'], { route: '100.7' }, { config, out: (l) => out.push(l), stopSignal: new Promise(() => undefined) });
        expect(out[0]).to.match(/^modid\s+cmdid\s+host\s+port\s+calls\s+errors\s+error_rate$/);
        expect(out[2]).to.match(/^\s*100\s+7\s+10\.0\.0\.2\s+80\s+80\s+20\s+0\.25$/);
      });
    });
  }
});
