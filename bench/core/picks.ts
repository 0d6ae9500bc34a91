/**
 * Picks of the `core` group: `agent.pick` per strategy and `await agent.getHost`
 * on a 10-host route, as tinybench tasks. One pick takes tens of ns, below the
 * timer's resolution, so a task call is a batch of picks and the rate is the
 * batch size times tinybench's median batch throughput.
 */
import { Bench, type Fn } from 'tinybench';
import { createAgent, type Agent, type StrategyName } from '../../src/index.ts';
import type { Metric } from '../lib.ts';
import { QUICK } from '../_harness.ts';
import { HOSTS_PER_ROUTE, P, PICK_ROUTE, log, type CoreContext } from './setup.ts';

/** Picks per tinybench iteration, sync and awaited. */
const SYNC_BATCH = 10_000;
const ASYNC_BATCH = 1_000;
const KEYS = Array.from({ length: 4096 }, (_, i) => `user-${i * 7919}`);

/** Keeps pick results observable, so the loops cannot be optimised away. */
let sink = 0;

function pickBatch(a: Agent): () => void {
  const [m, c] = PICK_ROUTE;
  return () => {
    let s = 0;
    for (let i = 0; i < SYNC_BATCH; i++) {
      const h = a.pick(m, c);
      if (h.ok) s += h.port;
    }
    sink += s;
  };
}

function pickBatchKeyed(a: Agent): () => void {
  const [m, c] = PICK_ROUTE;
  return () => {
    let s = 0;
    for (let i = 0; i < SYNC_BATCH; i++) {
      const h = a.pick(m, c, KEYS[i & 4095]);
      if (h.ok) s += h.port;
    }
    sink += s;
  };
}

function getHostBatch(a: Agent): () => Promise<void> {
  const [m, c] = PICK_ROUTE;
  return async () => {
    let s = 0;
    for (let i = 0; i < ASYNC_BATCH; i++) {
      const h = await a.getHost(m, c);
      if (h.ok) s += h.port;
    }
    sink += s;
  };
}

/** Runs one tinybench task (warm-up, then at least `timeMs` of iterations) and returns picks per second (median). */
async function rate(name: string, fn: Fn, batch: number, timeMs: number): Promise<number> {
  const bench = new Bench({ name, time: QUICK ? Math.min(timeMs, 200) : timeMs, warmupTime: QUICK ? 100 : 300, iterations: 16, throws: true });
  bench.add(name, fn);
  const [task] = await bench.run();
  const r = task?.result;
  if (!r || r.state !== 'completed') throw new Error(`tinybench task ${name} did not complete (${r?.state ?? 'no task'})`);
  const perSec = r.throughput.p50 * batch;
  log(`${name}: ${Math.round(perSec).toLocaleString('en-US')}/s (median of ${r.throughput.samplesCount} batches of ${batch}, ±${r.throughput.rme.toFixed(1)}%)`);
  return perSec;
}

export async function benchPicks(ctx: CoreContext): Promise<Metric[]> {
  const nc = await ctx.connection('bench-core-picks');
  const agents: Agent[] = [];
  const make = async (strategy: StrategyName) => {
    const a = await createAgent({ nc, prefix: ctx.n.prefix, partitions: P, strategy });
    agents.push(a);
    const st = await a.getRoute(...PICK_ROUTE);
    if (!st || st.hosts.length !== HOSTS_PER_ROUTE) throw new Error(`pick route not loaded for ${strategy}`);
    return a;
  };
  try {
    // Default strategy first, so its figure is taken before other strategies make the agent's call sites polymorphic.
    const swrr = await make('swrr');
    const gethost = await rate('pick swrr (gethost_ops_per_sec)', pickBatch(swrr), SYNC_BATCH, 2100);
    const gethostAsync = await rate('getHost awaited', getHostBatch(swrr), ASYNC_BATCH, 1500);
    const per: Record<string, number> = { swrr: gethost };
    for (const s of ['lars', 'p2c', 'hash'] as const) {
      const a = await make(s);
      per[s] = await rate(`pick ${s}`, s === 'hash' ? pickBatchKeyed(a) : pickBatch(a), SYNC_BATCH, 1500);
    }
    // swrr again, after the other strategies ran through the same call sites (what a mixed-strategy process sees).
    per['swrr'] = await rate('pick swrr (after other strategies)', pickBatch(swrr), SYNC_BATCH, 1500);
    if (sink === 42) console.log('');
    return [
      { name: 'gethost_ops_per_sec', value: gethost, unit: 'ops/s', target: '>= 5000000', note: 'agent.pick, swrr, 10 hosts (weights 10..100), 1 thread' },
      { name: 'gethost_async_ops_per_sec', value: gethostAsync, unit: 'ops/s', note: 'await agent.getHost, swrr' },
      { name: 'pick_ops_per_sec_lars', value: per['lars']!, unit: 'ops/s', note: 'lars round robin with probing' },
      { name: 'pick_ops_per_sec_swrr', value: per['swrr']!, unit: 'ops/s', note: 'measured after the other strategies (polymorphic call site)' },
      { name: 'pick_ops_per_sec_p2c', value: per['p2c']!, unit: 'ops/s', note: 'p2c on latency x in-flight' },
      { name: 'pick_ops_per_sec_hash', value: per['hash']!, unit: 'ops/s', note: 'consistent hash, 4096 distinct keys' },
    ];
  } finally {
    for (const a of agents) await a.close();
  }
}
