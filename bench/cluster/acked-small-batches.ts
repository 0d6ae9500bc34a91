/**
 * Acknowledged ingest of small batches on one server
 * (acked_reports_per_sec_small_batches): 1,000 simulated agents in 2
 * processes (bench/_senders.ts), sharing 4 connections per process, publish
 * batches of 10 reports as JetStream publishes with a msgID into the REPORTS
 * stream (created with `ensureStreams`); each agent waits for the stream's
 * ack before its next batch. The figure is the rate of acknowledged reports.
 *
 * Where the time goes: the CPU of the nats-server (/proc/<pid>/stat), of the
 * sender processes (process.cpuUsage) and of the whole machine (/proc/stat)
 * are sampled over the same window, with the ack latency.
 *
 * Measured twice, on a fresh server each time: with the store synced on the
 * server's schedule (the figure above) and with every write synced before
 * its ack (src/nats/natsd.ts StoreSync.always: `sync_interval: always` on
 * nats-server 2.10+; on the installed 2.9.10, which has no such setting,
 * the store directory's synchronous-updates attribute), the cost of
 * durability across a power loss (acked_reports_per_sec_small_batches_sync_always).
 * BENCH_SMALL_SYNC [interval,always] chooses.
 */
import { randomBytes } from 'node:crypto';
import type { ChildProcess } from 'node:child_process';
import { jetstreamManager } from '@nats-io/jetstream';
// Leaf modules rather than src/index.ts: this group needs no route node or agent code.
import { names as makeNames, DEFAULT_PARTITIONS } from '../../schemas/subjects.ts';
import { ensureStreams } from '../../src/nats/streams.ts';
import { connectNats } from '../../src/nats/connect.ts';
import { StoreSync, startNatsServer } from '../../src/nats/natsd.ts';
import { epochMs, percentile, sleep, type FromSenders, type SendersConfig, type ToSenders } from '../_common.ts';
import { QUICK, askAll, envInt, logger, machineCpuMs, ms, nextMessage, procCpuMs, spawnChild, stopChild } from '../_harness.ts';
import type { Metric } from '../lib.ts';

const log = logger('cluster');
const AGENTS = envInt('BENCH_SMALL_AGENTS', 1000);
const PROCS = 2;
const CONNS_PER_PROC = envInt('BENCH_SMALL_CONNECTIONS', 4);
const REPORTS_PER_BATCH = 10;
const WINDOW_PER_AGENT = envInt('BENCH_SMALL_WINDOW', 1);
const ROUTES = 100;
const WARM_MS = QUICK ? 1000 : 3000;
const WINDOW_MS = QUICK ? 2000 : 10_000;
/** A process at or above this share of one core is CPU-bound (a Node process runs its JS on one core). */
const BUSY = 0.85;
const SYNCS = (process.env['BENCH_SMALL_SYNC'] ?? 'interval,always').split(',').filter((m): m is StoreSync => m === StoreSync.interval || m === StoreSync.always);

export async function benchAckedSmallBatches(): Promise<Metric[]> {
  const metrics: Metric[] = [];
  for (const sync of SYNCS) metrics.push(...(await measure(sync)));
  return metrics;
}

async function measure(sync: StoreSync): Promise<Metric[]> {
  // a server of its own per mode, stopped before the next: the two never share the machine
  const server = await startNatsServer({ sync });
  const nc = await connectNats({ url: server.url, name: 'bench-cluster' });
  const n = makeNames(`bk${randomBytes(3).toString('hex')}`);
  const jsm = await jetstreamManager(nc);
  const { reports } = await ensureStreams(nc, n, { jsm, reports: { maxBytes: 2 ** 30 } });
  log(`nats-server ${server.url} (store sync ${server.sync.sync}, by ${server.sync.how}), stream ${reports.config.name} on ${n.reportAll}${QUICK ? ', quick mode' : ''}`);

  const procs: ChildProcess[] = [];
  const per = Math.ceil(AGENTS / PROCS);
  for (let p = 0; p < PROCS; p++) {
    const cfg: SendersConfig = {
      url: server.url,
      prefix: n.prefix,
      partitions: DEFAULT_PARTITIONS,
      first: p * per,
      count: Math.min(per, AGENTS - p * per),
      connections: CONNS_PER_PROC,
      modid: 500,
      routes: ROUTES,
      hostsPerRoute: 10,
      reportsPerBatch: REPORTS_PER_BATCH,
      window: WINDOW_PER_AGENT,
      sampleEvery: 16,
    };
    procs.push(spawnChild('_senders.ts', cfg));
  }
  try {
    const ready = await Promise.all(procs.map((c) => nextMessage<FromSenders, 'ready'>(c, 'ready', 60_000)));
    for (const c of procs) c.send({ type: 'start' } satisfies ToSenders);
    await sleep(WARM_MS);
    const stats = () => askAll<FromSenders, 'stats'>(procs, { type: 'stats' } satisfies ToSenders, 'stats');
    const a = await stats();
    const t0 = epochMs();
    const srv0 = procCpuMs(server.process.pid);
    const m0 = machineCpuMs();
    await sleep(WINDOW_MS);
    const b = await stats();
    const t1 = epochMs();
    const srv1 = procCpuMs(server.process.pid);
    const m1 = machineCpuMs();
    const el = t1 - t0;

    let batches = 0;
    let failed = 0;
    const senderCpu: number[] = [];
    const ackMs: number[] = [];
    for (let i = 0; i < procs.length; i++) {
      const x = a[i]!;
      const y = b[i]!;
      batches += ((y.acked - x.acked) * 1000) / (y.t - x.t);
      failed += y.failed - x.failed;
      senderCpu.push((y.cpuUs - x.cpuUs) / 1000 / (y.t - x.t));
      ackMs.push(...y.ackMs);
    }
    const reportsPerSec = batches * REPORTS_PER_BATCH;
    const serverCpu = srv0 !== undefined && srv1 !== undefined ? (srv1 - srv0) / el : Number.NaN;
    const cores = m0 && m1 ? (m1.total - m0.total) / el : Number.NaN;
    const machineBusy = m0 && m1 ? (m1.busy - m0.busy) / (m1.total - m0.total) : Number.NaN;
    const senderTotal = senderCpu.reduce((s, v) => s + v, 0);
    const info = await jsm.streams.info(reports.config.name);

    log(
      `${AGENTS} agents in ${PROCS} processes x ${CONNS_PER_PROC} connections, ${WINDOW_PER_AGENT} publish(es) in flight each, batches of ${REPORTS_PER_BATCH} reports (${ready[0]!.batchBytes} B): ` +
        `${Math.round(reportsPerSec).toLocaleString('en-US')} reports/s acknowledged (${Math.round(batches).toLocaleString('en-US')} publishes/s), failed ${failed}; ` +
        `ack latency p50 ${percentile(ackMs, 50).toFixed(2)} / p99 ${percentile(ackMs, 99).toFixed(2)} ms; stream holds ${info.state.messages} messages`,
    );
    log(
      `CPU over the window: nats-server ${serverCpu.toFixed(2)} cores, senders ${senderCpu.map((c) => c.toFixed(2)).join(' + ')} cores, ` +
        `machine ${(machineBusy * 100).toFixed(0)}% busy of ${Number.isFinite(cores) ? cores.toFixed(1) : '?'} cores`,
    );
    // CPU per acknowledged publish is steadier than the rate on a shared machine: it bounds the rate this benchmark alone could reach.
    const serverUs = (serverCpu * 1e6) / batches;
    const senderUs = (senderTotal * 1e6) / batches;
    const bound = Number.isFinite(cores) ? (cores * 1e6) / (serverUs + senderUs) : Number.NaN;
    log(
      `CPU per acknowledged publish: nats-server ${serverUs.toFixed(1)} us, senders ${senderUs.toFixed(1)} us; ` +
        `with the ${Number.isFinite(cores) ? cores.toFixed(0) : '?'} cores to itself this setup would top out near ${Math.round(bound * REPORTS_PER_BATCH).toLocaleString('en-US')} reports/s (CPU-bound)`,
    );
    log(`bottleneck: ${bottleneck(serverCpu, senderCpu, machineBusy, cores, percentile(ackMs, 50))}`);
    const setup = `${AGENTS} agents, ${PROCS} processes x ${CONNS_PER_PROC} connections, ${REPORTS_PER_BATCH}-report batches, ${WINDOW_PER_AGENT} in flight per agent; ${WINDOW_MS / 1000} s window`;
    if (sync === StoreSync.always) {
      const how = server.sync.how === 'chattr' ? 'nats-server 2.9.10 has no sync_interval: the store directory synchronous (chattr +S), every write on disk before its ack' : 'sync_interval: always';
      return [
        { name: 'acked_reports_per_sec_small_batches_sync_always', value: reportsPerSec, unit: 'reports/s', note: `as acked_reports_per_sec_small_batches, ${how}; ${setup}` },
        { name: 'acked_small_batches_sync_always_ack_p50_ms', value: ms(percentile(ackMs, 50)), unit: 'ms' },
        { name: 'acked_small_batches_sync_always_ack_p99_ms', value: ms(percentile(ackMs, 99)), unit: 'ms' },
        { name: 'acked_small_batches_sync_always_server_cpu_cores', value: serverCpu, unit: 'cores', note: 'nats-server, /proc/<pid>/stat over the window' },
        { name: 'acked_small_batches_sync_always_failed', value: failed, unit: 'publishes', note: 'expected 0' },
      ];
    }
    return [
      { name: 'acked_reports_per_sec_small_batches', value: reportsPerSec, unit: 'reports/s', target: '>= 200000', note: `JetStream-acknowledged, 1 server, file store synced on the server's schedule; ${setup}` },
      { name: 'acked_publishes_per_sec_small_batches', value: batches, unit: 'publishes/s', note: `${ready[0]!.batchBytes} B per batch` },
      { name: 'acked_small_batches_ack_p50_ms', value: ms(percentile(ackMs, 50)), unit: 'ms', note: `js.publish -> ack, 1 in 16 publishes sampled (${ackMs.length})` },
      { name: 'acked_small_batches_ack_p99_ms', value: ms(percentile(ackMs, 99)), unit: 'ms' },
      { name: 'acked_small_batches_server_cpu_cores', value: serverCpu, unit: 'cores', note: 'nats-server, /proc/<pid>/stat over the window' },
      { name: 'acked_small_batches_sender_cpu_cores', value: senderTotal, unit: 'cores', note: `sum over the ${PROCS} sender processes (each at most ~1)` },
      { name: 'acked_small_batches_server_cpu_us_per_publish', value: serverUs, unit: 'us', note: 'nats-server CPU per acknowledged publish' },
      { name: 'acked_small_batches_sender_cpu_us_per_publish', value: senderUs, unit: 'us', note: 'sender CPU per acknowledged publish (client side of js.publish)' },
      { name: 'acked_small_batches_machine_busy_pct', value: machineBusy * 100, unit: '%', note: 'whole machine, /proc/stat' },
      { name: 'acked_small_batches_failed', value: failed, unit: 'publishes', note: 'expected 0' },
    ];
  } finally {
    await Promise.all(procs.map((c) => stopChild(c, { type: 'stop' } satisfies ToSenders, 8000)));
    await nc.close().catch(() => undefined);
    await server.stop();
  }
}

/**
 * Which side limits the rate. With one publish in flight per agent the rate
 * is agents / ack latency (Little's law), so the question is what makes an
 * ack slow: a sender process at its one core, the nats-server short of CPU,
 * the machine's cores taken (by this benchmark or by other work), or none of
 * them (the server's store path).
 */
function bottleneck(serverCpu: number, senderCpu: number[], machineBusy: number, cores: number, ackP50: number): string {
  const maxSender = Math.max(...senderCpu);
  const ours = serverCpu + senderCpu.reduce((s, v) => s + v, 0);
  const others = Math.max(0, machineBusy * cores - ours);
  const inFlight = AGENTS * WINDOW_PER_AGENT;
  const head = `${inFlight} publishes in flight / ack p50 ${ackP50.toFixed(1)} ms = ${Math.round((inFlight / ackP50) * 1000).toLocaleString('en-US')} publishes/s at most; `;
  if (maxSender >= BUSY) return head + `the publishers: a sender process uses ${maxSender.toFixed(2)} of its one core (JS: publish request, ack decode, promise per batch) while the server uses ${serverCpu.toFixed(2)} cores`;
  if (machineBusy >= 0.9) {
    const who = others > ours ? `mostly other work on the machine (${others.toFixed(2)} cores vs this benchmark's ${ours.toFixed(2)})` : `this benchmark (${ours.toFixed(2)} cores; other work ${others.toFixed(2)})`;
    return head + `the machine's CPU: ${(machineBusy * 100).toFixed(0)}% busy, ${who}; of this benchmark the nats-server takes ${serverCpu.toFixed(2)} cores and the senders ${(ours - serverCpu).toFixed(2)}: processes wait for a core, which lengthens every ack`;
  }
  if (serverCpu >= BUSY) return head + `the server's CPU: the nats-server uses ${serverCpu.toFixed(2)} cores, the senders at most ${maxSender.toFixed(2)} each`;
  return head + `waiting for acks: no process is CPU-bound (server ${serverCpu.toFixed(2)} cores, senders at most ${maxSender.toFixed(2)}); the server's store path latency limits the rate, more publishes in flight per agent (BENCH_SMALL_WINDOW) would raise it`;
}
