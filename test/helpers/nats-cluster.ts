/**
 * A real NATS cluster on loopback for tests: N nats-servers (Debian's 2.9.10)
 * with clustered JetStream, each with its own store, joined by routes on
 * loopback ports. Servers can be killed and restarted on the same port and
 * store, as an operator's restart would, and paused (SIGSTOP) and resumed
 * (SIGCONT) by pid, as a stalled machine would be.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { startNatsServer, type NatsServer } from '../../src/nats/natsd.ts';
import { connectNats, type NatsConnection } from '../../src/nats/connect.ts';
import { waitFor } from './wait.ts';
import { freePort } from './clickhouse-server.ts';

interface Member {
  name: string;
  clientPort: number;
  clusterPort: number;
  storeDir: string;
  server: NatsServer | undefined;
  /** SIGSTOP sent and no SIGCONT since. */
  paused: boolean;
}

export class NatsCluster {
  readonly name = `c${randomBytes(3).toString('hex')}`;
  private readonly members: Member[] = [];
  private readonly root = mkdtempSync(join(tmpdir(), 'lars-natsc-'));

  /** Starts `size` servers and waits until JetStream has a meta leader. */
  static async start(size = 3): Promise<NatsCluster> {
    const c = new NatsCluster();
    for (let i = 0; i < size; i++) {
      c.members.push({ name: `${c.name}-n${i}`, clientPort: await freePort(), clusterPort: await freePort(), storeDir: join(c.root, `n${i}`), server: undefined, paused: false });
    }
    await Promise.all(c.members.map((_, i) => c.startMember(i)));
    await c.waitReady();
    return c;
  }

  /** Every server's client URL, comma-separated (what connectNats takes). */
  get url(): string {
    return this.members.map((m) => `nats://127.0.0.1:${m.clientPort}`).join(',');
  }

  urlOf(i: number): string {
    return `nats://127.0.0.1:${this.members[i]!.clientPort}`;
  }

  get size(): number {
    return this.members.length;
  }

  /** The server's name (`server_name`), as JetStream names stream leaders and peers. */
  serverName(i: number): string {
    return this.members[i]!.name;
  }

  /** Index of the server with that name, or -1. */
  indexOfServer(name: string): number {
    return this.members.findIndex((m) => m.name === name);
  }

  private async startMember(i: number): Promise<void> {
    const m = this.members[i]!;
    m.paused = false;
    const routes = this.members.filter((o) => o !== m).map((o) => `nats://127.0.0.1:${o.clusterPort}`).join(',');
    m.server = await startNatsServer({
      port: m.clientPort,
      storeDir: m.storeDir,
      startTimeoutMs: 20_000,
      args: ['-n', m.name, '--cluster_name', this.name, '--cluster', `nats://127.0.0.1:${m.clusterPort}`, '--routes', routes],
    });
  }

  /** Waits until a JetStream request succeeds through a client of the cluster (a meta leader exists). */
  async waitReady(timeoutMs = 30_000): Promise<void> {
    const nc = await connectNats({ url: this.url, name: 'cluster-probe' });
    try {
      await waitFor(
        async () => {
          try {
            const r = await nc.request('$JS.API.INFO', undefined, { timeout: 1000 });
            const info = JSON.parse(new TextDecoder().decode(r.data)) as { error?: unknown };
            return info.error === undefined;
          } catch {
            return false;
          }
        },
        { timeoutMs, what: 'JetStream meta leader', intervalMs: 200 },
      );
    } finally {
      await nc.close();
    }
  }

  /** SIGKILL one server (its store stays). */
  kill(i: number): void {
    const m = this.members[i]!;
    m.server?.process.kill('SIGKILL');
  }

  /** Stops one server gracefully (a paused one is resumed first, so that it can). */
  async stop(i: number): Promise<void> {
    if (this.members[i]!.paused) this.resume(i);
    await this.members[i]!.server?.stop();
  }

  /** Whether server i's process is alive (paused or not). */
  running(i: number): boolean {
    const p = this.members[i]!.server?.process;
    return p !== undefined && p.exitCode === null && p.signalCode === null;
  }

  /** Resolves when server i's process has exited (at once when it is not running). */
  exited(i: number): Promise<void> {
    const p = this.members[i]!.server?.process;
    if (p === undefined || !this.running(i)) return Promise.resolve();
    return new Promise((r) => p.once('exit', () => r()));
  }

  /** SIGSTOP to server i by pid: it keeps its sockets open and answers nothing until resumed. */
  pause(i: number): void {
    const pid = this.pid(i);
    if (pid === undefined || !this.running(i)) throw new Error(`nats-server ${i} is not running`);
    process.kill(pid, 'SIGSTOP');
    this.members[i]!.paused = true;
  }

  /** SIGCONT to a paused server i. */
  resume(i: number): void {
    const m = this.members[i]!;
    const pid = this.pid(i);
    if (pid !== undefined && this.running(i) && m.paused) process.kill(pid, 'SIGCONT');
    m.paused = false;
  }

  paused(i: number): boolean {
    return this.members[i]!.paused && this.running(i);
  }

  /** Starts a stopped or killed server again on its port and store. */
  async restart(i: number): Promise<void> {
    const m = this.members[i]!;
    if (m.paused) this.resume(i);
    if (m.server && m.server.process.exitCode === null && m.server.process.signalCode === null) await m.server.stop();
    else if (m.server) await new Promise<void>((r) => (m.server!.process.exitCode !== null || m.server!.process.signalCode !== null ? r() : m.server!.process.once('exit', () => r())));
    await this.startMember(i);
  }

  pid(i: number): number | undefined {
    return this.members[i]!.server?.process.pid;
  }

  async connect(name = 'test'): Promise<NatsConnection> {
    return connectNats({ url: this.url, name });
  }

  async close(): Promise<void> {
    for (let i = 0; i < this.members.length; i++) this.resume(i);
    await Promise.all(this.members.map((m) => m.server?.stop() ?? Promise.resolve()));
    rmSync(this.root, { recursive: true, force: true });
  }
}
