/**
 * Heap of one route node holding many routes, for the `core` benchmark
 * (heap_bytes_per_host), run by bench/core/heap.ts in a fresh process with
 * --expose-gc after it has written the routes into the registry KV.
 *
 * Baseline: every module loaded and the NATS connection open, after full GCs.
 * Then a RouteNode starts, loads every route (registry watch, one route actor
 * per route, first state published and written to the routes KV), and the heap
 * is measured again after full GCs. The delta is what the node holds.
 */
import { RouteNode, connectNats } from '../src/index.ts';
import { childConfig, epochMs, exitWithParent, sleep, toParent, type FromHeap, type HeapConfig } from './_common.ts';

const cfg = childConfig<HeapConfig>();
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) {
  toParent({ type: 'error', message: 'run with --expose-gc' } satisfies FromHeap);
  process.exit(1);
}

async function fullGc(): Promise<number> {
  for (let i = 0; i < 4; i++) {
    gc!();
    await sleep(50);
  }
  return process.memoryUsage().heapUsed;
}

const nc = await connectNats({ url: cfg.url, name: 'bench-heap-node' });
let node: RouteNode | undefined;
exitWithParent(async () => {
  await node?.close();
  await nc.close();
});

try {
  await nc.flush();
  const rss0 = process.memoryUsage().rss;
  const baseline = await fullGc();
  const t0 = epochMs();
  node = await RouteNode.start({ nc, nodeId: 'bench-heap-node', prefix: cfg.prefix, partitions: cfg.partitions, tickMs: 100 });
  while (node.stats().routes < cfg.routes) {
    if (epochMs() - t0 > cfg.loadTimeoutMs) throw new Error(`node loaded ${node.stats().routes} of ${cfg.routes} routes in ${cfg.loadTimeoutMs} ms`);
    await sleep(50);
  }
  const loadMs = epochMs() - t0;
  await node.settled();
  const settleMs = epochMs() - t0;
  await sleep(500);
  const after = await fullGc();
  const st = node.stats();
  toParent({ type: 'result', baseline, after, routes: st.routes, hosts: st.hosts, loadMs, settleMs, rssDelta: process.memoryUsage().rss - rss0 } satisfies FromHeap);
} catch (err) {
  toParent({ type: 'error', message: (err as Error).message } satisfies FromHeap);
} finally {
  await node?.close().catch(() => undefined);
  await nc.close().catch(() => undefined);
  process.disconnect?.();
}
