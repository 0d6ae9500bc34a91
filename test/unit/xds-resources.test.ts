import { expect } from 'chai';
import { createRequire } from 'node:module';
import type { RouteHost, RouteState } from '../../schemas/messages.ts';
import {
  OVERPROVISIONING_FACTOR,
  WEIGHT_SCALE,
  clusterOf,
  endpointOf,
  loadAssignmentOf,
  parseResourceName,
  resourceName,
  resourceOf,
} from '../../src/xds/resources.ts';
import { RESOURCE_TYPES, TypeUrl, xdsProtos } from '../../src/xds/protos.ts';

const T0 = 1_700_000_000_000;

function host(i: number, over: Partial<RouteHost> = {}): RouteHost {
  return { ip: `10.0.0.${i}`, port: 8000, weight: 100, zone: null, state: 'healthy', reason: 'registered', since: T0, pick_weight: 100, ...over };
}

function state(hosts: RouteHost[], over: Partial<RouteState> = {}): RouteState {
  return { v: 1, sender: 'n1', modid: 7, cmdid: 3, version: 5, ts: T0, profile: 'default', panic: false, removed: false, probe_num: 0, hosts, ...over };
}

type Lb = { endpoint: { address: { socket_address: { address: string; port_value: number } } }; health_status: string; load_balancing_weight: { value: number } };
type Loc = { locality: { zone: string }; lb_endpoints: Lb[]; load_balancing_weight: { value: number }; priority: number };
const localities = (s: RouteState, zone?: string): Loc[] => loadAssignmentOf('lars-7-3', s, { zone }).endpoints as Loc[];

// grpc-js-xds' own decoders and validators: what a real proxyless gRPC client accepts.
const require = createRequire(import.meta.url);
const grpcXds = (file: string): { get(): { decode(ctx: object, r: { type_url: string; value: Uint8Array }): { name: string; value?: unknown; error?: string } } } => {
  const m = require(`@grpc/grpc-js-xds/build/src/xds-resource-type/${file}.js`) as Record<string, { get(): never }>;
  return Object.values(m).find((v) => typeof v === 'function' && 'get' in v) as never;
};

describe('xds resources', () => {
  // the HTTP filters (the router among them) are known to grpc-js-xds once it is registered
  before(function () {
    this.timeout(20_000);
    (require('@grpc/grpc-js-xds') as { register(): void }).register();
  });

  it('xds resources - names: lars-<modid>-<cmdid> both ways, anything else refused', () => {
    expect(resourceName(7, 3)).to.equal('lars-7-3');
    expect(parseResourceName('lars-7-3')).to.deep.equal({ modid: 7, cmdid: 3 });
    expect(parseResourceName('lars-4294967295-0')).to.deep.equal({ modid: 4294967295, cmdid: 0 });
    for (const bad of ['lars-7', 'lars-07-3', 'lars-4294967296-1', 'x-1-2', 'lars-1-2 ', '*', '']) expect(parseResourceName(bad), bad).to.equal(undefined);
  });

  it('xds resources - health: healthy HEALTHY, draining DRAINING, overloaded UNHEALTHY, probing left out', () => {
    expect(endpointOf(host(1), false)).to.deep.equal({ health: 'HEALTHY', weight: 100 * WEIGHT_SCALE });
    expect(endpointOf(host(1, { state: 'draining', pick_weight: 0 }), false)).to.deep.equal({ health: 'DRAINING', weight: 100 * WEIGHT_SCALE });
    expect(endpointOf(host(1, { state: 'overloaded', pick_weight: 0 }), false)?.health).to.equal('UNHEALTHY');
    expect(endpointOf(host(1, { state: 'probing', pick_weight: 5 }), false)).to.equal(undefined);
    const locs = localities(state([host(1), host(2, { state: 'draining', pick_weight: 0 }), host(3, { state: 'overloaded', pick_weight: 0 }), host(4, { state: 'probing', pick_weight: 5 })]));
    expect(locs).to.have.length(1);
    expect(locs[0]!.lb_endpoints.map((e) => [e.endpoint.address.socket_address.address, e.health_status])).to.deep.equal([
      ['10.0.0.1', 'HEALTHY'],
      ['10.0.0.2', 'DRAINING'],
      ['10.0.0.3', 'UNHEALTHY'],
    ]);
  });

  it('xds resources - panic: every host the route actor gives weight is HEALTHY, draining stays DRAINING, Envoy panic off', () => {
    const s = state([host(1, { state: 'overloaded', pick_weight: 100 }), host(2, { state: 'probing', pick_weight: 100 }), host(3, { state: 'draining', pick_weight: 0 })], { panic: true });
    expect(localities(s)[0]!.lb_endpoints.map((e) => e.health_status)).to.deep.equal(['HEALTHY', 'HEALTHY', 'DRAINING']);
    const c = clusterOf('lars-7-3', s) as { common_lb_config: { healthy_panic_threshold: { value: number } } };
    expect(c.common_lb_config.healthy_panic_threshold.value).to.equal(0);
  });

  it('xds resources - weights: pick weights as endpoint weights, locality weight the sum of its healthy ones (at least 1)', () => {
    const locs = localities(state([host(1, { pick_weight: 30, zone: 'a' }), host(2, { pick_weight: 0.5, zone: 'a' }), host(3, { state: 'overloaded', pick_weight: 0, zone: 'b' })]));
    const a = locs.find((l) => l.locality.zone === 'a')!;
    const b = locs.find((l) => l.locality.zone === 'b')!;
    expect(a.lb_endpoints.map((e) => e.load_balancing_weight.value)).to.deep.equal([30 * WEIGHT_SCALE, 0.5 * WEIGHT_SCALE]);
    expect(a.load_balancing_weight.value).to.equal(30.5 * WEIGHT_SCALE);
    expect(b.load_balancing_weight.value).to.equal(1);
  });

  it("xds resources - zones: the caller's zone is priority 0, the others 1; unknown or absent zone: all 0", () => {
    const s = state([host(1, { zone: 'eu' }), host(2, { zone: 'us' }), host(3)]);
    const byZone = (zone?: string) => Object.fromEntries(localities(s, zone).map((l) => [l.locality.zone, l.priority]));
    expect(byZone('eu')).to.deep.equal({ eu: 0, us: 1, '': 1 });
    expect(byZone(undefined)).to.deep.equal({ eu: 0, us: 0, '': 0 });
    expect(byZone('asia')).to.deep.equal({ eu: 0, us: 0, '': 0 });
    expect((loadAssignmentOf('lars-7-3', s) as { policy: { overprovisioning_factor: { value: number } } }).policy.overprovisioning_factor.value).to.equal(OVERPROVISIONING_FACTOR);
    expect(OVERPROVISIONING_FACTOR).to.equal(143);
  });

  it('xds resources - cluster: EDS over ADS, round robin unless the route picks by hash, outlier detection set', () => {
    const rr = clusterOf('lars-7-3', state([host(1)])) as Record<string, unknown>;
    expect(rr['type']).to.equal('EDS');
    expect(rr['lb_policy']).to.equal('ROUND_ROBIN');
    expect(rr['eds_cluster_config']).to.deep.equal({ eds_config: { ads: {}, resource_api_version: 'V3' }, service_name: 'lars-7-3' });
    expect(rr['outlier_detection']).to.have.property('enforcing_failure_percentage');
    expect((clusterOf('lars-7-3', state([host(1)], { strategy: 'hash' })) as Record<string, unknown>)['lb_policy']).to.equal('RING_HASH');
    expect((clusterOf('lars-7-3', state([host(1)]), { lb: 'ring_hash' }) as Record<string, unknown>)['lb_policy']).to.equal('RING_HASH');
  });

  it('xds resources - every resource encodes with the Envoy protos and a real gRPC xDS client (grpc-js-xds) accepts it', () => {
    const p = xdsProtos();
    const s = state([host(1, { zone: 'eu' }), host(2, { zone: 'us', state: 'draining', pick_weight: 0 }), host(3, { state: 'overloaded', pick_weight: 0 })], { strategy: 'hash' });
    const decoders = {
      [TypeUrl.listener]: grpcXds('listener-resource-type'),
      [TypeUrl.routeConfiguration]: grpcXds('route-config-resource-type'),
      [TypeUrl.cluster]: grpcXds('cluster-resource-type'),
      [TypeUrl.clusterLoadAssignment]: grpcXds('endpoint-resource-type'),
    };
    for (const type of RESOURCE_TYPES) {
      const t = p.type(type);
      const obj = resourceOf(type, s, { zone: 'eu' });
      expect(t.verify(t.fromObject(obj)), type).to.equal(null);
      const value = t.encode(t.fromObject(obj)).finish();
      const r = decoders[type].get().decode({}, { type_url: type, value });
      expect(r.error, `${type}: ${r.error}`).to.equal(undefined);
      expect(r.name).to.equal('lars-7-3');
    }
  });

  it('xds resources - a resource gRPC refuses is refused by the same check (the check can fail)', () => {
    const p = xdsProtos();
    const t = p.type(TypeUrl.cluster);
    const bad = { ...clusterOf('lars-7-3', state([host(1)])), lb_policy: 'MAGLEV' };
    const r = grpcXds('cluster-resource-type').get().decode({}, { type_url: TypeUrl.cluster, value: t.encode(t.fromObject(bad)).finish() });
    expect(r.error).to.match(/lb_policy/);
  });
});
