/**
 * Starts Debian's clickhouse-server as a plain process (no service manager)
 * for tests and benchmarks: the packaged config and users copied to a temp
 * dir, data/log paths pointed there, every listener on a free loopback port.
 * stop()/start() keep the data dir and ports, for the outage tests.
 *
 * Also: one chdb data path per process (chdb binds one per process, so every
 * suite in a mocha run must use the same one) and random database names.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { startNatsServer, type NatsServer } from '../../src/nats/natsd.ts';
import { connectNats, type NatsConnection } from '../../src/nats/connect.ts';
import { openEngine, type AnalyticsEngine } from '../../src/analytics/engine.ts';

export const CLICKHOUSE_INSTALL_COMMAND = 'apt-get install -y clickhouse-server';

export interface ClickHouseServerOptions {
  binary?: string;
  /** Directory holding config.xml and users.xml to copy. */
  configDir?: string;
  startTimeoutMs?: number;
}

export interface ClickHouseServer {
  readonly url: string;
  readonly httpPort: number;
  readonly tcpPort: number;
  readonly dir: string;
  /** Whether the process is up (between start and stop). */
  running(): boolean;
  /** SIGTERM, then SIGKILL after `graceMs`; waits for exit. Data stays. */
  stop(graceMs?: number): Promise<void>;
  /** SIGKILL at once (a crash). */
  kill(): Promise<void>;
  /** Starts again on the same ports and data; resolves when it answers. */
  start(): Promise<void>;
  /** Stops and removes the data dir. */
  destroy(): Promise<void>;
}

export function findClickHouseServer(): string | undefined {
  const candidates = [process.env['LARS_CLICKHOUSE_SERVER_BIN'], '/usr/sbin/clickhouse-server', '/usr/bin/clickhouse-server', '/usr/bin/clickhouse'];
  for (const c of candidates) if (c && existsSync(c)) return c;
  const r = spawnSync('sh', ['-c', 'command -v clickhouse-server'], { encoding: 'utf8' });
  const p = r.stdout.trim();
  return p.length > 0 ? p : undefined;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

/** Sets the first `<tag>` (the top-level one in the packaged config: later ones, like the DDL queue's `<path>`, are other settings). */
function setTag(xml: string, tag: string, value: string): string {
  return xml.replace(new RegExp(`<${tag}>[^<]*</${tag}>`), `<${tag}>${value}</${tag}>`);
}

export async function startClickHouseServer(opts: ClickHouseServerOptions = {}): Promise<ClickHouseServer> {
  const binary = opts.binary ?? findClickHouseServer();
  if (!binary) throw new Error(`clickhouse-server is not installed; install it with: ${CLICKHOUSE_INSTALL_COMMAND}`);
  const configDir = opts.configDir ?? '/etc/clickhouse-server';
  const dir = mkdtempSync(join(tmpdir(), 'lars-ch-'));
  for (const sub of ['data', 'tmp', 'log', 'user_files', 'format_schemas']) mkdirSync(join(dir, sub), { recursive: true });
  let httpPort = 0;
  let tcpPort = 0;
  let url = '';
  /** Picks free ports and writes the config for them. */
  const configure = async (): Promise<void> => {
    const [hp, tp, interserverPort] = [await freePort(), await freePort(), await freePort()];
    httpPort = hp;
    tcpPort = tp;
    url = `http://127.0.0.1:${httpPort}`;
    let xml = readFileSync(join(configDir, 'config.xml'), 'utf8');
    xml = setTag(xml, 'log', join(dir, 'log', 'server.log'));
    xml = setTag(xml, 'errorlog', join(dir, 'log', 'server.err.log'));
    xml = setTag(xml, 'http_port', String(httpPort));
    xml = setTag(xml, 'tcp_port', String(tcpPort));
    xml = setTag(xml, 'interserver_http_port', String(interserverPort));
    xml = setTag(xml, 'path', `${join(dir, 'data')}/`);
    xml = setTag(xml, 'tmp_path', `${join(dir, 'tmp')}/`);
    xml = setTag(xml, 'user_files_path', `${join(dir, 'user_files')}/`);
    xml = setTag(xml, 'format_schema_path', `${join(dir, 'format_schemas')}/`);
    xml = setTag(xml, 'mark_cache_size', String(256 * 2 ** 20));
    // Loopback IPv4 only; drop secure and extra listeners the package may enable.
    xml = xml.replace(/<listen_host>[^<]*<\/listen_host>/g, '').replace('</yandex>', '<listen_host>127.0.0.1</listen_host>\n</yandex>');
    for (const t of ['https_port', 'tcp_port_secure', 'mysql_port', 'postgresql_port', 'grpc_port']) {
      xml = xml.replace(new RegExp(`<${t}>[^<]*</${t}>`, 'g'), '');
    }
    writeFileSync(join(dir, 'config.xml'), xml);
    writeFileSync(join(dir, 'users.xml'), readFileSync(join(configDir, 'users.xml'), 'utf8'));
  };
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let stderr = '';
  const timeout = opts.startTimeoutMs ?? 30_000;

  async function start(): Promise<void> {
    if (child && child.exitCode === null && child.signalCode === null) return;
    stderr = '';
    const c = spawn(binary as string, [`--config-file=${join(dir, 'config.xml')}`], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
    child = c;
    c.stderr?.on('data', (d: Buffer) => {
      if (stderr.length < 20_000) stderr += d.toString();
    });
    exited = new Promise<void>((r) => c.once('exit', () => r()));
    const deadline = Date.now() + timeout;
    for (;;) {
      if (c.exitCode !== null) {
        const errlog = existsSync(join(dir, 'log', 'server.err.log')) ? readFileSync(join(dir, 'log', 'server.err.log'), 'utf8').slice(-2000) : '';
        throw new Error(`clickhouse-server exited with ${c.exitCode}: ${stderr.slice(-2000)} ${errlog}`);
      }
      if (await answers(url)) return;
      if (Date.now() > deadline) {
        c.kill('SIGKILL');
        throw new Error(`clickhouse-server did not answer on ${url} within ${timeout} ms`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async function stop(graceMs = 10_000): Promise<void> {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    c.kill('SIGTERM');
    const t = setTimeout(() => c.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(t);
  }

  // A port found free may be taken by another process before the server binds it
  // (it then exits at once): the first start tries again on other ports.
  for (let attempt = 1; ; attempt++) {
    await configure();
    try {
      await start();
      break;
    } catch (err) {
      if (attempt >= 3 || !/exited with/.test((err as Error).message)) throw err;
      await exited;
    }
  }
  const exitHook = () => {
    child?.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', exitHook);
  return {
    url,
    httpPort,
    tcpPort,
    dir,
    running: () => child !== undefined && child.exitCode === null && child.signalCode === null,
    stop,
    async kill() {
      const c = child;
      if (!c || c.exitCode !== null || c.signalCode !== null) return;
      c.kill('SIGKILL');
      await exited;
    },
    start,
    async destroy() {
      await stop(2_000);
      process.removeListener('exit', exitHook);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function answers(url: string): Promise<boolean> {
  try {
    const r = await fetch(`${url}/ping`, { signal: AbortSignal.timeout(1000) });
    return r.ok && (await r.text()).startsWith('Ok');
  } catch {
    return false;
  }
}

let chdbDataDir: string | undefined;

/**
 * A data dir whose `clickhouse/` subdirectory is this test process' chdb path
 * (the layout `lars` uses: `<dataDir>/clickhouse`), so a config with
 * `dataDir` set to it opens the same embedded engine as `sharedChdbPath()`.
 */
export function sharedChdbDataDir(): string {
  if (!chdbDataDir) {
    const p = mkdtempSync(join(tmpdir(), 'lars-chdb-'));
    chdbDataDir = p;
    process.once('exit', () => rmSync(p, { recursive: true, force: true }));
  }
  return chdbDataDir;
}

/**
 * The chdb data path of this test process. chdb binds one data directory per
 * process, so every suite (and every engineer's suites) in one mocha run must
 * share it; isolate by database instead (`randomDatabase()`).
 */
export function sharedChdbPath(): string {
  return join(sharedChdbDataDir(), 'clickhouse');
}

/** A fresh database name, e.g. `lars_test_3f9a1c2b`. */
export function randomDatabase(prefix = 'lars_test'): string {
  return `${prefix}_${randomBytes(4).toString('hex')}`;
}

/** Polls `fn` until it returns a truthy value or the deadline passes. */
export async function waitFor<T>(fn: () => Promise<T> | T, what: string, timeoutMs = 20_000, intervalMs = 50): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v as NonNullable<T>;
      last = v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

// ---------------------------------------------------------------- analytics test kit


/** The two engines every analytics test runs against. */
export interface EngineCase {
  name: string;
  /** Opens a fresh engine on `database` (the server must be started for 'server'). */
  open: (database: string) => Promise<AnalyticsEngine>;
}

export function engineCases(server: () => ClickHouseServer): EngineCase[] {
  return [
    { name: 'chdb', open: (database) => openEngine({ path: sharedChdbPath(), database }) },
    { name: 'clickhouse-server 18.16', open: (database) => openEngine({ url: server().url, database, requestTimeoutMs: 10_000 }) },
  ];
}

export async function countRows(e: AnalyticsEngine, table: string, where = '1'): Promise<number> {
  const r = await e.query<{ c: number | string }>(`SELECT count() AS c FROM ${e.database}.${table} WHERE ${where}`);
  return Number(r[0]?.c ?? 0);
}

/** Rows per JetStream sequence in a table: the no-duplicates check. */
export async function rowsPerSeq(e: AnalyticsEngine, table: string): Promise<Map<number, number>> {
  const r = await e.query<{ seq: number | string; c: number | string }>(`SELECT seq, count() AS c FROM ${e.database}.${table} GROUP BY seq`);
  return new Map(r.map((x) => [Number(x.seq), Number(x.c)]));
}

/** Stream limits for tests: JetStream reserves max_bytes up front, and a run creates many streams. */
export const TEST_STREAM_LIMITS = { reports: { maxBytes: 256 * 2 ** 20 }, events: { maxBytes: 16 * 2 ** 20 } };

export interface SuiteServers {
  nats: NatsServer;
  ch: ClickHouseServer;
  nc: NatsConnection;
}

/** Mocha hooks: one nats-server, one clickhouse-server and a connection for the suite. */
export function useNatsAndClickHouse(): () => SuiteServers {
  const s = {} as SuiteServers;
  before(async () => {
    [s.nats, s.ch] = await Promise.all([startNatsServer(), startClickHouseServer()]);
    s.nc = await connectNats({ url: s.nats.url });
  });
  after(async () => {
    await s.nc?.close();
    await Promise.all([s.nats?.stop(), s.ch?.destroy()]);
  });
  return () => s;
}
