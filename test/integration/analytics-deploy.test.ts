/**
 * `lars stats deploy` splits at `--at` to the millisecond, on both engines,
 * on data stored through the real path (publish → stream → sink): calls a
 * few seconds either side of the deploy land on their own side, the window
 * starts where it says, and the minute still running counts (with the
 * default `--at`, now minus the window, the after side ends now).
 */
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { names, type Names } from '../../schemas/subjects.ts';
import type { ReportBatch, ReportTuple } from '../../schemas/messages.ts';
import type { NatsConnection } from '../../src/nats/connect.ts';
import { ensureStreams } from '../../src/nats/streams.ts';
import { defaultConfig } from '../../src/lib/config.ts';
import type { AnalyticsEngine } from '../../src/analytics/engine.ts';
import { runMigrations } from '../../src/analytics/migrate.ts';
import { startSink, type Sink } from '../../src/analytics/sink.ts';
import { publishBatches, reportBatch } from '../helpers/analytics-fixtures.ts';
import { statsCommand } from '../../src/cli/commands/stats.ts';
import { TEST_STREAM_LIMITS, countRows, engineCases, randomDatabase, sharedChdbDataDir, waitFor, type ClickHouseServer, useNatsAndClickHouse } from '../helpers/clickhouse-server.ts';

const MIN = 60_000;
const S = 1000;

/** `n` calls one second apart from `ts`, the first `errors` of them failing. */
function calls(ts: number, n: number, errors = 0, latencyMs = 20): ReportBatch {
  const reports: ReportTuple[] = Array.from({ length: n }, (_, i) => [0, i < errors ? 503 : 0, latencyMs, i * S]);
  return reportBatch({ modid: 300, cmdid: 1, ts, sender: 'svc-d', hosts: [['10.0.3.1', 80]], reports });
}

describe('lars stats deploy', function () {
  this.timeout(60_000);
  let ch: ClickHouseServer;
  let nc: NatsConnection;
  const servers = useNatsAndClickHouse();
  before(() => ({ ch, nc } = servers()));

  // now: 40 s into a minute; --window 5m, so --at is 4 min 20 s into the minute 5 min back.
  const fm = Math.floor(Date.now() / MIN) * MIN;
  const now = fm + 40 * S;
  const at = now - 5 * MIN;
  const batches = [
    calls(fm - 10 * MIN + 20 * S, 7), // before the window starts (at − 5 min = fm − 10 min + 40 s): left out
    calls(fm - 7 * MIN, 30), // a whole minute before
    calls(fm - 5 * MIN + 10 * S, 10), // 30 s before --at, in its minute: before
    calls(fm - 5 * MIN + 45 * S, 10), // 5 s after --at, in its minute: after
    calls(fm + 5 * S, 20, 5, 80), // the minute still running: after
  ];

  for (const ec of engineCases(() => ch)) {
    describe(ec.name, () => {
      let engine: AnalyticsEngine;
      let sink: Sink;
      let n: Names;

      before(async () => {
        n = names(`d${randomBytes(4).toString('hex')}`);
        await ensureStreams(nc, n, TEST_STREAM_LIMITS);
        engine = await ec.open(randomDatabase());
        await runMigrations(engine);
        sink = await startSink({ nc, names: n, engine, batch: { maxWaitMs: 100 } });
        await publishBatches(nc, n, batches);
        const total = batches.reduce((k, b) => k + b.reports.length, 0);
        await waitFor(async () => (await countRows(engine, 'reports')) === total, 'the seeded reports stored');
      });
      after(async () => {
        await sink?.stop();
        await engine?.close();
      });

      it(`stats deploy (${ec.name}) - --window 5m: calls either side of --at on their side, the running minute counted, nothing from before the window`, async () => {
        const config = { ...defaultConfig(), clickhouseDatabase: engine.database };
        if (engine.kind === 'server') config.clickhouseUrl = ch.url;
        else config.dataDir = sharedChdbDataDir();
        const run = async (flags: Record<string, string>): Promise<Array<Record<string, unknown>>> => {
          const out: string[] = [];
          const code = await statsCommand.run(['deploy'], { route: '300.1', ...flags, json: true } as Record<string, string | boolean>, { config, out: (l) => out.push(l), stopSignal: new Promise(() => undefined), now: () => now });
          expect(code).to.equal(0);
          return JSON.parse(out.join('\n')) as Array<Record<string, unknown>>;
        };
        const rows = await run({ window: '5m' });
        expect(rows.map((r) => [r['period'], r['calls'], r['errors']])).to.deep.equal([
          ['before', 40, 0],
          ['after', 30, 5],
        ]);
        expect(Number(rows[1]!['p99_ms'])).to.be.closeTo(80, 0.5);
        // The same split with --at given explicitly, in ISO form.
        const explicit = await run({ window: '5m', at: new Date(at).toISOString() });
        expect(explicit).to.deep.equal(rows);
        // --at 6 s later: the call 5 s after the first --at moves to the before side, by itself.
        const later = await run({ window: '5m', at: new Date(at + 6 * S).toISOString() });
        expect(later.map((r) => [r['period'], r['calls']])).to.deep.equal([
          ['before', 41],
          ['after', 29],
        ]);
      });
    });
  }
});
