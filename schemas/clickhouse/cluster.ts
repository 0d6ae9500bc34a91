/**
 * The ClickHouse schema on a cluster: every server of the cluster holds the
 * tables of MIGRATIONS in a local database (`<db>_local`), and the database
 * analysts use (`<db>`) holds a Distributed table of the same name over each,
 * so `SELECT … FROM <db>.reports` reads every shard and the cookbook, `lars
 * stats` and the sink's look-ups work unchanged.
 *
 * Inserts go to `<db>.reports_ingest_v3` (Distributed over the Null-engine ingest
 * tables): ClickHouse sends each report batch's row to one shard, chosen by
 * a hash of its stream sequence, where the views expand it into `reports` and
 * the rollup. The same batch always lands on the same shard, so the sink's
 * sequence-based de-duplication holds across shards.
 *
 * With `replicated`, the local tables use ReplicatedMergeTree (ClickHouse
 * Keeper or ZooKeeper and the `{shard}`/`{replica}` macros must be configured
 * on every server); without it, each shard is a single server.
 *
 * This module imports nothing outside schemas/.
 */
import { TABLES } from './migrations.ts';

export interface ClusterLayout {
  /** The cluster's name in every server's `remote_servers`. */
  name: string;
  /** Local tables on ReplicatedMergeTree (needs Keeper/ZooKeeper and macros). */
  replicated: boolean;
}

/** Name of the database holding each server's local tables. */
export function localDatabase(db: string): string {
  return `${db}_local`;
}

/** Legal cluster name: what is spliced into DDL. */
export function isValidClusterName(name: string): boolean {
  return /^[A-Za-z_][A-Za-z0-9_-]{0,62}$/.test(name);
}

/** Tables analysts and the sink read or write through the Distributed layer, with each one's sharding key. */
export const DISTRIBUTED_TABLES: ReadonlyArray<{ table: string; shardBy: string }> = [
  { table: TABLES.reportsIngest, shardBy: 'cityHash64(seq)' },
  { table: TABLES.reports, shardBy: 'cityHash64(seq)' },
  { table: TABLES.rollup, shardBy: 'cityHash64(modid, cmdid)' },
  { table: TABLES.events, shardBy: 'cityHash64(seq)' },
  { table: TABLES.quarantine, shardBy: 'cityHash64(seq)' },
  { table: TABLES.reportsIngestV2, shardBy: 'cityHash64(seq)' },
  { table: TABLES.attempts, shardBy: 'cityHash64(seq)' },
  { table: TABLES.reportsIngestV3, shardBy: 'cityHash64(seq)' },
  { table: TABLES.eventsIngest, shardBy: 'cityHash64(seq)' },
  // The sink writes one fence row per shard, slot i to shard i: every shard's views see the fence.
  { table: TABLES.sinkFences, shardBy: 'slot' },
];

/** The Distributed layer in `db` over the local tables in `localDatabase(db)` (run on every server). */
export function distributedStatements(db: string, cluster: ClusterLayout): string[] {
  const local = localDatabase(db);
  return [
    `CREATE DATABASE IF NOT EXISTS ${db}`,
    ...DISTRIBUTED_TABLES.map(
      ({ table, shardBy }) => `CREATE TABLE IF NOT EXISTS ${db}.${table} AS ${local}.${table} ENGINE = Distributed('${cluster.name}', '${local}', '${table}', ${shardBy})`,
    ),
  ];
}

/**
 * A local statement made replicated: `ENGINE = MergeTree` and
 * `AggregatingMergeTree` become their Replicated forms with a per-shard
 * Keeper path. Other statements are returned as they are.
 */
export function replicatedStatement(sql: string): string {
  const m = /^CREATE TABLE IF NOT EXISTS ([A-Za-z0-9_]+)\.([A-Za-z0-9_]+)/.exec(sql);
  if (!m) return sql;
  const path = `'/clickhouse/tables/{shard}/${m[1]}/${m[2]}', '{replica}'`;
  return sql.replace(/ENGINE = (Aggregating)?MergeTree(?!\()/, (_all, agg: string | undefined) => `ENGINE = Replicated${agg ?? ''}MergeTree(${path})`);
}
