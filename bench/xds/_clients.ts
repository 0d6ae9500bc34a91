/**
 * Child of bench/xds.ts: `streams` ADS streams (grpc-js, as a proxyless
 * client's own xDS client opens one per process), each subscribed to the
 * load assignment of route 1.1, ACKing every response and decoding its
 * resource as a client does. Reports, per response, the update it carries
 * (host 0's weight) and when it arrived (epoch ms).
 */
import * as grpc from '@grpc/grpc-js';
import { adsService } from '../../src/xds/server.ts';
import { TypeUrl, xdsProtos } from '../../src/xds/protos.ts';
import { WEIGHT_SCALE } from '../../src/xds/resources.ts';
import type { DiscoveryRequest, DiscoveryResponse } from '../../src/xds/ads-stream.ts';
import { childConfig, epochMs, exitWithParent, toParent } from '../_common.ts';

interface Config {
  port: number;
  streams: number;
  /** Channels to spread the streams over (a real client has one per process). */
  channels: number;
}

type Ads = grpc.Client & { StreamAggregatedResources(): grpc.ClientDuplexStream<DiscoveryRequest, DiscoveryResponse> };

const cfg = childConfig<Config>();
const Client = grpc.makeGenericClientConstructor(adsService(), 'Ads');
const cla = xdsProtos().type(TypeUrl.clusterLoadAssignment);
const clients: Ads[] = Array.from({ length: cfg.channels }, (_, i) => new Client(`127.0.0.1:${cfg.port}`, grpc.credentials.createInsecure(), { 'grpc.channel_id': i }) as unknown as Ads);
/** [update, arrival epoch ms] per response. */
let seen: Array<[number, number]> = [];
let subscribed = 0;

for (let i = 0; i < cfg.streams; i++) {
  const stream = clients[i % clients.length]!.StreamAggregatedResources();
  stream.on('error', () => undefined);
  stream.on('data', (r: DiscoveryResponse) => {
    const at = epochMs();
    const res = (r.resources ?? [])[0];
    stream.write({ type_url: r.type_url, resource_names: ['lars-1-1'], version_info: r.version_info, response_nonce: r.nonce });
    if (!res) return;
    const m = cla.toObject(cla.decode(res.value)) as { endpoints: Array<{ lb_endpoints: Array<{ load_balancing_weight: { value: number } }> }> };
    const w = m.endpoints[0]?.lb_endpoints[0]?.load_balancing_weight.value ?? 0;
    if (w === WEIGHT_SCALE * 10_000) {
      if (++subscribed === cfg.streams) toParent({ type: 'subscribed' });
      return;
    }
    seen.push([w / WEIGHT_SCALE, at]);
  });
  stream.write({ node: { id: `bench-${i}` }, type_url: TypeUrl.clusterLoadAssignment, resource_names: ['lars-1-1'] });
}

process.on('message', (m: { type: string }) => {
  if (m.type === 'report') {
    toParent({ type: 'seen', seen });
    seen = [];
  }
});
exitWithParent(async () => {
  for (const c of clients) c.close();
});
