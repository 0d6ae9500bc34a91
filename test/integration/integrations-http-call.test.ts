import { expect } from 'chai';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { useCluster, type TestCluster } from '../helpers/cluster.ts';
import { waitFor } from '../helpers/wait.ts';
import { createHttpClient, TIMEOUT_HEADER } from '../../src/integrations/http.ts';
import { CallError } from '../../src/agent/agent.ts';

/** A real loopback HTTP server: answers 200, 503, or hangs until the client goes away (which it counts). */
interface Backend {
  readonly port: number;
  mode: 'ok' | 'fail' | 'hang';
  requests: number;
  /** Requests whose client went away before an answer. */
  aborted: number;
  /** The x-lars-timeout-ms values received. */
  timeouts: number[];
  close(): Promise<void>;
}

async function backend(id: string): Promise<Backend> {
  const b = { mode: 'ok', requests: 0, aborted: 0, timeouts: [] as number[] } as unknown as Backend;
  const server = http.createServer((req, res) => {
    b.requests++;
    b.timeouts.push(Number(req.headers[TIMEOUT_HEADER]));
    req.resume();
    res.on('error', () => undefined);
    if (b.mode === 'ok') {
      res.end(id);
    } else if (b.mode === 'fail') {
      res.writeHead(503);
      res.end('overloaded');
    } else {
      res.on('close', () => {
        if (!res.writableEnded) b.aborted++;
      });
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return Object.assign(b, {
    port: (server.address() as AddressInfo).port,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  });
}

describe('HTTP calls under the call policy (real servers, nats-server and route node)', function () {
  this.timeout(60_000);
  const cluster = useCluster();
  let c: TestCluster;
  let servers: Backend[] = [];
  beforeEach(async () => {
    c = cluster();
    // 10 hosts: one failing is a tenth of the first attempts, within the 10 % retry budget
    servers = await Promise.all(Array.from({ length: 10 }, (_, i) => backend(`s${i}`)));
  });
  afterEach(async () => {
    await Promise.all(servers.map((s) => s.close()));
  });

  async function route(cmdid: number): Promise<void> {
    await c.addLoopbackRoute(14, cmdid, servers);
  }

  it('http call - a host answering 503 has its requests retried on another host, each attempt told its time', async () => {
    await route(1);
    const a = await c.agent({ strategy: 'swrr' });
    const client = createHttpClient(a, { timeoutMs: 2000 });
    servers[0]!.mode = 'fail';
    try {
      for (let i = 0; i < 30; i++) {
        const res = await client.call('lars://14.1/item');
        expect(res.statusCode).to.equal(200);
        expect(res.host.port).to.not.equal(servers[0]!.port);
      }
      expect(servers[0]!.requests, 'the failing host was tried').to.be.at.least(1);
      expect(servers.slice(1).reduce((n, x) => n + x.requests, 0)).to.equal(30);
      const told = servers.flatMap((s) => s.timeouts);
      expect(told.every((ms) => ms > 0 && ms <= 2000)).to.equal(true);
    } finally {
      await client.close();
      await a.close();
    }
  });

  it('http call - every host answering 503: two agents together stay within the route budget, counted by the servers', async () => {
    await route(3);
    const agents = [await c.agent(), await c.agent()];
    const clients = agents.map((a) => createHttpClient(a, { timeoutMs: 2000 }));
    for (const s of servers) s.mode = 'fail';
    const perAgent = 150;
    const start = Date.now();
    try {
      await Promise.all(
        clients.map(async (client) => {
          for (let i = 0; i < perAgent; i++) await client.call('lars://14.3/item').catch((err: unknown) => expect(err).to.be.instanceOf(CallError));
        }),
      );
      const seconds = Math.max(1, (Date.now() - start) / 1000);
      const served = servers.reduce((n, x) => n + x.requests, 0);
      // 10 % of first attempts, plus the floor of 3 a second (each agent's own until the route's share reached it): not 3 attempts a call
      expect(served, `${served} requests for ${2 * perAgent} calls in ${seconds.toFixed(1)} s`).to.be.at.most(2 * perAgent * 1.1 + 2 * 3 * Math.ceil(seconds) + 2);
    } finally {
      await Promise.all(clients.map((x) => x.close()));
      await Promise.all(agents.map((a) => a.close()));
    }
  });

  it('http call - an idempotent request to a host that hangs is hedged to another; the first answer wins and the hung host sees the abort', async () => {
    await route(2);
    const a = await c.agent({ strategy: 'swrr' });
    const client = createHttpClient(a, { timeoutMs: 5000, policy: { idempotent: true, hedgeDelayMs: 50 } });
    try {
      // first attempts for the hedge budget (5 % of them)
      for (let i = 0; i < 60; i++) await client.call('lars://14.2/warm');
      servers[0]!.mode = 'hang';
      const before = servers[0]!.requests;
      const t0 = Date.now();
      for (let i = 0; i < 12; i++) {
        const res = await client.call('lars://14.2/item');
        expect(res.statusCode).to.equal(200);
        expect(res.host.port, 'answered by a host that does not hang').to.not.equal(servers[0]!.port);
      }
      expect(servers[0]!.requests - before, 'the hung host was tried').to.be.at.least(1);
      expect(Date.now() - t0, 'no call waited for the hung host').to.be.below(5000);
      await waitFor(() => servers[0]!.aborted >= 1, { what: 'the hung host to see its request aborted' });
      await waitFor(() => servers[0]!.aborted === servers[0]!.requests - before, { what: 'every request to the hung host aborted' });
    } finally {
      await client.close();
      await a.close();
    }
  });
});
