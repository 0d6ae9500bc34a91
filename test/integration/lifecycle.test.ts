import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Lifecycle, type SignalSource } from '../../src/lib/lifecycle.ts';
import { startNatsServer, type NatsServer } from '../../src/nats/natsd.ts';
import { freePort } from '../helpers/clickhouse-server.ts';
import { LARS_BIN } from '../helpers/cli.ts';
import { waitFor } from '../helpers/wait.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** A running process (a zombie waiting for its parent's wait() counts as gone). */
function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

type Proc = { pid: number; pgid: number; cmd: string };

function procs(): Proc[] {
  const out: Proc[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (fields[0] === 'Z') continue;
      out.push({ pid: Number(d), pgid: Number(fields[2]), cmd: readFileSync(`/proc/${d}/cmdline`, 'utf8').replace(/\0/g, ' ') });
    } catch {
      // gone while listed
    }
  }
  return out;
}

/**
 * The nats-server processes `lars dev` started with its store under `dir`. Only once the process image is nats-server
 * itself: it is first spawned as `setpriv --pdeathsig TERM -- nats-server …`, and until setpriv has exec'd, the death
 * signal may not be armed yet and /proc may show an empty command line mid-exec.
 */
function natsServersOf(dir: string): Proc[] {
  const store = join(dir, 'nats');
  return procs().filter((x) => /(^|\/)nats-server$/.test(x.cmd.split(' ')[0] ?? '') && x.cmd.includes(store));
}

/** Processes holding a file under `dir` open (what would keep the chdb data directory locked). */
function holders(dir: string): number[] {
  const pids: number[] = [];
  for (const p of procs()) {
    try {
      for (const fd of readdirSync(`/proc/${p.pid}/fd`)) {
        const target = (() => {
          try {
            return readlinkSync(`/proc/${p.pid}/fd/${fd}`);
          } catch {
            return '';
          }
        })();
        if (target.startsWith(dir)) {
          pids.push(p.pid);
          break;
        }
      }
    } catch {
      // not ours to read, or gone
    }
  }
  return pids;
}

/** Whether each started process leads its own process group. */
const groups = new WeakMap<ChildProcess, boolean>();

interface Live {
  child: ChildProcess;
  out: () => string;
  err: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function start(cmd: string[], opts: { detached: boolean; logLevel?: string; bin?: string }): Live {
  const child = spawn(opts.bin ?? process.execPath, cmd, { cwd: ROOT, env: { ...process.env, LARS_LOG_LEVEL: opts.logLevel ?? 'warn', LARS_LOG_FORMAT: 'json' }, stdio: ['ignore', 'pipe', 'pipe'], detached: opts.detached });
  groups.set(child, opts.detached);
  let out = '';
  let err = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.once('exit', (code, signal) => r({ code, signal })));
  return { child, out: () => out, err: () => err, exited };
}

async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, rej) => (t = setTimeout(() => rej(new Error(`${what} did not happen within ${ms} ms`)), ms)))]);
  } finally {
    clearTimeout(t);
  }
}

class FakeSignals extends EventEmitter implements SignalSource {
  send(sig: 'SIGINT' | 'SIGTERM'): void {
    this.emit(sig, sig);
  }
}

describe('lifecycle', function () {
  this.timeout(90_000);
  const leftovers: ChildProcess[] = [];
  const dirs: string[] = [];
  afterEach(() => {
    for (const c of leftovers.splice(0)) {
      if (c.exitCode !== null || c.signalCode !== null || !c.pid) continue;
      if (groups.get(c)) process.kill(-c.pid, 'SIGKILL');
      else c.kill('SIGKILL');
    }
  });
  after(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });
  function tempDir(): string {
    const d = mkdtempSync(join(tmpdir(), 'lars-life-'));
    dirs.push(d);
    return d;
  }

  it('lifecycle - steps stop in reverse order, each announced; a failing step does not stop the next', async () => {
    const notes: string[] = [];
    const signals = new FakeSignals();
    const codes: number[] = [];
    const life = new Lifecycle({ note: (l) => notes.push(l), signals, exit: (c) => codes.push(c), deadlineMs: 5000 });
    const order: string[] = [];
    life.add('nats-server', () => order.push('nats-server'));
    life.add('route node', () => {
      order.push('route node');
      throw new Error('boom');
    });
    life.add('agents', async () => {
      await new Promise((r) => setImmediate(r));
      order.push('agents');
    });
    signals.send('SIGINT');
    await life.stopped;
    await life.shutdown();
    expect(order).to.deep.equal(['agents', 'route node', 'nats-server']);
    expect(notes).to.deep.equal(['SIGINT: stopping (again to force)', 'stopping agents…', 'stopping route node…', 'stopping route node failed: boom', 'stopping nats-server…']);
    expect(codes).to.deep.equal([]);
    expect(signals.listenerCount('SIGINT') + signals.listenerCount('SIGTERM')).to.equal(0);
  });

  it('lifecycle - a second signal exits at once, naming the step that hangs', async () => {
    const notes: string[] = [];
    const signals = new FakeSignals();
    const codes: number[] = [];
    const life = new Lifecycle({ note: (l) => notes.push(l), signals, exit: (c) => codes.push(c), deadlineMs: 60_000 });
    life.add('sink', () => new Promise(() => undefined));
    signals.send('SIGTERM');
    void life.shutdown();
    await waitFor(() => notes.includes('stopping sink…'), { what: 'the sink step' });
    signals.send('SIGINT');
    expect(codes).to.deep.equal([130]);
    expect(notes.at(-1)).to.equal('SIGINT again: exiting now (was stopping sink)');
  });

  it('lifecycle - the deadline from the first signal ends a shutdown that hangs', async () => {
    const notes: string[] = [];
    const signals = new FakeSignals();
    const codes: number[] = [];
    const life = new Lifecycle({ note: (l) => notes.push(l), signals, exit: (c) => codes.push(c), deadlineMs: 200 });
    life.add('route node', () => new Promise(() => undefined));
    signals.send('SIGINT');
    void life.shutdown();
    await waitFor(() => codes.length > 0, { what: 'the forced exit', timeoutMs: 5000 });
    expect(codes).to.deep.equal([1]);
    expect(notes.at(-1)).to.equal('still stopping route node after 0 s: exiting now');
  });

  it('lifecycle - Ctrl-C on npm start (signal to the whole process group) stops lars dev, its nats-server and chdb within seconds', async () => {
    const dir = tempDir();
    const port = await freePort();
    // `npm start` itself, in its own process group as a terminal's foreground job: npm, its shell, scripts/start.mjs and lars dev
    const p = start(['start', '--', '--plain', '--data-dir', dir, '--nats', `nats://127.0.0.1:${port}`], { detached: true, bin: 'npm' });
    leftovers.push(p.child);
    await waitFor(() => p.out().includes('scenario: all hosts healthy') || p.child.exitCode !== null, { timeoutMs: 45_000, what: 'lars dev to be up' });
    expect(p.child.exitCode, p.err()).to.equal(null);
    const group = procs().filter((x) => x.pgid === p.child.pid);
    const natsd = natsServersOf(dir);
    expect(group.map((x) => x.cmd).join('\n')).to.contain('scripts/start.mjs');
    expect(group.map((x) => x.cmd).join('\n')).to.contain('bin/lars.mjs dev');
    expect(natsd, 'the nats-server lars dev started').to.have.length(1);
    expect(natsd[0]!.pgid, 'nats-server in its own process group').to.not.equal(p.child.pid);
    expect(holders(join(dir, 'clickhouse')).length, 'chdb open').to.be.greaterThan(0);

    const larsDev = group.find((x) => x.cmd.includes('bin/lars.mjs dev'))!;
    const t0 = Date.now();
    process.kill(-p.child.pid!, 'SIGINT');
    const end = await within(p.exited, 15_000, 'npm start to exit after Ctrl-C');
    const tookMs = Date.now() - t0;
    // npm returns the terminal once lars dev has stopped, ending as an interrupted program does
    expect(alive(larsDev.pid), 'lars dev gone when npm start returns').to.equal(false);
    expect(end.code === 0 || end.signal === 'SIGINT', `npm start ended with ${end.code ?? end.signal}: ${p.err()}`).to.equal(true);
    await waitFor(() => [...group, ...natsd].every((x) => !alive(x.pid)), { timeoutMs: 3000, what: 'every process to be gone' });
    expect(holders(dir), 'nothing holds the data directory').to.deep.equal([]);
    const err = p.err();
    expect(err).to.contain('SIGINT: stopping');
    expect(err).to.contain('stopping agents…');
    expect(err).to.contain('stopping route node…');
    expect(err).to.match(new RegExp(`stopping nats-server \\(pid ${natsd[0]!.pid}\\)…`));
    expect(err.indexOf('stopping route node…'), 'route node before nats-server').to.be.lessThan(err.indexOf('stopping nats-server'));
    expect(tookMs, 'stopped within the deadline').to.be.lessThan(12_000);
    expect(err, 'no second signal needed').to.not.contain('SIGINT again');
  });

  it('lifecycle - lars dev killed outright (SIGKILL) takes its nats-server with it', async () => {
    const dir = tempDir();
    const port = await freePort();
    const p = start([LARS_BIN, 'dev', '--plain', '--data-dir', dir, '--nats', `nats://127.0.0.1:${port}`], { detached: true });
    leftovers.push(p.child);
    const natsd = await waitFor(
      () => {
        const found = natsServersOf(dir);
        return p.out().includes('starting nats-server') && found.length > 0 && found;
      },
      { timeoutMs: 45_000, what: 'nats-server to start' },
    );
    expect(natsd, 'the nats-server lars dev started').to.have.length(1);
    process.kill(p.child.pid!, 'SIGKILL');
    await p.exited;
    await waitFor(() => !alive(natsd[0]!.pid), { timeoutMs: 5000, what: 'the orphaned nats-server to exit' });
  });

  describe('with a NATS server', () => {
    let nats: NatsServer;
    before(async () => {
      nats = await startNatsServer();
    });
    after(async () => {
      await nats.stop();
    });

    // every long-running command, stopped by SIGTERM (a supervisor) and by Ctrl-C (SIGINT to its whole process group)
    const commands: Array<{ name: string; args: () => Promise<string[]>; up: RegExp; steps: string[] }> = [
      { name: 'lars node', args: async () => ['node'], up: /route node ready/, steps: ['stopping route node…', 'stopping NATS connection (leases)…', 'stopping NATS connection…'] },
      { name: 'lars node --own', args: async () => ['node', '--own', '0-3', '--partitions', '4'], up: /route node ready/, steps: ['stopping route node…', 'stopping NATS connection…'] },
      { name: 'lars route watch', args: async () => ['route', 'watch', '1', '1'], up: /watching for it to appear/, steps: [] },
      { name: 'lars sink', args: async () => ['sink', '--data-dir', tempDir()], up: /sink ready/, steps: ['stopping ClickHouse sink…', 'stopping NATS connection…'] },
      { name: 'lars agent', args: async () => ['agent', '--udp-ports', 'off', '--http-port', String(await freePort())], up: /sidecar ready/, steps: ['stopping sidecar…', 'stopping NATS connection…'] },
      { name: 'lars console', args: async () => ['console', '--port', String(await freePort()), '--analytics', 'off'], up: /console ready/, steps: ['stopping console backend…', 'stopping NATS connection…', 'stopping HTTP server…'] },
    ];
    for (const c of commands) {
      for (const how of ['SIGTERM', 'Ctrl-C'] as const) {
        it(`lifecycle - ${how} on ${c.name} stops it and what it started within seconds`, async () => {
          const group = how === 'Ctrl-C';
          const p = start([LARS_BIN, ...(await c.args()), '--nats', nats.url, '--prefix', `life${Date.now() % 100000}`], { detached: group, logLevel: 'info' });
          leftovers.push(p.child);
          await waitFor(() => p.child.exitCode !== null || c.up.test(p.out() + p.err()), { timeoutMs: 45_000, what: `${c.name} to be up` });
          expect(p.child.exitCode, p.err()).to.equal(null);
          if (group) process.kill(-p.child.pid!, 'SIGINT');
          else p.child.kill('SIGTERM');
          const end = await within(p.exited, 12_000, `${c.name} to exit after ${how}`);
          expect(end.code, p.err()).to.equal(0);
          const err = p.err();
          expect(err).to.contain(`${group ? 'SIGINT' : 'SIGTERM'}: stopping`);
          for (const step of c.steps) expect(err, step).to.contain(step);
          // the steps in the order they are listed
          const at = c.steps.map((step) => err.indexOf(step));
          expect(at, 'stop order').to.deep.equal([...at].sort((a, b) => a - b));
          if (group) expect(procs().filter((x) => x.pgid === p.child.pid), 'nothing of its process group left').to.deep.equal([]);
        });
      }
    }
  });
});
