/**
 * Starts and stops a local `nats-server` with JetStream: used by `lars dev`,
 * the tests and the benchmarks. Loopback only.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as netConnect } from 'node:net';
import { LarsError, ErrorCode } from './errors.ts';

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
  const child = spawn(binary, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    if (stderr.length < 20_000) stderr += d.toString();
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const deadline = Date.now() + (opts.startTimeoutMs ?? 15_000);
  let port = 0;
  try {
    while (port === 0) {
      if (child.exitCode !== null) throw new Error(`nats-server exited with ${child.exitCode}: ${stderr.slice(-2000)}`);
      if (Date.now() > deadline) throw new Error(`nats-server did not start in time: ${stderr.slice(-2000)}`);
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
    rmSync(portsDir, { recursive: true, force: true });
    throw new LarsError(ErrorCode.natsUnreachable, `could not start nats-server: ${(err as Error).message}`, { cause: err });
  }
  rmSync(portsDir, { recursive: true, force: true });
  const server: NatsServer = {
    url: `nats://127.0.0.1:${port}`,
    port,
    storeDir,
    process: child,
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
process.once('exit', () => {
  for (const d of tempStores) rmSync(d, { recursive: true, force: true });
});

function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
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
