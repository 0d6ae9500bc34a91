/**
 * Shared plumbing of the cluster-ownership benchmarks: a fresh prefix with
 * its streams, routes written to the registry in parallel, `lars node`
 * child processes (for kill -9 and SIGSTOP), in-process route nodes with
 * leases (for partition events), lease reads, a recorder of route states
 * published on the route subjects, and a steady acknowledged report load.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { connectNats, type NatsConnection } from '../../src/nats/connect.ts';
import { startNatsServer, type NatsServer } from '../../src/nats/natsd.ts';
import { RouteNode } from '../../src/node/route-node.ts';
import { LeaseOwnership, clusterNames } from '../../src/cluster/index.ts';
import { readLeaseHolders } from '../../src/cluster/leases.ts';
import { Registry } from '../../src/registry/registry.ts';
import { bindBucket } from '../../src/nats/buckets.ts';
import { ensureStreams } from '../../src/nats/streams.ts';
import { encode, tryDecode } from '../../schemas/codec.ts';
import { names as makeNames, partitionOf, type Names } from '../../schemas/subjects.ts';
import type { RegistryEntry, ReportBatch } from '../../schemas/messages.ts';
import { benchHosts, sleep } from '../_common.ts';
import { onTeardown, pool } from '../_harness.ts';

const LARS_BIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'lars.mjs');

export const HOSTS_PER_ROUTE = 10;
const HOSTS = benchHosts(0, 0, HOSTS_PER_ROUTE);

/** A fresh prefix with its REPORTS and EVENTS streams (1 GiB of reports). */
export async function freshPrefix(nc: NatsConnection, tag: string): Promise<Names> {
  const n = makeNames(`${tag}${randomBytes(3).toString('hex')}`);
  await ensureStreams(nc, n, { reports: { maxBytes: 2 ** 30 }, events: { maxBytes: 2 ** 28 } });
  return n;
}

/** Route ids (modid, 1..count) . */
export function routeIds(modid: number, count: number): Array<[number, number]> {
  return Array.from({ length: count }, (_, i) => [modid, i + 1]);
}

/** Writes registry entries directly (one put per route, `concurrency` in flight): what a bulk import does. */
export async function registerRoutes(nc: NatsConnection, n: Names, routes: ReadonlyArray<[number, number]>, concurrency = 256): Promise<void> {
  const reg = await Registry.open(nc, n);
  const ts = Date.now();
  await pool(routes, concurrency, async ([modid, cmdid]) => {
    const entry: RegistryEntry = { v: 1, modid, cmdid, hosts: HOSTS, updated_by: 'bench-cluster', ts };
    await reg.kv.put(n.routeKey(modid, cmdid), encode(entry));
  });
}

export interface ChildNode {
  id: string;
  child: ChildProcess;
  exited: Promise<void>;
  kill(signal: NodeJS.Signals): void;
}

/** `lars node` without --own (leases) in a child process, killed at teardown. */
export function startChildNode(url: string, n: Names, partitions: number, id: string, leaseMs: number): ChildNode {
  // BENCH_NODE_NODE_ARGS: Node options for the nodes (e.g. `--cpu-prof --cpu-prof-dir=/tmp/p`, written when a node stops gracefully).
  const nodeArgs = process.env['BENCH_NODE_NODE_ARGS']?.split(' ').filter(Boolean) ?? [];
  const child = spawn(process.execPath, [...nodeArgs, LARS_BIN, 'node', '--lease-ms', String(leaseMs)], {
    env: { ...process.env, LARS_NATS_URL: url, LARS_PREFIX: n.prefix, LARS_PARTITIONS: String(partitions), LARS_NODE_ID: id, LARS_LOG_LEVEL: process.env['BENCH_NODE_LOG'] ?? 'error', LARS_LOG_FORMAT: 'json' },
    stdio: ['ignore', process.env['BENCH_NODE_LOG'] ? 'inherit' : 'ignore', 'inherit'],
  });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const kill = (signal: NodeJS.Signals): void => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
  };
  onTeardown(async () => {
    kill('SIGCONT');
    kill('SIGKILL');
    await exited;
  });
  return { id, child, exited, kill };
}

export interface InProcessNode {
  id: string;
  node: RouteNode;
  ownership: LeaseOwnership;
  /** performance.now() when the node joined the cluster (its ownership started, after loading the registry). */
  joinedAt: number;
  stop(): Promise<void>;
}

/** A route node with leases in this process, on its own connection. */
export async function startInProcessNode(url: string, n: Names, partitions: number, id: string, leaseMs: number): Promise<InProcessNode> {
  // as `lars node` does: no async stack traces, leases on a connection of their own
  const nc = await connectNats({ url, name: id, extra: { noAsyncTraces: true } });
  const ctl = await connectNats({ url, name: `${id}-leases`, extra: { noAsyncTraces: true } });
  const ownership = new LeaseOwnership({ nc: ctl, nodeId: id, prefix: n.prefix, partitions, leaseMs, heartbeatMs: Math.min(500, Math.floor(leaseMs / 4)) });
  const out = { id, ownership, joinedAt: 0 } as InProcessNode;
  const start = ownership.start.bind(ownership);
  ownership.start = (hooks) => {
    out.joinedAt = performance.now();
    return start(hooks);
  };
  let stopped = false;
  out.node = await RouteNode.start({ nc, nodeId: id, prefix: n.prefix, partitions, ownership, tickMs: 100 });
  out.stop = async () => {
    if (stopped) return;
    stopped = true;
    await out.node.close();
    await nc.drain().catch(() => undefined);
    await ctl.drain().catch(() => undefined);
  };
  onTeardown(() => out.stop());
  return out;
}

/** A nats-server of the benchmark's own and a connection to it, both stopped at teardown. */
export async function benchServer(name: string): Promise<{ server: NatsServer; nc: NatsConnection }> {
  const server = await startNatsServer();
  onTeardown(() => server.stop());
  const nc = await connectNats({ url: server.url, name });
  onTeardown(() => nc.close());
  return { server, nc };
}

/** Partition → lease holder now; empty while the leases cannot be read. */
export function leaseOwners(nc: NatsConnection, n: Names, partitions: number): Promise<Map<number, string>> {
  return readLeaseHolders(nc, n.prefix, partitions).catch(() => new Map<number, string>());
}

/** Route states published under a prefix: per route, its publishes (sender, version, Date.now() at arrival). */
export class RouteRecorder {
  readonly byRoute = new Map<string, Array<{ sender: string; version: number; at: number }>>();
  /** Routes published at least once (subject only, no decode): cheap for 100k routes. */
  readonly keys = new Set<string>();

  static async start(nc: NatsConnection, n: Names, decode = true): Promise<RouteRecorder> {
    const r = new RouteRecorder();
    const skip = n.routeAll.length - 1;
    nc.subscribe(n.routeAll, {
      callback: (_e, m) => {
        const key = m.subject.slice(skip);
        r.keys.add(key);
        if (!decode) return;
        const d = tryDecode(m.data);
        if (!d.ok || typeof d.value !== 'object' || d.value === null) return;
        const s = d.value as { sender?: unknown; version?: unknown };
        if (typeof s.sender !== 'string' || typeof s.version !== 'number') return;
        let l = r.byRoute.get(key);
        if (!l) r.byRoute.set(key, (l = []));
        l.push({ sender: s.sender, version: s.version, at: Date.now() });
      },
    });
    await nc.flush();
    return r;
  }
}

/** Waits until `cond` holds, polling every `everyMs`; throws with `what` past `timeoutMs`. */
export async function until(cond: () => boolean | Promise<boolean>, timeoutMs: number, what: string, everyMs = 20): Promise<void> {
  const end = performance.now() + timeoutMs;
  while (!(await cond())) {
    if (performance.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** Steady acknowledged report batches (10 reports each, a msgID each) over the routes, at about `batchesPerSec`. */
export class ReportLoad {
  acked = 0;
  failed = 0;
  private stopped = false;
  private readonly running: Promise<void>;

  constructor(nc: NatsConnection, n: Names, partitions: number, routes: ReadonlyArray<[number, number]>, batchesPerSec: number) {
    const js = jetstream(nc, { timeout: 10_000 });
    const instance = randomBytes(4).toString('hex');
    let seq = 0;
    const tickMs = 20;
    const perTick = Math.max(1, Math.round((batchesPerSec * tickMs) / 1000));
    const inflight = new Set<Promise<void>>();
    this.running = (async () => {
      while (!this.stopped) {
        const t0 = performance.now();
        for (let i = 0; i < perTick; i++) {
          const [modid, cmdid] = routes[seq % routes.length]!;
          seq++;
          const b: ReportBatch = { v: 1, sender: 'bench-load', modid, cmdid, ts: Date.now(), hosts: HOSTS.map((h) => [h.ip, h.port] as [string, number]), reports: Array.from({ length: 10 }, (_, k) => [k, 0, 2, k] as [number, number, number, number]) };
          // Retried until acknowledged, with the same msgID: the stream keeps one copy.
          const id = `bench-load/${instance}/${seq}`;
          const send = async (): Promise<void> => {
            for (let attempt = 0; attempt < 5; attempt++) {
              try {
                await js.publish(n.report(partitionOf(modid, cmdid, partitions), modid, cmdid), encode(b), { msgID: id });
                this.acked++;
                return;
              } catch {
                await sleep(200);
              }
            }
            this.failed++;
          };
          const p = send().finally(() => inflight.delete(p));
          inflight.add(p);
        }
        await sleep(Math.max(0, tickMs - (performance.now() - t0)));
      }
      await Promise.all(inflight);
    })();
  }

  /** Stops publishing and waits for every acknowledgement. */
  async stop(): Promise<void> {
    this.stopped = true;
    await this.running;
  }
}

/**
 * Whether every route has its state and its checkpoint stored (the nodes' KV
 * writes have caught up). The checkpoints bucket also holds the partitions'
 * handovers, so its count can reach `routes` a little early: `kvQuiet` tells
 * when the writes have stopped.
 */
export async function kvCaughtUp(nc: NatsConnection, n: Names, routes: number): Promise<boolean> {
  try {
    const [st, cp] = await Promise.all([bindBucket(nc, n.routesBucket), bindBucket(nc, clusterNames(n.prefix).checkpointsBucket)]);
    if (st === undefined || cp === undefined) return false;
    const [a, b] = await Promise.all([st.status(), cp.status()]);
    return a.values >= routes && b.values >= routes;
  } catch {
    return false;
  }
}

/** Resolves once neither the routes nor the checkpoints bucket has had a write for `quietMs` (the nodes are done writing). */
export async function kvQuiet(nc: NatsConnection, n: Names, quietMs: number, timeoutMs: number): Promise<void> {
  const [st, cp] = await Promise.all([bindBucket(nc, n.routesBucket), bindBucket(nc, clusterNames(n.prefix).checkpointsBucket)]);
  if (st === undefined || cp === undefined) return;
  const last = async (): Promise<string> => (await Promise.all([st.status(), cp.status()])).map((s) => s.streamInfo.state.last_seq).join('/');
  const end = performance.now() + timeoutMs;
  let seen = await last();
  let since = performance.now();
  while (performance.now() - since < quietMs && performance.now() < end) {
    await sleep(250);
    const now = await last();
    if (now !== seen) {
      seen = now;
      since = performance.now();
    }
  }
}

/** Messages stored in the prefix's REPORTS stream. */
export async function storedBatches(nc: NatsConnection, n: Names): Promise<number> {
  const jsm = await jetstreamManager(nc);
  return (await jsm.streams.info(n.reportsStream)).state.messages;
}
