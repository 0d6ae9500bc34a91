/**
 * Parent-side plumbing shared by the benchmark groups: forking child
 * processes with an IPC channel, waiting for their messages, stopping them,
 * and tearing everything down at the end, on failure, SIGINT or SIGTERM.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { readFileSync } from 'node:fs';
import { sleep } from './_common.ts';

const here = dirname(fileURLToPath(import.meta.url));

/** `--quick` on the command line (or BENCH_QUICK=1): short windows and few trials, to check a group end to end. */
export const QUICK = process.argv.includes('--quick') || process.env['BENCH_QUICK'] === '1';

export function envInt(name: string, dflt: number): number {
  const v = process.env[name];
  const n = v === undefined ? Number.NaN : Number(v);
  return Number.isInteger(n) && n > 0 ? n : dflt;
}

/** A logger prefixed with the group name and the time of day. */
export function logger(group: string): (msg: string) => void {
  return (msg) => console.log(`[${group} ${new Date().toISOString().slice(11, 19)}] ${msg}`);
}

const children = new Set<ChildProcess>();
const teardowns: Array<() => Promise<void>> = [];

/** Forks `bench/<file>` with tsx and an IPC channel; its configuration goes in BENCH_CONFIG. */
export function spawnChild(file: string, cfg: unknown, exposeGc = false): ChildProcess {
  const c = fork(join(here, file), [], {
    execArgv: ['--import', 'tsx', ...(exposeGc ? ['--expose-gc'] : [])],
    env: { ...process.env, BENCH_CONFIG: JSON.stringify(cfg) },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  children.add(c);
  c.once('exit', () => children.delete(c));
  return c;
}

/** The next IPC message of `type` from `c`; rejects when the child exits first or on timeout. */
export function nextMessage<M extends { type: string }, T extends M['type']>(c: ChildProcess, type: T, timeoutMs: number): Promise<Extract<M, { type: T }>> {
  return new Promise((resolve, reject) => {
    const onMsg = (m: M) => {
      if (m.type !== type) return;
      done();
      resolve(m as Extract<M, { type: T }>);
    };
    const onExit = (code: number | null) => {
      done();
      reject(new Error(`child ${c.pid} exited (${code}) before sending ${type}`));
    };
    const t = setTimeout(() => {
      done();
      reject(new Error(`child ${c.pid} sent no ${type} within ${timeoutMs} ms`));
    }, timeoutMs);
    const done = () => {
      clearTimeout(t);
      c.off('message', onMsg as (m: unknown) => void);
      c.off('exit', onExit);
    };
    c.on('message', onMsg as (m: unknown) => void);
    c.once('exit', onExit);
  });
}

/** Sends `ask` to every child and collects each one's reply of type `type`, in order. */
export function askAll<M extends { type: string }, T extends M['type']>(cs: readonly ChildProcess[], ask: unknown, type: T, timeoutMs = 5000): Promise<Array<Extract<M, { type: T }>>> {
  return Promise.all(
    cs.map((c) => {
      const r = nextMessage<M, T>(c, type, timeoutMs);
      c.send(ask as never);
      return r;
    }),
  );
}

/** Asks a child to stop (message, then IPC disconnect, then SIGKILL) and waits for it to exit. */
export async function stopChild(c: ChildProcess, stopMsg?: unknown, graceMs = 5000): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) return;
  const exited = new Promise<void>((r) => c.once('exit', () => r()));
  try {
    if (stopMsg !== undefined && c.connected) c.send(stopMsg as never);
  } catch {
    // channel already closed
  }
  const soft = setTimeout(() => {
    if (c.connected) c.disconnect();
  }, graceMs / 2);
  const hard = setTimeout(() => c.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(soft);
  clearTimeout(hard);
}

/**
 * Registers something to close at the end of the group; teardowns run in
 * reverse order of registration, after every child process has stopped.
 */
export function onTeardown(fn: () => Promise<void>): void {
  teardowns.push(fn);
}

let cleaned = false;

/** Stops every child, then runs the teardowns (last registered first). Idempotent. */
export async function cleanup(): Promise<void> {
  if (cleaned) return;
  cleaned = true;
  await Promise.all([...children].map((c) => stopChild(c, { type: 'stop' }, 4000)));
  for (const fn of teardowns.reverse()) await Promise.race([fn().catch(() => undefined), sleep(8000)]);
}

/** Runs a group's `main` with cleanup at the end, on failure and on SIGINT/SIGTERM. */
export async function runGroup(group: string, main: () => Promise<void>): Promise<void> {
  const log = logger(group);
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      log(`${sig}: stopping children and nats-server`);
      void cleanup().finally(() => process.exit(130));
    });
  }
  try {
    await main();
  } catch (err) {
    console.error(`[${group}] failed: ${(err as Error).stack ?? String(err)}`);
    process.exitCode = 1;
  } finally {
    await cleanup();
  }
}

/** Polls `cond` every `everyMs` until it holds or `timeoutMs` passes. */
export async function waitFor(cond: () => boolean, timeoutMs: number, everyMs = 1): Promise<boolean> {
  const end = performance.now() + timeoutMs;
  while (!cond()) {
    if (performance.now() > end) return false;
    await sleep(everyMs);
  }
  return true;
}

export { pool } from '../src/lib/pool.ts';

/** Rounds a latency to µs for the results file. */
export const ms = (v: number): number => Number(v.toFixed(3));

const CLK_TCK = 100;

/** CPU time (user + system) of process `pid` so far, in ms, from /proc/<pid>/stat; undefined when unreadable. */
export function procCpuMs(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name, which is in parentheses and may contain spaces.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(rest[11]);
    const stime = Number(rest[12]);
    return ((utime + stime) * 1000) / CLK_TCK;
  } catch {
    return undefined;
  }
}

/** Busy and total CPU time of the whole machine so far, ms (first line of /proc/stat). */
export function machineCpuMs(): { busy: number; total: number } | undefined {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '';
    const v = line.trim().split(/\s+/).slice(1).map(Number);
    const total = v.reduce((a, b) => a + b, 0);
    const idle = (v[3] ?? 0) + (v[4] ?? 0);
    return { busy: ((total - idle) * 1000) / CLK_TCK, total: (total * 1000) / CLK_TCK };
  } catch {
    return undefined;
  }
}
