import { expect } from 'chai';
import { AdsStream, newCounters, type DiscoveryResponse, type ResourceReader } from '../../src/xds/ads-stream.ts';
import { TypeUrl, type ResourceTypeUrl } from '../../src/xds/protos.ts';
import type { EncodedResource } from '../../src/xds/route-source.ts';
import { RateLimitedLog } from '../../src/lib/ratelog.ts';
import { silentLogger } from '../../src/lib/log.ts';
import { LoadReports } from '../../src/xds/lrs.ts';

/** Routes by name with a content byte per route: changing it changes every resource of the route. */
class Routes implements ResourceReader {
  readonly content = new Map<string, number>();
  names(): Iterable<string> {
    return this.content.keys();
  }
  encoded(type: ResourceTypeUrl, name: string, zone: string | undefined): EncodedResource | undefined {
    const c = this.content.get(name);
    return c === undefined ? undefined : { type_url: type, value: new TextEncoder().encode(`${name}/${c}/${zone ?? ''}`) };
  }
}

function setup() {
  const routes = new Routes();
  routes.content.set('lars-1-1', 1);
  routes.content.set('lars-1-2', 1);
  const sent: DiscoveryResponse[] = [];
  const counters = newCounters();
  const log = silentLogger();
  const s = new AdsStream({ source: routes, send: (r) => sent.push(r), counters, serverId: 'x1', log, rateLog: new RateLimitedLog(log, 10_000) });
  const names = (r: DiscoveryResponse | undefined) => (r?.resources ?? []).map((x) => new TextDecoder().decode(x.value));
  return { routes, sent, counters, s, names };
}

describe('xds stream', () => {
  it('xds stream - a subscription is answered at once with the named resources; the ACK sends nothing more', () => {
    const { s, sent, counters, names } = setup();
    s.onRequest({ node: { id: 'c1', locality: { zone: 'eu' } }, type_url: TypeUrl.clusterLoadAssignment, resource_names: ['lars-1-1'] });
    expect(sent).to.have.length(1);
    expect(names(sent[0])).to.deep.equal(['lars-1-1/1/eu']);
    s.onRequest({ type_url: TypeUrl.clusterLoadAssignment, resource_names: ['lars-1-1'], version_info: sent[0]!.version_info, response_nonce: sent[0]!.nonce });
    expect(sent).to.have.length(1);
    expect(counters.acks).to.equal(1);
    expect(s.acked(TypeUrl.clusterLoadAssignment)).to.equal(sent[0]!.version_info);
  });

  it('xds stream - LDS and CDS without names are wildcards (every route); EDS without names is nothing', () => {
    const { s, sent, names } = setup();
    s.onRequest({ type_url: TypeUrl.listener });
    s.onRequest({ type_url: TypeUrl.cluster, resource_names: ['*'] });
    s.onRequest({ type_url: TypeUrl.clusterLoadAssignment });
    expect(names(sent[0])).to.deep.equal(['lars-1-1/1/', 'lars-1-2/1/']);
    expect(names(sent[1])).to.have.length(2);
    expect(names(sent[2])).to.deep.equal([]);
  });

  it('xds stream - a route change goes to the streams subscribed to it, only when its bytes change', () => {
    const { s, sent, routes, names } = setup();
    s.onRequest({ type_url: TypeUrl.clusterLoadAssignment, resource_names: ['lars-1-1'] });
    s.onRouteChange('lars-1-2');
    expect(sent).to.have.length(1);
    s.onRouteChange('lars-1-1');
    expect(sent, 'same bytes').to.have.length(1);
    routes.content.set('lars-1-1', 2);
    s.onRouteChange('lars-1-1');
    expect(sent).to.have.length(2);
    expect(names(sent[1])).to.deep.equal(['lars-1-1/2/']);
    expect(sent[1]!.version_info).to.not.equal(sent[0]!.version_info);
    expect(sent[1]!.nonce).to.not.equal(sent[0]!.nonce);
  });

  it('xds stream - a wildcard subscription learns of new and removed routes', () => {
    const { s, sent, routes, names } = setup();
    s.onRequest({ type_url: TypeUrl.cluster });
    routes.content.set('lars-2-1', 1);
    s.onRouteChange('lars-2-1');
    expect(names(sent[1])).to.include('lars-2-1/1/');
    routes.content.delete('lars-1-1');
    s.onRouteChange('lars-1-1');
    expect(names(sent[2])).to.deep.equal(['lars-1-2/1/', 'lars-2-1/1/']);
  });

  it('xds stream - a NACK is counted, the accepted version kept, nothing resent until the resource changes', () => {
    const { s, sent, counters, routes } = setup();
    s.onRequest({ type_url: TypeUrl.cluster, resource_names: ['lars-1-1'] });
    s.onRequest({ type_url: TypeUrl.cluster, resource_names: ['lars-1-1'], version_info: sent[0]!.version_info, response_nonce: sent[0]!.nonce });
    routes.content.set('lars-1-1', 2);
    s.onRouteChange('lars-1-1');
    s.onRequest({ type_url: TypeUrl.cluster, resource_names: ['lars-1-1'], version_info: sent[0]!.version_info, response_nonce: sent[1]!.nonce, error_detail: { code: 3, message: 'bad cluster' } });
    expect(counters.nacks).to.equal(1);
    expect(s.acked(TypeUrl.cluster)).to.equal(sent[0]!.version_info);
    expect(sent).to.have.length(2);
    routes.content.set('lars-1-1', 3);
    s.onRouteChange('lars-1-1');
    expect(sent).to.have.length(3);
  });

  it('xds stream - a request with a stale nonce is ignored; new names with the current nonce are answered', () => {
    const { s, sent, counters, routes, names } = setup();
    s.onRequest({ type_url: TypeUrl.routeConfiguration, resource_names: ['lars-1-1'] });
    routes.content.set('lars-1-1', 2);
    s.onRouteChange('lars-1-1');
    s.onRequest({ type_url: TypeUrl.routeConfiguration, resource_names: ['lars-1-1', 'lars-1-2'], response_nonce: sent[0]!.nonce });
    expect(counters.stale).to.equal(1);
    expect(sent).to.have.length(2);
    s.onRequest({ type_url: TypeUrl.routeConfiguration, resource_names: ['lars-1-1', 'lars-1-2'], response_nonce: sent[1]!.nonce, version_info: sent[1]!.version_info });
    expect(sent).to.have.length(3);
    expect(names(sent[2])).to.deep.equal(['lars-1-1/2/', 'lars-1-2/1/']);
  });

  it('xds stream - an unknown resource type is counted and ignored', () => {
    const { s, sent, counters } = setup();
    s.onRequest({ type_url: 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret' });
    expect(sent).to.have.length(0);
    expect(counters.rejected['unknown_type']).to.equal(1);
  });
});

describe('xds load reports', () => {
  it('xds lrs - every cluster asked for each second; routes counted, other clusters and bad counts not', () => {
    const log = silentLogger();
    const l = new LoadReports(new RateLimitedLog(log, 10_000));
    expect(l.opened()).to.deep.equal({ send_all_clusters: true, load_reporting_interval: { seconds: 1 } });
    l.add({
      node: { id: 'c1' },
      cluster_stats: [
        { cluster_name: 'lars-1-1', total_dropped_requests: 2, upstream_locality_stats: [{ locality: { zone: 'z1' }, total_successful_requests: 40, total_error_requests: 3 }, { total_successful_requests: 5 }] },
        { cluster_name: 'other', upstream_locality_stats: [{ total_successful_requests: 1000 }] },
        { cluster_name: 'lars-1-2', upstream_locality_stats: [{ total_successful_requests: -5, total_error_requests: Number.NaN }] },
      ],
    });
    expect(l.stats()).to.deep.equal({ streams: 1, reports: 1, succeeded: 45, failed: 3, dropped: 2, unknownClusters: 1 });
  });
});
