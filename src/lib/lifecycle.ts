/**
 * Start-up and shutdown of the long-running commands (`lars dev`, `lars node`,
 * `lars sink`, `lars route watch`). What a command starts it registers as a
 * shutdown step; on SIGINT or SIGTERM the steps run in reverse order (last
 * started, first stopped: agents before the route node before the NATS
 * connection before the nats-server), each announced on stderr. The whole
 * shutdown has a deadline counted from the first signal; a second signal or
 * the deadline ends the process at once, and the exit hooks of the child
 * servers (src/nats/natsd.ts) kill those. Steps run without a stop being asked
 * for (a start-up that failed) are not announced, but at log level debug:
 * the user sees the one line of the error.
 *
 * A command whose parent goes away stops the same way: a supervisor that
 * stops `npx lars console` with SIGTERM ends npx, and npm's shell between
 * them need not pass the signal on; the command, handed to init, would run
 * on unseen. The parent's pid (and, when the parent is a shell, the shell's
 * parent's) is checked every second; a change is taken as a SIGTERM.
 * LARS_KEEP_ORPHANED=1 turns this off (a command started in the background
 * that is meant to outlive its shell).
 */
import { readFileSync } from 'node:fs';

/** Default time from the first signal to a forced exit. */
export const SHUTDOWN_DEADLINE_MS = 10_000;

/** How often the parent is checked. */
export const PARENT_CHECK_MS = 1000;

/** Shells npm and npx start a bin through (`sh -c lars …`): their parent is the one that matters. */
const SHELLS = new Set(['sh', 'dash', 'bash', 'zsh', 'ash', 'busybox']);

/** A process's parent pid and command name, from /proc (Linux); undefined elsewhere or when it is gone. */
function procInfo(pid: number): { ppid: number; comm: string } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const close = stat.lastIndexOf(')');
    const comm = stat.slice(stat.indexOf('(') + 1, close);
    const ppid = Number(stat.slice(close + 2).split(' ')[1]);
    return Number.isInteger(ppid) ? { ppid, comm } : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The ancestors this process lives by: its parent, and the parent's parent
 * when the parent is a shell (npx → sh -c → node: npx is the one a supervisor
 * stops). An empty list when there is nothing to watch (started by init or a
 * container's pid 0).
 */
export function watchedAncestors(ppid: number = process.ppid, info: (pid: number) => { ppid: number; comm: string } | undefined = procInfo): number[] {
  if (ppid <= 1) return [];
  const parent = info(ppid);
  if (parent && SHELLS.has(parent.comm) && parent.ppid > 1) return [ppid, parent.ppid];
  return [ppid];
}

/** Whether the ancestors recorded at start are still this process's (same parent, and the same parent of a shell parent). */
export function sameAncestors(recorded: readonly number[], ppid: number = process.ppid, info: (pid: number) => { ppid: number; comm: string } | undefined = procInfo): boolean {
  if (recorded.length === 0) return true;
  if (ppid !== recorded[0]) return false;
  if (recorded.length > 1) {
    const parent = info(ppid);
    // unreadable (not Linux, or a race with the parent's exit): judged by the direct parent alone
    if (parent !== undefined && parent.ppid !== recorded[1]) return false;
  }
  return true;
}

/** What the parent watch needs (the process by default; a fake in tests). */
export interface ParentWatch {
  /** The ancestors to watch, taken at start; empty: nothing to watch. */
  ancestors(): number[];
  /** Whether they are still this process's. */
  same(recorded: readonly number[]): boolean;
  /** Check interval, ms. */
  intervalMs?: number;
}

const processParentWatch: ParentWatch = {
  ancestors: () => watchedAncestors(),
  same: (recorded) => sameAncestors(recorded),
};

/** Where the signals come from (the process, or an emitter in tests). */
export interface SignalSource {
  on(signal: 'SIGINT' | 'SIGTERM', listener: (signal: NodeJS.Signals) => void): unknown;
  off(signal: 'SIGINT' | 'SIGTERM', listener: (signal: NodeJS.Signals) => void): unknown;
}

export interface LifecycleOptions {
  /** Resolves when something else asks to stop (the CLI's own signal handling). */
  stopSignal?: Promise<void>;
  /** Progress lines ("stopping route node…"); default stderr. */
  note?: (line: string) => void;
  /** From the first signal to a forced exit. */
  deadlineMs?: number;
  signals?: SignalSource;
  /** Ends the process; default process.exit. */
  exit?: (code: number) => void;
  /** Announce the steps of a shutdown nobody asked for (after a failed start) too; default false. */
  debug?: boolean;
  /**
   * Stop when the parent goes away: default the process's parent, unless
   * LARS_KEEP_ORPHANED=1; false: no watch. Tests pass a fake.
   */
  parent?: ParentWatch | false;
}

interface Step {
  what: string;
  stop: () => unknown;
}

export class Lifecycle {
  /** Resolves on the first SIGINT/SIGTERM (or the caller's stop signal). */
  readonly stopped: Promise<void>;
  private readonly steps: Step[] = [];
  private readonly note: (line: string) => void;
  private readonly deadlineMs: number;
  private readonly signals: SignalSource;
  private readonly exit: (code: number) => void;
  private readonly debug: boolean;
  /** A stop was asked for (signal, stop signal, requestStop): the steps are announced. */
  private asked = false;
  private signalCount = 0;
  private deadline: NodeJS.Timeout | undefined;
  private shuttingDown: Promise<void> | undefined;
  private current: string | undefined;
  private resolveStopped!: () => void;
  private parentTimer: NodeJS.Timeout | undefined;
  private readonly onSignal = (signal: NodeJS.Signals): void => {
    this.signalCount++;
    if (this.signalCount === 1) {
      this.note(`${signal}: stopping (again to force)`);
      this.requestStop();
      return;
    }
    this.note(`${signal} again: exiting now${this.current ? ` (was stopping ${this.current})` : ''}`);
    this.exit(130);
  };

  constructor(opts: LifecycleOptions = {}) {
    this.note = opts.note ?? ((l) => void process.stderr.write(`${l}\n`));
    this.deadlineMs = opts.deadlineMs ?? SHUTDOWN_DEADLINE_MS;
    this.signals = opts.signals ?? process;
    this.exit = opts.exit ?? ((code) => process.exit(code));
    this.debug = opts.debug ?? false;
    this.stopped = new Promise<void>((r) => (this.resolveStopped = r));
    this.signals.on('SIGINT', this.onSignal);
    this.signals.on('SIGTERM', this.onSignal);
    void opts.stopSignal?.then(() => this.requestStop());
    const parent = opts.parent ?? (process.env['LARS_KEEP_ORPHANED'] === '1' ? false : processParentWatch);
    if (parent !== false) this.watchParent(parent);
  }

  /** A parent that goes away counts as a SIGTERM (see the module comment). */
  private watchParent(watch: ParentWatch): void {
    const recorded = watch.ancestors();
    if (recorded.length === 0) return;
    this.parentTimer = setInterval(() => {
      if (watch.same(recorded)) return;
      clearInterval(this.parentTimer);
      this.parentTimer = undefined;
      if (this.signalCount > 0 || this.deadline !== undefined) return;
      this.signalCount++;
      const who = recorded.length > 1 ? `parent process ${recorded[1]} (through shell ${recorded[0]})` : `parent process ${recorded[0]}`;
      this.note(`${who} is gone: stopping as on SIGTERM`);
      this.requestStop();
    }, watch.intervalMs ?? PARENT_CHECK_MS);
    // the watch alone never keeps the process alive
    this.parentTimer.unref();
  }

  /** Registers what to do to stop something just started; steps run last-registered first. */
  add(what: string, stop: () => unknown): void {
    this.steps.push({ what, stop });
  }

  /** Stops by itself (e.g. `--duration` elapsed): the same path as a signal. */
  requestStop(): void {
    this.asked = true;
    this.startDeadline();
    this.resolveStopped();
  }

  private startDeadline(): void {
    if (this.deadline === undefined) {
      this.deadline = setTimeout(() => {
        this.note(`still stopping ${this.current ?? 'the start-up'} after ${(this.deadlineMs / 1000).toFixed(0)} s: exiting now`);
        this.exit(1);
      }, this.deadlineMs);
      // A clean shutdown that empties the event loop ends the process without waiting for this.
      this.deadline.unref();
    }
  }

  /** Runs one stop step now, announced like the registered ones (for commands that stop inline). */
  async step(what: string, stop: () => unknown): Promise<void> {
    this.current = what;
    const announce = this.asked || this.debug;
    if (announce) this.note(`stopping ${what}…`);
    try {
      await stop();
    } catch (err) {
      if (announce) this.note(`stopping ${what} failed: ${(err as Error)?.message ?? String(err)}`);
    } finally {
      this.current = undefined;
    }
  }

  /** Runs the registered steps once, in reverse order; a failing step is reported and the next one runs. */
  shutdown(): Promise<void> {
    this.shuttingDown ??= (async () => {
      this.startDeadline();
      this.resolveStopped();
      for (const step of this.steps.splice(0).reverse()) await this.step(step.what, step.stop);
      clearTimeout(this.deadline);
      clearInterval(this.parentTimer);
      this.signals.off('SIGINT', this.onSignal);
      this.signals.off('SIGTERM', this.onSignal);
    })();
    return this.shuttingDown;
  }
}

/**
 * Runs a long-running command body: `fn` starts things and registers their
 * shutdown steps, then awaits `life.stopped`. The steps run however `fn`
 * ends (a start-up error included, so an open connection never keeps the
 * process alive after the error is printed).
 */
export async function withLifecycle<T>(
  ctx: { stopSignal: Promise<void>; config?: { logLevel?: string } },
  fn: (life: Lifecycle) => Promise<T>,
  opts: Omit<LifecycleOptions, 'stopSignal'> = {},
): Promise<T> {
  const debug = ctx.config?.logLevel === 'debug' || ctx.config?.logLevel === 'trace';
  const life = new Lifecycle({ debug, ...opts, stopSignal: ctx.stopSignal });
  try {
    return await fn(life);
  } finally {
    await life.shutdown();
  }
}

/** What `closeConnection` needs of a NATS connection. */
export interface Drainable {
  drain(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Drains a NATS connection (its pending publishes go out), or closes it when
 * the drain cannot finish (the server is gone and the client is reconnecting).
 */
export async function closeConnection(nc: Drainable, timeoutMs = 3000): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const giveUp = new Promise<void>((resolve) => {
    timer = setTimeout(() => void nc.close().finally(resolve), timeoutMs);
  });
  try {
    await Promise.race([nc.drain().catch(() => nc.close()), giveUp]);
  } finally {
    clearTimeout(timer);
  }
}
