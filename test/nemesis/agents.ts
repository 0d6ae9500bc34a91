/**
 * The harness' side of an agent process (test/nemesis/agent-child.ts): the
 * messages both ways over the IPC channel, starting it, and collecting what
 * it records (route versions its agents applied, totals every second, final
 * tallies). Agent processes are not faulted: they hold the record of the
 * reports made.
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ChildProcess } from 'node:child_process';
import { spawnNode } from './processes.ts';
import type { FailWindow } from './workload.ts';
import type { AgentFinal, AgentSample, AppliedVersion } from './types.ts';

export const CHILD_SCRIPT = join(fileURLToPath(new URL('.', import.meta.url)), 'agent-child.ts');

export interface AgentProcessConfig {
  proc: string;
  url: string;
  prefix: string;
  partitions: number;
  /** Agent id → the routes it calls (`modid.cmdid`). */
  callers: Array<[string, string[]]>;
  /** Calls per second over the whole process. */
  callsPerSec: number;
  batchMaxDelayMs: number;
  /** Epoch ms the failure windows count from. */
  t0: number;
  failures: FailWindow[];
  seed: number;
}

export type ToChild =
  | { type: 'fail'; windows: FailWindow[] }
  | { type: 'idle'; routes: string[]; timeoutMs: number }
  | { type: 'stop' }
  | { type: 'flush'; timeoutMs: number }
  | { type: 'close' };

export type FromChild =
  | { type: 'ready' }
  | { type: 'sample'; sample: Omit<AgentSample, 'proc'> }
  | { type: 'applied'; rows: Array<[t: number, agent: string, route: string, version: number, hash: string]> }
  | { type: 'flushed'; agents: AgentFinal[]; error?: string }
  | { type: 'idled'; error?: string }
  | { type: 'closed'; agents: AgentFinal[] }
  | { type: 'error'; message: string };

export class AgentProcess {
  readonly samples: AgentSample[] = [];
  readonly applied: AppliedVersion[] = [];
  readonly errors: string[] = [];
  private readonly waiters: Array<{ type: FromChild['type']; resolve: (m: FromChild) => void }> = [];
  private readonly exited: Promise<number | null>;
  readonly cfg: AgentProcessConfig;
  private readonly child: ChildProcess;

  private constructor(cfg: AgentProcessConfig, child: ChildProcess) {
    this.cfg = cfg;
    this.child = child;
    this.exited = new Promise((r) => child.once('exit', (code) => r(code)));
    child.on('message', (m: FromChild) => this.onMessage(m));
  }

  /** Starts the process and waits until every agent has loaded its routes. */
  static async start(cfg: AgentProcessConfig, logDir: string, timeoutMs = 60_000): Promise<AgentProcess> {
    const child = spawnNode(['--import', 'tsx', CHILD_SCRIPT], { LARS_NEMESIS_AGENTS: JSON.stringify(cfg) }, join(logDir, `${cfg.proc}.log`), true);
    const p = new AgentProcess(cfg, child);
    await p.next('ready', timeoutMs);
    return p;
  }

  private onMessage(m: FromChild): void {
    switch (m.type) {
      case 'sample':
        this.samples.push({ ...m.sample, proc: this.cfg.proc });
        break;
      case 'applied':
        for (const [t, agent, route, version, hash] of m.rows) this.applied.push({ t, agent, route, version, hash });
        break;
      case 'error':
        this.errors.push(m.message);
        break;
      default:
        break;
    }
    const i = this.waiters.findIndex((w) => w.type === m.type);
    if (i >= 0) this.waiters.splice(i, 1)[0]!.resolve(m);
  }

  private next<T extends FromChild['type']>(type: T, timeoutMs: number): Promise<Extract<FromChild, { type: T }>> {
    return new Promise((resolve, reject) => {
      const w = {
        type,
        resolve: (m: FromChild): void => {
          clearTimeout(t);
          resolve(m as Extract<FromChild, { type: T }>);
        },
      };
      const t = setTimeout(() => {
        const i = this.waiters.indexOf(w);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(new Error(`${this.cfg.proc}: no '${type}' within ${timeoutMs} ms${this.errors.length ? ` (errors: ${this.errors.slice(-3).join('; ')})` : ''}`));
      }, timeoutMs);
      this.waiters.push(w);
      // a process that is gone answers nothing more (a rejection after the answer changes nothing)
      void this.exited.then((code) => {
        clearTimeout(t);
        reject(new Error(`${this.cfg.proc} exited (${code}) before '${type}'`));
      });
    });
  }

  send(m: ToChild): void {
    if (this.child.connected) this.child.send(m);
  }

  /**
   * Stops the calls on `routes` and waits until the reports already made on
   * them are acknowledged (a batch retried after a fault reaches its route
   * late): from the answer on, those routes get no input.
   */
  async idle(routes: string[], timeoutMs: number): Promise<void> {
    this.send({ type: 'idle', routes, timeoutMs });
    const m = await this.next('idled', timeoutMs + 10_000);
    if (m.error !== undefined) throw new Error(`${this.cfg.proc}: reports made before the idle spell not acknowledged: ${m.error}`);
  }

  /** Stops every call, waits until the agents' outboxes are acknowledged (or the timeout), and returns their tallies. */
  async flush(timeoutMs: number): Promise<{ agents: AgentFinal[]; error?: string }> {
    this.send({ type: 'stop' });
    this.send({ type: 'flush', timeoutMs });
    const m = await this.next('flushed', timeoutMs + 10_000);
    return m.error === undefined ? { agents: m.agents } : { agents: m.agents, error: m.error };
  }

  /** Closes the agents and waits for the process to exit; their final tallies. */
  async close(timeoutMs = 20_000): Promise<AgentFinal[]> {
    this.send({ type: 'close' });
    const m = await this.next('closed', timeoutMs).catch(() => undefined);
    await Promise.race([this.exited, new Promise((r) => setTimeout(r, 5000))]);
    this.kill();
    return m?.agents ?? [];
  }

  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }
}
