/**
 * Starts and stops a local `nats-server` with JetStream: used by `lars dev`,
 * the tests and the benchmarks. Loopback only.
 *
 * The server runs in its own process group, so the terminal's Ctrl-C reaches
 * only the `lars` process, which stops its own work first and the server
 * last. It cannot outlive its starter: it is killed from this process' exit
 * hook, and where `setpriv` exists the kernel sends it SIGTERM when this
 * process dies even by SIGKILL.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, existsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as netConnect } from 'node:net';
import { jetstreamManager } from '@nats-io/jetstream';
import { delay, type NatsConnection } from '@nats-io/transport-node';
import { LarsError, ErrorCode, JetStreamDisabledError } from '../lib/errors.ts';
import { redactNatsUrl } from '../lib/nats-url.ts';

export const NATS_INSTALL_COMMAND = 'apt-get install -y nats-server';

/**
 * How a server's JetStream store reaches the disk. nats-server acknowledges a
 * write once it is in the operating system's page cache (on every replica of
 * an R3 stream's quorum) and fsyncs on a timer: what it acknowledged survives
 * a crash of every server process, not a crash or power loss of the machines.
 */
export const StoreSync = {
  /**
   * The server's own schedule, nothing changed: fsync every 2 min (2.10+:
   * `sync_interval`, default 2 min; 2.9: 2 min for streams, 5 min for Raft
   * logs, 1 min for the meta log, not configurable).
   */
  interval: 'interval',
  /**
   * Every write on the disk before it is acknowledged: `sync_interval: always`
   * on nats-server 2.10 and later; on 2.9, which has no such setting, the
   * store directory's synchronous-updates attribute (`chattr -R +S`, inherited
   * by every file the server creates there; ext2/3/4 and XFS have it).
   */
  always: 'always',
} as const;
export type StoreSync = (typeof StoreSync)[keyof typeof StoreSync];

/** What a server was started with to get its StoreSync. */
export type StoreSyncHow =
  /** Nothing: the server's default schedule. */
  | 'none'
  /** A config file of natsd's with `jetstream { sync_interval: always }`. */
  | 'sync_interval'
  /** The store directory's synchronous-updates attribute. */
  | 'chattr'
  /** The caller's own config file (`-c` in `args`) decides. */
  | 'caller_config';

/** A nats-server release, `[major, minor, patch]`, from its `--version` line (`nats-server: v2.9.10`). */
export function parseNatsVersion(text: string): [number, number, number] | undefined {
  const m = /v?(\d+)\.(\d+)\.(\d+)/.exec(text);
  return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : undefined;
}

/** `sync_interval` (and its value `always`) came with nats-server 2.10.0; 2.9 refuses it as an unknown field. */
export function supportsSyncInterval(version: readonly number[] | undefined): boolean {
  return version !== undefined && (version[0]! > 2 || (version[0] === 2 && version[1]! >= 10));
}

/**
 * How to start a server for a StoreSync: the pure decision, given the
 * server's version and whether the caller passes a config file of its own.
 * `want` undefined: `always` where the server has `sync_interval`, the
 * server's default elsewhere (the attribute costs every write a disk
 * flush, ~150 us on the test machine: opt in with `always` or
 * LARS_NATS_SYNC=always).
 */
export function storeSyncPlan(want: StoreSync | undefined, version: readonly number[] | undefined, callerConfig: boolean): { sync: StoreSync; how: StoreSyncHow; config?: string } {
  const native = supportsSyncInterval(version);
  const sync = want ?? (native ? StoreSync.always : StoreSync.interval);
  if (sync === StoreSync.interval) return { sync, how: 'none' };
  if (native) {
    if (callerConfig) return { sync, how: 'caller_config' };
    // Command-line flags (-js, -sd) add to the config file: the file holds only what no flag sets.
    return { sync, how: 'sync_interval', config: 'jetstream {\n  sync_interval: always\n}\n' };
  }
  return { sync, how: 'chattr' };
}

/** StoreSync from LARS_NATS_SYNC (`always` or `interval`), undefined when unset; anything else is a LarsError. */
export function storeSyncFromEnv(value = process.env['LARS_NATS_SYNC']): StoreSync | undefined {
  if (value === undefined || value === '') return undefined;
  if (value === StoreSync.always || value === StoreSync.interval) return value;
  throw new LarsError(ErrorCode.config, `LARS_NATS_SYNC must be 'always' or 'interval', got '${value}'`);
}

const versions = new Map<string, [number, number, number] | undefined>();
/** The release of a nats-server binary (`--version`), cached per path. */
export function natsServerVersion(binary: string): [number, number, number] | undefined {
  if (!versions.has(binary)) {
    const r = spawnSync(binary, ['--version'], { encoding: 'utf8', timeout: 10_000 });
    versions.set(binary, parseNatsVersion(`${r.stdout ?? ''}${r.stderr ?? ''}`));
  }
  return versions.get(binary);
}

/** Sets the synchronous-updates attribute on a directory and everything in it (files created later inherit it). */
function setSyncAttribute(dir: string): void {
  const r = spawnSync('chattr', ['-R', '+S', dir], { encoding: 'utf8' });
  if (r.error !== undefined || r.status !== 0) {
    const why = r.error !== undefined ? r.error.message : (r.stderr ?? '').trim();
    throw new LarsError(ErrorCode.config, `cannot make the JetStream store ${dir} synchronous (chattr -R +S: ${why}); this nats-server has no sync_interval and the filesystem offers no synchronous-updates attribute: run with LARS_NATS_SYNC=interval, or on ext4 or XFS`);
  }
}

export interface NatsServerOptions {
  /** Port to listen on; default a free port chosen by the server. */
  port?: number;
  /** JetStream store directory; default a new temp dir, removed on stop. */
  storeDir?: string;
  /** Path of the nats-server binary; default found on PATH or /usr/sbin. */
  binary?: string;
  /** How long to wait for the server to accept connections. */
  startTimeoutMs?: number;
  /** Extra command-line arguments. */
  args?: string[];
  /** How the store reaches the disk (see StoreSync); default LARS_NATS_SYNC, else storeSyncPlan's default. */
  sync?: StoreSync;
}

export interface NatsServer {
  readonly url: string;
  readonly port: number;
  readonly storeDir: string;
  readonly process: ChildProcess;
  /** How its store reaches the disk, and what was done for it. */
  readonly sync: { readonly sync: StoreSync; readonly how: StoreSyncHow };
  /** The last part of what the server wrote to stderr (its log: a crash's reason is at the end). */
  log(): string;
  /** Stops the server (SIGTERM, then SIGKILL after 5 s) and waits for it to exit. */
  stop(): Promise<void>;
  /** Starts a new server on the same port and store (after stop). */
  restart(): Promise<NatsServer>;
}

export function findNatsServer(): string | undefined {
  const candidates = [process.env['LARS_NATS_SERVER_BIN'], '/usr/sbin/nats-server', '/usr/bin/nats-server', '/usr/local/bin/nats-server'];
  for (const c of candidates) if (c && existsSync(c)) return c;
  const r = spawnSync('sh', ['-c', 'command -v nats-server'], { encoding: 'utf8' });
  const p = r.stdout.trim();
  return p.length > 0 ? p : undefined;
}

export async function startNatsServer(opts: NatsServerOptions = {}): Promise<NatsServer> {
  const binary = opts.binary ?? findNatsServer();
  if (!binary) {
    throw new LarsError(ErrorCode.natsServerMissing, `nats-server is not installed; install it with: ${NATS_INSTALL_COMMAND}`);
  }
  const ownStore = opts.storeDir === undefined;
  const storeDir = opts.storeDir ?? mkdtempSync(join(tmpdir(), 'lars-nats-'));
  mkdirSync(storeDir, { recursive: true });
  const portsDir = mkdtempSync(join(tmpdir(), 'lars-nats-ports-'));
  const callerConfig = (opts.args ?? []).some((a) => a === '-c' || a === '--config' || a.startsWith('--config='));
  const plan = storeSyncPlan(opts.sync ?? storeSyncFromEnv(), natsServerVersion(binary), callerConfig);
  const syncArgs: string[] = [];
  if (plan.config !== undefined) {
    // read once at start: it can go with the ports directory
    writeFileSync(join(portsDir, 'sync.conf'), plan.config);
    syncArgs.push('-c', join(portsDir, 'sync.conf'));
  }
  if (plan.how === 'chattr') setSyncAttribute(storeDir);
  const args = ['-a', '127.0.0.1', '-p', String(opts.port ?? -1), '-js', '-sd', storeDir, '--ports_file_dir', portsDir, ...syncArgs, ...(opts.args ?? [])];
  const setpriv = findSetpriv();
  const child = setpriv
    ? spawn(setpriv, ['--pdeathsig', 'TERM', '--', binary, ...args], { stdio: ['ignore', 'ignore', 'pipe'], detached: true })
    : spawn(binary, args, { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
  liveChildren.add(child);
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString();
    if (stderr.length > 64_000) stderr = stderr.slice(-32_000);
  });
  const exited = new Promise<void>((resolve) =>
    child.once('exit', () => {
      liveChildren.delete(child);
      // nothing reads stderr after the exit; an open pipe would keep the caller's event loop alive
      child.stderr?.destroy();
      resolve();
    }),
  );
  const deadline = Date.now() + (opts.startTimeoutMs ?? 15_000);
  let port = 0;
  try {
    while (port === 0) {
      if (child.exitCode !== null) {
        const busy = /listen tcp [^:]+:(\d+): bind: address already in use/.exec(stderr);
        if (busy) throw new PortBusyError(Number(busy[1]), await describePort(Number(busy[1])));
        throw new Error(`nats-server exited with ${child.exitCode}: ${lastLines(stderr)}`);
      }
      if (Date.now() > deadline) throw new Error(`nats-server did not start in time: ${lastLines(stderr)}`);
      const f = readdirSync(portsDir).find((n) => n.endsWith('.ports'));
      if (f) {
        try {
          const ports = JSON.parse(readFileSync(join(portsDir, f), 'utf8')) as { nats?: string[] };
          const u = ports.nats?.[0];
          if (u) port = Number(new URL(u).port);
        } catch {
          // the file may be half-written; read it again
        }
      }
      if (port === 0) await delay(20);
    }
    while (!(await canConnect(port))) {
      if (Date.now() > deadline) throw new Error('nats-server port not accepting connections');
      await delay(20);
    }
  } catch (err) {
    child.kill('SIGKILL');
    await exited;
    rmSync(portsDir, { recursive: true, force: true });
    if (err instanceof LarsError) throw err;
    throw new LarsError(ErrorCode.natsUnreachable, `could not start nats-server: ${(err as Error).message}`, { cause: err });
  }
  rmSync(portsDir, { recursive: true, force: true });
  const server: NatsServer = {
    url: `nats://127.0.0.1:${port}`,
    port,
    storeDir,
    process: child,
    sync: { sync: plan.sync, how: plan.how },
    log: () => stderr,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(t);
      }
    },
    async restart() {
      await server.stop();
      return startNatsServer({ ...opts, port, storeDir });
    },
  };
  // A temp store is kept while a restart may reuse it, and removed when this process exits.
  if (ownStore) tempStores.add(storeDir);
  return server;
}

const tempStores = new Set<string>();
/** Servers started by this process and still running: killed when it exits, however it exits. */
const liveChildren = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of liveChildren) c.kill('SIGTERM');
  for (const d of tempStores) rmSync(d, { recursive: true, force: true });
});

let setprivPath: string | null | undefined;
/** util-linux `setpriv`, which can ask the kernel to signal a child when its parent dies. */
function findSetpriv(): string | undefined {
  if (setprivPath === undefined) setprivPath = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p)) ?? null;
  return setprivPath ?? undefined;
}

/** The last lines of nats-server's log (its banner is of no help in an error message). */
function lastLines(text: string, n = 3): string {
  return text.trim().split('\n').slice(-n).join('\n');
}

/** Something that is not a usable NATS server already listens on a port we need. */
export class PortBusyError extends LarsError {
  readonly port: number;
  constructor(port: number, what: string) {
    super(ErrorCode.natsUnreachable, `port ${port} is already in use by ${what}; stop it, or give lars another port with --nats nats://127.0.0.1:<port>`);
    this.name = 'PortBusyError';
    this.port = port;
  }
}

/** What listens on a local TCP port: `NATS`, `nothing`, or a description of the other thing. */
export type PortProbe = { kind: 'nats' } | { kind: 'free' } | { kind: 'other'; what: string };

/**
 * Connects to 127.0.0.1:port and reads what the server says first: a NATS
 * server greets with `INFO {...}`; anything else (a greeting, or silence) is
 * something else, described with the listening process when `ss` can name it.
 */
export async function probePort(port: number, host = '127.0.0.1', timeoutMs = 1000): Promise<PortProbe> {
  const greeting = await new Promise<string | null>((resolve) => {
    const s = netConnect({ host, port });
    let got = '';
    const done = (v: string | null): void => {
      clearTimeout(t);
      s.destroy();
      resolve(v);
    };
    const t = setTimeout(() => done(got), timeoutMs);
    s.on('data', (d: Buffer) => {
      got += d.toString('latin1');
      if (got.includes('\n') || got.length > 200) done(got);
    });
    s.once('error', () => done(null));
    s.once('end', () => done(got));
  });
  if (greeting === null) return { kind: 'free' };
  if (greeting.startsWith('INFO ')) return { kind: 'nats' };
  return { kind: 'other', what: await describePort(port, greeting) };
}

async function describePort(port: number, greeting?: string): Promise<string> {
  if (greeting === undefined) {
    const p = await probePort(port);
    if (p.kind === 'nats') return 'a NATS server';
    if (p.kind === 'other') return p.what;
    return 'another process (it no longer accepts connections)';
  }
  const first = greeting.split(/\r?\n/)[0]!.replace(/[^\x20-\x7e]/g, '?').slice(0, 80);
  const said = first.length > 0 ? `it answered ${JSON.stringify(first)}` : 'it accepted a connection and said nothing';
  const ss = spawnSync('ss', ['-Hltnp', `sport = :${port}`], { encoding: 'utf8' });
  const proc = ss.status === 0 ? /users:\(\("([^"]+)",pid=(\d+)/.exec(ss.stdout) : null;
  return `${proc ? `${proc[1]} (pid ${proc[2]})` : 'a process'} that is not a NATS server (${said})`;
}

/** Fails with a clear message unless the server behind `nc` has JetStream on (route nodes and sinks need it). */
export async function requireJetStream(nc: NatsConnection, url: string): Promise<void> {
  try {
    await jetstreamManager(nc, { timeout: 5000 });
  } catch (err) {
    const msg = (err as Error)?.message ?? String(err);
    if (JetStreamDisabledError.matches(err)) throw new JetStreamDisabledError(url, { cause: err });
    throw new LarsError(ErrorCode.natsUnreachable, `cannot use JetStream on ${redactNatsUrl(url)}: ${msg}`, { cause: err });
  }
}


function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = netConnect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}
