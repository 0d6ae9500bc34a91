/**
 * The processes a nemesis run starts and hurts: nats-servers (through
 * NatsCluster), `lars node` and `lars sink` as OS processes, each with the
 * same id, port and store on every incarnation. Every action on them is
 * written to the run's process timeline (`ProcEvent`), which the checks read
 * to know which node was alive (running, not paused) when.
 *
 * Children are started through util-linux `setpriv --pdeathsig KILL` where it
 * exists, so that none outlives the harness even when it is killed.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, openSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { LARS_BIN } from '../helpers/cli.ts';
import type { NatsCluster } from '../helpers/nats-cluster.ts';
import { ProcEventKind, ProcKind, type ProcEvent } from './types.ts';

const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p));

export class Timeline {
  readonly events: ProcEvent[] = [];
  note(proc: string, what: ProcEventKind, pid?: number): void {
    this.events.push(pid === undefined ? { t: Date.now(), proc, what } : { t: Date.now(), proc, what, pid });
  }
}

/** A process the nemesis can kill, stop, pause and start again. */
export interface Managed {
  readonly id: string;
  readonly kind: ProcKind;
  /** A live incarnation exists (it may be paused). */
  running(): boolean;
  paused(): boolean;
  pid(): number | undefined;
  /** SIGKILL; resolves when the process is gone. */
  kill(): Promise<void>;
  /** SIGTERM (graceful); resolves when the process is gone (SIGKILL after `graceMs`). */
  stop(graceMs?: number): Promise<void>;
  pause(): void;
  resume(): void;
  /** A new incarnation; resolves when it answers. */
  start(): Promise<void>;
}

/** Spawns `node <args>` under setpriv (when present), stdout and stderr appended to `logPath`. */
export function spawnNode(args: string[], env: Record<string, string>, logPath: string, ipc = false): ChildProcess {
  const fd = openSync(logPath, 'a');
  const argv = [process.execPath, ...args];
  const [cmd, ...rest] = SETPRIV ? [SETPRIV, '--pdeathsig', 'KILL', '--', ...argv] : argv;
  try {
    return spawn(cmd!, rest, { env: { ...process.env, ...env }, stdio: ipc ? ['ignore', fd, fd, 'ipc'] : ['ignore', fd, fd] });
  } finally {
    closeSync(fd);
  }
}

function alive(c: ChildProcess | undefined): c is ChildProcess {
  return c !== undefined && c.exitCode === null && c.signalCode === null;
}

function exitOf(c: ChildProcess): Promise<void> {
  return alive(c) ? new Promise((r) => c.once('exit', () => r())) : Promise.resolve();
}

/** One nats-server of the cluster. */
export class NatsProc implements Managed {
  readonly kind = ProcKind.nats;
  readonly id: string;
  readonly index: number;
  private readonly cluster: NatsCluster;
  private readonly timeline: Timeline;
  constructor(cluster: NatsCluster, index: number, timeline: Timeline) {
    this.cluster = cluster;
    this.index = index;
    this.timeline = timeline;
    this.id = `nats-${index}`;
  }
  /** The server's name, as JetStream names stream leaders. */
  serverName(): string {
    return this.cluster.serverName(this.index);
  }
  running(): boolean {
    return this.cluster.running(this.index);
  }
  paused(): boolean {
    return this.cluster.paused(this.index);
  }
  pid(): number | undefined {
    return this.cluster.pid(this.index);
  }
  async kill(): Promise<void> {
    this.timeline.note(this.id, ProcEventKind.kill, this.pid());
    this.cluster.kill(this.index);
    await this.cluster.exited(this.index);
    this.timeline.note(this.id, ProcEventKind.exit);
  }
  async stop(): Promise<void> {
    this.timeline.note(this.id, ProcEventKind.stop, this.pid());
    await this.cluster.stop(this.index);
    this.timeline.note(this.id, ProcEventKind.exit);
  }
  pause(): void {
    this.cluster.pause(this.index);
    this.timeline.note(this.id, ProcEventKind.pause, this.pid());
  }
  resume(): void {
    this.cluster.resume(this.index);
    this.timeline.note(this.id, ProcEventKind.resume, this.pid());
  }
  async start(): Promise<void> {
    this.timeline.note(this.id, ProcEventKind.start);
    await this.cluster.restart(this.index);
    this.timeline.note(this.id, ProcEventKind.up, this.pid());
  }
}

export interface LarsProcOptions {
  kind: typeof ProcKind.node | typeof ProcKind.sink;
  /** node id (`--node-id`) */
  name: string;
  args: string[];
  env: Record<string, string>;
  httpPort: number;
  logDir: string;
  /** How long a start may take to answer /healthz. */
  startTimeoutMs?: number;
}

/** `lars node` or `lars sink`, answering /healthz on its --http port when up. */
export class LarsProc implements Managed {
  readonly kind: typeof ProcKind.node | typeof ProcKind.sink;
  readonly id: string;
  readonly name: string;
  readonly httpPort: number;
  private child: ChildProcess | undefined;
  private stopped = false;
  private isPaused = false;
  /** Incarnations that exited before they answered (retried). */
  failedStarts = 0;
  /** Incarnations that exited after they answered, without a kill or stop of the harness (not started again). */
  crashes = 0;
  private ending = false;
  private readonly o: LarsProcOptions;
  private readonly timeline: Timeline;

  constructor(o: LarsProcOptions, timeline: Timeline) {
    this.o = o;
    this.timeline = timeline;
    this.kind = o.kind;
    this.name = o.name;
    this.id = `${o.kind}-${o.name}`;
    this.httpPort = o.httpPort;
  }

  running(): boolean {
    return alive(this.child);
  }
  paused(): boolean {
    return this.running() && this.isPaused;
  }
  pid(): number | undefined {
    return this.running() ? this.child!.pid : undefined;
  }

  async start(): Promise<void> {
    const deadline = Date.now() + (this.o.startTimeoutMs ?? 60_000);
    for (;;) {
      if (this.running()) throw new Error(`${this.id} is running already`);
      const args = [LARS_BIN, this.kind, '--http', String(this.httpPort), '--node-id', this.name, ...this.o.args];
      const c = spawnNode(args, this.o.env, join(this.o.logDir, `${this.id}.log`));
      this.child = c;
      this.isPaused = false;
      this.ending = false;
      let answered = false;
      this.timeline.note(this.id, ProcEventKind.start, c.pid);
      c.once('exit', () => {
        if (!this.stopped) this.timeline.note(this.id, ProcEventKind.exit, c.pid);
        if (answered && !this.ending && !this.stopped) this.crashes++;
      });
      // Up when /healthz answers: the process has connected to NATS and serves its port.
      while (alive(c) && !(await answers(`http://127.0.0.1:${this.httpPort}/healthz`, 500))) {
        if (Date.now() > deadline) throw new Error(`${this.id} did not answer /healthz within ${this.o.startTimeoutMs ?? 60_000} ms`);
        await new Promise((r) => setTimeout(r, 100));
      }
      if (alive(c)) {
        answered = true;
        this.timeline.note(this.id, ProcEventKind.up, c.pid);
        return;
      }
      // Exited before it answered (e.g. NATS not answering JetStream requests yet): a supervisor would start it again.
      this.failedStarts++;
      if (Date.now() > deadline) throw new Error(`${this.id} exited before it answered (${this.failedStarts} tries)`);
      await new Promise((r) => setTimeout(r, 500));
    }
  }

  async kill(): Promise<void> {
    const c = this.child;
    if (!alive(c)) return;
    this.ending = true;
    this.timeline.note(this.id, ProcEventKind.kill, c.pid);
    c.kill('SIGKILL');
    await exitOf(c);
  }

  async stop(graceMs = 15_000): Promise<void> {
    const c = this.child;
    if (!alive(c)) return;
    this.ending = true;
    this.timeline.note(this.id, ProcEventKind.stop, c.pid);
    if (this.isPaused) this.resume();
    c.kill('SIGTERM');
    const t = setTimeout(() => c.kill('SIGKILL'), graceMs);
    await exitOf(c);
    clearTimeout(t);
  }

  pause(): void {
    const c = this.child;
    if (!alive(c)) return;
    // the pid is the node process itself: setpriv execs it
    process.kill(c.pid!, 'SIGSTOP');
    this.isPaused = true;
    this.timeline.note(this.id, ProcEventKind.pause, c.pid);
  }

  resume(): void {
    const c = this.child;
    if (!alive(c) || !this.isPaused) return;
    process.kill(c.pid!, 'SIGCONT');
    this.isPaused = false;
    this.timeline.note(this.id, ProcEventKind.resume, c.pid);
  }

  /** Stops for good at the end of the run (SIGKILL: nothing is judged after the run). */
  async dispose(): Promise<void> {
    this.stopped = true;
    const c = this.child;
    if (!alive(c)) return;
    c.kill('SIGKILL');
    await exitOf(c);
  }
}

async function answers(url: string, timeoutMs: number): Promise<boolean> {
  try {
    const r = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    await r.arrayBuffer();
    return r.ok;
  } catch {
    return false;
  }
}
