/**
 * Shared setup of the `core` group: its constants, one nats-server, one
 * route node in this process owning every benchmark route, and the
 * connections the benchmarks use. Each benchmark of the group is a module
 * beside this one that takes a `CoreContext` and returns its metrics.
 */
import { randomBytes } from 'node:crypto';
import type { NatsConnection } from '@nats-io/transport-node';
import { startNatsServer, connectNats, RouteNode, Registry, names as makeNames, DEFAULT_PARTITIONS, type NatsServer, type Names } from '../../src/index.ts';
import { benchHosts, type PublisherConfig } from '../_common.ts';
import { QUICK, envInt, logger, onTeardown, pool, waitFor } from '../_harness.ts';

export const log = logger('core');
export const P = DEFAULT_PARTITIONS;
/** Counted trials per latency metric. */
export const TRIALS = envInt('BENCH_TRIALS', QUICK ? 20 : 100);
/** Uncounted trials before them. */
export const WARMUP_TRIALS = QUICK ? 3 : 10;
export const AGENT_PROCS = 2;
export const AGENTS_PER_PROC = 50;
export const AGENTS = AGENT_PROCS * AGENTS_PER_PROC;
export const INGEST_ROUTES = 100;
export const REPORTS_PER_BATCH = 1000;
export const HEAP_ROUTES = envInt('BENCH_HEAP_ROUTES', QUICK ? 1000 : 10_000);
export const HOSTS_PER_ROUTE = 10;
/** Picks sampled in an agent right after it sees a host ejected. */
export const PICK_SAMPLE = 40;

export const PICK_ROUTE: [number, number] = [1, 1];
export const PROP_ROUTE: [number, number] = [200, 1];
export const INGEST_MODID = 100;
export const EJECT_MODID = 300;

/** Hosts of ejection route (EJECT_MODID, c): 10.<3 + c/256>.<c % 256>.<1..10>. */
export function ejectHosts(c: number) {
  return benchHosts(3 + (c >> 8), c & 255, HOSTS_PER_ROUTE);
}

export interface CoreContext {
  server: NatsServer;
  /** Subject prefix of this run. */
  n: Names;
  /** The bench's own connection (registry writes, ejection publishes, heap KV writes). */
  nc: NatsConnection;
  registry: Registry;
  node: RouteNode;
  ingestRoutes: PublisherConfig['routes'];
  /** Two fan-out passes (own / shared connections), each with warm-up and counted ejection trials on fresh routes. */
  ejectRoutes: Array<[number, number]>;
  /** Opens a NATS connection closed at the end of the group. */
  connection(name: string): Promise<NatsConnection>;
}

/** Starts the nats-server and the route node, and registers every route the benchmarks use. */
export async function setupCore(): Promise<CoreContext> {
  const server = await startNatsServer();
  onTeardown(() => server.stop());
  log(`nats-server ${server.url} (store ${server.storeDir})${QUICK ? ', quick mode' : ''}`);
  const connection = async (name: string) => {
    const c = await connectNats({ url: server.url, name });
    onTeardown(() => c.close());
    return c;
  };
  const n = makeNames(`bc${randomBytes(3).toString('hex')}`);
  const nc = await connection('bench-core');
  const nodeNc = await connection('bench-core-node');
  const registry = await Registry.open(nc, n);

  const ingestRoutes: PublisherConfig['routes'] = [];
  for (let c = 1; c <= INGEST_ROUTES; c++) ingestRoutes.push([INGEST_MODID, c, benchHosts(2, c, HOSTS_PER_ROUTE).map((h) => [h.ip, h.port] as [string, number])]);
  const ejectRoutes: Array<[number, number]> = Array.from({ length: 2 * (WARMUP_TRIALS + TRIALS) }, (_, i) => [EJECT_MODID, i + 1]);
  const setup: Array<() => Promise<unknown>> = [
    () => registry.addHosts(...PICK_ROUTE, benchHosts(1, 1, HOSTS_PER_ROUTE, (i) => (i + 1) * 10), 'bench-core'),
    () => registry.addHosts(...PROP_ROUTE, benchHosts(4, 1, HOSTS_PER_ROUTE), 'bench-core'),
    ...ingestRoutes.map(([m, c]) => () => registry.addHosts(m, c, benchHosts(2, c, HOSTS_PER_ROUTE), 'bench-core')),
    // An ejected host stays out for the whole run, so no recovery (probing) publishes interleave with later trials.
    ...ejectRoutes.map(([m, c]) => () => registry.addHosts(m, c, ejectHosts(c), 'bench-core', { params: { base_ejection_time: 3600, max_ejection_time: 3600 } })),
  ];
  await pool(setup, 16, (f) => f());
  const node = await RouteNode.start({ nc: nodeNc, nodeId: 'bench-core-node', prefix: n.prefix, partitions: P, tickMs: 100 });
  // Registered after the node's connection, so it runs before that connection closes.
  onTeardown(() => node.close());
  if (!(await waitFor(() => node.stats().routes === setup.length, 30_000, 20))) throw new Error(`node loaded ${node.stats().routes} of ${setup.length} routes`);
  await node.settled();
  log(`node holds ${node.stats().routes} routes (prefix ${n.prefix}, ${P} partitions)`);
  return { server, n, nc, registry, node, ingestRoutes, ejectRoutes, connection };
}
