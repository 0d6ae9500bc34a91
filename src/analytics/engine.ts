/**
 * The two ClickHouse engines behind one `@clickhouse/client` API: chdb
 * (in-process, the default) and a ClickHouse server over HTTP. Detects the
 * server version and the features it unlocks (schemas/clickhouse/features.ts).
 *
 * chdb binds one data directory per process and locks it against other
 * processes, so engines on the same path share one connection (refcounted)
 * and a second path while one is open is refused with a clear error.
 */
import { Readable } from 'node:stream';
import { mkdirSync, readFileSync, statSync } from 'node:fs';
import { resolve, join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { createClient, ClickHouseLogLevel, type ClickHouseClient, type ClickHouseSettings } from '@clickhouse/client';
import { featuresFor, parseVersion, type Features, type ServerVersion } from '../../schemas/clickhouse/features.ts';
import { isValidDatabaseName } from '../../schemas/clickhouse/migrations.ts';
import { isValidClusterName, type ClusterLayout } from '../../schemas/clickhouse/cluster.ts';
import type { LarsConfig } from '../lib/config.ts';
import { LarsError, ErrorCode } from '../lib/errors.ts';
import { silentLogger, type Logger } from '../lib/log.ts';

export const EngineKind = { chdb: 'chdb', server: 'server' } as const;
export type EngineKind = (typeof EngineKind)[keyof typeof EngineKind];

export interface EngineOptions {
  /**
   * ClickHouse HTTP URL; empty or absent means the embedded engine (chdb).
   * On a cluster, every server's URL, comma-separated: the first one that
   * answers takes queries and inserts, and migrations run on each.
   */
  url?: string;
  /** The ClickHouse cluster (its name in `remote_servers`) to lay the tables out on; unset = one server. */
  cluster?: ClusterLayout;
  /** chdb data directory (embedded engine only). */
  path?: string;
  database: string;
  user?: string;
  password?: string;
  /** Per-request timeout of the HTTP engine, ms. */
  requestTimeoutMs?: number;
  log?: Logger;
}

export interface InsertOptions {
  /**
   * Deduplication token (servers with `features.dedupToken`): a retried insert
   * with the same token is dropped by the server. Without one, a random token
   * is used so that two different inserts with equal content are never merged.
   */
  token?: string;
  /** The query id the server runs the insert under (server engine), for `settle`. */
  queryId?: string;
}

export interface AnalyticsEngine {
  readonly kind: EngineKind;
  readonly client: ClickHouseClient;
  readonly version: ServerVersion;
  readonly features: Features;
  readonly database: string;
  /** The cluster layout, when the tables are sharded over a cluster (server engine only). */
  readonly cluster: ClusterLayout | undefined;
  /** Every server's URL (one for a single server; every server of the cluster). */
  readonly servers: readonly string[];
  /** `chdb 26.7.2.1 at /path` or `clickhouse-server 18.16.1 at http://...` */
  readonly description: string;
  /** Runs a statement without a result (DDL, ALTER). */
  command(sql: string): Promise<void>;
  /** Runs a SELECT and returns its rows (JSONEachRow: 64-bit integers may come as strings). */
  query<T = Record<string, unknown>>(sql: string): Promise<T[]>;
  /** Inserts a TabSeparated body into `table` (qualified name). */
  insertTsv(table: string, columns: readonly string[] | undefined, body: string, opts?: InsertOptions): Promise<void>;
  ping(): Promise<boolean>;
  /**
   * Resolves once no query with this id runs on the server any more (server
   * engine; at once for chdb, whose inserts run in this process). An insert
   * whose answer was lost (a dropped connection) may still be writing: what
   * it stored is only visible after that. False when it still ran at `timeoutMs`.
   */
  settle(queryId: string, timeoutMs: number): Promise<boolean>;
  /** An engine on another server of the same deployment (same credentials), on `database` (server engine only). */
  atServer(url: string, database: string): Promise<AnalyticsEngine>;
  close(): Promise<void>;
}

/** Engine options from the shared config: embedded under `<dataDir>/clickhouse` unless a URL is set. */
export function engineOptionsFromConfig(cfg: LarsConfig, log?: Logger): EngineOptions {
  const o: EngineOptions = { database: cfg.clickhouseDatabase, user: cfg.clickhouseUser, password: cfg.clickhousePassword };
  if (cfg.clickhouseUrl) o.url = cfg.clickhouseUrl;
  else o.path = join(cfg.dataDir, 'clickhouse');
  if (cfg.clickhouseCluster) o.cluster = { name: cfg.clickhouseCluster, replicated: cfg.clickhouseReplicated === 'true' };
  if (log) o.log = log;
  return o;
}

export async function openEngine(opts: EngineOptions): Promise<AnalyticsEngine> {
  if (!isValidDatabaseName(opts.database)) {
    throw new LarsError(ErrorCode.clickhouse, `bad ClickHouse database name ${JSON.stringify(opts.database)}`);
  }
  const log = opts.log ?? silentLogger();
  if (opts.cluster) {
    if (!opts.url) throw new LarsError(ErrorCode.clickhouse, 'a ClickHouse cluster needs the URL of every server (clickhouse url, comma-separated); the embedded engine is one server');
    if (!isValidClusterName(opts.cluster.name)) throw new LarsError(ErrorCode.clickhouse, `bad ClickHouse cluster name ${JSON.stringify(opts.cluster.name)}`);
  }
  if (opts.url) return openServer(opts, log);
  return openChdb(opts, log);
}

/** The server URLs of a comma-separated `url` option. */
export function serverUrls(url: string | undefined): string[] {
  return (url ?? '').split(',').map((u) => u.trim()).filter((u) => u.length > 0);
}

// ---------------------------------------------------------------- server

async function openServer(opts: EngineOptions, log: Logger): Promise<AnalyticsEngine> {
  const servers = serverUrls(opts.url);
  let lastErr: unknown;
  for (const url of servers) {
    try {
      return await openServerAt(url, servers, opts, log);
    } catch (err) {
      lastErr = err;
      if (servers.length > 1) log.warn({ url: redact(url), err }, 'clickhouse server did not answer; trying the next one');
    }
  }
  throw lastErr instanceof Error ? lastErr : new LarsError(ErrorCode.clickhouse, 'no ClickHouse URL given');
}

/** How long the first query to a ClickHouse server may take before it counts as not answering, ms. */
const PROBE_TIMEOUT_MS = 10_000;

/** What went wrong with the first query to a server, and how to fix it. */
function whyUnreachable(err: unknown, probeMs: number): string {
  const e = err as { name?: string; message?: string; code?: string; cause?: { code?: string } };
  const code = e.code ?? e.cause?.code;
  const elsewhere = 'or give --clickhouse-url (LARS_CLICKHOUSE_URL) a running one; unset, the embedded chdb is used';
  if (code === 'ECONNREFUSED') return `connection refused: start clickhouse-server there, ${elsewhere}`;
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return `unknown host: ${elsewhere.replace(/^or /, '')}`;
  if (e.name === 'AbortError' || e.name === 'TimeoutError' || /timeout|aborted/i.test(e.message ?? '')) return `no answer within ${probeMs / 1000} s: is that a ClickHouse HTTP port (8123)?`;
  if (e.name === 'SyntaxError' || /^HPE_/.test(code ?? '') || /parse error/i.test(e.message ?? '')) return "something else answers there, not ClickHouse's HTTP interface: give --clickhouse-url (LARS_CLICKHOUSE_URL) a ClickHouse HTTP port (8123 by default)";
  if (/authentication failed|password is incorrect|wrong password|unknown user|code: (516|192|193)\b/i.test(e.message ?? '')) {
    const said = (e.message ?? '').split('\n')[0]!.replace(/,?\s*e\.what\(\) = .*$/, '');
    return `the user or password is refused: set --clickhouse-user and --clickhouse-password (LARS_CLICKHOUSE_USER, LARS_CLICKHOUSE_PASSWORD); ClickHouse said: ${said}`;
  }
  return e.message ?? String(err);
}

async function openServerAt(url: string, servers: string[], opts: EngineOptions, log: Logger): Promise<AnalyticsEngine> {
  const client = createClient({
    url,
    username: opts.user ?? 'default',
    password: opts.password ?? '',
    request_timeout: opts.requestTimeoutMs ?? 30_000,
    log: { level: ClickHouseLogLevel.OFF },
    // 18.16 rejects settings it does not know; send none by default.
    clickhouse_settings: {},
  });
  let version: ServerVersion;
  // the first question gets an answer soon, or the server is taken as not there
  const probeMs = Math.min(opts.requestTimeoutMs ?? 30_000, PROBE_TIMEOUT_MS);
  try {
    version = await detectVersion(client, AbortSignal.timeout(probeMs));
  } catch (err) {
    await client.close();
    throw new LarsError(ErrorCode.clickhouse, `cannot use ClickHouse at ${redact(url)}: ${whyUnreachable(err, probeMs)}`, { cause: err });
  }
  const features = featuresFor(version);
  log.info({ version: version.text, features }, 'clickhouse server');
  return makeEngine({
    kind: EngineKind.server,
    client,
    version,
    features,
    database: opts.database,
    description: `clickhouse-server ${version.text} at ${redact(url)}${opts.cluster ? ` (cluster ${opts.cluster.name}, ${servers.length} servers)` : ''}`,
    cluster: opts.cluster,
    servers,
    atServer: (other, database) => openServerAt(other, [other], { ...opts, url: other, database, cluster: undefined }, log),
    onClose: () => client.close(),
  });
}

function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return url;
  }
}

// ---------------------------------------------------------------- chdb

interface SharedChdb {
  path: string;
  client: ClickHouseClient;
  refs: number;
  version: ServerVersion;
}

let shared: SharedChdb | undefined;
let opening: Promise<SharedChdb> | undefined;

async function openChdb(opts: EngineOptions, log: Logger): Promise<AnalyticsEngine> {
  const path = resolve(opts.path ?? './.lars/clickhouse');
  const s = await acquireChdb(path);
  log.info({ version: s.version.text, path }, 'embedded clickhouse (chdb)');
  let closed = false;
  return makeEngine({
    kind: EngineKind.chdb,
    client: s.client,
    version: s.version,
    features: featuresFor(s.version),
    database: opts.database,
    description: `chdb ${s.version.text} at ${path}`,
    cluster: undefined,
    servers: [],
    atServer: () => Promise.reject(new LarsError(ErrorCode.clickhouse, 'the embedded ClickHouse (chdb) is one server')),
    onClose: async () => {
      if (closed) return;
      closed = true;
      await releaseChdb(s);
    },
  });
}

async function acquireChdb(path: string): Promise<SharedChdb> {
  // Serialize opens: two concurrent first opens must not both create a session.
  while (opening) await opening.catch(() => undefined);
  if (shared) {
    if (shared.path !== path) {
      throw new LarsError(
        ErrorCode.clickhouse,
        `the embedded ClickHouse (chdb) is open at ${shared.path} in this process; it binds one data directory per process, so ${path} cannot be opened too`,
      );
    }
    shared.refs++;
    return shared;
  }
  opening = (async () => {
    let mod: typeof import('chdb/connection');
    try {
      mod = await import('chdb/connection');
    } catch (err) {
      throw new LarsError(ErrorCode.clickhouse, 'the embedded ClickHouse needs the chdb package (npm install chdb), or set LARS_CLICKHOUSE_URL to use a server', { cause: err });
    }
    mkdirSync(path, { recursive: true });
    // Asked first: chdb itself would print its own "Code: 76. DB::Exception: Cannot lock file" line to stderr.
    const holder = lockHolder(path);
    if (holder !== undefined) throw inUse(path, holder);
    let connection: ReturnType<typeof mod.createChdbConnection>;
    try {
      connection = mod.createChdbConnection({ path });
    } catch (err) {
      const msg = (err as Error).message ?? String(err);
      if (/Cannot lock file|already running/i.test(msg)) throw inUse(path, lockHolder(path), err);
      throw new LarsError(ErrorCode.clickhouse, `cannot open the embedded ClickHouse at ${path}: ${msg}`, { cause: err });
    }
    const client = createClient({
      // chdb implements the client's Connection contract (same shape, its own copy of the types).
      connection: connection as unknown as NonNullable<Parameters<typeof createClient>[0]>['connection'],
      log: { level: ClickHouseLogLevel.OFF },
    });
    let version: ServerVersion;
    try {
      version = await detectVersion(client);
    } catch (err) {
      await client.close();
      throw new LarsError(ErrorCode.clickhouse, `the embedded ClickHouse at ${path} does not answer: ${(err as Error).message}`, { cause: err });
    }
    const s: SharedChdb = { path, client, refs: 1, version };
    shared = s;
    return s;
  })();
  try {
    return await opening;
  } finally {
    opening = undefined;
  }
}

function inUse(path: string, holder: number | undefined, cause?: unknown): LarsError {
  return new LarsError(
    ErrorCode.clickhouse,
    `the embedded ClickHouse at ${path} is in use by another process${holder ? ` (pid ${holder})` : ''}, a running sink or node: ` +
      'chdb opens a data directory in one process only; query through that process, or point both at a ClickHouse server with LARS_CLICKHOUSE_URL',
    { cause },
  );
}

/**
 * The live process holding a ClickHouse data directory, if any: the `status`
 * file names the process that last opened it, and it is held while that
 * process has it locked (on Linux /proc/locks says so, so a status file left
 * behind by a process that is gone, its pid reused since, does not count).
 */
function lockHolder(path: string): number | undefined {
  try {
    const file = join(path, 'status');
    const m = /PID:\s*(\d+)/.exec(readFileSync(file, 'utf8'));
    const pid = m ? Number(m[1]) : undefined;
    if (pid === undefined || pid === process.pid) return undefined;
    process.kill(pid, 0);
    let locks: string;
    try {
      locks = readFileSync('/proc/locks', 'utf8');
    } catch {
      return pid; // no /proc: a live process named in the file is the best there is
    }
    const inode = statSync(file).ino;
    return locks.split('\n').some((l) => new RegExp(`^\\d+: FLOCK\\s+\\S+\\s+WRITE\\s+\\d+\\s+[0-9a-f]+:[0-9a-f]+:${inode}\\s`).test(l)) ? pid : undefined;
  } catch {
    return undefined;
  }
}

async function releaseChdb(s: SharedChdb): Promise<void> {
  s.refs--;
  if (s.refs > 0) return;
  if (shared === s) shared = undefined;
  await s.client.close();
}

// ---------------------------------------------------------------- common

async function detectVersion(client: ClickHouseClient, signal?: AbortSignal): Promise<ServerVersion> {
  const rs = await client.query({ query: 'SELECT version() AS v', format: 'JSONEachRow', ...(signal ? { abort_signal: signal } : {}) });
  const rows = await rs.json<{ v: string }>();
  const text = rows[0]?.v ?? '';
  const v = parseVersion(text);
  if (!v) throw new Error(`unrecognised ClickHouse version ${JSON.stringify(text)}`);
  return v;
}

interface EngineParts {
  kind: EngineKind;
  client: ClickHouseClient;
  version: ServerVersion;
  features: Features;
  database: string;
  description: string;
  cluster: ClusterLayout | undefined;
  servers: readonly string[];
  atServer(url: string, database: string): Promise<AnalyticsEngine>;
  onClose(): Promise<void>;
}

function makeEngine(p: EngineParts): AnalyticsEngine {
  const { client, features, kind } = p;
  const query = async <T>(sql: string): Promise<T[]> => {
    const rs = await client.query({ query: sql, format: 'JSONEachRow' });
    return rs.json<T>();
  };
  return {
    kind,
    client,
    version: p.version,
    features,
    database: p.database,
    description: p.description,
    cluster: p.cluster,
    servers: p.servers,
    atServer: (url, database) => p.atServer(url, database),
    async command(sql) {
      await client.command({ query: sql });
    },
    query,
    async insertTsv(table, columns, body, opts = {}) {
      if (body.length === 0) return;
      const settings: Record<string, string | number> = {};
      if (features.asyncInsertSetting) settings['async_insert'] = 0;
      if (features.dedupToken) settings['insert_deduplication_token'] = opts.token ?? randomUUID();
      // On a cluster, an insert into a Distributed table returns once every shard has its rows:
      // the sink acknowledges the stream only after that.
      if (p.cluster) settings['insert_distributed_sync'] = 1;
      const cols = columns && columns.length > 0 ? ` (${columns.join(', ')})` : '';
      if (kind === EngineKind.chdb) {
        // chdb turns client settings into session-wide SET statements, which
        // would leak a dedup token into later inserts: put them in the query.
        const clause = Object.entries(settings)
          .map(([k, v]) => `${k} = ${typeof v === 'number' ? v : `'${v.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`}`)
          .join(', ');
        const query = `INSERT INTO ${table}${cols}${clause ? ` SETTINGS ${clause}` : ''} FORMAT TabSeparated`;
        await client.exec({ query, values: Readable.from([body]) });
        return;
      }
      const r = await client.exec({
        query: `INSERT INTO ${table}${cols} FORMAT TabSeparated`,
        values: Readable.from([Buffer.from(body)]),
        clickhouse_settings: settings as ClickHouseSettings,
        ...(opts.queryId !== undefined ? { query_id: opts.queryId } : {}),
      });
      // Drain the (empty) response so the socket returns to the pool.
      for await (const _ of r.stream) void _;
    },
    async ping() {
      try {
        const r = await client.ping();
        return r.success;
      } catch {
        return false;
      }
    },
    async settle(queryId, timeoutMs) {
      if (kind === EngineKind.chdb) return true;
      return (await runningWhile(query, `query_id = ${sqlString(queryId)}`, Date.now() + timeoutMs)) === 0;
    },
    close: () => p.onClose(),
  };
}

/**
 * Waits until no query matching `where` runs in `system.processes` (polled
 * every 100 ms), or until the clock passes `until`, or `signal` aborts;
 * resolves with how many still run (0: none).
 */
export async function runningWhile(query: AnalyticsEngine['query'], where: string, until: number, signal?: AbortSignal): Promise<number> {
  for (;;) {
    const rows = await query<{ n: number | string }>(`SELECT count() AS n FROM system.processes WHERE ${where}`);
    const n = Number(rows[0]?.n ?? 0);
    if (n === 0 || signal?.aborted || Date.now() >= until) return n;
    await new Promise((res) => setTimeout(res, 100));
  }
}

/** Quotes a string as a ClickHouse SQL literal. */
export function sqlString(s: string): string {
  return `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}
