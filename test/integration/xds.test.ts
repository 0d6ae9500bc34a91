import { expect } from 'chai';
import { createRequire } from 'node:module';
import { spawn } from 'node:child_process';
import * as readline from 'node:readline';
import { connect } from 'node:net';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { identity, ECHO, EchoClient, type Echo } from '../helpers/grpc-echo.ts';
import { uniquePrefix, useCluster, type TestCluster } from '../helpers/cluster.ts';
import { Registry } from '../../src/registry/registry.ts';
import { names } from '../../schemas/subjects.ts';
import { waitFor } from '../helpers/wait.ts';
import { XdsServer, adsService } from '../../src/xds/server.ts';
import { bootstrapOf } from '../../src/xds/bootstrap.ts';
import { TypeUrl, xdsProtos } from '../../src/xds/protos.ts';
import type { DiscoveryRequest, DiscoveryResponse } from '../../src/xds/ads-stream.ts';
import { createLogger, silentLogger } from '../../src/lib/log.ts';
import { actOnHost } from '../../src/admin/host-actions.ts';
import { lars, larsLive } from '../helpers/cli.ts';
import { freePort } from '../helpers/clickhouse-server.ts';
import { servedReporter, type ServedReporter } from '../../src/integrations/grpc-server.ts';
import { tryDecode } from '../../schemas/codec.ts';
import type { Agent } from '../../src/agent/agent.ts';

const require = createRequire(import.meta.url);

interface Backend {
  port: number;
  requests: number;
  /** Answers with UNAVAILABLE while set. */
  failing: boolean;
  close(): void;
}

/** A real gRPC server on loopback; with a reporter, it reports every call it answered (server side) as a host of route 1.1. */
async function backend(id: string, reporter?: ServedReporter): Promise<Backend> {
  const port = await freePort();
  const server = new grpc.Server(reporter ? { interceptors: [servedReporter({ reporter, modid: 1, cmdid: 1, host: { ip: '127.0.0.1', port } })] } : {});
  const b: Backend = { port, requests: 0, failing: false, close: () => server.forceShutdown() };
  server.addService(ECHO, {
    hello: (_call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      b.requests++;
      if (b.failing) cb({ code: grpc.status.UNAVAILABLE, details: 'failing' });
      else cb(null, Buffer.from(id));
    },
  });
  await new Promise<number>((resolve, reject) => server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  return b;
}

/** A proxyless gRPC client (grpc-js-xds, no project code) dialling `xds:///<name>` with its own bootstrap. */
function xdsClient(xdsPort: number, name: string, nodeId: string, zone?: string): Echo {
  const bootstrap = bootstrapOf({ serverUri: `127.0.0.1:${xdsPort}`, nodeId, zone });
  return new EchoClient(`xds:///${name}`, grpc.credentials.createInsecure(), { 'grpc.TEST_ONLY_DO_NOT_USE_IN_PROD.xds_bootstrap_config': JSON.stringify(bootstrap) }) as unknown as Echo;
}

const call = (c: Echo): Promise<string> =>
  new Promise((resolve, reject) => c.hello(Buffer.from('hi'), { deadline: Date.now() + 5000 }, (err, res) => (err ? reject(err) : resolve(res!.toString()))));

describe('xds: proxyless gRPC (grpc-js-xds) through the ADS server (real nats-server, route node, gRPC servers)', function () {
  this.timeout(60_000);
  const cluster = useCluster();
  let c: TestCluster;
  let servers: Backend[] = [];
  let xds: XdsServer;
  const clients: grpc.Client[] = [];
  before(() => (require('@grpc/grpc-js-xds') as { register(): void }).register());
  let served: Agent;
  beforeEach(async () => {
    c = cluster();
    // the hosts report what they served, as a host without callers that report would
    served = await c.agent({ side: 'server', agentId: 'served-by-hosts' });
    servers = await Promise.all([backend('b0', served), backend('b1', served), backend('b2', served)]);
    await c.addRoute(1, 1, servers.map((s) => ({ ip: '127.0.0.1', port: s.port, weight: 100 })));
    await c.published(1, 1);
    const log = process.env['LARS_TEST_LOG'] ? createLogger({ level: process.env['LARS_TEST_LOG'], node: 'xds' }) : silentLogger();
    xds = await XdsServer.start({ nc: await c.connection(), names: c.n, log, port: 0, serverId: 'xds-test' });
  });
  afterEach(async () => {
    for (const cl of clients.splice(0)) cl.close();
    await xds.close();
    for (const s of servers) s.close();
  });

  it('xds - calls are spread over the hosts; a host the route actor ejects leaves the client within the deadline', async () => {
    const client = xdsClient(xds.port, 'lars-1-1', 'client-1');
    clients.push(client);
    const seen = new Set<string>();
    for (let i = 0; i < 30; i++) seen.add(await call(client));
    expect([...seen].sort()).to.deep.equal(['b0', 'b1', 'b2']);
    expect(xds.stats().streams).to.equal(1);

    // 15 consecutive errors reported for b0: the route actor ejects it
    const a = await c.agent();
    for (let i = 0; i < 15; i++) a.report(1, 1, { ip: '127.0.0.1', port: servers[0]!.port }, 1, 1);
    await a.flush();
    const ejectedAt = Date.now();
    const ejected = await waitFor(() => c.latest(1, 1)?.hosts.find((h) => h.port === servers[0]!.port && h.state === 'overloaded'), { what: 'b0 ejected by the route actor' });
    expect(ejected.reason).to.equal('consecutive_errors');
    await waitFor(
      async () => {
        const before = servers[0]!.requests;
        for (let i = 0; i < 9; i++) await call(client);
        return servers[0]!.requests === before;
      },
      { what: 'the xDS client stops calling the ejected host', timeoutMs: 5000 },
    );
    const b1 = servers[1]!.requests;
    const b2 = servers[2]!.requests;
    for (let i = 0; i < 20; i++) expect(await call(client)).to.not.equal('b0');
    expect(servers[1]!.requests - b1).to.be.greaterThan(0);
    expect(servers[2]!.requests - b2).to.be.greaterThan(0);
    expect(Date.now() - ejectedAt).to.be.lessThan(10_000);
    expect(xds.stats().nacks, 'the client accepted every response').to.equal(0);
    expect(xds.stats().acks).to.be.greaterThan(4);
    // the client reports its load (LRS) every second: the successful calls made so far
    const lrs = await waitFor(() => xds.stats().lrs.succeeded >= 30 && xds.stats().lrs, { what: "the client's load reports", timeoutMs: 5000, explain: () => JSON.stringify(xds.stats().lrs) });
    expect(lrs.streams).to.equal(1);
    expect(lrs.unknownClusters).to.equal(0);
    client.close();
    await waitFor(() => xds.stats().streams === 0, { what: 'the closed client ends its ADS stream', timeoutMs: 3000, explain: () => JSON.stringify(xds.stats()) });
  });

  it('xds - a NACK is logged and counted, the stream lives on and gets the next change', async () => {
    const Ads = grpc.makeGenericClientConstructor(adsService(), 'Ads');
    const raw = new Ads(`127.0.0.1:${xds.port}`, grpc.credentials.createInsecure()) as unknown as grpc.Client & { StreamAggregatedResources(): grpc.ClientDuplexStream<DiscoveryRequest, DiscoveryResponse> };
    clients.push(raw);
    const stream = raw.StreamAggregatedResources();
    const got: DiscoveryResponse[] = [];
    stream.on('data', (r: DiscoveryResponse) => got.push(r));
    stream.on('error', () => undefined);
    stream.write({ node: { id: 'raw-1' }, type_url: TypeUrl.clusterLoadAssignment, resource_names: ['lars-1-1'] });
    const first = await waitFor(() => got[0], { what: 'the first EDS response' });
    expect(first.resources).to.have.length(1);
    stream.write({ type_url: TypeUrl.clusterLoadAssignment, resource_names: ['lars-1-1'], version_info: '', response_nonce: first.nonce, error_detail: { code: 3, message: 'refused on purpose' } });
    await waitFor(() => xds.stats().nacks === 1, { what: 'the NACK counted' });
    expect(got).to.have.length(1);
    // a host drained in the registry changes the route: the stream gets the new assignment
    await actOnHost(c.registry, { route: { modid: 1, cmdid: 1 }, addr: { ip: '127.0.0.1', port: servers[2]!.port }, action: 'drain', by: 'test', force: true });
    const next = await waitFor(() => got[1], { what: 'the next EDS response after the NACK' });
    expect(next.nonce).to.not.equal(first.nonce);
    stream.end();
  });

  it('xds - `lars xds` as a process: ready, metrics, a client bootstrapped by `lars xds bootstrap` calls through it, and a restart does not disturb the client', async () => {
    const [xdsPort, httpPort] = [await freePort(), await freePort()];
    const env = { LARS_NATS_URL: c.server.url, LARS_PREFIX: c.prefix, LARS_PARTITIONS: '8' };
    const boot = await lars(['xds', 'bootstrap', '--xds-port', String(xdsPort), '--node-id', 'cli-client', '--zone', 'z1'], env);
    expect(boot.code, boot.stderr).to.equal(0);
    const bootstrap = JSON.parse(boot.stdout) as { xds_servers: Array<{ server_uri: string }>; node: { id: string; locality: { zone: string } } };
    expect(bootstrap.xds_servers[0]!.server_uri).to.equal(`127.0.0.1:${xdsPort}`);
    expect(bootstrap.node).to.deep.equal({ id: 'cli-client', locality: { zone: 'z1' } });

    const start = () => larsLive(['xds', '--xds-port', String(xdsPort), '--http', String(httpPort)], env);
    let p = start();
    const t0 = Date.now();
    const step = (what: string): void => void (process.env['XDS_TEST_STEPS'] && console.log(`${Date.now() - t0} ms: ${what}`));
    try {
      const url = `http://127.0.0.1:${httpPort}`;
      await waitFor(async () => (await fetch(`${url}/readyz`).catch(() => undefined))?.status === 200, { what: 'lars xds ready', timeoutMs: 20_000, explain: () => p.errLines.join('\n') });
      step('ready');
      const client = new EchoClient('xds:///lars-1-1', grpc.credentials.createInsecure(), { 'grpc.TEST_ONLY_DO_NOT_USE_IN_PROD.xds_bootstrap_config': boot.stdout }) as unknown as Echo;
      clients.push(client);
      const seen = new Set<string>();
      for (let i = 0; i < 12; i++) seen.add(await call(client));
      expect(seen.size).to.equal(3);
      const metrics = await (await fetch(`${url}/metrics`)).text();
      expect(metrics).to.match(/^lars_xds_streams({[^}]*})? 1$/m);
      expect(metrics).to.match(/^lars_xds_routes({[^}]*})? 1$/m);
      expect(metrics).to.match(/^lars_xds_acks_total({[^}]*})? [1-9]/m);

      // stopped: the client keeps calling on what it has; started again: it reconnects and follows changes again
      step('calls and metrics');
      p.child.kill('SIGTERM');
      let timer: ReturnType<typeof setTimeout> | undefined;
      const code = await Promise.race([p.exited, new Promise((r) => (timer = setTimeout(() => r('still running'), 15_000)))]);
      clearTimeout(timer);
      expect(code, p.errLines.join('\n')).to.equal(0);
      step('stopped');
      for (let i = 0; i < 6; i++) expect(['b0', 'b1', 'b2']).to.include(await call(client));
      step('calls while stopped');
      p = start();
      await waitFor(async () => (await fetch(`${url}/readyz`).catch(() => undefined))?.status === 200, { what: 'lars xds ready again', timeoutMs: 20_000 });
      step('ready again');
      await actOnHost(c.registry, { route: { modid: 1, cmdid: 1 }, addr: { ip: '127.0.0.1', port: servers[1]!.port }, action: 'drain', by: 'test', force: true });
      await waitFor(
        async () => {
          const before = servers[1]!.requests;
          for (let i = 0; i < 6; i++) await call(client);
          return servers[1]!.requests === before;
        },
        { what: 'the drained host left the client after the restart', timeoutMs: 10_000 },
      );
      step('drained host left');
      // a closed client ends its ADS stream (grpc-js-xds keeps retrying a stream to a server that is gone)
      client.close();
      await waitFor(async () => /^lars_xds_streams({[^}]*})? 0$/m.test(await (await fetch(`${url}/metrics`)).text()), { what: 'the client gone from lars xds' });
      step('client gone');
    } finally {
      p.child.kill('SIGTERM');
      await p.exited;
      step('stopped at the end');
    }
  });

  it('xds - a host failing in the backend, reported server side, leaves the xDS client; the batches say they are server side', async () => {
    const sides: Array<unknown> = [];
    const spy = c.nc.subscribe(c.n.reportAll, { callback: (_e, m) => void sides.push((tryDecode(m.data) as { ok: boolean; value?: { sender?: string; side?: unknown } }).value?.side) });
    const client = xdsClient(xds.port, 'lars-1-1', 'client-s');
    clients.push(client);
    for (let i = 0; i < 9; i++) await call(client);
    servers[0]!.failing = true;
    // calls to b0 fail until the route actor, fed by b0's own reports, ejects it and the xDS server tells the client
    await waitFor(
      async () => {
        let failed = 0;
        for (let i = 0; i < 9; i++) await call(client).catch(() => failed++);
        return failed === 0;
      },
      { what: 'the failing host out of the client', timeoutMs: 10_000 },
    );
    const b0 = c.latest(1, 1)?.hosts.find((h) => h.port === servers[0]!.port);
    expect(b0?.state).to.equal('overloaded');
    await served.flush();
    await waitFor(() => sides.length > 0, { what: 'a report batch seen' });
    spy.unsubscribe();
    expect(new Set(sides)).to.deep.equal(new Set(['server']));
  });

  it('xds - several clients on two xds instances agree: an ejected host leaves all of them', async () => {
    const xds2 = await XdsServer.start({ nc: await c.connection(), names: c.n, log: silentLogger(), port: 0, serverId: 'xds-test-2' });
    try {
      const a = [xdsClient(xds.port, 'lars-1-1', 'a1'), xdsClient(xds.port, 'lars-1-1', 'a2'), xdsClient(xds2.port, 'lars-1-1', 'b1')];
      clients.push(...a);
      for (const cl of a) for (let i = 0; i < 6; i++) await call(cl);
      expect(xds.stats().streams + xds2.stats().streams).to.equal(3);
      const agent = await c.agent();
      for (let i = 0; i < 15; i++) agent.report(1, 1, { ip: '127.0.0.1', port: servers[0]!.port }, 1, 1);
      await agent.flush();
      await waitFor(() => c.latest(1, 1)?.hosts.find((h) => h.port === servers[0]!.port && h.state === 'overloaded'), { what: 'b0 ejected' });
      await waitFor(
        async () => {
          const before = servers[0]!.requests;
          for (const cl of a) for (let i = 0; i < 6; i++) await call(cl);
          return servers[0]!.requests === before;
        },
        { what: 'every client on either instance stops calling the ejected host', timeoutMs: 5000 },
      );
      for (const cl of a) cl.close();
    } finally {
      await xds2.close();
    }
  });

  it("xds - a client's zone is served first; when that zone's host is ejected its calls go to the other zone (client in its own process)", async () => {
    await c.addRoute(1, 2, servers.map((sv, i) => ({ ip: '127.0.0.1', port: sv.port, weight: 100, zone: i === 0 ? 'z1' : 'z2' })));
    await c.published(1, 2);
    // its own process: grpc-js-xds keeps a 15-minute timer of a closed channel's priority balancer (destroy does not clear it)
    const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('../helpers/xds-client.ts', import.meta.url))], {
      env: { ...process.env, XDS_TARGET: 'xds:///lars-1-2', GRPC_XDS_BOOTSTRAP_CONFIG: JSON.stringify(bootstrapOf({ serverUri: `127.0.0.1:${xds.port}`, nodeId: 'zoned', zone: 'z1' })) },
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    const exited = new Promise((r) => child.once('exit', r));
    const answers = readline.createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
    const calls = async (n: number): Promise<string[]> => {
      child.stdin!.write(`${n}\n`);
      const r = await answers.next();
      return JSON.parse(r.value as string) as string[];
    };
    try {
      expect(new Set(await calls(12))).to.deep.equal(new Set(['b0']));
      const agent = await c.agent();
      for (let i = 0; i < 15; i++) agent.report(1, 2, { ip: '127.0.0.1', port: servers[0]!.port }, 1, 1);
      await agent.flush();
      await waitFor(() => c.latest(1, 2)?.hosts.find((h) => h.port === servers[0]!.port && h.state === 'overloaded'), { what: 'the z1 host ejected' });
      const seen = await waitFor(
        async () => {
          const got = new Set(await calls(12));
          return !got.has('b0') && got;
        },
        { what: 'calls moved to zone z2', timeoutMs: 5000 },
      );
      expect([...seen].sort()).to.deep.equal(['b1', 'b2']);
    } finally {
      child.stdin!.end();
      await exited;
    }
  });

  it('xds - `lars node --xds <port>` serves its routes over xDS', async () => {
    const prefix = uniquePrefix();
    await (await Registry.open(c.nc, names(prefix))).addHosts(3, 3, [{ ip: '10.3.0.1', port: 80, weight: 100 }], 'test', { profile: 'default', params: {} });
    const port = await freePort();
    const p = larsLive(['node', '--own', '0-7', '--xds', String(port)], { LARS_NATS_URL: c.server.url, LARS_PREFIX: prefix, LARS_PARTITIONS: '8' });
    const Ads = grpc.makeGenericClientConstructor(adsService(), 'Ads');
    const raw = new Ads(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as unknown as grpc.Client & {
      StreamAggregatedResources(): grpc.ClientDuplexStream<DiscoveryRequest, DiscoveryResponse>;
    };
    clients.push(raw);
    try {
      // the node starts its xDS server once its routes are loaded: wait for the port
      await waitFor(
        () =>
          new Promise<boolean>((resolve) => {
            const sock = connect(port, '127.0.0.1');
            sock.once('connect', () => (sock.destroy(), resolve(true)));
            sock.once('error', () => resolve(false));
          }),
        { what: 'the xDS port of lars node', timeoutMs: 20_000, intervalMs: 100, explain: () => p.errLines.join('\n') },
      );
      const stream = raw.StreamAggregatedResources();
      const got: DiscoveryResponse[] = [];
      stream.on('data', (r: DiscoveryResponse) => got.push(r));
      stream.on('error', () => undefined);
      stream.write({ node: { id: 'node-xds' }, type_url: TypeUrl.cluster });
      const r = await waitFor(() => got.find((x) => x.resources.length > 0), { what: 'the wildcard CDS of lars node --xds', timeoutMs: 20_000, explain: () => p.errLines.join('\n') });
      const t = xdsProtos().type(TypeUrl.cluster);
      expect((t.toObject(t.decode(r.resources[0]!.value)) as { name: string }).name).to.equal('lars-3-3');
      stream.end();
    } finally {
      p.child.kill('SIGTERM');
      await p.exited;
    }
  });

  it('xds - a request that cannot be decoded ends its stream and is counted; the server serves on', async () => {
    const def = { ads: { ...adsService()['StreamAggregatedResources']!, requestSerialize: identity, responseDeserialize: identity } } satisfies grpc.ServiceDefinition;
    const Raw = grpc.makeGenericClientConstructor(def, 'RawAds');
    const raw = new Raw(`127.0.0.1:${xds.port}`, grpc.credentials.createInsecure()) as unknown as grpc.Client & { ads(): grpc.ClientDuplexStream<Buffer, Buffer> };
    clients.push(raw);
    const stream = raw.ads();
    const ended = new Promise<grpc.ServiceError>((resolve) => stream.on('error', resolve));
    stream.write(Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x01]));
    const err = await ended;
    expect(err.code).to.equal(grpc.status.INTERNAL);
    expect(xds.stats().malformed).to.equal(1);
    const client = xdsClient(xds.port, 'lars-1-1', 'after-garbage');
    clients.push(client);
    expect(['b0', 'b1', 'b2']).to.include(await call(client));
  });
});
