import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import { ECHO, EchoClient, type Echo } from '../helpers/grpc-echo.ts';
import { useCluster, type TestCluster } from '../helpers/cluster.ts';
import { waitFor } from '../helpers/wait.ts';
import { createGrpcCaller } from '../../src/integrations/grpc-call.ts';

const newEcho = (address: string): Echo => new EchoClient(address, grpc.credentials.createInsecure()) as unknown as Echo;

/** A real gRPC server on loopback: answers, fails UNAVAILABLE, or hangs until the client cancels (which it counts). */
interface Backend {
  port: number;
  mode: 'ok' | 'fail' | 'hang';
  requests: number;
  cancelled: number;
  /** Milliseconds left to each request's deadline when it arrived. */
  deadlines: number[];
  close(): void;
}

async function backend(id: string): Promise<Backend> {
  const server = new grpc.Server();
  const b: Backend = { port: 0, mode: 'ok', requests: 0, cancelled: 0, deadlines: [], close: () => server.forceShutdown() };
  server.addService(ECHO, {
    hello: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      b.requests++;
      const d = call.getDeadline();
      b.deadlines.push(d instanceof Date ? d.getTime() - Date.now() : Number(d) - Date.now());
      if (b.mode === 'ok') return cb(null, Buffer.from(id));
      if (b.mode === 'fail') return cb({ code: grpc.status.UNAVAILABLE, details: 'failing' });
      call.on('cancelled', () => b.cancelled++);
    },
  });
  b.port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))));
  return b;
}

describe('gRPC calls under the call policy (real servers, nats-server and route node)', function () {
  this.timeout(60_000);
  const cluster = useCluster();
  let c: TestCluster;
  let servers: Backend[] = [];
  beforeEach(async () => {
    c = cluster();
    servers = await Promise.all(Array.from({ length: 10 }, (_, i) => backend(`g${i}`)));
  });
  afterEach(() => {
    for (const s of servers) s.close();
  });

  async function route(cmdid: number): Promise<void> {
    await c.addLoopbackRoute(15, cmdid, servers);
  }

  it('grpc call - an UNAVAILABLE host has its calls retried on another host; every attempt carries its deadline to the server', async () => {
    await route(1);
    const a = await c.agent({ strategy: 'swrr' });
    const caller = createGrpcCaller(a, (address) => newEcho(address), { policy: { attemptTimeoutMs: 1500 } });
    servers[0]!.mode = 'fail';
    try {
      for (let i = 0; i < 30; i++) {
        const res = await caller.call<Buffer>(15, 1, (client, options, done) => client.hello(Buffer.from('hi'), options, done));
        expect(res.toString()).to.not.equal('g0');
      }
      expect(servers[0]!.requests, 'the failing host was tried').to.be.at.least(1);
      expect(servers.slice(1).reduce((n, s) => n + s.requests, 0)).to.equal(30);
      const seen = servers.flatMap((s) => s.deadlines);
      expect(seen.every((ms) => ms > 0 && ms <= 1500)).to.equal(true);
    } finally {
      caller.close();
      await a.close();
    }
  });

  it('grpc call - an idempotent call to a host that hangs is hedged; the hung call is cancelled at the server', async () => {
    await route(2);
    const a = await c.agent({ strategy: 'swrr' });
    const caller = createGrpcCaller(a, (address) => newEcho(address), { policy: { idempotent: true, hedgeDelayMs: 50, attemptTimeoutMs: 5000 } });
    try {
      // first attempts for the hedge budget (5 % of them)
      for (let i = 0; i < 60; i++) await caller.call<Buffer>(15, 2, (client, options, done) => client.hello(Buffer.from('warm'), options, done));
      servers[0]!.mode = 'hang';
      const before = servers[0]!.requests;
      for (let i = 0; i < 12; i++) {
        const res = await caller.call<Buffer>(15, 2, (client, options, done) => client.hello(Buffer.from('hi'), options, done));
        expect(res.toString()).to.not.equal('g0');
      }
      expect(servers[0]!.requests - before, 'the hung host was tried').to.be.at.least(1);
      await waitFor(() => servers[0]!.cancelled === servers[0]!.requests - before, { what: 'every call to the hung host cancelled at the server' });
    } finally {
      caller.close();
      await a.close();
    }
  });
});
