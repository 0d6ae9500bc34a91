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
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as netConnect } from 'node:net';
import { jetstreamManager } from '@nats-io/jetstream';
import { delay, type NatsConnection } from '@nats-io/transport-node';
import { LarsError, ErrorCode, JetStreamDisabledError } from './errors.ts';

export const NATS_INSTALL_COMMAND = 'apt-get install -y nats-server';

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
}

export interface NatsServer {
  readonly url: string;
  readonly port: number;
  readonly storeDir: string;
  readonly process: ChildProcess;
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
  const args = ['-a', '127.0.0.1', '-p', String(opts.port ?? -1), '-js', '-sd', storeDir, '--ports_file_dir', portsDir, ...(opts.args ?? [])];
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
    throw new LarsError(ErrorCode.natsUnreachable, `cannot use JetStream on ${url}: ${msg}`, { cause: err });
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
