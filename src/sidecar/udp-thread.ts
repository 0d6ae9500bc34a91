/**
 * One UDP thread of `lars agent --threads N` (udp-threads.ts starts them):
 * descriptors of its own for the sidecar's bound ports (socket-dup.ts),
 * served by the same LarsUdpServer as the single-thread sidecar, picking
 * from a mirror of the agent's routes (pick-mirror.ts) and handing reports
 * to the main thread in batches: at most REPORT_BATCH per message, sent
 * REPORT_FLUSH_MS after the first report of a batch at the latest (the main
 * thread then wakes once per batch, not once per report; the agent's own
 * batcher waits longer). Its counters live in
 * shared memory the main thread sums. Messages: thread-messages.ts.
 */
import { parentPort, workerData } from 'node:worker_threads';
import pino from 'pino';
import { HostCache, LarsUdpServer } from './lars-udp.ts';
import { PickMirror } from './pick-mirror.ts';
import { ownSockets } from './socket-dup.ts';
import { REPORT_FIELDS, THREAD_APPLIED, type MainToThread, type ThreadToMain, type UdpThreadData } from './thread-messages.ts';

/** Reports per message to the main thread, at most. */
const REPORT_BATCH = 1024;
/** How long a report waits for others before its batch goes to the main thread, ms. */
const REPORT_FLUSH_MS = 2;

/** Reports of this thread on their way to the main thread's agent. */
class ReportsOut {
  private buf = new Int32Array(REPORT_BATCH * REPORT_FIELDS);
  private n = 0;
  private pending: ReturnType<typeof setTimeout> | undefined;
  private readonly send: (m: ThreadToMain, transfer: ArrayBuffer[]) => void;

  constructor(send: (m: ThreadToMain, transfer: ArrayBuffer[]) => void) {
    this.send = send;
  }

  add(modid: number, cmdid: number, ip: number, port: number, retcode: number, latencyUs: number): void {
    const b = this.buf;
    let at = this.n * REPORT_FIELDS;
    b[at++] = modid;
    b[at++] = cmdid;
    b[at++] = ip;
    b[at++] = port;
    b[at++] = retcode;
    b[at] = latencyUs;
    if (++this.n === REPORT_BATCH) this.flush();
    else this.pending ??= setTimeout(this.flush, REPORT_FLUSH_MS);
  }

  readonly flush = (): void => {
    if (this.pending !== undefined) clearTimeout(this.pending);
    this.pending = undefined;
    const n = this.n;
    if (n === 0) return;
    this.n = 0;
    let data: Int32Array;
    if (n === REPORT_BATCH) {
      data = this.buf;
      this.buf = new Int32Array(REPORT_BATCH * REPORT_FIELDS);
    } else data = this.buf.slice(0, n * REPORT_FIELDS);
    this.send({ type: 'reports', n, data }, [data.buffer as ArrayBuffer]);
  };
}

async function run(d: UdpThreadData): Promise<void> {
  const port = parentPort!;
  const send = (m: ThreadToMain, transfer: ArrayBuffer[] = []): void => port.postMessage(m, transfer);
  // log lines go to the main thread's logger
  const log = pino({ level: d.logLevel, base: { thread: d.index } }, { write: (line: string) => send({ type: 'log', line }) });
  let sockets;
  try {
    sockets = await ownSockets(d.fds);
  } catch (err) {
    send({ type: 'error', message: (err as Error).message });
    port.close();
    return;
  }
  const counters = new Float64Array(d.counters);
  const hosts = new HostCache();
  const out = new ReportsOut(send);
  const mirror = new PickMirror({
    pick: d.pick,
    index: d.index,
    threads: d.threads,
    ports: d.ports,
    maxRoutes: d.maxRoutes,
    counters,
    followed: new Int32Array(d.routes),
    hosts,
    follow: (modid, cmdid) => send({ type: 'follow', modid, cmdid }),
    report: (modid, cmdid, ip, p, retcode, latencyUs) => out.add(modid, cmdid, ip, p, retcode, latencyUs),
  });
  const server = LarsUdpServer.adopt({ agent: mirror, budget: mirror, log, counters }, sockets, hosts);
  port.on('message', (m: MainToThread) => {
    if (m.type === 'arena' || m.type === 'refused') counters[THREAD_APPLIED]!++;
    switch (m.type) {
      case 'arena':
        return mirror.arena(m.modid, m.cmdid, m.sab);
      case 'refused':
        return mirror.refused(m.modid, m.cmdid);
      case 'flush':
        out.flush();
        return send({ type: 'flushed' });
      case 'close':
        void server.close().then(() => {
          // the last reports, then `closed`: the main thread has every report before it stops waiting
          out.flush();
          send({ type: 'closed' });
          port.close();
        });
    }
  });
  send({ type: 'ready' });
}

const data = (workerData as { larsUdpThread?: UdpThreadData } | undefined)?.larsUdpThread;
if (parentPort && data) void run(data);
