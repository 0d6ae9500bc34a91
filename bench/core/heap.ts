/**
 * Heap per host of the `core` group: HEAP_ROUTES routes x 10 hosts written
 * into a fresh registry bucket, then a fresh process (bench/_heap.ts,
 * --expose-gc) measures the heap a route node holding them all adds.
 */
import { randomBytes } from 'node:crypto';
import { names as makeNames, type RegistryEntry } from '../../src/index.ts';
import { openBucket } from '../../src/nats/buckets.ts';
import { encode } from '../../schemas/codec.ts';
import { epochMs, type FromHeap, type HeapConfig } from '../_common.ts';
import { nextMessage, pool, spawnChild, stopChild } from '../_harness.ts';
import type { Metric } from '../lib.ts';
import { HEAP_ROUTES, HOSTS_PER_ROUTE, P, log, type CoreContext } from './setup.ts';

export async function benchHeap(ctx: CoreContext): Promise<Metric[]> {
  const n = makeNames(`bh${randomBytes(3).toString('hex')}`);
  const kv = await openBucket(ctx.nc, n.registryBucket);
  const t0 = epochMs();
  const ids = Array.from({ length: HEAP_ROUTES }, (_, r) => r);
  await pool(ids, 64, async (r) => {
    const modid = 10 + Math.floor(r / 1000);
    const cmdid = (r % 1000) + 1;
    const entry: RegistryEntry = {
      v: 1,
      modid,
      cmdid,
      hosts: Array.from({ length: HOSTS_PER_ROUTE }, (_, j) => ({ ip: `10.${(r >> 8) & 255}.${r & 255}.${j + 1}`, port: 8000 + (r >> 16), weight: 100 })),
      updated_by: 'bench-core',
      ts: Date.now(),
    };
    await kv.create(n.routeKey(modid, cmdid), encode(entry));
  });
  const writeMs = epochMs() - t0;
  log(`heap: ${HEAP_ROUTES} routes x ${HOSTS_PER_ROUTE} hosts written to the registry KV in ${Math.round(writeMs)} ms`);
  const cfg: HeapConfig = { url: ctx.server.url, prefix: n.prefix, partitions: P, routes: HEAP_ROUTES, hostsPerRoute: HOSTS_PER_ROUTE, loadTimeoutMs: 150_000 };
  const c = spawnChild('_heap.ts', cfg, true);
  try {
    const res = await Promise.race([
      nextMessage<FromHeap, 'result'>(c, 'result', 180_000),
      nextMessage<FromHeap, 'error'>(c, 'error', 180_000).then((e) => Promise.reject(new Error(`heap child: ${e.message}`))),
    ]);
    const delta = res.after - res.baseline;
    const perHost = delta / res.hosts;
    log(`heap: node loaded ${res.routes} routes / ${res.hosts} hosts in ${Math.round(res.loadMs)} ms (settled ${Math.round(res.settleMs)} ms); heapUsed ${res.baseline} -> ${res.after} (+${delta} B), ${perHost.toFixed(0)} B/host; rss +${Math.round(res.rssDelta / 2 ** 20)} MiB`);
    return [
      { name: 'heap_bytes_per_host', value: perHost, unit: 'B/host', target: '<= 2048', note: `heapUsed delta after full GCs / ${res.hosts} hosts` },
      { name: 'heap_routes', value: res.routes, unit: 'routes' },
      { name: 'heap_node_bytes', value: delta, unit: 'B', note: 'heapUsed of the node process with the node minus before it' },
      { name: 'heap_node_load_ms', value: Math.round(res.loadMs), unit: 'ms', note: 'RouteNode.start until every route is loaded' },
      { name: 'heap_registry_write_ms', value: Math.round(writeMs), unit: 'ms', note: 'kv.create of every route, 64 in flight' },
    ];
  } finally {
    await stopChild(c, undefined, 8000);
  }
}
