/**
 * ClickHouse versions and the DDL/insert features each one gets. The
 * migrations render their DDL from a `Features` value, so one migration list
 * serves Debian's clickhouse-server 18.16 and a modern server (or chdb).
 *
 * Thresholds follow the ClickHouse changelogs; the two ends are tested here
 * (18.16.1 from Debian, 26.7 embedded in chdb 3.4). Versions in between get
 * whatever their number unlocks, untested.
 *
 * This module imports nothing.
 */

export interface ServerVersion {
  major: number;
  minor: number;
  patch: number;
  /** As the server printed it, e.g. `18.16.1` or `26.7.2.1`. */
  text: string;
}

/** Parses `SELECT version()` output. Returns undefined for anything else. */
export function parseVersion(text: string): ServerVersion | undefined {
  const m = /^\s*(\d+)\.(\d+)(?:\.(\d+))?/.exec(text);
  if (!m) return undefined;
  return { major: Number(m[1]), minor: Number(m[2]), patch: Number(m[3] ?? 0), text: text.trim() };
}

export function atLeast(v: ServerVersion, major: number, minor: number): boolean {
  return v.major > major || (v.major === major && v.minor >= minor);
}

/** What a server can do, as far as the Lars schema and the sink care. */
export interface Features {
  /** `DateTime64(3)` plus `fromUnixTimestamp64Milli` (20.5). Else `DateTime` seconds and a stored `ts_ms`. */
  dateTime64: boolean;
  /** Table `TTL` (19.6). Else the sink drops expired partitions itself. */
  ttl: boolean;
  /** `IPv4` column type (20.1 here; the domain type came in 19.x). Else `UInt32`. */
  ipv4Type: boolean;
  /** `LowCardinality(String)` without an experimental setting (19.3). Else `String`. */
  lowCardinality: boolean;
  /**
   * `insert_deduplication_token` (22.2) with `non_replicated_deduplication_window`
   * on plain MergeTree tables: a retried insert of the same batch is dropped by the
   * server, in the raw table and in the rollups.
   */
  dedupToken: boolean;
  /** `async_insert` exists (21.11) and must be turned off for the sink's inserts. */
  asyncInsertSetting: boolean;
  /** `INSERT ... SETTINGS k = v FORMAT ...` in the query text (19.x); chdb needs it. */
  insertSettingsClause: boolean;
}

/** The features a version gets. */
export function featuresFor(v: ServerVersion): Features {
  return {
    dateTime64: atLeast(v, 20, 5),
    ttl: atLeast(v, 19, 6),
    ipv4Type: atLeast(v, 20, 1),
    lowCardinality: atLeast(v, 19, 3),
    dedupToken: atLeast(v, 22, 2),
    asyncInsertSetting: atLeast(v, 21, 11),
    insertSettingsClause: atLeast(v, 19, 1),
  };
}

/** Features of Debian's clickhouse-server 18.16 (all off); handy for tests and docs. */
export const FEATURES_18_16: Features = featuresFor({ major: 18, minor: 16, patch: 1, text: '18.16.1' });
