/**
 * Sink failover: a worker that dies with a batch in flight hands it to
 * another worker within seconds (the short ack wait), while a live worker's
 * slow insert is kept alive with in-progress acks and never redelivered.
 * And large messages flow without fetch errors or stalls.
 */
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import { names, type Names } from '../../schemas/subjects.ts';
import type { ReportBatch } from '../../schemas/messages.ts';
import { encode } from '../../schemas/codec.ts';
import type { NatsServer } from '../../src/nats/natsd.ts';
import { connectNats, type NatsConnection } from '../../src/nats/connect.ts';
import { ensureStreams } from '../../src/nats/streams.ts';
import type { AnalyticsEngine } from '../../src/analytics/engine.ts';
import { runMigrations } from '../../src/analytics/migrate.ts';
import { DEFAULT_ACK_WAIT_MS, startSink, type Sink, type SinkOptions } from '../../src/analytics/sink.ts';
import { publishBatches, randomBatches } from '../helpers/analytics-fixtures.ts';
import { CutProxy } from '../helpers/proxy.ts';
import { TEST_STREAM_LIMITS, countRows, engineCases, randomDatabase, rowsPerSeq, waitFor, type ClickHouseServer, useNatsAndClickHouse } from '../helpers/clickhouse-server.ts';

function memoryLog() {
  const records: Array<Record<string, unknown>> = [];
  const log = pino({ level: 'info' }, { write: (s: string) => records.push(JSON.parse(s) as Record<string, unknown>) });
  return { log, records };
}

/** An engine whose report inserts wait for `gate` first (the rest passes through). */
function gatedEngine(engine: AnalyticsEngine, gate: (table: string) => Promise<void>): AnalyticsEngine {
  const e = Object.create(engine) as AnalyticsEngine;
  e.insertTsv = async (table, columns, body, opts) => {
    await gate(table);
    return engine.insertTsv(table, columns, body, opts);
  };
  return e;
}

async function expectEachOnce(engine: AnalyticsEngine, batches: ReportBatch[], per: number, timeoutMs: number): Promise<void> {
  let last = '';
  await waitFor(
    async () => {
      const seqs = await rowsPerSeq(engine, 'reports');
      const off = [...seqs.values()].filter((c) => c !== per).length;
      last = `${seqs.size} of ${batches.length} messages stored, ${off} not exactly once`;
      return seqs.size === batches.length && off === 0;
    },
    'every report exactly once',
    timeoutMs,
    50,
  ).catch((err: unknown) => {
    throw new Error(`${(err as Error).message}: ${last}`);
  });
  expect(await countRows(engine, 'reports')).to.equal(batches.length * per);
}

describe('analytics failover', function () {
  this.timeout(90_000);
  let nats: NatsServer;
  let ch: ClickHouseServer;
  let nc: NatsConnection;
  let n: Names;
  let engine: AnalyticsEngine;
  const sinks: Sink[] = [];
  const cleanups: Array<() => Promise<void>> = [];

  const servers = useNatsAndClickHouse();
  before(() => ({ nats, ch, nc } = servers()));

  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
    for (const s of sinks.splice(0)) await s.stop();
    await engine?.close();
  });

  async function sink(extra: Partial<SinkOptions> = {}): Promise<Sink> {
    const s = await startSink({ nc, names: n, engine, pipelines: ['reports'], batch: { maxWaitMs: 100, maxMessages: 25 }, ...extra });
    sinks.push(s);
    return s;
  }

  for (const ec of engineCases(() => ch)) {
    describe(ec.name, () => {
      beforeEach(async () => {
        n = names(`t${randomBytes(4).toString('hex')}`);
        await ensureStreams(nc, n, TEST_STREAM_LIMITS);
        engine = await ec.open(randomDatabase());
        await runMigrations(engine);
      });

      it(`failover (${ec.name}) - a worker dies with its insert in flight: the other stores every row once within seconds`, async () => {
        const ncA = await connectNats({ url: nats.url, reconnect: false });
        let blocked = 0;
        let dead = false;
        let release!: () => void;
        const held = new Promise<void>((r) => (release = r));
        const a = await startSink({
          nc: ncA,
          names: n,
          engine: gatedEngine(engine, async (table) => {
            if (!table.endsWith('reports_ingest_v3')) return;
            blocked++;
            await held;
            if (dead) throw new Error('worker gone');
          }),
          id: 'a',
          pipelines: ['reports'],
          batch: { maxWaitMs: 100, maxMessages: 25 },
        });
        cleanups.push(async () => {
          dead = true;
          release();
          await a.abort();
          await ncA.close().catch(() => undefined);
        });
        const batches = randomBatches({ batches: 150, reportsPerBatch: 10, ts: Date.now() - 20_000, seed: 31 });
        await publishBatches(nc, n, batches);
        await waitFor(() => blocked > 0 && a.stats().reports.held > 0, 'worker a to hold a batch in its insert');
        const heldByA = a.stats().reports.held;
        const b = await sink({ id: 'b' });
        // Worker a dies: no ack, no in-progress ack, no nak for what it holds.
        await ncA.close();
        const killedAt = Date.now();
        await expectEachOnce(engine, batches, 10, DEFAULT_ACK_WAIT_MS + 10_000);
        const took = Date.now() - killedAt;
        expect(took, 'failover time, ms').to.be.below(DEFAULT_ACK_WAIT_MS + 5_000);
        expect(a.stats().reports.acked).to.equal(0);
        expect(b.stats().reports.acked).to.equal(batches.length);
        expect(b.stats().reports.redelivered, 'worker a\'s messages came back to b').to.be.at.least(Math.min(heldByA, 25));
      });

      it(`failover (${ec.name}) - a writer paused mid-insert past its lease: the next one stores every row, the paused one's late insert stores nothing and acknowledges nothing`, async () => {
        const proxy = await new CutProxy(nats.port).start();
        cleanups.push(() => proxy.stop());
        const ncA = await connectNats({ url: proxy.url });
        cleanups.push(() => ncA.close().catch(() => undefined));
        // A paused process: its clock stands still (it never sees its lease run out), its NATS traffic stops.
        let pausedAt: number | undefined;
        const clock = () => pausedAt ?? Date.now();
        let release!: () => void;
        const held = new Promise<void>((r) => (release = r));
        let gated = 0;
        let lateInsertEnded = false;
        const paused = Object.create(engine) as AnalyticsEngine;
        paused.insertTsv = async (table, columns, body, opts) => {
          if (!table.endsWith('reports_ingest_v3') || gated > 0) return engine.insertTsv(table, columns, body, opts);
          gated++;
          await held;
          await engine.insertTsv(table, columns, body, opts);
          lateInsertEnded = true;
        };
        const leaseMs = 2_000;
        const a = await sink({ id: 'a', nc: ncA, engine: paused, now: clock, writerLeaseMs: leaseMs });
        const b = await sink({ id: 'b', writerLeaseMs: leaseMs });
        expect([a.role(), b.role()]).to.deep.equal(['writer', 'standby']);
        const batches = randomBatches({ batches: 100, reportsPerBatch: 10, ts: Date.now() - 20_000, seed: 34 });
        await publishBatches(nc, n, batches);
        await waitFor(() => gated > 0 && a.stats().reports.held > 0, 'writer a to hold a batch in its insert');
        pausedAt = Date.now();
        proxy.cut();
        await waitFor(() => b.role() === 'writer', 'b to take over once a\'s lease ran out', leaseMs + 10_000);
        // b stores everything, a's held batch too (redelivered after the ack wait), before a's insert goes out.
        await expectEachOnce(engine, batches, 10, DEFAULT_ACK_WAIT_MS + 15_000);
        // a wakes up: its insert reaches ClickHouse under the old fence, and its check after it finds the fence raised.
        release();
        await waitFor(() => lateInsertEnded, 'a\'s late insert to end');
        await waitFor(() => a.role() === 'standby', 'a to find itself fenced');
        await expectEachOnce(engine, batches, 10, 1_000);
        expect(a.stats().reports.acked, 'a acknowledged nothing of what it held').to.equal(0);
        expect(b.stats().reports.acked).to.equal(batches.length);
        pausedAt = undefined;
        proxy.restore();
      });

      it(`failover (${ec.name}) - an insert slower than the ack wait is kept alive: nothing is redelivered, every row once`, async () => {
        const ackWaitMs = 1_000;
        let slowMs = 0;
        let first = true;
        const slow = gatedEngine(engine, async (table) => {
          if (!table.endsWith('reports_ingest_v3') || !first) return;
          first = false;
          const t0 = Date.now();
          // The scenario itself: one insert that takes three and a half ack waits.
          await new Promise((r) => setTimeout(r, 3.5 * ackWaitMs));
          slowMs = Date.now() - t0;
        });
        const a = await sink({ id: 'a', engine: slow, ackWaitMs });
        const b = await sink({ id: 'b', ackWaitMs });
        const batches = randomBatches({ batches: 120, reportsPerBatch: 10, ts: Date.now() - 20_000, seed: 32 });
        await publishBatches(nc, n, batches);
        await waitFor(() => slowMs > 0, 'the slow insert to finish', 20_000);
        await expectEachOnce(engine, batches, 10, 20_000);
        expect(slowMs).to.be.at.least(3 * ackWaitMs);
        expect(a.stats().reports.redelivered + b.stats().reports.redelivered, 'redeliveries').to.equal(0);
        expect(a.stats().reports.acked + b.stats().reports.acked).to.equal(batches.length);
      });
    });
  }

  it('lease (chdb) - a lone writer cut off from NATS past its lease stops writing, and writes again under a new epoch once back: every row once', async () => {
    n = names(`t${randomBytes(4).toString('hex')}`);
    await ensureStreams(nc, n, TEST_STREAM_LIMITS);
    engine = await engineCases(() => ch)[0]!.open(randomDatabase());
    await runMigrations(engine);
    const proxy = await new CutProxy(nats.port).start();
    cleanups.push(() => proxy.stop());
    const ncA = await connectNats({ url: proxy.url });
    cleanups.push(() => ncA.close().catch(() => undefined));
    const a = await sink({ id: 'a', nc: ncA, writerLeaseMs: 1_500 });
    expect(a.role()).to.equal('writer');
    const batches = randomBatches({ batches: 60, reportsPerBatch: 10, ts: Date.now() - 20_000, seed: 35 });
    await publishBatches(nc, n, batches.slice(0, 30));
    await expectEachOnce(engine, batches.slice(0, 30), 10, 15_000);
    proxy.cut();
    await waitFor(() => a.role() === 'standby', 'a to stop writing once its lease may have expired', 10_000);
    expect(a.bound(), 'a standby counts as bound').to.equal(true);
    await publishBatches(nc, n, batches.slice(30));
    proxy.restore();
    await waitFor(() => a.role() === 'writer', 'a to write again', 15_000);
    await expectEachOnce(engine, batches, 10, 20_000);
    const epochs = await engine.query<{ epoch: string }>(`SELECT DISTINCT epoch FROM ${engine.database}.sink_fences ORDER BY epoch`);
    expect(epochs.length, 'a second epoch after the outage').to.equal(2);
  });

  it('fetch (chdb) - large messages (fetches sized by bytes) flow without a fetch error or a stall', async () => {
    n = names(`t${randomBytes(4).toString('hex')}`);
    await ensureStreams(nc, n, TEST_STREAM_LIMITS);
    engine = await engineCases(() => ch)[0]!.open(randomDatabase());
    await runMigrations(engine);
    const { log, records } = memoryLog();
    const batches = randomBatches({ batches: 1_500, reportsPerBatch: 400, ts: Date.now() - 20_000, seed: 33 });
    const bytes = batches.reduce((k, b) => k + encode(b).length, 0);
    // Large enough that fetches are sized by bytes (about 4 MiB each), not by the batch's room.
    expect(bytes / batches.length).to.be.above(2_048);
    expect(bytes).to.be.above(2 * 4 * 2 ** 20);
    const s = await sink({ log, batch: { maxWaitMs: 200, maxMessages: 4_200, maxRows: 10_000_000, maxBytes: 2 ** 30 } });
    await publishBatches(nc, n, batches);
    await expectEachOnce(engine, batches, 400, 30_000);
    expect(s.stats().reports.lastError).to.equal(undefined);
    expect(records.filter((r) => r['level'] as number >= 40).map((r) => r['msg'])).to.deep.equal([]);
  });
});
