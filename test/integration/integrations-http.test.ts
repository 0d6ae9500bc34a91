import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { useCluster, type TestCluster } from '../helpers/cluster.ts';
import { waitFor } from '../helpers/wait.ts';
import { failHangRecover, type BackendMode } from '../helpers/fail-hang-recover.ts';
import { createHttpClient, CallTimeoutError, HttpProtocol, type HttpClient } from '../../src/integrations/http.ts';

type Mode = BackendMode;

/** A real HTTP server on loopback whose behaviour a test switches: answer, 500, or hang (answer late). */
interface TestServer {
  readonly port: number;
  readonly id: string;
  mode: Mode;
  requests: number;
  hung: number;
  /** Hung requests answered at last (after the client's timeout). */
  late: number;
  close(): Promise<void>;
}

const HANG_MS = 1500;

function behave(s: TestServer, timers: Set<NodeJS.Timeout>, send: (status: number, body: string) => void): void {
  s.requests++;
  if (s.mode === 'ok') return send(200, s.id);
  if (s.mode === 'fail') return send(500, 'failing');
  s.hung++;
  const t = setTimeout(() => {
    timers.delete(t);
    s.late++;
    send(200, `${s.id} late`);
  }, HANG_MS);
  timers.add(t);
}

async function startServer(protocol: HttpProtocol, id: string): Promise<TestServer> {
  const timers = new Set<NodeJS.Timeout>();
  const s = { id, mode: 'ok' as Mode, requests: 0, hung: 0, late: 0, port: 0, close: async () => undefined } as TestServer;
  if (protocol === HttpProtocol.h2c) {
    const sessions = new Set<http2.ServerHttp2Session>();
    const server = http2.createServer();
    server.on('session', (ss) => {
      sessions.add(ss);
      ss.on('close', () => sessions.delete(ss));
    });
    server.on('stream', (stream) => {
      stream.on('error', () => undefined);
      behave(s, timers, (status, body) => {
        if (stream.destroyed || stream.closed) return;
        stream.respond({ ':status': status, 'content-type': 'text/plain' });
        stream.end(body);
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return Object.assign(s, {
      port: (server.address() as AddressInfo).port,
      close: async () => {
        for (const t of timers) clearTimeout(t);
        for (const ss of sessions) ss.destroy();
        await new Promise<void>((r) => server.close(() => r()));
      },
    });
  }
  const server = http.createServer((req, res) => {
    req.resume();
    res.on('error', () => undefined);
    behave(s, timers, (status, body) => {
      if (res.destroyed) return;
      res.writeHead(status, { 'content-type': 'text/plain' });
      res.end(body);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return Object.assign(s, {
    port: (server.address() as AddressInfo).port,
    close: async () => {
      for (const t of timers) clearTimeout(t);
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  });
}

/** Callers in a loop through the client until stopped; counts timeouts and how long they took. */
function startLoad(client: HttpClient, url: string, workers: number, timeoutMs: number) {
  const load = { running: true, ok: 0, timeouts: 0, maxTimeoutElapsed: 0, errors: 0, done: Promise.resolve() };
  const one = async (): Promise<void> => {
    while (load.running) {
      const t0 = performance.now();
      try {
        await client.request(url, { timeoutMs });
        load.ok++;
      } catch (err) {
        if (err instanceof CallTimeoutError) {
          load.timeouts++;
          load.maxTimeoutElapsed = Math.max(load.maxTimeoutElapsed, performance.now() - t0);
        } else load.errors++;
        // a NO_HOST answer or a refused connection must not spin the loop
        await new Promise((r) => setTimeout(r, 2));
      }
    }
  };
  load.done = Promise.all(Array.from({ length: workers }, one)).then(() => undefined);
  return load;
}

for (const protocol of [HttpProtocol.http1, HttpProtocol.h2c]) {
  describe(`integrations/http over ${protocol}: undici calls report by themselves (real servers, real nats-server)`, function () {
    this.timeout(90_000);
    const cluster = useCluster();
    let c: TestCluster;
    let servers: TestServer[] = [];
    let client: HttpClient | undefined;
    beforeEach(() => {
      c = cluster();
    });
    afterEach(async () => {
      await client?.close();
      client = undefined;
      for (const s of servers) await s.close();
      servers = [];
    });

    it(`http - a host that answers 500, then hangs, loses its traffic without any manual report, and gets it back after it recovers (${protocol})`, async () => {
      servers = await Promise.all(['a', 'b', 'c'].map((id) => startServer(protocol, id)));
      const [bad, ...good] = servers as [TestServer, TestServer, TestServer];
      await c.addRoute(30, 1, servers.map((s) => ({ ip: '127.0.0.1', port: s.port, weight: 100 })), 'default', { base_ejection_time: 2, max_ejection_time: 4, slow_start_window: 2 });
      await waitFor(() => c.node!.route(30, 1), { what: 'route actor' });
      // swrr spreads by pick weight alone: what moves the traffic here is the route node's ejection, from the reports the client sent by itself
      const agent = await c.agent({ strategy: 'swrr' });
      client = createHttpClient(agent, { protocol });
      const load = startLoad(client, 'lars://30.1/hello', 6, 200);
      try {
        // all well: every server gets calls
        await waitFor(() => servers.every((s) => s.requests >= 20), { what: 'calls on every server' });
        expect(load.errors + load.timeouts).to.equal(0);
        await failHangRecover({ c, agent, modid: 30, cmdid: 1, bad, good, failure: '500s', timeouts: () => load.timeouts, maxTimeoutElapsed: () => load.maxTimeoutElapsed, hangMs: HANG_MS });
        expect(agent.stats().reports).to.be.greaterThan(0);
      } finally {
        load.running = false;
        await load.done;
      }
    });

    it(`http - a timed-out call is reported when it times out, once; a late answer adds nothing (${protocol})`, async () => {
      servers = [await startServer(protocol, 'slow')];
      const s = servers[0]!;
      await c.addRoute(31, 1, [{ ip: '127.0.0.1', port: s.port, weight: 100 }], 'default');
      await waitFor(() => c.node!.route(31, 1), { what: 'route actor' });
      const agent = await c.agent();
      client = createHttpClient(agent, { protocol, timeoutMs: 150 });
      const ok = await client.request({ modid: 31, cmdid: 1, path: '/x?y=1' });
      expect(ok.statusCode).to.equal(200);
      expect(ok.text()).to.equal('slow');
      expect(ok.retcode).to.equal(0);
      expect(ok.host.port).to.equal(s.port);
      s.mode = 'hang';
      const before = agent.stats().reports;
      const t0 = performance.now();
      const err = await client.request('lars://31.1/x').then(
        () => undefined,
        (e: unknown) => e,
      );
      const elapsed = performance.now() - t0;
      expect(err).to.be.instanceOf(CallTimeoutError);
      expect((err as CallTimeoutError).code).to.equal('LARS_TIMEOUT');
      expect(elapsed).to.be.within(140, HANG_MS - 300);
      expect(agent.stats().reports, 'reported at the timeout').to.equal(before + 1);
      // the server answers at last; nothing more is reported
      await waitFor(() => s.late >= 1, { what: 'late answer', timeoutMs: HANG_MS * 3 });
      await agent.flush();
      expect(agent.stats().reports).to.equal(before + 1);
      // 500s are reported as failures with their status
      s.mode = 'fail';
      const r = await client.request('lars://31.1/');
      expect(r.statusCode).to.equal(500);
      expect(r.retcode).to.equal(500);
      expect(agent.stats().reports).to.equal(before + 2);
      // a connection error is reported too, and the error reaches the caller
      await s.close();
      servers = [];
      const e2 = await client.request('lars://31.1/').then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(e2).to.be.instanceOf(Error);
      expect(e2).to.not.be.instanceOf(CallTimeoutError);
      expect(agent.stats().reports).to.equal(before + 3);
      // bad targets are caller bugs
      await client.request('http://x/').then(
        () => expect.fail('accepted'),
        (e: unknown) => expect(e).to.be.instanceOf(RangeError),
      );
      await client.request('lars://99.99/').then(
        () => expect.fail('accepted'),
        (e: unknown) => expect(e).to.have.property('code', 'LARS_NO_ROUTE'),
      );
    });
  });
}

describe('integrations/http over TLS: HTTP/2 through ALPN, HTTP/1.1 otherwise (real servers, real nats-server)', function () {
  this.timeout(60_000);
  const cluster = useCluster();
  let c: TestCluster;
  let dir: string;
  let key: Buffer;
  let cert: Buffer;
  before(function () {
    dir = mkdtempSync(join(tmpdir(), 'lars-tls-'));
    const r = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-days', '1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`openssl: ${r.stderr}`);
    key = readFileSync(join(dir, 'key.pem'));
    cert = readFileSync(join(dir, 'cert.pem'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));
  beforeEach(() => {
    c = cluster();
  });

  it('https - a server offering h2 is spoken to in HTTP/2, one without in HTTP/1.1; both calls are reported', async () => {
    const h2 = http2.createSecureServer({ key, cert, allowHTTP1: true }, (req, res) => res.end(req.httpVersion));
    const h1 = https.createServer({ key, cert }, (req, res) => res.end(req.httpVersion));
    await new Promise<void>((r) => h2.listen(0, '127.0.0.1', r));
    await new Promise<void>((r) => h1.listen(0, '127.0.0.1', r));
    const client = createHttpClient(await c.agent(), { protocol: HttpProtocol.https, tls: { ca: cert } });
    try {
      await c.addRoute(32, 1, [{ ip: '127.0.0.1', port: (h2.address() as AddressInfo).port, weight: 100 }], 'default');
      await c.addRoute(32, 2, [{ ip: '127.0.0.1', port: (h1.address() as AddressInfo).port, weight: 100 }], 'default');
      await waitFor(() => c.node!.route(32, 1) && c.node!.route(32, 2), { what: 'route actors' });
      const a = await client.request('lars://32.1/');
      const b = await client.request('lars://32.2/');
      expect(a.text()).to.equal('2.0');
      expect(b.text()).to.equal('1.1');
      expect(c.agents[0]!.stats().reports).to.equal(2);
    } finally {
      await client.close();
      h1.closeAllConnections();
      await new Promise<void>((r) => h1.close(() => r()));
      await new Promise<void>((r) => h2.close(() => r()));
    }
  });
});
