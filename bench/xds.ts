/**
 * The xDS server (`npm run bench -- xds`): a route change, published on the
 * route subject as a route node publishes it, to the load assignment
 * decoded by every ADS stream subscribed to the route; streams in another
 * process (bench/xds/_clients.ts), server and publisher in this one.
 *  - xds_push_latency_ms_p50 / _p99: route state published → response decoded by each stream, 200 streams
 *  - xds_server_cpu_us_per_update_per_client: this process' CPU (server, publisher, NATS client) per update per stream
 *  - xds_server_heap_kb_per_client: heap per connected stream (after GC)
 */
import { randomBytes } from 'node:crypto';
import { names as makeNames } from '../schemas/subjects.ts';
import { encode } from '../schemas/codec.ts';
import { connectNats } from '../src/nats/connect.ts';
import { startNatsServer } from '../src/nats/natsd.ts';
import { RouteStore } from '../src/registry/route-store.ts';
import { silentLogger } from '../src/lib/log.ts';
import { XdsServer } from '../src/xds/server.ts';
import { record, type Metric } from './lib.ts';
import { epochMs, percentile, sleep } from './_common.ts';
import { onTeardown, runGroup, spawnChild, stopChild } from './_harness.ts';

const QUICK = process.argv.includes('--quick');
const STREAMS = 200;
const UPDATES = QUICK ? 50 : 300;
/** Between two updates, ms: each one is pushed and decoded before the next leaves. */
const GAP_MS = Number(process.env["XDS_BENCH_GAP_MS"] ?? 100);

function state(version: number, weight0: number): Uint8Array {
  const hosts = Array.from({ length: 10 }, (_, i) => ({ ip: `10.0.0.${i + 1}`, port: 8000, weight: 100, zone: null, state: 'healthy', reason: 'registered', since: 0, pick_weight: i === 0 ? weight0 : 100 }));
  return encode({ v: 1, sender: 'bench', modid: 1, cmdid: 1, version, ts: Date.now(), profile: 'default', panic: false, removed: false, probe_num: 10, hosts });
}

function gc(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

async function main(): Promise<void> {
  const server = await startNatsServer();
  onTeardown(() => server.stop());
  const n = makeNames(`bx${randomBytes(3).toString('hex')}`);
  const nc = await connectNats({ url: server.url, name: 'bench-xds' });
  onTeardown(() => nc.close());
  {
    const store = await RouteStore.open(nc, n);
    const xds = await XdsServer.start({ nc, names: n, log: silentLogger(), port: 0, serverId: 'bench' });
    const subject = n.route(1, 1);
    // the state the streams subscribe to: host 0's weight 10000 marks it
    await store.putEncoded(1, 1, state(1, 10_000));
    gc();
    const heapBefore = process.memoryUsage().heapUsed;
    const child = spawnChild('xds/_clients.ts', { port: xds.port, streams: STREAMS, channels: 20 });
    await new Promise<void>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`the ${STREAMS} streams did not all get route 1.1 within 30 s`)), 30_000);
      child.on('message', (m: { type: string }) => m.type === 'subscribed' && (clearTimeout(t), resolve()));
      child.once('exit', () => reject(new Error('the client process ended')));
    });
    gc();
    const heapPerClient = (process.memoryUsage().heapUsed - heapBefore) / STREAMS / 1024;

    const sentAt = new Map<number, number>();
    const cpu0 = process.cpuUsage();
    for (let v = 1; v <= UPDATES; v++) {
      sentAt.set(v, epochMs());
      nc.publish(subject, state(v + 1, v));
      await sleep(GAP_MS);
    }
    const cpu = process.cpuUsage(cpu0);
    await sleep(200);
    const seen = await new Promise<Array<[number, number]>>((resolve) => {
      child.on('message', (m: { type: string; seen?: Array<[number, number]> }) => m.type === 'seen' && resolve(m.seen ?? []));
      child.send({ type: 'report' });
    });
    const latencies = seen.filter(([v]) => sentAt.has(v)).map(([v, at]) => at - sentAt.get(v)!);
    const expected = UPDATES * STREAMS;
    const stats = xds.stats();
    await stopChild(child, { type: 'stop' });
    await xds.close();
    const metrics: Metric[] = [
      { name: 'xds_push_latency_ms_p50', value: percentile(latencies, 50), unit: 'ms', note: `route state on the route subject → load assignment decoded by each of ${STREAMS} ADS streams (another process), ${UPDATES} updates` },
      { name: 'xds_push_latency_ms_p99', value: percentile(latencies, 99), unit: 'ms', target: '<= 10', note: `the same, p99; ${latencies.length} of ${expected} pushes received` },
      { name: 'xds_server_cpu_us_per_update_per_client', value: (cpu.user + cpu.system) / UPDATES / STREAMS, unit: 'µs', note: 'CPU of the server process (xDS server, route follower, the publisher) per update per stream' },
      { name: 'xds_server_heap_kb_per_client', value: heapPerClient, unit: 'KiB', note: `heap of the server process per connected stream after GC (${stats.streams} streams)` },
    ];
    record('xds', metrics);
  }
}

await runGroup('xds', main);
