/**
 * Report ingest of the `core` group: one route node in the bench process,
 * publishers in separate processes (bench/_publisher.ts) sending 1000-report
 * batches over 100 routes. Two variants in the same run:
 *  - core: plain core-NATS publishes (report_ingest_per_sec);
 *  - acked: the same batches as JetStream publishes with a msgID into the
 *    REPORTS stream, a window of outstanding publishes per publisher, while
 *    the node keeps consuming the same subjects with its core subscriptions
 *    (report_ingest_per_sec_acked).
 */
import type { ChildProcess } from 'node:child_process';
import { jetstreamManager } from '@nats-io/jetstream';
import type { RouteNodeStats } from '../../src/index.ts';
import { ensureStreams } from '../../src/nats/streams.ts';
import { epochMs, sleep, type FromPublisher, type PublisherConfig, type ToPublisher } from '../_common.ts';
import { QUICK, askAll, envInt, nextMessage, procCpuMs, spawnChild, stopChild } from '../_harness.ts';
import type { Metric } from '../lib.ts';
import { INGEST_ROUTES, P, REPORTS_PER_BATCH, log, type CoreContext } from './setup.ts';

/** JetStream publishes each publisher may have awaiting their ack. */
const ACK_WINDOW = 64;
const WARM_MS = QUICK ? 1000 : 2000;
const WINDOW_MS = QUICK ? 2000 : 5000;

type Mode = PublisherConfig['mode'];

export interface IngestRun {
  mode: Mode;
  publishers: number;
  ingest: number;
  batchesPerSec: number;
  /** Reports published per second by the publishers (in acked mode: acknowledged). */
  publish: number;
  /** Share of time the publishers waited for node credit. */
  publisherWait: number;
  /** Share of time the publishers waited with a full ack window (acked mode). */
  ackWait: number;
  failed: number;
  /** CPU of the publisher processes and of the nats-server, in cores (1 = one core busy). */
  publisherCpu: number;
  serverCpu: number;
  batchBytes: number;
  events: number;
  rejects: number;
}

function rejectTotal(s: RouteNodeStats): number {
  return Object.values(s.rejects).reduce((a, b) => a + b, 0);
}

export async function ingestRun(ctx: CoreContext, mode: Mode, publishers: number): Promise<IngestRun> {
  const { node } = ctx;
  const pubs: ChildProcess[] = [];
  for (let i = 0; i < publishers; i++) {
    const cfg: PublisherConfig = {
      url: ctx.server.url,
      prefix: ctx.n.prefix,
      partitions: P,
      index: i,
      count: publishers,
      routes: ctx.ingestRoutes,
      reportsPerBatch: REPORTS_PER_BATCH,
      errorEvery: 97,
      windowBatches: 256,
      mode,
      ackWindow: ACK_WINDOW,
    };
    pubs.push(spawnChild('_publisher.ts', cfg));
  }
  const ready = await Promise.all(pubs.map((p) => nextMessage<FromPublisher, 'ready'>(p, 'ready', 30_000)));
  const base = node.stats().batches;
  const sendAll = (m: ToPublisher) => {
    for (const p of pubs) if (p.connected) p.send(m);
  };
  const credit = setInterval(() => sendAll({ type: 'credit', consumed: node.stats().batches - base }), 5);
  const serverPid = ctx.server.process.pid;
  try {
    sendAll({ type: 'credit', consumed: 0 });
    sendAll({ type: 'start' });
    await sleep(WARM_MS);
    const pubStats = () => askAll<FromPublisher, 'stats'>(pubs, { type: 'stats' } satisfies ToPublisher, 'stats');
    const s0 = node.stats();
    const t0 = epochMs();
    const srv0 = procCpuMs(serverPid);
    const p0 = await pubStats();
    await sleep(WINDOW_MS);
    const s1 = node.stats();
    const t1 = epochMs();
    const srv1 = procCpuMs(serverPid);
    const p1 = await pubStats();
    let publish = 0;
    let wait = 0;
    let ackWait = 0;
    let failed = 0;
    let pubCpu = 0;
    for (let i = 0; i < pubs.length; i++) {
      const a = p0[i]!;
      const b = p1[i]!;
      const el = b.t - a.t;
      publish += ((b.acked - a.acked) * REPORTS_PER_BATCH) / (el / 1000);
      wait += (b.waitMs - a.waitMs) / el / pubs.length;
      ackWait += (b.ackWaitMs - a.ackWaitMs) / el / pubs.length;
      failed += b.failed - a.failed;
      pubCpu += (b.cpuUs - a.cpuUs) / 1000 / el;
    }
    const secs = (t1 - t0) / 1000;
    return {
      mode,
      publishers,
      ingest: (s1.reports - s0.reports) / secs,
      batchesPerSec: (s1.batches - s0.batches) / secs,
      publish,
      publisherWait: wait,
      ackWait,
      failed,
      publisherCpu: pubCpu,
      serverCpu: srv0 !== undefined && srv1 !== undefined ? (srv1 - srv0) / (t1 - t0) : Number.NaN,
      batchBytes: ready[0]!.batchBytes,
      events: s1.events - s0.events,
      rejects: rejectTotal(s1) - rejectTotal(s0),
    };
  } finally {
    clearInterval(credit);
    await Promise.all(pubs.map((p) => stopChild(p, { type: 'stop' } satisfies ToPublisher)));
  }
}

function describe(r: IngestRun): string {
  const acked = r.mode === 'jetstream';
  return (
    `${acked ? 'acked (JetStream) ' : ''}${r.publishers} publisher(s): node ingest ${Math.round(r.ingest).toLocaleString('en-US')} reports/s (${Math.round(r.batchesPerSec)} batches/s of ${r.batchBytes} B), ` +
    `publishers ${Math.round(r.publish).toLocaleString('en-US')} reports/s${acked ? ' acknowledged' : ''}, waiting for node credit ${(r.publisherWait * 100).toFixed(1)}% of the time` +
    (acked ? `, with ${ACK_WINDOW} publishes awaiting acks ${(r.ackWait * 100).toFixed(1)}%, failed ${r.failed}` : '') +
    `; CPU: publishers ${r.publisherCpu.toFixed(2)} cores, nats-server ${r.serverCpu.toFixed(2)} cores; state changes ${r.events}, rejects ${r.rejects}`
  );
}

export async function benchIngest(ctx: CoreContext): Promise<Metric[]> {
  const fixed = process.env['BENCH_PUBLISHERS'] ? envInt('BENCH_PUBLISHERS', 1) : undefined;
  let run = await ingestRun(ctx, 'core', fixed ?? 1);
  log(describe(run));
  // A publisher that almost never waits for credit is the bottleneck: add a second one.
  if (fixed === undefined && run.publisherWait < 0.1) {
    const two = await ingestRun(ctx, 'core', 2);
    log(describe(two));
    if (two.ingest > run.ingest) run = two;
  }

  // Acked variant: the REPORTS stream exists only for it, so the other benchmarks keep measuring core NATS alone.
  const jsm = await jetstreamManager(ctx.nc);
  const streams = await ensureStreams(ctx.nc, ctx.n, { jsm, reports: { maxBytes: 2 ** 30 }, events: { maxBytes: 64 * 2 ** 20 } });
  let acked: IngestRun;
  try {
    acked = await ingestRun(ctx, 'jetstream', run.publishers);
    const info = await jsm.streams.info(streams.reports.config.name);
    log(describe(acked));
    log(`stream ${info.config.name}: ${info.state.messages} messages, ${Math.round(info.state.bytes / 2 ** 20)} MiB`);
  } finally {
    await jsm.streams.delete(streams.reports.config.name).catch(() => undefined);
    await jsm.streams.delete(streams.events.config.name).catch(() => undefined);
  }
  const windowNote = `${WINDOW_MS / 1000} s window`;
  return [
    { name: 'report_ingest_per_sec', value: run.ingest, unit: 'reports/s', target: '>= 500000', note: `1 node; ${REPORTS_PER_BATCH}-report batches over ${INGEST_ROUTES} routes x 10 hosts, ~1% errors; ${windowNote}` },
    { name: 'report_ingest_per_sec_acked', value: acked.ingest, unit: 'reports/s', note: `same batches as JetStream publishes (msgID, ${ACK_WINDOW} awaiting acks per publisher) into the REPORTS stream; node on core subscriptions` },
    { name: 'report_ingest_batches_per_sec', value: run.batchesPerSec, unit: 'batches/s', note: `${run.batchBytes} B per batch` },
    { name: 'report_publish_per_sec', value: run.publish, unit: 'reports/s', note: `${run.publishers} publisher process(es), credit-window flow control` },
    { name: 'report_publishers', value: run.publishers, unit: 'processes' },
    { name: 'report_publisher_wait_pct', value: run.publisherWait * 100, unit: '%', note: 'time publishers waited for the node (high = node-bound)' },
    { name: 'report_ingest_state_changes', value: run.events, unit: 'events', note: 'during the window; expected 0 (errors below thresholds)' },
    { name: 'report_publish_acked_per_sec', value: acked.publish, unit: 'reports/s', note: 'acked variant: reports in batches acknowledged by JetStream' },
    { name: 'report_acked_ack_wait_pct', value: acked.ackWait * 100, unit: '%', note: `acked variant: time publishers waited with ${ACK_WINDOW} publishes unacknowledged (high = JetStream-bound)` },
    { name: 'report_acked_publisher_wait_pct', value: acked.publisherWait * 100, unit: '%', note: 'acked variant: time publishers waited for the node (high = node-bound)' },
    { name: 'report_acked_server_cpu_cores', value: acked.serverCpu, unit: 'cores', note: 'acked variant: nats-server CPU (/proc/<pid>/stat) over the window' },
    { name: 'report_acked_failed', value: acked.failed, unit: 'publishes', note: 'acked variant: JetStream publishes that failed; expected 0' },
  ];
}
