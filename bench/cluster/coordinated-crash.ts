/**
 * Acknowledged writes across a coordinated crash (coordinated_crash_*):
 * three nats-servers (test/helpers/nats-cluster.ts), the REPORTS stream and
 * a KV bucket at R3, load for a few seconds (acknowledged report-sized
 * JetStream publishes with a Nats-Msg-Id, `CONNS` connections with
 * `WINDOW` publishes in flight each, and KV puts over `KEYS` keys), then a
 * kill -9 of all three servers in the same tick, a restart of all three on
 * their stores, and a count of what was acknowledged before the kill and is
 * missing after: every acked msg id must be in the stream, every key's
 * stored revision at least the last one acknowledged.
 *
 * Run once per store sync mode (src/nats/natsd.ts StoreSync): `interval` (the
 * server's default, fsync every few minutes) and `always` (every write
 * synced before it is acknowledged; on the installed 2.9.10 the store
 * directories' synchronous-updates attribute). A kill -9 is a crash of the
 * processes, not of the machine: what the kernel's page cache holds survives
 * it either way; a power loss is not something this machine can stage.
 *
 * Knobs: BENCH_CRASH_TRIALS [3 per mode], BENCH_CRASH_LOAD_MS [4000],
 * BENCH_CRASH_MODES [interval,always].
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { jetstream, jetstreamManager, DeliverPolicy, type JetStreamManager } from '@nats-io/jetstream';
import { Kvm, type KV } from '@nats-io/kv';
import { names as makeNames } from '../../schemas/subjects.ts';
import { ensureStreams } from '../../src/nats/streams.ts';
import { connectNats, type NatsConnection } from '../../src/nats/connect.ts';
import { StoreSync } from '../../src/nats/natsd.ts';
import { NatsCluster } from '../../test/helpers/nats-cluster.ts';
import { sleep } from '../_common.ts';
import { QUICK, envInt, logger, onTeardown } from '../_harness.ts';
import type { Metric } from '../lib.ts';

const log = logger('cluster');
const TRIALS = envInt('BENCH_CRASH_TRIALS', QUICK ? 1 : 3);
const LOAD_MS = envInt('BENCH_CRASH_LOAD_MS', QUICK ? 2000 : 4000);
const MODES = (process.env['BENCH_CRASH_MODES'] ?? 'interval,always').split(',').filter((m): m is StoreSync => m === StoreSync.interval || m === StoreSync.always);
const CONNS = 4;
const WINDOW = 32;
const KEYS = 64;
const PAYLOAD = randomBytes(300);

export interface CrashTrial {
  mode: StoreSync;
  ackedPublishes: number;
  lostPublishes: number;
  ackedPuts: number;
  lostPuts: number;
  /** Kill -9 of all three to the first successful read of the stream after the restart, ms. */
  backMs: number;
  /** Acknowledged publishes per second during the load. */
  publishesPerSec: number;
}

/** Acknowledged publishes: msg id -> stream sequence of the ack. */
type AckLog = Map<string, number>;

async function publishLoad(nc: NatsConnection, subjectOf: (i: number) => string, tag: string, acked: AckLog, stop: () => boolean): Promise<void> {
  const js = jetstream(nc, { timeout: 5000 });
  let seq = 0;
  const lane = async (): Promise<void> => {
    while (!stop()) {
      const id = `${tag}/${++seq}`;
      try {
        const ack = await js.publish(subjectOf(seq), PAYLOAD, { msgID: id, timeout: 5000 });
        acked.set(id, ack.seq);
      } catch {
        // not acknowledged: not counted, whatever happened to it
      }
    }
  };
  await Promise.all(Array.from({ length: WINDOW }, lane));
}

async function putLoad(kv: KV, lastAcked: Map<string, number>, stop: () => boolean): Promise<void> {
  let round = 0;
  while (!stop()) {
    round++;
    await Promise.all(
      Array.from({ length: KEYS }, async (_, k) => {
        const key = `k${k}`;
        try {
          const rev = await kv.put(key, new TextEncoder().encode(String(round)));
          if (rev > (lastAcked.get(key) ?? 0)) lastAcked.set(key, rev);
        } catch {
          // not acknowledged
        }
      }),
    );
  }
}

/** Every Nats-Msg-Id in the stream, read with an ordered consumer from the first message. */
async function storedIds(nc: NatsConnection, stream: string, last: number): Promise<Set<string>> {
  const js = jetstream(nc, { timeout: 10_000 });
  const c = await js.consumers.get(stream, { deliver_policy: DeliverPolicy.All });
  const ids = new Set<string>();
  if (last === 0) return ids;
  const it = await c.consume({ max_messages: 4096 });
  for await (const m of it) {
    const id = m.headers?.get('Nats-Msg-Id');
    if (id) ids.add(id);
    if (m.seq >= last) break;
  }
  await it.close();
  return ids;
}

async function untilReadable(jsm: JetStreamManager, stream: string, timeoutMs: number): Promise<number> {
  const end = performance.now() + timeoutMs;
  for (;;) {
    try {
      const info = await jsm.streams.info(stream);
      return info.state.last_seq;
    } catch (err) {
      if (performance.now() > end) throw new Error(`stream ${stream} not readable ${timeoutMs} ms after the restart`, { cause: err });
      await sleep(100);
    }
  }
}

/** A read retried until it answers (a group may still be electing its leader after the restart). */
async function retryRead<T>(read: () => Promise<T>, timeoutMs: number): Promise<T> {
  const end = performance.now() + timeoutMs;
  for (;;) {
    try {
      return await read();
    } catch (err) {
      if (performance.now() > end) throw err;
      await sleep(100);
    }
  }
}

async function trial(mode: StoreSync, i: number): Promise<CrashTrial> {
  const saved = process.env['LARS_NATS_SYNC'];
  // NatsCluster starts its servers through startNatsServer, which takes the mode from the environment.
  process.env['LARS_NATS_SYNC'] = mode;
  let cluster: NatsCluster | undefined;
  const ncs: NatsConnection[] = [];
  try {
    cluster = await NatsCluster.start(3);
    const c = cluster;
    onTeardown(() => c.close());
    const admin = await cluster.connect('crash-admin');
    ncs.push(admin);
    const n = makeNames(`cr${randomBytes(3).toString('hex')}`);
    const { reports } = await ensureStreams(admin, n, { reports: { maxBytes: 2 ** 30 } });
    const stream = reports.config.name;
    const kv = await new Kvm(admin).create(`${n.prefix}_crash`, { replicas: 3, history: 1 });
    log(`crash trial ${i + 1} (${mode}): stream ${stream} R${reports.config.num_replicas}, bucket R3; load ${LOAD_MS} ms`);

    const acked: AckLog = new Map();
    const lastPut = new Map<string, number>();
    let stopped = false;
    const stop = (): boolean => stopped;
    const loads: Array<Promise<void>> = [];
    for (let k = 0; k < CONNS; k++) {
      // each connection to a different server first, as agents spread over the cluster
      const nc = await connectNats({ url: [cluster.urlOf(k % 3), cluster.url].join(','), name: `crash-${k}`, extra: { noRandomize: true } });
      ncs.push(nc);
      loads.push(publishLoad(nc, (s) => n.report(s % 64, 900, 1 + (s % 10)), `c${k}`, acked, stop));
    }
    loads.push(putLoad(kv, lastPut, stop));
    const t0 = performance.now();
    await sleep(LOAD_MS);
    const rate = (acked.size * 1000) / (performance.now() - t0);
    // Everyone at once: no server gets to notice the others leaving.
    for (let s = 0; s < 3; s++) cluster.kill(s);
    const tKill = performance.now();
    stopped = true;
    // What was acknowledged is what the clients had heard when the servers died.
    const ackedAtKill = new Map(acked);
    const putsAtKill = new Map(lastPut);
    await Promise.all([0, 1, 2].map((s) => cluster!.restart(s)));
    await cluster.waitReady(60_000);
    const jsm = await jetstreamManager(admin, { timeout: 5000 });
    const last = await untilReadable(jsm, stream, 60_000);
    const backMs = performance.now() - tKill;
    await Promise.allSettled(loads);

    const ids = await retryRead(() => storedIds(admin, stream, last), 60_000);
    let lostPublishes = 0;
    for (const id of ackedAtKill.keys()) if (!ids.has(id)) lostPublishes++;
    let lostPuts = 0;
    await untilReadable(jsm, `KV_${n.prefix}_crash`, 60_000);
    const kvAfter = await new Kvm(admin).open(`${n.prefix}_crash`);
    for (const [key, rev] of putsAtKill) {
      const e = await retryRead(() => kvAfter.get(key), 30_000);
      if (!e || e.revision < rev) lostPuts++;
    }
    log(
      `crash trial ${i + 1} (${mode}): ${ackedAtKill.size} publishes acknowledged before the kill (${Math.round(rate).toLocaleString('en-US')}/s), ${lostPublishes} missing after the restart; ` +
        `${putsAtKill.size} keys, ${lostPuts} behind their last acknowledged revision; stream readable ${(backMs / 1000).toFixed(1)} s after the kill (${last} messages)`,
    );
    return { mode, ackedPublishes: ackedAtKill.size, lostPublishes, ackedPuts: putsAtKill.size, lostPuts, backMs, publishesPerSec: rate };
  } finally {
    for (const nc of ncs) await nc.close().catch(() => undefined);
    await cluster?.close();
    if (saved === undefined) delete process.env['LARS_NATS_SYNC'];
    else process.env['LARS_NATS_SYNC'] = saved;
  }
}

export async function benchCoordinatedCrash(): Promise<Metric[]> {
  const metrics: Metric[] = [];
  for (const mode of MODES) {
    const trials: CrashTrial[] = [];
    for (let i = 0; i < TRIALS; i++) trials.push(await trial(mode, i));
    const sum = (f: (t: CrashTrial) => number): number => trials.reduce((s, t) => s + f(t), 0);
    const setup = `3 servers (nats-server 2.9.10), R3 stream + R3 bucket, ${CONNS} connections x ${WINDOW} publishes in flight + ${KEYS} keys, ${LOAD_MS / 1000} s of load, then kill -9 of all three; ${TRIALS} trials`;
    metrics.push(
      { name: `coordinated_crash_lost_acked_${mode}`, value: sum((t) => t.lostPublishes + t.lostPuts), unit: 'writes', target: '<= 0', note: `acknowledged and missing after the restart, store sync ${mode}; per trial ${trials.map((t) => t.lostPublishes + t.lostPuts).join(', ')}` },
      { name: `coordinated_crash_acked_${mode}`, value: sum((t) => t.ackedPublishes + t.ackedPuts), unit: 'writes', note: `${sum((t) => t.ackedPublishes)} publishes + ${sum((t) => t.ackedPuts)} keys; ${setup}` },
      { name: `coordinated_crash_back_ms_${mode}`, value: Math.max(...trials.map((t) => t.backMs)), unit: 'ms', note: 'kill -9 of all three to the stream readable again, slowest trial' },
      { name: `coordinated_crash_publishes_per_sec_${mode}`, value: sum((t) => t.publishesPerSec) / trials.length, unit: 'publishes/s', note: 'acknowledged during the load, mean over trials (one process, shared machine)' },
    );
  }
  return metrics;
}
