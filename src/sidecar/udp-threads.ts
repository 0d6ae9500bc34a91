/**
 * Lars' UDP ports served by several threads (`lars agent --threads N`, N > 1).
 *
 * The main thread binds the ports (so a port in use fails the start as with
 * one thread), then starts N threads (udp-thread.ts); each takes descriptors
 * of its own for the sockets of the ports it reads (socket-dup.ts,
 * `portsOfThread`): a datagram goes to one thread, which answers it from its
 * mirror of the agent's routes. The main thread keeps the one agent, its one NATS
 * connection and the HTTP API:
 *  - a route a thread's caller asks for is followed here, once; each new
 *    state the agent applies is encoded once into the route's arena in
 *    shared memory (route-arena.ts), which each thread reads when it next
 *    picks from the route: an update wakes no thread, and costs N decodes
 *    at most, each in a thread that picks from the route anyway;
 *  - reports come back in batches and go through the agent's `report`, so
 *    they are batched, published and acknowledged exactly as with one thread;
 *  - counters are in shared memory (one row per thread), summed on `stats`;
 *  - the route bound is the agent's (`RouteBudget`): threads see the number
 *    of routes followed and ask; this thread has the last word.
 * Closing: each thread closes its descriptors and posts its last reports
 * before it says `closed`; then the threads exit.
 */
import { Worker } from 'node:worker_threads';
import { dirname, extname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Socket } from 'node:dgram';
import type { Agent } from '../agent/agent.ts';
import { RouteStatus } from '../agent/route-follower.ts';
import { encode } from '../../schemas/codec.ts';
import { ArenaStatus, ArenaWriter } from './route-arena.ts';
import { silentLogger, type Logger } from '../lib/log.ts';
import type { RouteBudget } from './route-budget.ts';
import { UDP_COUNTER_SLOTS, bindUdp, udpStatsOf, type LarsUdpStats } from './lars-udp.ts';
import { HostCache } from './lars-udp.ts';
import { socketFd } from './socket-dup.ts';
import { REPORT_FIELDS, THREAD_COUNTER_SLOTS, THREAD_APPLIED, THREAD_PICKS, THREAD_REFUSED, type MainToThread, type MirrorPickOptions, type ThreadToMain, type UdpThreadData } from './thread-messages.ts';

export interface UdpThreadsOptions {
  agent: Agent;
  budget: RouteBudget;
  pick: MirrorPickOptions;
  threads: number;
  host: string;
  ports: readonly number[];
  recvBufferBytes?: number;
  log?: Logger;
  /** How long a thread may take to start or to close, ms; default 20000. */
  timeoutMs?: number;
}

/** The thread's file, beside this module: .ts in a checkout (run through tsx), .js once built. */
function threadFile(): string {
  const here = fileURLToPath(import.meta.url);
  return join(dirname(here), `udp-thread${extname(here) === '.ts' ? '.ts' : '.js'}`);
}

/**
 * The ports (indices) thread `t` of `threads` reads, of `ports`: as few
 * threads per port as covers every thread and every port. Every thread
 * reading a socket is woken for each of its datagrams (Node 20 has no
 * SO_REUSEPORT, and libuv no exclusive wake-ups), so a port is shared only
 * when there are more threads than ports: with at least as many ports,
 * port p is read by thread p mod threads alone; with fewer, thread t reads
 * port t mod ports.
 */
export function portsOfThread(t: number, threads: number, ports: number): number[] {
  if (ports < threads) return [t % ports];
  const out: number[] = [];
  for (let p = t; p < ports; p += threads) out.push(p);
  return out;
}

function startThread(data: UdpThreadData): Worker {
  const file = threadFile();
  // A checkout runs the TypeScript sources through tsx, whose loader a worker does not inherit: the worker registers it first.
  return file.endsWith('.ts')
    ? new Worker(`import('tsx/esm/api').then((t) => { t.register(); return import(${JSON.stringify(pathToFileURL(file).href)}); })`, { eval: true, workerData: { larsUdpThread: data } })
    : new Worker(file, { workerData: { larsUdpThread: data } });
}

interface Followed {
  /** Where the states the agent applies are written. */
  arena: ArenaWriter;
  /** A state was written (not only a status). */
  hasState: boolean;
  stop: () => void;
}

const PINO_LEVELS: Record<number, 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal'> = { 10: 'trace', 20: 'debug', 30: 'info', 40: 'warn', 50: 'error', 60: 'fatal' };

export class UdpThreads {
  private readonly o: UdpThreadsOptions;
  private readonly log: Logger;
  private readonly workers: Worker[] = [];
  private readonly exited = new Set<Worker>();
  private readonly counters: Float64Array[] = [];
  /** Messages posted to each thread (but `close`), to tell when it has taken them. */
  private readonly posted: number[] = [];
  /** Callers of `flushReports` waiting for each thread's `flushed`, in order. */
  private readonly flushWaiters: Array<Array<() => void>> = [];
  private readonly routes = new Int32Array(new SharedArrayBuffer(4));
  private readonly followed = new Map<number, Followed>();
  private readonly hosts = new HostCache();
  private readonly bound: number[];
  private closing: Promise<void> | undefined;

  private constructor(o: UdpThreadsOptions, bound: number[]) {
    this.o = o;
    this.log = (o.log ?? silentLogger()).child({ mod: 'udp-threads' });
    this.bound = bound;
  }

  static async start(o: UdpThreadsOptions): Promise<UdpThreads> {
    const sockets: Socket[] = [];
    const closeSockets = (): Promise<void[]> => Promise.all(sockets.splice(0).map((s) => new Promise<void>((r) => s.close(() => r()))));
    try {
      for (const port of o.ports) sockets.push(await bindUdp(o.host, port, o.recvBufferBytes ?? 4 * 2 ** 20));
    } catch (err) {
      await closeSockets();
      throw err;
    }
    const t = new UdpThreads(o, sockets.map((s) => s.address().port));
    try {
      await t.startThreads(sockets.map(socketFd));
    } catch (err) {
      await t.close();
      throw err;
    } finally {
      // every thread has descriptors of its own (or failed): these are no longer needed
      await closeSockets();
    }
    return t;
  }

  private async startThreads(fds: number[]): Promise<void> {
    const timeoutMs = this.o.timeoutMs ?? 20_000;
    const ready: Array<Promise<void>> = [];
    for (let i = 0; i < this.o.threads; i++) {
      const counters = new SharedArrayBuffer(THREAD_COUNTER_SLOTS * 8);
      this.counters.push(new Float64Array(counters));
      this.posted.push(0);
      this.flushWaiters.push([]);
      const own = portsOfThread(i, this.o.threads, fds.length).map((p) => fds[p]!);
      const w = startThread({ index: i, threads: this.o.threads, ports: fds.length, fds: own, pick: this.o.pick, maxRoutes: this.o.budget.max, counters, routes: this.routes.buffer as SharedArrayBuffer, logLevel: this.log.level });
      this.workers.push(w);
      w.once('exit', () => this.exited.add(w));
      ready.push(
        new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`UDP thread ${i} did not start within ${timeoutMs} ms`)), timeoutMs);
          w.on('message', (m: ThreadToMain) => {
            if (m.type === 'ready') {
              clearTimeout(timer);
              resolve();
            } else if (m.type === 'error') {
              clearTimeout(timer);
              reject(new Error(`UDP thread ${i}: ${m.message}`));
            } else this.onMessage(i, m);
          });
          w.on('error', (err) => {
            clearTimeout(timer);
            this.log.error({ err, thread: i }, 'UDP thread failed');
            reject(err);
          });
        }),
      );
    }
    await Promise.all(ready);
  }

  /** The bound ports, in the order given. */
  ports(): number[] {
    return [...this.bound];
  }

  /** Every thread's counters, summed. */
  stats(): LarsUdpStats {
    const sum = new Float64Array(UDP_COUNTER_SLOTS);
    for (const c of this.counters) for (let i = 0; i < UDP_COUNTER_SLOTS; i++) sum[i]! += c[i]!;
    return udpStatsOf(sum);
  }

  /** Each thread's counters. */
  threadStats(): LarsUdpStats[] {
    return this.counters.map((c) => udpStatsOf(c));
  }

  /** Picks made by the threads (the agent counts its own). */
  picks(): number {
    return this.counters.reduce((a, c) => a + c[THREAD_PICKS]!, 0);
  }

  /** New routes the threads refused because of the route bound (the main thread's budget counts its own). */
  refused(): number {
    return this.counters.reduce((a, c) => a + c[THREAD_REFUSED]!, 0);
  }

  /** True when every thread has taken every message posted to it so far (then it picks from the states the agent applied). */
  inSync(): boolean {
    return this.counters.every((c, i) => c[THREAD_APPLIED] === this.posted[i]);
  }

  /**
   * Has every thread send the reports it holds (at most REPORT_FLUSH_MS old):
   * resolves once the main thread's agent has them all, so that an agent
   * flush after it covers every report the threads had read.
   */
  async flushReports(): Promise<void> {
    if (this.closing) return this.closing;
    await Promise.all(
      this.workers.map((w, i) =>
        this.exited.has(w)
          ? Promise.resolve()
          : new Promise<void>((resolve) => {
              this.flushWaiters[i]!.push(resolve);
              w.postMessage({ type: 'flush' } satisfies MainToThread);
            }),
      ),
    );
  }

  private post(i: number, m: MainToThread): void {
    const w = this.workers[i];
    if (w === undefined) return;
    this.posted[i]!++;
    w.postMessage(m);
  }

  private onMessage(i: number, m: ThreadToMain): void {
    switch (m.type) {
      case 'follow':
        return this.follow(i, m.modid, m.cmdid);
      case 'reports':
        return this.reports(m.n, m.data);
      case 'log':
        return this.logLine(m.line);
      case 'flushed':
        return this.flushWaiters[i]!.shift()?.();
      default:
    }
  }

  private follow(i: number, modid: number, cmdid: number): void {
    if (this.closing) return;
    const k = modid * 2 ** 31 + cmdid;
    const f = this.followed.get(k);
    // (a thread that asks for a route followed already has not taken its arena yet)
    if (f !== undefined) return this.post(i, { type: 'arena', modid, cmdid, sab: f.arena.sab });
    if (!this.o.budget.allows(modid, cmdid)) return this.post(i, { type: 'refused', modid, cmdid });
    const entry: Followed = { arena: new ArenaWriter(), hasState: false, stop: () => undefined };
    this.followed.set(k, entry);
    const all = (): void => {
      for (let t = 0; t < this.workers.length; t++) this.post(t, { type: 'arena', modid, cmdid, sab: entry.arena.sab });
    };
    all();
    const agent = this.o.agent;
    entry.stop = agent.watchRoute(modid, cmdid, (s) => {
      // encoded once, for every thread; a state larger than the arena goes into a new one
      entry.hasState = true;
      if (entry.arena.write(ArenaStatus.state, encode(s))) all();
    });
    Atomics.store(this.routes, 0, agent.follower.stats().routes);
    const fr = agent.follower.peek(modid, cmdid);
    void fr?.loaded.then(() => {
      if (fr.status === RouteStatus.unregistered && !entry.hasState && !this.closing) entry.arena.write(ArenaStatus.unregistered);
    });
  }

  private reports(n: number, d: Int32Array): void {
    const agent = this.o.agent;
    for (let i = 0, at = 0; i < n; i++, at += REPORT_FIELDS) {
      try {
        agent.report(d[at]!, d[at + 1]!, this.hosts.hostFor(d[at + 2]!, d[at + 3]!), d[at + 4]!, (d[at + 5]! >>> 0) / 1000);
      } catch (err) {
        this.log.error({ err }, 'report from a UDP thread refused');
      }
    }
  }

  private logLine(line: string): void {
    try {
      const o = JSON.parse(line) as Record<string, unknown>;
      const level = PINO_LEVELS[typeof o['level'] === 'number' ? o['level'] : 30] ?? 'info';
      const msg = o['msg'];
      // the main thread's logger stamps its own level and time
      delete o['msg'];
      delete o['level'];
      delete o['time'];
      this.log[level](o, typeof msg === 'string' ? msg : '');
    } catch {
      this.log.warn({ line: line.slice(0, 200) }, 'unreadable log line from a UDP thread');
    }
  }

  /** Stops every thread: each closes its descriptors and posts its last reports (handed to the agent) before it exits. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      const timeoutMs = this.o.timeoutMs ?? 20_000;
      await Promise.all(
        this.workers.map(
          (w, i) =>
            new Promise<void>((resolve) => {
              if (this.exited.has(w)) return resolve();
              const timer = setTimeout(() => {
                this.log.error({ thread: i }, `UDP thread did not close within ${timeoutMs} ms; stopped`);
                void w.terminate();
              }, timeoutMs);
              w.once('exit', () => {
                clearTimeout(timer);
                // a flush waiting on a thread that stopped: its reports came before its exit
                for (const f of this.flushWaiters[i]!.splice(0)) f();
                resolve();
              });
              w.postMessage({ type: 'close' } satisfies MainToThread);
            }),
        ),
      );
      for (const f of this.followed.values()) f.stop();
    })();
    return this.closing;
  }
}
