/**
 * Caller processes of the real call-policy tests: each runs
 * test/helpers/call-caller.ts (one SDK agent, an open load of calls) under
 * `node --import tsx`, and talks JSON lines: ready, stats every 100 ms, the
 * result at the end.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CallCallerConfig, CallLoadCounts } from './call-load.ts';
import { waitFor } from './wait.ts';

const SCRIPT = join(dirname(fileURLToPath(import.meta.url)), 'call-caller.ts');

export class CallCaller {
  readonly child: ChildProcess;
  ready = false;
  /** The latest stats line, and the result once the load ended. */
  stats: CallLoadCounts | undefined;
  result: CallLoadCounts | undefined;
  private err = '';
  readonly closed: Promise<void>;

  constructor(cfg: CallCallerConfig) {
    this.child = spawn(process.execPath, ['--import', 'tsx', SCRIPT, JSON.stringify(cfg)], { stdio: ['pipe', 'pipe', 'pipe'] });
    let buf = '';
    this.child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      const lines = buf.split('\n');
      buf = lines.pop() ?? '';
      for (const l of lines) {
        if (l.trim() === '') continue;
        const m = JSON.parse(l) as { ready?: boolean; stats?: CallLoadCounts; result?: CallLoadCounts };
        if (m.ready === true) this.ready = true;
        if (m.stats !== undefined) this.stats = m.stats;
        if (m.result !== undefined) this.result = m.result;
      }
    });
    this.child.stderr!.on('data', (d: Buffer) => {
      this.err = (this.err + d.toString()).slice(-8000);
    });
    this.child.stdin!.on('error', () => undefined);
    this.closed = new Promise<void>((r) => this.child.on('close', () => r()));
  }

  /** What the process wrote to stderr (the end of it). */
  output(): string {
    return this.err;
  }

  /** Throws when the process exited before its result. */
  alive(): void {
    if (this.child.exitCode !== null && this.result === undefined) throw new Error(`caller process exited with ${this.child.exitCode}: ${this.err}`);
  }

  send(msg: unknown): void {
    this.child.stdin!.write(`${JSON.stringify(msg)}\n`);
  }

  /** The latest stats once they satisfy `pred` (the process alive meanwhile). */
  async statsWhen(pred: (s: CallLoadCounts) => boolean, what: string, timeoutMs = 10_000): Promise<CallLoadCounts> {
    return waitFor(
      () => {
        this.alive();
        return this.stats !== undefined && pred(this.stats) ? this.stats : undefined;
      },
      { what, timeoutMs, explain: () => `last stats ${JSON.stringify(this.stats)}; ${this.err}` },
    );
  }

  /** Stops the load and waits for the result. */
  async finish(timeoutMs = 10_000): Promise<CallLoadCounts> {
    this.send({ stop: true });
    return this.waitResult(timeoutMs);
  }

  async waitResult(timeoutMs = 10_000): Promise<CallLoadCounts> {
    return waitFor(
      () => {
        this.alive();
        return this.result;
      },
      { what: 'the caller process result', timeoutMs, explain: () => this.err },
    );
  }

  /** Ends the process: stdin closed (it stops its load and exits); killed when it is still running a load the test gave up on. */
  async close(): Promise<void> {
    this.child.stdin!.end();
    if (this.child.exitCode === null && this.child.signalCode === null && this.result === undefined) this.child.kill('SIGKILL');
    await this.closed;
  }
}

/** Waits for every one of `callers` to be ready (its agent holding the route). */
export async function allReady(callers: readonly CallCaller[]): Promise<void> {
  await waitFor(
    () => {
      for (const k of callers) k.alive();
      return callers.every((k) => k.ready);
    },
    { what: 'caller processes ready', timeoutMs: 20_000, explain: () => callers.map((k) => k.output()).join('\n') },
  );
}
