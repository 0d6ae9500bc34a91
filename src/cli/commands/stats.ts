/** `lars stats <what>` (the common analyst questions) and `lars sink` (a sink worker). */
import { TABLES } from '../../../schemas/clickhouse/migrations.ts';
import { UsageError, LarsError, ErrorCode } from '../../lib/errors.ts';
import { createLogger } from '../../lib/log.ts';
import { connectNats, natsOptionsFromConfig, watchConnection, type NatsConnection } from '../../nats/connect.ts';
import { requireJetStream } from '../../nats/natsd.ts';
import { engineOptionsFromConfig, openEngine, type AnalyticsEngine } from '../../analytics/engine.ts';
import { classifyFailure, FailureKind } from '../../analytics/failures.ts';
import { startAnalytics } from '../../analytics/mod.ts';
import { startWhenSettled } from '../start-retry.ts';
import { PipelineName, type Sink } from '../../analytics/sink.ts';
import { HTTP_FLAGS, httpSettings, serveSinkHttp, type ProcessHttp } from '../metrics.ts';
import { names } from '../../../schemas/subjects.ts';
import {
  STATS,
  isStatsKind,
  parseDuration,
  parseRouteArg,
  parseTime,
  runStats,
  startOfUtcDay,
  type StatsKind,
  type StatsParams,
  type StatsRow,
} from '../../analytics/stats.ts';
import { announceFile, announcedConsole } from '../../console/serve.ts';
import type { Command, FlagValue } from '../command.ts';
import { Lifecycle } from '../../lib/lifecycle.ts';
import { renderTable } from '../table.ts';

/** A `lars stats` question asked of a console (GET /api/stats/<kind>), for the engine that console's process holds. */
async function statsViaConsole(url: string, what: StatsKind, p: StatsParams): Promise<StatsRow[]> {
  const q = new URLSearchParams({ from: String(Math.round(p.fromMs)), limit: String(p.limit) });
  if (p.atMs !== undefined) q.set('at', String(Math.round(p.atMs)));
  if (p.windowMs !== undefined) q.set('window', String(Math.round(p.windowMs)));
  if (p.route) q.set('route', `${p.route.modid}.${p.route.cmdid}`);
  let r: Response;
  try {
    r = await fetch(`${url}api/stats/${what}?${q.toString()}`, { signal: AbortSignal.timeout(30_000) });
  } catch (err) {
    throw new LarsError(ErrorCode.clickhouse, `the embedded ClickHouse is held by lars dev, and its console at ${url} does not answer: ${(err as Error).message}`, { cause: err });
  }
  const body = (await r.json().catch(() => ({}))) as { rows?: StatsRow[]; error?: string };
  if (!r.ok || !Array.isArray(body.rows)) throw new LarsError(ErrorCode.clickhouse, `the console of lars dev at ${url} answered ${r.status}: ${body.error ?? r.statusText}`);
  return body.rows;
}

function str(flags: Record<string, FlagValue>, name: string): string | undefined {
  const v = flags[name];
  return typeof v === 'string' ? v : undefined;
}

function positiveInt(flags: Record<string, FlagValue>, name: string): number | undefined {
  const v = str(flags, name);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`--${name} takes a whole number ≥ 1, got ${JSON.stringify(v)}`);
  return n;
}

const kinds = Object.values(STATS)
  .map((s) => `  ${s.kind.padEnd(11)} ${s.summary}`)
  .join('\n');

export const statsCommand: Command = {
  name: 'stats',
  summary: `answers the common questions from ClickHouse:\n${kinds}`,
  usage: `lars stats <${Object.keys(STATS).join('|')}> [--route modid.cmdid] [--since 1h] [--json]`,
  args: [{ name: 'what', help: `the question: ${Object.keys(STATS).join(', ')}` }],
  flags: {
    route: { help: 'only this route', placeholder: 'modid.cmdid' },
    since: { help: 'look back this far: 90s, 15m, 1h, 2d (ejections: since 00:00 UTC)', placeholder: 'duration', defaultText: 'per question' },
    at: { help: 'deploy: the deploy time (ISO 8601 or epoch ms), to the millisecond', placeholder: 'time', defaultText: 'now minus --window' },
    window: { help: 'deploy: time compared on each side', placeholder: 'duration', defaultText: '30m' },
    limit: { help: 'at most this many rows', placeholder: 'n', defaultText: '100' },
    json: { help: 'print rows as JSON (full precision)', boolean: true },
  },
  examples: [['lars stats errors --route 100.7 --since 1h', 'error rates per host of route 100.7 in the last hour']],
  async run(args, flags, ctx) {
    const what = args[0];
    if (!what || !isStatsKind(what)) throw new UsageError(`say what to show: ${Object.keys(STATS).join(', ')}`);
    if (args.length > 1) throw new UsageError(`unexpected argument ${JSON.stringify(args[1])}`);
    const spec = STATS[what];
    const now = ctx.now?.() ?? Date.now();
    const p: StatsParams = { fromMs: 0, limit: positiveInt(flags, 'limit') ?? 100 };
    const route = str(flags, 'route');
    if (route !== undefined) {
      const r = parseRouteArg(route);
      if (!r) throw new UsageError(`--route takes modid.cmdid (two unsigned 32-bit integers), got ${JSON.stringify(route)}`);
      p.route = r;
    }
    const since = str(flags, 'since');
    if (since !== undefined) {
      const ms = parseDuration(since);
      if (ms === undefined) throw new UsageError(`--since takes a duration like 90s, 15m, 1h, 2d, got ${JSON.stringify(since)}`);
      p.fromMs = now - ms;
    } else {
      p.fromMs = spec.defaultSince === 'today' ? startOfUtcDay(now) : now - spec.defaultSince;
    }
    const window = str(flags, 'window');
    p.windowMs = window === undefined ? 30 * 60_000 : parseDuration(window);
    if (p.windowMs === undefined || p.windowMs <= 0) throw new UsageError(`--window takes a duration like 30m, got ${JSON.stringify(window)}`);
    const at = str(flags, 'at');
    if (at !== undefined) {
      p.atMs = parseTime(at);
      if (p.atMs === undefined) throw new UsageError(`--at takes an ISO 8601 time or epoch ms, got ${JSON.stringify(at)}`);
    } else {
      p.atMs = now - p.windowMs;
    }
    let engine: AnalyticsEngine;
    try {
      engine = await openEngine(engineOptionsFromConfig(ctx.config));
    } catch (err) {
      // The embedded engine opens its data in one process only: while `lars dev` holds it, its console answers instead.
      const url = ctx.config.clickhouseUrl ? undefined : announcedConsole(announceFile(ctx.config.dataDir));
      if (!url) throw err;
      ctx.note?.(`the embedded ClickHouse is held by lars dev; asking its console at ${url}`);
      const rows = await statsViaConsole(url, what, p);
      if (flags['json'] === true) ctx.out(JSON.stringify(rows));
      else for (const line of renderTable(spec.columns, rows)) ctx.out(line);
      return 0;
    }
    try {
      const rows = await runStats(engine, what, p).catch((err: unknown) => {
        if (classifyFailure(err).kind === FailureKind.missingSchema) {
          throw new LarsError(
            ErrorCode.clickhouse,
            `no analytics tables in database ${engine.database} (${engine.description}); start a sink first (lars sink) — it creates them`,
            { cause: err },
          );
        }
        throw err;
      });
      if (flags['json'] === true) ctx.out(JSON.stringify(rows));
      else for (const line of renderTable(spec.columns, rows)) ctx.out(line);
      return 0;
    } finally {
      await engine.close();
    }
  },
};

export const sinkCommand: Command = {
  name: 'sink',
  summary: `runs a ClickHouse sink worker: reports and route events from JetStream into ${TABLES.reports}, ${TABLES.rollup} and ${TABLES.events}, until stopped (several may run at once)`,
  usage: 'lars sink [--batch-rows N] [--batch-ms N] [--retention-days N] [flags]',
  flags: {
    'batch-rows': { help: 'rows per insert', placeholder: 'n', defaultText: '200000' },
    'batch-ms': { help: 'longest a report waits for its batch, ms', placeholder: 'ms', defaultText: '1000' },
    'retention-days': { help: 'days of raw reports kept', placeholder: 'days', defaultText: '30' },
    'only': { help: 'run one pipeline', choices: [PipelineName.reports, PipelineName.events], defaultText: 'both' },
    ...HTTP_FLAGS,
  },
  async run(args, flags, ctx) {
    if (args.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(args[0])}`);
    const cfg = ctx.config;
    const batchRows = positiveInt(flags, 'batch-rows');
    const batchMs = positiveInt(flags, 'batch-ms');
    const retentionDays = positiveInt(flags, 'retention-days');
    const only = str(flags, 'only');
    if (only !== undefined && only !== PipelineName.reports && only !== PipelineName.events) {
      throw new UsageError(`--only takes reports or events, got ${JSON.stringify(only)}`);
    }
    const http = httpSettings(flags);
    const log = createLogger({ node: cfg.nodeId, level: cfg.logLevel, format: cfg.logFormat });
    const life = new Lifecycle({ stopSignal: ctx.stopSignal });
    // the port first: one taken fails the command before anything connects
    const web: ProcessHttp<Sink> | undefined = http && (await serveSinkHttp({ settings: http, host: cfg.httpHost, log, names: names(cfg.prefix), pipelines: only ? [only] : undefined, labels: { node: cfg.nodeId } }));
    let nc: NatsConnection;
    try {
      nc = await connectNats({ ...natsOptionsFromConfig(cfg), name: `lars-sink-${cfg.nodeId}` });
    } catch (err) {
      await web?.close();
      throw err;
    }
    const status = watchConnection(nc, log);
    try {
      await startWhenSettled('the sink', () => requireJetStream(nc, cfg.natsUrl), log, life.stopped);
      web?.connect(nc);
      const a = await startWhenSettled(
        'the sink',
        () =>
          startAnalytics(cfg, nc, log, {
            ...(retentionDays !== undefined ? { retention: { reportsDays: retentionDays } } : {}),
            sink: {
              batch: { ...(batchRows !== undefined ? { maxRows: batchRows } : {}), ...(batchMs !== undefined ? { maxWaitMs: batchMs } : {}) },
              ...(only !== undefined ? { pipelines: [only] } : {}),
            },
          }),
        log,
        life.stopped,
      );
      await web?.attach(a.sink);
      log.info({ engine: a.engine.description }, 'sink ready; Ctrl-C to stop');
      await life.stopped;
      await life.step('ClickHouse sink', () => a.close());
      const s = a.sink.stats();
      ctx.out(JSON.stringify(s));
    } finally {
      status.stop();
      const w = web;
      if (w) await life.step('HTTP server', () => w.close());
      await life.step('NATS connection', () => nc.drain().catch(() => undefined));
      await life.shutdown();
    }
    return 0;
  },
};
