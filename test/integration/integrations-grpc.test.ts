import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import { ECHO, EchoClient, type Echo } from '../helpers/grpc-echo.ts';
import { useCluster, type TestCluster } from '../helpers/cluster.ts';
import { waitFor } from '../helpers/wait.ts';
import { failHangRecover, type BackendMode } from '../helpers/fail-hang-recover.ts';
import { larsGrpcOptions, releaseGrpcAgent } from '../../src/integrations/grpc.ts';
import type { Agent } from '../../src/agent/agent.ts';

type Mode = BackendMode;
const HANG_MS = 1500;

interface TestServer {
  port: number;
  id: string;
  mode: Mode;
  requests: number;
  hung: number;
  late: number;
  close(): void;
}

async function startServer(id: string): Promise<TestServer> {
  const timers = new Set<NodeJS.Timeout>();
  const server = new grpc.Server();
  const s: TestServer = { id, mode: 'ok', requests: 0, hung: 0, late: 0, port: 0, close: () => undefined };
  server.addService(ECHO, {
    hello: (_call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      s.requests++;
      if (s.mode === 'ok') return cb(null, Buffer.from(id));
      if (s.mode === 'fail') return cb({ code: grpc.status.UNAVAILABLE, details: 'failing' });
      s.hung++;
      const t = setTimeout(() => {
        timers.delete(t);
        s.late++;
        cb(null, Buffer.from(`${id} late`));
      }, HANG_MS);
      timers.add(t);
    },
  });
  s.port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))));
  s.close = () => {
    for (const t of timers) clearTimeout(t);
    server.forceShutdown();
  };
  return s;
}

function call(client: Echo, deadlineMs: number): Promise<{ ok: true; body: string } | { ok: false; code: grpc.status; elapsed: number }> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    client.hello(Buffer.from('hi'), { deadline: Date.now() + deadlineMs }, (err, res) => {
      if (err) resolve({ ok: false, code: err.code, elapsed: performance.now() - t0 });
      else resolve({ ok: true, body: res!.toString() });
    });
  });
}

function startLoad(client: Echo, workers: number, deadlineMs: number) {
  const load = { running: true, ok: 0, deadlines: 0, maxDeadlineElapsed: 0, other: new Map<grpc.status, number>(), done: Promise.resolve() };
  const one = async (): Promise<void> => {
    while (load.running) {
      const r = await call(client, deadlineMs);
      if (r.ok) load.ok++;
      else {
        if (r.code === grpc.status.DEADLINE_EXCEEDED) {
          load.deadlines++;
          load.maxDeadlineElapsed = Math.max(load.maxDeadlineElapsed, r.elapsed);
        } else load.other.set(r.code, (load.other.get(r.code) ?? 0) + 1);
        await new Promise((res) => setTimeout(res, 2));
      }
    }
  };
  load.done = Promise.all(Array.from({ length: workers }, one)).then(() => undefined);
  return load;
}

describe('integrations/grpc: lars:/// resolver and lars_pick policy report every call (real grpc-js servers, real nats-server)', function () {
  this.timeout(90_000);
  const cluster = useCluster();
  let c: TestCluster;
  let servers: TestServer[] = [];
  let clients: grpc.Client[] = [];
  let agents: Agent[] = [];
  beforeEach(() => {
    c = cluster();
  });
  afterEach(() => {
    for (const cl of clients) cl.close();
    clients = [];
    for (const s of servers) s.close();
    servers = [];
    for (const a of agents) releaseGrpcAgent(a);
    agents = [];
  });

  it('grpc - a host that returns UNAVAILABLE, then hangs, loses its traffic without any manual report, and gets it back after it recovers', async () => {
    servers = await Promise.all(['a', 'b', 'c'].map((id) => startServer(id)));
    const [bad, ...good] = servers as [TestServer, TestServer, TestServer];
    await c.addRoute(40, 1, servers.map((s) => ({ ip: '127.0.0.1', port: s.port, weight: 100 })), 'default', { base_ejection_time: 2, max_ejection_time: 4, slow_start_window: 2 });
    await waitFor(() => c.node!.route(40, 1), { what: 'route actor' });
    // swrr spreads by pick weight alone: what moves the traffic here is the route node's ejection, from the reports the policy sent by itself
    const agent = await c.agent({ strategy: 'swrr' });
    agents.push(agent);
    const client = new EchoClient('lars:///40/1', grpc.credentials.createInsecure(), larsGrpcOptions(agent)) as unknown as Echo;
    clients.push(client);
    const load = startLoad(client, 6, 200);
    try {
      await waitFor(() => servers.every((s) => s.requests >= 20), { what: 'calls on every server' });
      expect(load.deadlines).to.equal(0);
      expect([...load.other.values()].reduce((x, y) => x + y, 0)).to.equal(0);
      await failHangRecover({ c, agent, modid: 40, cmdid: 1, bad, good, failure: 'UNAVAILABLE', timeouts: () => load.deadlines, maxTimeoutElapsed: () => load.maxDeadlineElapsed, hangMs: HANG_MS });
    } finally {
      load.running = false;
      await load.done;
    }
  });

  it('grpc - a call past its deadline is reported at the deadline, once; a late answer adds nothing', async () => {
    servers = [await startServer('slow')];
    const s = servers[0]!;
    await c.addRoute(41, 1, [{ ip: '127.0.0.1', port: s.port, weight: 100 }], 'default');
    await waitFor(() => c.node!.route(41, 1), { what: 'route actor' });
    const agent = await c.agent();
    agents.push(agent);
    const client = new EchoClient('lars:///41/1', grpc.credentials.createInsecure(), larsGrpcOptions(agent)) as unknown as Echo;
    clients.push(client);
    const first = await call(client, 5000);
    expect(first).to.deep.equal({ ok: true, body: 'slow' });
    expect(agent.stats().reports).to.equal(1);
    s.mode = 'hang';
    const r = await call(client, 150);
    expect(r.ok).to.equal(false);
    if (!r.ok) {
      expect(r.code).to.equal(grpc.status.DEADLINE_EXCEEDED);
      expect(r.elapsed).to.be.within(140, HANG_MS - 300);
    }
    expect(agent.stats().reports, 'reported at the deadline').to.equal(2);
    await waitFor(() => s.late >= 1, { what: 'late answer', timeoutMs: HANG_MS * 3 });
    await agent.flush();
    expect(agent.stats().reports).to.equal(2);
    // a second channel on a route the agent already follows
    const second = new EchoClient('lars:///41/1', grpc.credentials.createInsecure(), larsGrpcOptions(agent)) as unknown as Echo;
    clients.push(second);
    s.mode = 'ok';
    expect(await call(second, 5000)).to.deep.equal({ ok: true, body: 'slow' });
    expect(agent.stats().reports).to.equal(3);
    // an unregistered route fails the call with UNAVAILABLE
    const missing = new EchoClient('lars:///49/9', grpc.credentials.createInsecure(), larsGrpcOptions(agent)) as unknown as Echo;
    clients.push(missing);
    const m = await call(missing, 3000);
    expect(m.ok).to.equal(false);
    if (!m.ok) expect(m.code).to.equal(grpc.status.UNAVAILABLE);
  });
});
