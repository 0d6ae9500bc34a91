/**
 * A route's effective state as xDS resources: what the route actor decided,
 * said in Envoy's data-plane API (v3) so that Envoy and proxyless gRPC use
 * it without our SDK. Pure: no I/O; objects in protobufjs' `fromObject` form
 * (field names as in the .proto files, `@type` on every `Any`).
 *
 * One listener, route configuration, cluster and load assignment per route,
 * all named `lars-<modid>-<cmdid>` (a gRPC caller dials
 * `xds:///lars-<modid>-<cmdid>`). The judgement carried, host by host:
 *
 * - healthy → HEALTHY, with its pick weight as the endpoint's weight;
 * - draining → DRAINING (Envoy and gRPC send it no new calls);
 * - overloaded (ejected) → UNHEALTHY;
 * - probing → left out: xDS cannot say "one trial call from one caller";
 * - the route in panic (too few healthy hosts) → every host the route
 *   actor gives a pick weight is HEALTHY, as agents spread over them; so
 *   Envoy's own panic threshold is set to 0 (off): panic is decided once,
 *   by the route actor, and carried in the health statuses;
 * - zones → localities; with the caller's zone known (its node locality),
 *   its zone is priority 0 and the others priority 1, with the
 *   overprovisioning factor of the agents' zone-aware picking (1/0.7):
 *   Envoy spills over as agents do; gRPC fails over only when no host of
 *   priority 0 can be reached.
 */
import type { RouteHost, RouteState } from '../../schemas/messages.ts';
import { ZONE_MIN_HEALTHY_PERCENT } from '../../actors/strategies/zone.ts';
import { TypeUrl, type ResourceTypeUrl } from './protos.ts';

/** A resource or a message inside one, in protobufjs' object form. */
export type XdsObject = { [field: string]: unknown };

/** The client-side load-balancing policy named in each cluster. */
export const XdsLbPolicy = {
  /** gRPC's and Envoy's round robin: gRPC ignores endpoint weights (locality weights still apply). */
  round_robin: 'round_robin',
  /** Ring hash; without a hash policy gRPC hashes each call at random, i.e. picks by endpoint weight. */
  ring_hash: 'ring_hash',
} as const;
export type XdsLbPolicy = (typeof XdsLbPolicy)[keyof typeof XdsLbPolicy];

/** Endpoint weights are pick weights × this, rounded (xDS weights are integers ≥ 1; pick weights may be fractions). */
export const WEIGHT_SCALE = 100;

/** Envoy's overprovisioning factor, percent: the agents' zone threshold (70 % healthy) as 100/0.7. */
export const OVERPROVISIONING_FACTOR = Math.round((100 * 100) / ZONE_MIN_HEALTHY_PERCENT);

/**
 * Outlier detection (gRPC A50, Envoy) for callers that send no reports: a
 * host failing half of at least 20 calls in 10 s is ejected for 30 s, at
 * most half of the hosts. Success-rate ejection is off (gRPC turns it on
 * unless `enforcing_success_rate` is 0).
 */
export const OUTLIER_DETECTION = {
  interval: { seconds: 10 },
  base_ejection_time: { seconds: 30 },
  max_ejection_time: { seconds: 300 },
  max_ejection_percent: { value: 50 },
  enforcing_success_rate: { value: 0 },
  failure_percentage_threshold: { value: 50 },
  enforcing_failure_percentage: { value: 100 },
  failure_percentage_minimum_hosts: { value: 1 },
  failure_percentage_request_volume: { value: 20 },
  consecutive_5xx: { value: 5 },
  enforcing_consecutive_5xx: { value: 100 },
} as const;

export interface ResourceOptions {
  /** The caller's zone (its node locality): that zone's localities come first. */
  zone?: string | undefined;
  lb?: XdsLbPolicy;
}

const NAME = /^lars-(\d{1,10})-(\d{1,10})$/;

/** The name of every resource of a route: `lars-<modid>-<cmdid>`. */
export function resourceName(modid: number, cmdid: number): string {
  return `lars-${modid}-${cmdid}`;
}

/** The route a resource name is of; undefined for a name not of the form `lars-<modid>-<cmdid>` (uint32 each). */
export function parseResourceName(name: string): { modid: number; cmdid: number } | undefined {
  const m = NAME.exec(name);
  if (!m) return undefined;
  const modid = Number(m[1]);
  const cmdid = Number(m[2]);
  if (modid > 0xffffffff || cmdid > 0xffffffff || resourceName(modid, cmdid) !== name) return undefined;
  return { modid, cmdid };
}

const ADS = { ads: {}, resource_api_version: 'V3' } as const;

/** LDS: an API listener (what gRPC resolves a target to) whose routes come from RDS. */
export function listenerOf(name: string): XdsObject {
  return {
    name,
    api_listener: {
      api_listener: {
        '@type': TypeUrl.httpConnectionManager,
        stat_prefix: name,
        rds: { config_source: ADS, route_config_name: name },
        http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': TypeUrl.router } }],
      },
    },
  };
}

/** RDS: one virtual host for the route's name, every call to its cluster. */
export function routeConfigurationOf(name: string): XdsObject {
  return {
    name,
    // the route's name for gRPC (`xds:///<name>`), any other authority for an Envoy listener that names this configuration
    virtual_hosts: [{ name, domains: [name, '*'], routes: [{ match: { prefix: '' }, route: { cluster: name } }] }],
  };
}

/** CDS: an EDS cluster over ADS, its balancing policy, panic off and outlier detection. */
export function clusterOf(name: string, state: RouteState, opts: ResourceOptions = {}): XdsObject {
  const lb = opts.lb ?? (state.strategy === 'hash' ? XdsLbPolicy.ring_hash : XdsLbPolicy.round_robin);
  return {
    name,
    type: 'EDS',
    eds_cluster_config: { eds_config: ADS, service_name: name },
    connect_timeout: { seconds: 1 },
    lb_policy: lb === XdsLbPolicy.ring_hash ? 'RING_HASH' : 'ROUND_ROBIN',
    ...(lb === XdsLbPolicy.ring_hash ? { ring_hash_lb_config: { minimum_ring_size: { value: 1024 }, maximum_ring_size: { value: 8_388_608 } } } : {}),
    common_lb_config: { healthy_panic_threshold: { value: 0 } },
    outlier_detection: OUTLIER_DETECTION,
    // clients report their load (LRS) to the server they got the cluster from
    lrs_server: { self: {} },
  };
}

/** How a host is served: its health status and weight, or left out. */
export function endpointOf(h: RouteHost, panic: boolean): { health: 'HEALTHY' | 'UNHEALTHY' | 'DRAINING'; weight: number } | undefined {
  if (h.state === 'draining') return { health: 'DRAINING', weight: scaled(h.weight) };
  if (panic && h.pick_weight > 0) return { health: 'HEALTHY', weight: scaled(h.pick_weight) };
  if (h.state === 'healthy') return { health: 'HEALTHY', weight: scaled(h.pick_weight) };
  if (h.state === 'overloaded') return { health: 'UNHEALTHY', weight: scaled(h.weight) };
  return undefined;
}

function scaled(w: number): number {
  return Math.max(1, Math.round(w * WEIGHT_SCALE));
}

/**
 * EDS: the route's hosts by zone (one locality per zone, hosts without one
 * in the locality of zone ''), each locality weighted by its healthy hosts'
 * weights (1 when it has none: gRPC skips a locality without weight).
 */
export function loadAssignmentOf(name: string, state: RouteState, opts: ResourceOptions = {}): XdsObject {
  const byZone = new Map<string, { endpoints: XdsObject[]; healthyWeight: number }>();
  for (const h of state.hosts) {
    const e = endpointOf(h, state.panic);
    if (!e) continue;
    const zone = h.zone ?? '';
    let loc = byZone.get(zone);
    if (!loc) byZone.set(zone, (loc = { endpoints: [], healthyWeight: 0 }));
    if (e.health === 'HEALTHY') loc.healthyWeight += e.weight;
    loc.endpoints.push({
      endpoint: { address: { socket_address: { address: h.ip, port_value: h.port } } },
      health_status: e.health,
      load_balancing_weight: { value: e.weight },
    });
  }
  const preferLocal = opts.zone !== undefined && byZone.has(opts.zone);
  const endpoints = [...byZone.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([zone, loc]) => ({
      locality: { region: '', zone, sub_zone: '' },
      lb_endpoints: loc.endpoints,
      load_balancing_weight: { value: Math.max(1, loc.healthyWeight) },
      priority: preferLocal && zone !== opts.zone ? 1 : 0,
    }));
  return { cluster_name: name, endpoints, policy: { overprovisioning_factor: { value: OVERPROVISIONING_FACTOR } } };
}

/** The resource of one type for a route. */
export function resourceOf(type: ResourceTypeUrl, state: RouteState, opts: ResourceOptions = {}): XdsObject {
  const name = resourceName(state.modid, state.cmdid);
  switch (type) {
    case TypeUrl.listener:
      return listenerOf(name);
    case TypeUrl.routeConfiguration:
      return routeConfigurationOf(name);
    case TypeUrl.cluster:
      return clusterOf(name, state, opts);
    case TypeUrl.clusterLoadAssignment:
      return loadAssignmentOf(name, state, opts);
  }
}

/** Whether a resource of this type depends on the caller's zone (only load assignments do). */
export function dependsOnZone(type: ResourceTypeUrl): boolean {
  return type === TypeUrl.clusterLoadAssignment;
}
