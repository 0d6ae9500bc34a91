/**
 * Benchmark group `analytics` (issue 3): `npm run bench -- analytics`.
 *
 * For each engine — the default (chdb, in this process) and Debian's
 * clickhouse-server 18.16 (a local process, `_server` metrics) — on a fresh
 * database:
 *  1. bare: the same rows inserted with `@clickhouse/client` alone, one row per
 *     call into `reports`, TabSeparated, in batches of the sink's size (the
 *     time includes building the text from rows in memory);
 *  2. sink: pre-encoded report batches published with core NATS into the
 *     reports stream while a sink worker runs; the rate is rows / (time from
 *     the first publish until all rows are counted in `reports`);
 *  3. lost: published minus stored, after the sink stopped;
 *  4. for reference, the sink's own insert (one `reports_ingest_v3` row per
 *     batch) with the text built beforehand: what the sink costs over it.
 * docs/benchmarks-analytics.md explains the figures.
 *
 * Knobs: BENCH_ANALYTICS_ROWS [3000000], BENCH_ANALYTICS_BATCH [500] reports
 * per message.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Readable } from 'node:stream';
import { names } from '../schemas/subjects.ts';
import type { ReportBatch } from '../schemas/messages.ts';
import { TABLES, reportColumns } from '../schemas/clickhouse/migrations.ts';
import { encode } from '../schemas/codec.ts';
import { startNatsServer } from '../src/nats/natsd.ts';
import { connectNats, type NatsConnection } from '../src/nats/connect.ts';
import { ensureStreams } from '../src/nats/streams.ts';
import { openEngine, type AnalyticsEngine, type EngineOptions } from '../src/analytics/engine.ts';
import { runMigrations } from '../src/analytics/migrate.ts';
import { startSink, DEFAULT_BATCH_LIMITS } from '../src/analytics/sink.ts';
import { publishEncoded, randomBatches } from '../test/helpers/analytics-fixtures.ts';
import { escapeTsv, ingestLine, ipv4ToUint32 } from '../src/analytics/rows.ts';
import { startClickHouseServer } from '../test/helpers/clickhouse-server.ts';
import { record, type Metric } from './lib.ts';

const ROWS = envInt('BENCH_ANALYTICS_ROWS', 3_000_000);
const PER_MESSAGE = envInt('BENCH_ANALYTICS_BATCH', 500);
const MESSAGES = Math.ceil(ROWS / PER_MESSAGE);
const TOTAL = MESSAGES * PER_MESSAGE;

function envInt(name: string, d: number): number {
  const v = process.env[name];
  return v && /^\d+$/.test(v) ? Number(v) : d;
}

async function count(e: AnalyticsEngine, table: string): Promise<number> {
  const r = await e.query<{ c: number | string }>(`SELECT count() AS c FROM ${e.database}.${table}`);
  return Number(r[0]?.c ?? 0);
}

/** One row per call, as a client would insert into `reports` without the sink. */
function bareTsv(batches: ReportBatch[], e: AnalyticsEngine): string[] {
  const f = e.features;
  const bodies: string[] = [];
  let body = '';
  let rows = 0;
  for (const b of batches) {
    const caller = escapeTsv(b.sender);
    const zone = b.zone ? escapeTsv(b.zone) : '';
    const hosts = b.hosts.map(([ip, port]) => `\t${b.modid}\t${b.cmdid}\t${f.ipv4Type ? ip : ipv4ToUint32(ip)}\t${port}\t`);
    for (const r of b.reports) {
      const ms = b.ts + r[3];
      const time = f.dateTime64 ? String(ms) : `${Math.floor(ms / 1000)}\t${ms}`;
      body += `${time}${hosts[r[0]]}${r[1]}\t${r[2]}\t${caller}\t${zone}\t0\n`;
      if (++rows === DEFAULT_BATCH_LIMITS.maxRows) {
        bodies.push(body);
        body = '';
        rows = 0;
      }
    }
  }
  if (body) bodies.push(body);
  return bodies;
}

async function bare(e: AnalyticsEngine, batches: ReportBatch[]): Promise<number> {
  const table = `${e.database}.${TABLES.reports}`;
  const cols = reportColumns(e.features);
  const t0 = performance.now();
  for (const body of bareTsv(batches, e)) {
    const settings: Record<string, number> = e.features.asyncInsertSetting ? { async_insert: 0 } : {};
    if (e.kind === 'chdb') {
      const clause = Object.keys(settings).length ? ' SETTINGS async_insert = 0' : '';
      await e.client.exec({ query: `INSERT INTO ${table} (${cols.join(', ')})${clause} FORMAT TabSeparated`, values: Readable.from([body]) });
    } else {
      await e.client.insert({ table, columns: cols as [string, ...string[]], values: Readable.from([Buffer.from(body)], { objectMode: false }), format: 'TabSeparated', clickhouse_settings: settings });
    }
  }
  const dt = (performance.now() - t0) / 1000;
  const stored = await count(e, TABLES.reports);
  if (stored !== TOTAL) throw new Error(`bare insert stored ${stored} of ${TOTAL}`);
  return TOTAL / dt;
}

/** The sink's own insert (one ingest row per batch, fence 0 first: no fence is recorded in this database), text built beforehand: the client's best case, the sink's floor. */
async function ingestOnly(e: AnalyticsEngine, batches: ReportBatch[]): Promise<number> {
  const bodies: string[] = [];
  let body = '';
  let rows = 0;
  batches.forEach((b, i) => {
    body += '0\t' + ingestLine(b, i + 1, e.features);
    rows += b.reports.length;
    if (rows >= DEFAULT_BATCH_LIMITS.maxRows) {
      bodies.push(body);
      body = '';
      rows = 0;
    }
  });
  if (body) bodies.push(body);
  const t0 = performance.now();
  for (const b of bodies) await e.insertTsv(`${e.database}.${TABLES.reportsIngestV3}`, undefined, b);
  const dt = (performance.now() - t0) / 1000;
  const stored = await count(e, TABLES.reports);
  if (stored !== TOTAL) throw new Error(`ingest insert stored ${stored} of ${TOTAL}`);
  return TOTAL / dt;
}

async function viaSink(nc: NatsConnection, e: AnalyticsEngine, encoded: Array<{ modid: number; cmdid: number; bytes: Uint8Array }>): Promise<{ rate: number; lost: number }> {
  const n = names(`b${randomBytes(4).toString('hex')}`);
  await ensureStreams(nc, n, { reports: { maxBytes: 4 * 2 ** 30 } });
  const sink = await startSink({ nc, names: n, engine: e, pipelines: ['reports'] });
  const t0 = performance.now();
  await publishEncoded(nc, n, encoded);
  const deadline = Date.now() + 300_000;
  let stored = 0;
  while ((stored = await count(e, TABLES.reports)) < TOTAL && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
  }
  const dt = (performance.now() - t0) / 1000;
  await sink.stop();
  stored = await count(e, TABLES.reports);
  return { rate: stored / dt, lost: TOTAL - stored };
}

async function runEngine(label: string, opts: Omit<EngineOptions, 'database'>, nc: NatsConnection, batches: ReportBatch[], encoded: Array<{ modid: number; cmdid: number; bytes: Uint8Array }>) {
  const open = async () => {
    const e = await openEngine({ ...opts, database: `bench_${randomBytes(4).toString('hex')}` });
    await runMigrations(e);
    return e;
  };
  const eb = await open();
  const description = eb.description;
  const bareRate = await bare(eb, batches);
  await eb.command(`DROP DATABASE ${eb.database}`);
  await eb.close();
  const ei = await open();
  const ingestRate = await ingestOnly(ei, batches);
  await ei.command(`DROP DATABASE ${ei.database}`);
  await ei.close();
  const es = await open();
  const s = await viaSink(nc, es, encoded);
  await es.command(`DROP DATABASE ${es.database}`);
  await es.close();
  console.log(`${label}: ${description}: bare ${Math.round(bareRate)} rows/s, ingest insert ${Math.round(ingestRate)} rows/s, sink ${Math.round(s.rate)} rows/s, lost ${s.lost}`);
  return { description, bareRate, ingestRate, ...s };
}

async function main(): Promise<void> {
  const nats = await startNatsServer();
  const ch = await startClickHouseServer();
  const chdbDir = mkdtempSync(join(tmpdir(), 'lars-bench-chdb-'));
  const nc = await connectNats({ url: nats.url });
  try {
    const ts = Date.now() - 60_000;
    const batches = randomBatches({ batches: MESSAGES, reportsPerBatch: PER_MESSAGE, ts, spreadMs: 60_000, routes: 100, hostsPerRoute: 10, seed: 42 });
    const encoded = batches.map((b) => ({ modid: b.modid, cmdid: b.cmdid, bytes: encode(b) }));
    const mb = encoded.reduce((k, x) => k + x.bytes.length, 0) / 2 ** 20;
    console.log(`${TOTAL} rows in ${MESSAGES} messages of ${PER_MESSAGE} (${mb.toFixed(1)} MiB msgpack)`);
    const def = await runEngine('default', { path: chdbDir }, nc, batches, encoded);
    const srv = await runEngine('server', { url: ch.url }, nc, batches, encoded);
    const metrics: Metric[] = [
      { name: 'clickhouse_rows_per_sec', value: def.rate, unit: 'rows/s', target: '>= 250000', note: `publish → rows in reports, ${def.description}` },
      { name: 'clickhouse_sink_vs_bare_ratio', value: def.rate / def.bareRate, unit: 'ratio', target: '>= 0.7', note: `bare client insert ${Math.round(def.bareRate)} rows/s` },
      { name: 'clickhouse_lost_rows', value: def.lost, unit: 'rows', target: '<= 0' },
      { name: 'clickhouse_bare_rows_per_sec', value: def.bareRate, unit: 'rows/s', note: 'one row per call, TabSeparated' },
      { name: 'clickhouse_sink_vs_ingest_insert_ratio', value: def.rate / def.ingestRate, unit: 'ratio', note: `the sink's own insert, text prebuilt: ${Math.round(def.ingestRate)} rows/s` },
      { name: 'clickhouse_rows_per_sec_server', value: srv.rate, unit: 'rows/s', note: srv.description },
      { name: 'clickhouse_sink_vs_bare_ratio_server', value: srv.rate / srv.bareRate, unit: 'ratio', note: `bare client insert ${Math.round(srv.bareRate)} rows/s` },
      { name: 'clickhouse_lost_rows_server', value: srv.lost, unit: 'rows', target: '<= 0' },
      { name: 'clickhouse_bare_rows_per_sec_server', value: srv.bareRate, unit: 'rows/s' },
      { name: 'clickhouse_sink_vs_ingest_insert_ratio_server', value: srv.rate / srv.ingestRate, unit: 'ratio', note: `the sink's own insert, text prebuilt: ${Math.round(srv.ingestRate)} rows/s` },
    ];
    record('analytics', metrics);
  } finally {
    await nc.close().catch(() => undefined);
    await nats.stop();
    await ch.destroy();
    rmSync(chdbDir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
