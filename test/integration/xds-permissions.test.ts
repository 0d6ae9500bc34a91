/**
 * The xds user of the shipped NATS permissions (deploy/nats/permissions.conf)
 * on a real nats-server: `lars xds`'s server follows routes and watches the
 * routes bucket with it, and it cannot write route state.
 */
import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { Kvm } from '@nats-io/kv';
import type { NatsServer } from '../../src/nats/natsd.ts';
import { connectNats, type NatsConnection } from '../../src/nats/connect.ts';
import { RouteNode } from '../../src/node/route-node.ts';
import { Registry } from '../../src/registry/registry.ts';
import { ensureStreams } from '../../src/nats/streams.ts';
import { names } from '../../schemas/subjects.ts';
import { encode } from '../../schemas/codec.ts';
import { XdsServer, adsService } from '../../src/xds/server.ts';
import { TypeUrl, xdsProtos } from '../../src/xds/protos.ts';
import type { DiscoveryRequest, DiscoveryResponse } from '../../src/xds/ads-stream.ts';
import { createLogger, silentLogger } from '../../src/lib/log.ts';
import { waitFor } from '../helpers/wait.ts';
import { rolePasswords, setEnvironment, startPermissionsServer } from '../helpers/secured-nats.ts';

const PASSWORDS = rolePasswords();
const connectAs = (url: string, user: string, pass: string): Promise<NatsConnection> => connectNats({ url, name: user, extra: { user, pass } });

describe('xds - the xds NATS user from deploy/nats', function () {
  this.timeout(60_000);
  const n = names('lars');
  let dir: string;
  let server: NatsServer;
  const conns: NatsConnection[] = [];
  let node: RouteNode | undefined;
  let xds: XdsServer | undefined;
  let restoreEnv: (() => void) | undefined;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'lars-xds-sec-'));
    restoreEnv = setEnvironment(PASSWORDS);
    server = await startPermissionsServer(dir);
  });

  after(async () => {
    await xds?.close();
    await node?.close();
    for (const nc of conns) await nc.close().catch(() => undefined);
    await server?.stop();
    restoreEnv?.();
    rmSync(dir, { recursive: true, force: true });
  });

  it('xds - serves a route with the xds user and cannot write route state', async () => {
    const xdsNc = await connectAs(server.url, 'xds', PASSWORDS.LARS_XDS_PASSWORD);
    conns.push(xdsNc);
    // started before any route node: it waits for the routes bucket, not ready
    xds = await XdsServer.start({ nc: xdsNc, names: n, log: process.env['LARS_TEST_LOG'] ? createLogger({ level: 'debug', node: 'xds' }) : silentLogger(), port: 0, serverId: 'xds-sec' });
    expect(xds.ready()).to.equal(false);

    const admin = await connectAs(server.url, 'admin', PASSWORDS.LARS_ADMIN_PASSWORD);
    conns.push(admin);
    await ensureStreams(admin, n, { reports: { maxBytes: 64 * 2 ** 20 }, events: { maxBytes: 16 * 2 ** 20 } });
    await (await Registry.open(admin, n)).addHosts(9, 9, [{ ip: '10.9.0.1', port: 80, weight: 100 }], 'test', { profile: 'default', params: {} });
    const nodeNc = await connectAs(server.url, 'route-node', PASSWORDS.LARS_NODE_PASSWORD);
    conns.push(nodeNc);
    node = await RouteNode.start({ nc: nodeNc, nodeId: 'sec-node', prefix: 'lars', partitions: 8, tickMs: 25 });
    await node.settled();
    await waitFor(() => xds!.ready(), { what: 'the xds server finds the routes bucket', timeoutMs: 5000 });

    const Ads = grpc.makeGenericClientConstructor(adsService(), 'Ads');
    const raw = new Ads(`127.0.0.1:${xds.port}`, grpc.credentials.createInsecure()) as unknown as grpc.Client & { StreamAggregatedResources(): grpc.ClientDuplexStream<DiscoveryRequest, DiscoveryResponse> };
    try {
      const stream = raw.StreamAggregatedResources();
      const got: DiscoveryResponse[] = [];
      stream.on('data', (r: DiscoveryResponse) => got.push(r));
      stream.on('error', () => undefined);
      stream.write({ node: { id: 'sec-client' }, type_url: TypeUrl.clusterLoadAssignment, resource_names: ['lars-9-9'] });
      const r = await waitFor(() => got.find((x) => x.resources.length === 1), { what: 'the load assignment of route 9.9' });
      const t = xdsProtos().type(TypeUrl.clusterLoadAssignment);
      const cla = t.toObject(t.decode(r.resources[0]!.value), { enums: String }) as { endpoints: Array<{ lb_endpoints: Array<{ endpoint: { address: { socket_address: { address: string } } } }> }> };
      expect(cla.endpoints[0]!.lb_endpoints[0]!.endpoint.address.socket_address.address).to.equal('10.9.0.1');
      stream.end();
    } finally {
      raw.close();
    }

    const kv = await new Kvm(xdsNc).open(n.routesBucket, { bindOnly: true });
    let refused: unknown;
    try {
      await kv.put(n.routeKey(9, 9), encode({ forged: true }));
    } catch (err) {
      refused = err;
    }
    expect(refused, 'put must fail').to.be.instanceOf(Error);
  });
});
