/**
 * Applies the ClickHouse migrations (schemas/clickhouse/migrations.ts) for the
 * engine's version, idempotently: every statement is `IF NOT EXISTS`, applied
 * versions are recorded with a checksum, and several processes may run this
 * at once (both create, both record; readers take any one record).
 *
 * On servers without TTL it also enforces retention by dropping partitions
 * older than the retention (`enforceRetention`).
 */
import { createHash } from 'node:crypto';
import {
  DEFAULT_RETENTION,
  MIGRATIONS,
  RETENTION_TABLES,
  TABLES,
  migrationsTableDdl,
  type Migration,
  type Retention,
} from '../../schemas/clickhouse/migrations.ts';
import type { Features } from '../../schemas/clickhouse/features.ts';
import { DISTRIBUTED_TABLES, distributedStatements, localDatabase, replicatedStatement, type ClusterLayout } from '../../schemas/clickhouse/cluster.ts';
import { clickhouseCode } from './failures.ts';
import { silentLogger, type Logger } from '../lib/log.ts';
import { LarsError, ErrorCode } from '../lib/errors.ts';
import { sqlString, type AnalyticsEngine } from './engine.ts';

export interface MigrateOptions {
  retention?: Partial<Retention>;
  /** Re-run every migration's statements, applied or not (repairs a dropped table or view). */
  repair?: boolean;
  log?: Logger;
  /** Clock for `applied_at`, ms. */
  now?: () => number;
  /** The migration list; tests pass a longer one. */
  migrations?: readonly Migration[];
}

export interface MigrateResult {
  /** Versions applied by this call. */
  applied: number[];
  /** Versions whose recorded checksum differs from the code's. */
  drifted: number[];
  /** Tables whose TTL was changed to the configured retention. */
  retentionChanged: string[];
}

export function resolveRetention(r?: Partial<Retention>): Retention {
  const out = { ...DEFAULT_RETENTION, ...r };
  for (const [k, v] of Object.entries(out)) {
    if (!Number.isInteger(v) || v < 1 || v > 36_500) throw new RangeError(`retention ${k} must be a whole number of days in 1..36500, got ${String(v)}`);
  }
  return out;
}

/** A migration's checksum: its DDL for these features and the default retention (retention is configuration, not schema). */
export function migrationChecksum(m: Migration, db: string, f: Features): string {
  const text = m.statements({ db, features: f, retention: DEFAULT_RETENTION }).join(';\n');
  return createHash('sha256').update(text).digest('hex').slice(0, 16);
}

/**
 * Applies the migrations. On a cluster (`engine.cluster`), on every server:
 * the tables in the local database, then the Distributed layer over them in
 * the engine's database (schemas/clickhouse/cluster.ts).
 */
export async function runMigrations(engine: AnalyticsEngine, opts: MigrateOptions = {}): Promise<MigrateResult> {
  if (engine.cluster) return runClusterMigrations(engine, engine.cluster, opts);
  return migrateOne(engine, opts);
}

async function runClusterMigrations(engine: AnalyticsEngine, cluster: ClusterLayout, opts: MigrateOptions): Promise<MigrateResult> {
  const log = opts.log ?? silentLogger();
  const base = opts.migrations ?? MIGRATIONS;
  const migrations = cluster.replicated ? base.map((m) => ({ ...m, statements: (ctx: Parameters<Migration['statements']>[0]) => m.statements(ctx).map(replicatedStatement) })) : base;
  const result: MigrateResult = { applied: [], drifted: [], retentionChanged: [] };
  for (const url of engine.servers) {
    const local = await engine.atServer(url, localDatabase(engine.database));
    try {
      const known = await local.query<{ c: number | string }>(`SELECT count() AS c FROM system.clusters WHERE cluster = ${sqlString(cluster.name)}`);
      if (Number(known[0]?.c ?? 0) === 0) {
        throw new LarsError(ErrorCode.clickhouse, `ClickHouse server ${url} has no cluster ${JSON.stringify(cluster.name)} in its remote_servers; add it to every server's config (docs/analytics.md, "On a ClickHouse cluster")`);
      }
      const r = await migrateOne(local, { ...opts, migrations });
      for (const v of r.applied) if (!result.applied.includes(v)) result.applied.push(v);
      for (const v of r.drifted) if (!result.drifted.includes(v)) result.drifted.push(v);
      for (const t of r.retentionChanged) if (!result.retentionChanged.includes(t)) result.retentionChanged.push(t);
      for (const sql of distributedStatements(engine.database, cluster)) await local.command(sql);
      await syncDistributedColumns(local, engine.database, log);
      log.info({ server: url, cluster: cluster.name }, 'clickhouse cluster server migrated');
    } finally {
      await local.close();
    }
  }
  return result;
}

async function migrateOne(engine: AnalyticsEngine, opts: MigrateOptions): Promise<MigrateResult> {
  const log = opts.log ?? silentLogger();
  const db = engine.database;
  const f = engine.features;
  const retention = resolveRetention(opts.retention);
  const migrations = opts.migrations ?? MIGRATIONS;
  const now = opts.now ?? Date.now;
  await engine.command(`CREATE DATABASE IF NOT EXISTS ${db}`);
  await engine.command(migrationsTableDdl(db));
  const rows = await engine.query<{ version: number | string; checksum: string }>(
    `SELECT version, any(checksum) AS checksum FROM ${db}.${TABLES.migrations} GROUP BY version`,
  );
  const recorded = new Map(rows.map((r) => [Number(r.version), r.checksum]));
  const result: MigrateResult = { applied: [], drifted: [], retentionChanged: [] };
  for (const m of [...migrations].sort((a, b) => a.version - b.version)) {
    const sum = migrationChecksum(m, db, f);
    const have = recorded.get(m.version);
    if (have !== undefined && !opts.repair) {
      if (have !== sum) {
        result.drifted.push(m.version);
        log.warn({ version: m.version, recorded: have, code: sum }, 'applied clickhouse migration differs from the code; add a new migration instead of editing one');
      }
      continue;
    }
    for (const sql of m.statements({ db, features: f, retention })) await engine.command(sql).catch((err: unknown) => ignoreExistingColumn(sql, err));
    if (have === undefined) {
      const at = Math.floor(now() / 1000);
      await engine.insertTsv(
        `${db}.${TABLES.migrations}`,
        ['version', 'name', 'checksum', 'server_version', 'applied_at'],
        `${m.version}\t${m.name}\t${sum}\t${engine.version.text}\t${at}\n`,
      );
      result.applied.push(m.version);
      log.info({ version: m.version, migration: m.name }, 'applied clickhouse migration');
    }
  }
  if (f.ttl) result.retentionChanged = await reconcileTtl(engine, retention, log);
  return result;
}

/** ClickHouse's "column already exists" (44 on 18.16, 15 on modern servers): an ADD COLUMN another worker ran first. */
const EXISTING_COLUMN_CODES: ReadonlySet<number> = new Set([15, 44]);

function ignoreExistingColumn(sql: string, err: unknown): void {
  const code = clickhouseCode(err);
  if (/^ALTER TABLE \S+ ADD COLUMN /.test(sql) && code !== undefined && EXISTING_COLUMN_CODES.has(code) && /already exists/.test((err as Error).message)) return;
  throw err;
}

/**
 * A Distributed table made before a migration added a column to its local
 * table lacks it (`CREATE ... AS` copies the columns once): the missing
 * columns are added to it.
 */
async function syncDistributedColumns(local: AnalyticsEngine, db: string, log: Logger): Promise<void> {
  const ldb = localDatabase(db);
  for (const { table } of DISTRIBUTED_TABLES) {
    const cols = await local.query<{ database: string; name: string; type: string; default_kind: string }>(
      `SELECT database, name, type, default_kind FROM system.columns WHERE table = ${sqlString(table)} AND database IN (${sqlString(ldb)}, ${sqlString(db)})`,
    );
    const have = new Set(cols.filter((c) => c.database === db).map((c) => c.name));
    for (const c of cols) {
      if (c.database !== ldb || have.has(c.name) || c.default_kind === 'ALIAS' || c.default_kind === 'MATERIALIZED') continue;
      const sql = `ALTER TABLE ${db}.${table} ADD COLUMN ${c.name} ${c.type}`;
      await local.command(sql).catch((err: unknown) => ignoreExistingColumn(sql, err));
      log.info({ table: `${db}.${table}`, column: c.name }, 'column added to the Distributed table');
    }
  }
}

/** Changes a table's TTL when the configured retention differs from the one it was created with. */
async function reconcileTtl(engine: AnalyticsEngine, retention: Retention, log: Logger): Promise<string[]> {
  const db = engine.database;
  const rows = await engine.query<{ name: string; engine_full: string }>(
    `SELECT name, engine_full FROM system.tables WHERE database = ${sqlString(db)}`,
  );
  const changed: string[] = [];
  for (const rule of RETENTION_TABLES) {
    const row = rows.find((r) => r.name === rule.table);
    if (!row) continue;
    const m = /toIntervalDay\((\d+)\)|INTERVAL (\d+) DAY/i.exec(row.engine_full);
    const have = m ? Number(m[1] ?? m[2]) : undefined;
    const want = retention[rule.retention];
    if (have === want) continue;
    await engine.command(`ALTER TABLE ${db}.${rule.table} MODIFY TTL ${rule.ttlFrom(engine.features)} + INTERVAL ${want} DAY`);
    changed.push(rule.table);
    log.info({ table: rule.table, from: have, to: want }, 'clickhouse retention changed');
  }
  return changed;
}

/** The end (exclusive, epoch ms) of a partition as `system.parts.partition` prints it, or undefined if unrecognised. */
export function partitionEnd(partition: string, by: 'day' | 'month'): number | undefined {
  const p = partition.replace(/^'|'$/g, '');
  if (by === 'day') {
    const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(p) ?? /^(\d{4})(\d{2})(\d{2})$/.exec(p);
    if (!m) return undefined;
    return Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]) + 1);
  }
  const m = /^(\d{4})(\d{2})$/.exec(p);
  if (!m) return undefined;
  return Date.UTC(Number(m[1]), Number(m[2]), 1);
}

/**
 * Drops partitions wholly older than the retention, on servers without TTL
 * (18.16). Returns `table:partition` of each dropped one. No-op where TTL works.
 */
export async function enforceRetention(engine: AnalyticsEngine, retention: Partial<Retention> | undefined, nowMs: number, log?: Logger): Promise<string[]> {
  if (engine.features.ttl) return [];
  if (engine.cluster) {
    // Partitions live in each server's local tables.
    const dropped: string[] = [];
    for (const url of engine.servers) {
      const local = await engine.atServer(url, localDatabase(engine.database));
      try {
        for (const d of await enforceRetention(local, retention, nowMs, log)) dropped.push(`${url} ${d}`);
      } finally {
        await local.close();
      }
    }
    return dropped;
  }
  const r = resolveRetention(retention);
  const db = engine.database;
  const dropped: string[] = [];
  for (const rule of RETENTION_TABLES) {
    const parts = await engine.query<{ partition: string }>(
      `SELECT DISTINCT partition FROM system.parts WHERE database = ${sqlString(db)} AND table = ${sqlString(rule.table)} AND active`,
    );
    const cutoff = nowMs - r[rule.retention] * 86_400_000;
    for (const { partition } of parts) {
      const end = partitionEnd(partition, rule.partitionBy);
      if (end === undefined || end > cutoff) continue;
      const literal = rule.partitionBy === 'day' ? sqlString(partition.replace(/^'|'$/g, '')) : partition;
      await engine.command(`ALTER TABLE ${db}.${rule.table} DROP PARTITION ${literal}`);
      dropped.push(`${rule.table}:${partition}`);
      log?.info({ table: rule.table, partition }, 'dropped expired partition');
    }
  }
  return dropped;
}
