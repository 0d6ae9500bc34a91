/**
 * Report publisher for the `core` group's ingest benchmark
 * (report_ingest_per_sec, report_ingest_per_sec_acked), run as a separate
 * process by bench/core/ingest.ts: publishes pre-encoded, valid ReportBatch
 * messages as fast as the credit window allows, either on core NATS or as
 * JetStream publishes (`js.publish` with a `msgID`) with at most `ackWindow`
 * of them awaiting their ack.
 *
 * Flow control: the bench process sends the number of batches its route node
 * has consumed (IPC, every few ms); the publishers together keep at most
 * `windowBatches` beyond it in flight, each its 1/count share. Without it a
 * publisher outruns the node, the server buffers up to max_pending and then
 * cuts the node off as a slow consumer, which measures nothing useful.
 */
import { setImmediate as yieldLoop } from 'node:timers/promises';
import { jetstream } from '@nats-io/jetstream';
import { connectNats, names as makeNames, partitionOf, type ReportBatch, type ReportTuple } from '../src/index.ts';
import { encode } from '../schemas/codec.ts';
import { childConfig, epochMs, exitWithParent, toParent, type FromPublisher, type PublisherConfig, type ToPublisher } from './_common.ts';

const cfg = childConfig<PublisherConfig>();
const n = makeNames(cfg.prefix);
const nc = await connectNats({ url: cfg.url, name: `bench-publisher-${cfg.index}` });
exitWithParent(() => nc.close());
const js = cfg.mode === 'jetstream' ? jetstream(nc) : undefined;

// One pre-encoded batch per route: reportsPerBatch reports spread round-robin
// over the route's hosts, latencies 5..15 ms (floats, as agents send them), one
// report in errorEvery an error. errorEvery is prime and not a multiple of the
// host count, so a host's errors are never consecutive and its error rate stays
// ~1/errorEvery: below every ejection threshold, so the node's fast path runs
// without state changes.
const subjects: string[] = [];
const payloads: Uint8Array[] = [];
for (const [modid, cmdid, hosts] of cfg.routes) {
  const reports: ReportTuple[] = [];
  for (let i = 0; i < cfg.reportsPerBatch; i++) {
    const rc = i % cfg.errorEvery === cfg.errorEvery >> 1 ? 503 : 0;
    const lat = 5 + ((i * 7919 + modid * 31 + cmdid) % 1000) / 100 + 0.25;
    reports.push([i % hosts.length, rc, lat, Math.floor(i / 100)]);
  }
  const batch: ReportBatch = { v: 1, sender: `bench-publisher-${cfg.index}`, modid, cmdid, ts: Date.now(), hosts, reports };
  subjects.push(n.report(partitionOf(modid, cmdid, cfg.partitions), modid, cmdid));
  payloads.push(encode(batch));
}
// Publishers start at different routes so they do not hit the same route in step.
let k = Math.floor((cfg.index * subjects.length) / cfg.count);

let allowed = 0;
let published = 0;
let acked = 0;
let failed = 0;
let waitMs = 0;
let ackWaitMs = 0;
/** JetStream publishes awaiting their ack. */
let outstanding = 0;
let running = false;
let stopping = false;
let wake: (() => void) | undefined;

process.on('message', (m: ToPublisher) => {
  switch (m.type) {
    case 'credit': {
      const a = Math.floor((m.consumed + cfg.windowBatches) / cfg.count);
      if (a > allowed) allowed = a;
      wake?.();
      break;
    }
    case 'start':
      if (!running) {
        running = true;
        void loop();
      }
      break;
    case 'stats':
      {
        const u = process.cpuUsage();
        send({ type: 'stats', published, acked: js ? acked : published, failed, waitMs, ackWaitMs, cpuUs: u.user + u.system, t: epochMs() });
      }
      break;
    case 'stop':
      stopping = true;
      wake?.();
      break;
  }
});

function send(m: FromPublisher): void {
  toParent(m);
}

const msgIdBase = `bp${cfg.index}-${Date.now().toString(36)}-`;

function onAck(): void {
  acked++;
  outstanding--;
  wake?.();
}
function onNack(): void {
  failed++;
  outstanding--;
  wake?.();
}

async function loop(): Promise<void> {
  while (!stopping) {
    if (published >= allowed) {
      const t = epochMs();
      await new Promise<void>((r) => (wake = r));
      wake = undefined;
      waitMs += epochMs() - t;
      continue;
    }
    if (js && outstanding >= cfg.ackWindow) {
      const t = epochMs();
      await new Promise<void>((r) => (wake = r));
      wake = undefined;
      ackWaitMs += epochMs() - t;
      continue;
    }
    // Publish a burst, then yield so the client writes its buffer to the socket.
    let burst = 0;
    while (published < allowed && burst < 64) {
      if (js) {
        if (outstanding >= cfg.ackWindow) break;
        outstanding++;
        js.publish(subjects[k]!, payloads[k]!, { msgID: msgIdBase + published }).then(onAck, onNack);
      } else {
        nc.publish(subjects[k]!, payloads[k]!);
      }
      if (++k === subjects.length) k = 0;
      published++;
      burst++;
    }
    await yieldLoop();
  }
  const end = epochMs() + 5000;
  while (outstanding > 0 && epochMs() < end) await new Promise((r) => setTimeout(r, 5));
  await nc.flush().catch(() => undefined);
  await nc.close().catch(() => undefined);
  send({ type: 'stopped', published });
  process.disconnect?.();
}

send({ type: 'ready', batchBytes: payloads[0]?.length ?? 0 });
