/**
 * Simulated agents sending small report batches as JetStream publishes, for
 * the `cluster` group (acked_reports_per_sec_small_batches), run as a
 * separate process by bench/cluster/acked-small-batches.ts.
 *
 * Each simulated agent owns one pre-encoded ReportBatch of a few reports on
 * its route and publishes it with `js.publish(subject, data, { msgID })`,
 * keeping at most `window` publishes awaiting their ack, as an agent whose
 * report buffer waits for the stream's ack before it is dropped. The agents
 * of the process share a few connections.
 */
import { performance } from 'node:perf_hooks';
import { jetstream, type JetStreamClient } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
// Leaf modules rather than src/index.ts: a sender needs no route node or agent code.
import { connectNats } from '../src/nats/connect.ts';
import { names as makeNames, partitionOf } from '../schemas/subjects.ts';
import type { ReportBatch, ReportTuple } from '../schemas/messages.ts';
import { encode } from '../schemas/codec.ts';
import { benchHosts, childConfig, epochMs, exitWithParent, sleep, toParent, type FromSenders, type SendersConfig, type ToSenders } from './_common.ts';

const cfg = childConfig<SendersConfig>();
const n = makeNames(cfg.prefix);
const conns: NatsConnection[] = [];
for (let i = 0; i < cfg.connections; i++) conns.push(await connectNats({ url: cfg.url, name: `bench-senders-${cfg.first}-${i}` }));
const closeAll = async () => {
  await Promise.all(conns.map((c) => c.close().catch(() => undefined)));
};
exitWithParent(closeAll);
const clients: JetStreamClient[] = conns.map((c) => jetstream(c));

interface SimAgent {
  id: string;
  js: JetStreamClient;
  subject: string;
  payload: Uint8Array;
  seq: number;
}

const agents: SimAgent[] = [];
for (let j = 0; j < cfg.count; j++) {
  const i = cfg.first + j;
  const cmdid = (i % cfg.routes) + 1;
  const hosts = benchHosts(5 + (cmdid >> 8), cmdid & 255, cfg.hostsPerRoute).map((h) => [h.ip, h.port] as [string, number]);
  const reports: ReportTuple[] = Array.from({ length: cfg.reportsPerBatch }, (_, k) => [(i + k) % hosts.length, 0, 5 + ((i * 31 + k * 7) % 100) / 10, k * 10]);
  const id = `bench-agent-${i}`;
  const batch: ReportBatch = { v: 1, sender: id, modid: cfg.modid, cmdid, ts: Date.now(), hosts, reports };
  agents.push({ id, js: clients[j % clients.length]!, subject: n.report(partitionOf(cfg.modid, cmdid, cfg.partitions), cfg.modid, cmdid), payload: encode(batch), seq: 0 });
}

let acked = 0;
let failed = 0;
let publishes = 0;
let ackMs: number[] = [];
let stopping = false;
const runId = Date.now().toString(36);

async function lane(a: SimAgent): Promise<void> {
  while (!stopping) {
    const sampled = ++publishes % cfg.sampleEvery === 0;
    const t = sampled ? performance.now() : 0;
    try {
      await a.js.publish(a.subject, a.payload, { msgID: `${a.id}-${runId}-${a.seq++}` });
      acked++;
      if (sampled) ackMs.push(performance.now() - t);
    } catch {
      failed++;
      await sleep(10);
    }
  }
}

let lanes: Promise<void>[] = [];

process.on('message', (m: ToSenders) => {
  switch (m.type) {
    case 'start':
      if (lanes.length === 0) lanes = agents.flatMap((a) => Array.from({ length: cfg.window }, () => lane(a)));
      break;
    case 'stats': {
      const u = process.cpuUsage();
      const sample = ackMs;
      ackMs = [];
      send({ type: 'stats', acked, failed, cpuUs: u.user + u.system, t: epochMs(), ackMs: sample });
      break;
    }
    case 'stop':
      stopping = true;
      void Promise.race([Promise.all(lanes), sleep(5000)])
        .then(closeAll)
        .then(() => {
          send({ type: 'stopped', acked });
          process.disconnect?.();
        });
      break;
  }
});

function send(m: FromSenders): void {
  toParent(m);
}

// Every connection has reached the server before the parent starts the clock.
await Promise.all(conns.map((c) => c.flush()));
send({ type: 'ready', agents: agents.length, batchBytes: agents[0]?.payload.length ?? 0 });
