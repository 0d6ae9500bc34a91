/**
 * The heartbeat thread of `registerSelf`: a worker with its own NATS
 * connection that writes the self-registration record every `heartbeatMs`,
 * so a service whose event loop is busy for a few seconds (CPU-bound work, a
 * long synchronous call) keeps its place in the route. It watches the main
 * thread's pulse (a timestamp the main thread writes into shared memory every
 * heartbeat) and withholds heartbeats while the main thread has been silent
 * for more than `maxStallMs`: a service stuck for good leaves its route one
 * TTL later, as a dead one does.
 *
 * Messages: main → worker `{type: 'stop', drainMs}`; worker → main
 * `{type: 'ready'}` after the first heartbeat, `{type: 'beat', count}`,
 * `{type: 'withheld', stalledMs}`, `{type: 'error', message, fatal}`,
 * `{type: 'stopped'}`.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { connectNats } from '../nats/connect.ts';
import { SelfRegWriter } from './self-register.ts';
import type { HeartbeatWorkerData, MainToWorker, WorkerToMain } from './heartbeat-messages.ts';


async function run(d: HeartbeatWorkerData): Promise<void> {
  const port = parentPort!;
  const send = (m: WorkerToMain): void => port.postMessage(m);
  const pulse = new BigInt64Array(d.pulse);
  let nc;
  let writer: SelfRegWriter;
  try {
    nc = await connectNats({ ...d.connect, name: d.name });
    writer = await SelfRegWriter.open(nc, d.prefix);
    await writer.put({ ...d.record, ts: Date.now() });
  } catch (err) {
    await nc?.close().catch(() => undefined);
    send({ type: 'error', message: (err as Error).message, fatal: true });
    return;
  }
  const conn = nc;
  let count = 1;
  send({ type: 'ready' });
  let inFlight: Promise<void> = Promise.resolve();
  const timer = setInterval(() => {
    const stalledMs = Date.now() - Number(Atomics.load(pulse, 0));
    if (stalledMs > d.maxStallMs) return void send({ type: 'withheld', stalledMs });
    inFlight = writer
      .put({ ...d.record, ts: Date.now() })
      .then(() => send({ type: 'beat', count: ++count }))
      .catch((err: unknown) => send({ type: 'error', message: (err as Error).message, fatal: false }));
  }, d.heartbeatMs);
  port.on('message', (m: MainToWorker) => {
    if (m.type !== 'stop') return;
    clearInterval(timer);
    void (async () => {
      try {
        await inFlight;
        await writer.leave(d.record, m.drainMs);
      } catch (err) {
        send({ type: 'error', message: (err as Error).message, fatal: false });
      } finally {
        await conn.drain().catch(() => conn.close());
        send({ type: 'stopped' });
        port.close();
      }
    })();
  });
}

if (parentPort && (workerData as { larsHeartbeat?: HeartbeatWorkerData } | undefined)?.larsHeartbeat) {
  void run((workerData as { larsHeartbeat: HeartbeatWorkerData }).larsHeartbeat);
}
