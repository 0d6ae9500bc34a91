/**
 * Route node metrics: everything is read at scrape time from the node's
 * `stats()` and served partitions, or kept from its change and partition
 * listeners (one call per published route change, none per report).
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { Counter, Histogram, type Registry } from 'prom-client';
import { partitionOf } from '../../schemas/subjects.ts';
import type { RouteNode } from './route-node.ts';
import type { OwnershipHealth } from '../cluster/ownership.ts';
import { RouteStore } from '../registry/route-store.ts';
import { routeKeyParts } from '../registry/registry.ts';
import { byLabel, counterFrom, gaugeFrom } from '../metrics/collect.ts';
import { registerConnectionMetrics, type ConnectionState } from '../metrics/nats.ts';
import { RouteBoard, DEFAULT_TOP_ROUTES } from '../metrics/routes.ts';
import type { Readiness } from '../metrics/http.ts';

export interface NodeMetricsOptions {
  registry: Registry;
  node: RouteNode;
  nc: NatsConnection;
  connection: ConnectionState;
  /** Routes named in the per-route metrics (the rest are summed under `_other`). */
  topRoutes?: number;
  /** Clock for ejection ages, ms since the epoch (the node's clock). */
  clock?: () => number;
}

/** Publish latency buckets, seconds: a flush runs on the next turn of the event loop. */
const PUBLISH_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

/**
 * Registers a route node's metrics; resolves, once the routes the node
 * published before are known too, with a remover of its listeners.
 */
export async function registerNodeMetrics(opts: NodeMetricsOptions): Promise<() => void> {
  const { registry: r, node, nc, connection } = opts;
  const clock = opts.clock ?? Date.now;
  const board = new RouteBoard(opts.topRoutes ?? DEFAULT_TOP_ROUTES, (m, c) => partitionOf(m, c, node.partitions));

  counterFrom(r, { name: 'lars_report_batches_total', help: 'Report batches received on the partitions this node serves (rejected ones included)', read: () => node.stats().batches });
  counterFrom(r, { name: 'lars_reports_total', help: 'Call results applied to route actors', read: () => node.stats().reports });
  counterFrom<'kind'>(r, {
    name: 'lars_reports_rejected_total',
    help: 'Rejected inbound report input by kind: batches, except unknown_host which counts reports',
    labelNames: ['kind'],
    read: () => byLabel('kind', node.stats().rejects),
  });
  counterFrom(r, { name: 'lars_route_states_published_total', help: 'Route states published', read: () => node.stats().published });
  counterFrom(r, { name: 'lars_route_events_published_total', help: 'Route events (host transitions) published', read: () => node.stats().events });
  counterFrom(r, { name: 'lars_route_kv_writes_total', help: 'Route states written to the routes KV bucket', read: () => node.stats().kvWrites });
  counterFrom(r, { name: 'lars_route_kv_conflicts_total', help: 'Route state KV writes refused because another node wrote the route', read: () => node.stats().kvConflicts });
  counterFrom(r, { name: 'lars_route_states_fenced_total', help: 'Route states held back because the partition lease was not fresh enough', read: () => node.stats().fenced });
  counterFrom(r, { name: 'lars_partitions_lost_total', help: 'Partitions dropped after a failed fenced write or lease renewal', read: () => node.stats().partitionsLost });
  gaugeFrom(r, { name: 'lars_routes', help: 'Route actors this node runs', read: () => node.stats().routes });
  gaugeFrom(r, { name: 'lars_partitions_owned', help: 'Partitions this node serves now', read: () => node.servedPartitions().length });
  gaugeFrom(r, { name: 'lars_partitions_total', help: 'Partitions of the cluster (every one should be owned by a node)', read: () => node.partitions });
  // Ownership as this node sees the leases (absent for a node pinned with --own).
  const health = (): OwnershipHealth | undefined => node.ownershipHealth();
  if (health() !== undefined) {
    gaugeFrom(r, { name: 'lars_partitions_desired', help: 'Partitions this node should own (rendezvous hashing over the live members)', read: () => health()?.desired ?? 0 });
    gaugeFrom(r, { name: 'lars_lease_seconds', help: 'Lease time of this node: a partition not renewed for this long is taken over, seconds', read: () => (health()?.leaseMs ?? 0) / 1000 });
    gaugeFrom(r, { name: 'lars_cluster_partitions_unowned', help: 'Partitions without a live owner, as this node sees the leases', read: () => health()?.unowned.length ?? 0 });
    gaugeFrom<'partition'>(r, {
      name: 'lars_cluster_partition_unowned_seconds',
      help: 'Per partition without a live owner (as this node sees the leases): seconds since it last had one',
      labelNames: ['partition'],
      read: () => (health()?.unowned ?? []).map((u) => [{ partition: String(u.partition) }, u.forMs / 1000] as const),
    });
  }
  gaugeFrom<'state'>(r, { name: 'lars_route_hosts', help: 'Hosts of the routes this node publishes, by state', labelNames: ['state'], read: () => byLabel('state', board.hostsByState()) });
  gaugeFrom(r, { name: 'lars_routes_in_panic', help: 'Routes of this node in panic (too few healthy hosts: traffic spread over all)', read: () => board.routesInPanic() });
  gaugeFrom(r, { name: 'lars_routes_shedding', help: 'Routes of this node shedding calls (too few accepted: agents refuse a share of calls locally)', read: () => board.routesShedding() });
  // The three per-route gauges share one top-N, computed once per scrape.
  let rowsAt = -1;
  let rows = board.rows(clock());
  const rowsNow = () => {
    const t = clock();
    if (t !== rowsAt) {
      rows = board.rows(t);
      rowsAt = t;
    }
    return rows;
  };
  gaugeFrom<'route'>(r, {
    name: 'lars_route_ejected_hosts',
    help: 'Ejected hosts (overloaded or probing) per route with any, the worst routes by name, the rest summed under route="_other"',
    labelNames: ['route'],
    read: () => rowsNow().map((x) => [{ route: x.route }, x.ejected] as const),
  });
  gaugeFrom<'route'>(r, {
    name: 'lars_route_panic',
    help: '1 per route in panic (worst routes by name); under route="_other" the number of the other routes in panic',
    labelNames: ['route'],
    read: () => rowsNow().map((x) => [{ route: x.route }, x.panic] as const),
  });
  gaugeFrom<'route'>(r, {
    name: 'lars_route_ejected_longest_seconds',
    help: 'Longest time one host of the route has been ejected (overloaded or probing without recovering), seconds',
    labelNames: ['route'],
    read: () => rowsNow().map((x) => [{ route: x.route }, x.longestEjectedS] as const),
  });

  const transitions = new Counter<'reason' | 'to'>({
    name: 'lars_route_transitions_total',
    help: 'Host state transitions published, by reason and new state',
    labelNames: ['reason', 'to'],
    registers: [r],
  });
  const publish = new Histogram({
    name: 'lars_route_publish_latency_seconds',
    help: 'Time from a route being marked changed to its state being published, seconds',
    buckets: PUBLISH_BUCKETS,
    registers: [r],
  });
  registerConnectionMetrics(r, nc, connection);

  const offChange = node.onChange((state, events, publishMs) => {
    publish.observe(publishMs / 1000);
    for (const e of events) transitions.inc({ reason: e.reason, to: e.to });
    board.apply(state);
  });
  const offPartition = node.onPartition((e) => {
    if (e.kind !== 'acquired') board.dropPartition(e.partition);
  });
  // Routes published before the listener was added, as their actors hold them now.
  // A failed read only delays them to their next change: metrics never stop a node.
  try {
    const store = await RouteStore.bind(nc, node.names);
    if (store) {
      for await (const key of await store.kv.keys()) {
        const parts = routeKeyParts(key);
        const actor = parts && !board.has(key) ? node.route(parts.modid, parts.cmdid) : undefined;
        if (actor && !actor.isRemoved) board.apply(actor.snapshot(clock()));
      }
    }
  } catch {
    // the per-route gauges fill in as routes change
  }
  return () => {
    offChange();
    offPartition();
  };
}

/**
 * How long a partition this node should own may stay without an owner before
 * the node says it is not ready, ms: taking a free lease is one write, so
 * longer means it is stuck.
 */
export const READY_TAKE_GRACE_MS = 1000;

/** What readiness reads of a node: whether it started, its ownership, the partitions it serves. */
export interface NodeReadinessInput {
  started: () => boolean;
  health: () => OwnershipHealth | undefined;
  served: () => number;
}

/**
 * A route node is ready while it does its share of the work now: connected
 * to NATS, routes loaded, serving partitions when it should own some, and
 * not leaving partitions it should own without an owner (for longer than
 * READY_TAKE_GRACE_MS). A node pinned to partitions (`--own`) owns them by
 * definition.
 */
export function nodeReadiness(connection: ConnectionState, node: NodeReadinessInput): () => Readiness {
  return () => {
    if (!node.started()) return { ready: false, reason: 'routes loading' };
    if (!connection.connected()) return { ready: false, reason: 'not connected to NATS' };
    const h = node.health();
    if (h === undefined) return { ready: true };
    if (h.leaving) return { ready: false, reason: 'leaving the cluster: handing its partitions over' };
    const served = node.served();
    if (h.desired > 0 && served === 0) return { ready: false, reason: `should own ${h.desired} partitions and owns none` };
    const stuck = h.unowned.filter((u) => u.forMs > READY_TAKE_GRACE_MS).length;
    if (h.mineUnowned > 0 && stuck > 0) return { ready: false, reason: `${h.mineUnowned} partitions this node should own have no owner (${h.unowned.length} unowned in the cluster)` };
    return { ready: true };
  };
}
