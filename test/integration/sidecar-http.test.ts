/**
 * The sidecar's HTTP/JSON API end to end on a real nats-server and route
 * node: hosts, routes, reports (one and batched, with the route node
 * ejecting a host from them), validation errors, and the server-sent event
 * stream of route changes shared by several followers.
 */
import { expect } from 'chai';
import { request, Agent as HttpAgent, type IncomingMessage } from 'node:http';
import { useCluster, type TestCluster } from '../helpers/cluster.ts';
import { waitFor, waitForEvent } from '../helpers/wait.ts';
import { Sidecar } from '../../src/sidecar/sidecar.ts';
import type { RouteState } from '../../schemas/messages.ts';

interface Reply {
  status: number;
  body: Record<string, unknown>;
  reused: boolean;
}

function call(port: number, method: string, path: string, body?: string, agent?: HttpAgent): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, agent, headers: body !== undefined ? { 'content-type': 'application/json' } : {} }, (res) => {
      let s = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (s += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(s) as Record<string, unknown>, reused: req.reusedSocket }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** An SSE follower: parsed events (comments as `comment`), with a subscribe for waitForEvent. */
class Stream {
  readonly events: Array<{ event: string; data: string; id?: string }> = [];
  private readonly listeners = new Set<(e: { event: string; data: string; id?: string }) => void>();
  private res: IncomingMessage | undefined;
  private buf = '';
  status = 0;

  static open(port: number, path: string): Promise<Stream> {
    const s = new Stream();
    return new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path }, (res) => {
        s.res = res;
        s.status = res.statusCode ?? 0;
        res.setEncoding('utf8');
        res.on('data', (d: string) => s.feed(d));
        res.on('error', () => undefined);
        resolve(s);
      });
      req.on('error', reject);
      req.end();
    });
  }

  private feed(d: string): void {
    this.buf += d;
    let i: number;
    while ((i = this.buf.indexOf('\n\n')) >= 0) {
      const block = this.buf.slice(0, i);
      this.buf = this.buf.slice(i + 2);
      const e: { event: string; data: string; id?: string } = { event: 'message', data: '' };
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) e.event = 'comment';
        else if (line.startsWith('event: ')) e.event = line.slice(7);
        else if (line.startsWith('data: ')) e.data += line.slice(6);
        else if (line.startsWith('id: ')) e.id = line.slice(4);
        else if (line.startsWith('retry: ')) e.event = 'retry';
      }
      this.events.push(e);
      for (const l of this.listeners) l(e);
    }
  }

  subscribe = (l: (e: { event: string; data: string; id?: string }) => void): (() => void) => {
    this.listeners.add(l);
    for (const e of [...this.events]) l(e);
    return () => this.listeners.delete(l);
  };

  close(): void {
    this.res?.destroy();
  }
}

describe('sidecar HTTP API (real nats-server and route node)', function () {
  this.timeout(60_000);
  const cluster = useCluster();
  let c: TestCluster;
  let sidecar: Sidecar;
  let port: number;
  const hs = [1, 2, 3].map((i) => ({ ip: `10.1.0.${i}`, port: 7000, weight: 100 }));
  beforeEach(async () => {
    c = cluster();
    sidecar = await Sidecar.start({ nc: await c.connection(), agent: { prefix: c.prefix, partitions: 8, batchMaxDelayMs: 5, loadTimeoutMs: 500 }, http: { port: 0, heartbeatMs: 100 } });
    port = sidecar.http!.port();
  });
  afterEach(async () => {
    await sidecar.close();
  });

  it('sidecar-http - host and route look-ups over one keep-alive connection; unknown routes are 404 NO_ROUTE', async () => {
    await c.addRoute(3, 4, hs);
    await waitFor(() => c.latest(3, 4), { what: 'route published' });
    const keep = new HttpAgent({ keepAlive: true, maxSockets: 1 });
    try {
      const seen = new Set<string>();
      let reused = 0;
      for (let i = 0; i < 12; i++) {
        const r = await call(port, 'GET', '/v1/host?modid=3&cmdid=4', undefined, keep);
        expect(r.status).to.equal(200);
        expect(r.body['ok']).to.equal(true);
        seen.add(`${String(r.body['ip'])}:${String(r.body['port'])}`);
        if (r.reused) reused++;
      }
      expect([...seen].sort()).to.deep.equal(['10.1.0.1:7000', '10.1.0.2:7000', '10.1.0.3:7000']);
      expect(reused, 'requests after the first reuse the connection').to.equal(11);
      const keyed = await call(port, 'GET', '/v1/host?modid=3&cmdid=4&key=user-42', undefined, keep);
      expect(keyed.status).to.equal(200);
    } finally {
      keep.destroy();
    }
    const route = await call(port, 'GET', '/v1/route?modid=3&cmdid=4');
    expect(route.status).to.equal(200);
    expect((route.body as unknown as RouteState).hosts.map((h) => h.ip)).to.deep.equal(hs.map((h) => h.ip));
    const none = await call(port, 'GET', '/v1/host?modid=999&cmdid=1');
    expect(none).to.deep.include({ status: 404 });
    expect(none.body).to.deep.include({ ok: false, code: 'NO_ROUTE' });
    // asked again once the route is known not to exist: answered at once from the cached answer, the same
    const again = await call(port, 'GET', '/v1/host?modid=999&cmdid=1');
    expect([again.status, again.body]).to.deep.equal([404, none.body]);
    expect((await call(port, 'GET', '/v1/route?modid=999&cmdid=1')).body).to.deep.include({ ok: false, code: 'NO_ROUTE', message: 'route is not registered' });
    const health = await call(port, 'GET', '/healthz');
    expect(health.status).to.equal(200);
    expect(health.body).to.deep.include({ ok: true, connected: true });
  });

  it('sidecar-http - reports, one or a batch, reach the route node and eject a failing host; bad requests get clear 4xx errors', async () => {
    await c.addRoute(3, 5, hs, 'default', { base_ejection_time: 60 });
    await waitFor(() => c.latest(3, 5), { what: 'route published' });
    const one = await call(port, 'POST', '/v1/report', JSON.stringify({ modid: 3, cmdid: 5, ip: '10.1.0.1', port: 7000, retcode: 0, latency_ms: 2.5 }));
    expect(one).to.deep.include({ status: 200 });
    expect(one.body).to.deep.equal({ ok: true, accepted: 1 });
    const batch = { reports: Array.from({ length: 20 }, () => ({ modid: 3, cmdid: 5, ip: '10.1.0.2', port: 7000, retcode: 1, latency_ms: 40 })) };
    expect((await call(port, 'POST', '/v1/report', JSON.stringify(batch))).body).to.deep.equal({ ok: true, accepted: 20 });
    await waitForEvent(c.events.subscribe, (e) => e.modid === 3 && e.cmdid === 5 && e.ip === '10.1.0.2' && e.to === 'overloaded', { what: 'host ejected by posted reports' });

    const bad = async (method: string, path: string, body: string | undefined, status: number, code: string, msg: RegExp): Promise<void> => {
      const r = await call(port, method, path, body);
      expect([r.status, r.body['code']], `${method} ${path} ${body?.slice(0, 60) ?? ''}`).to.deep.equal([status, code]);
      expect(String(r.body['message'])).to.match(msg);
    };
    await bad('POST', '/v1/report', '{"modid":3', 400, 'BAD_REQUEST', /body is not JSON/);
    await bad('POST', '/v1/report', JSON.stringify({ reports: [{ modid: 3, cmdid: 5, ip: '10.1.0.1', port: 7000, retcode: 0 }, { modid: 3, cmdid: 5, ip: 'x', port: 7000, retcode: 0 }] }), 400, 'BAD_REQUEST', /reports\[1\]\.ip must be an IPv4/);
    await bad('POST', '/v1/report', JSON.stringify({ reports: 5 }), 400, 'BAD_REQUEST', /reports must be an array/);
    // the host's utilization is optional, 0..1
    expect((await call(port, 'POST', '/v1/report', JSON.stringify({ modid: 3, cmdid: 5, ip: '10.1.0.1', port: 7000, retcode: 0, latency_ms: 2, utilization: 0.4 }))).body).to.deep.equal({ ok: true, accepted: 1 });
    await bad('POST', '/v1/report', JSON.stringify({ modid: 3, cmdid: 5, ip: '10.1.0.1', port: 7000, retcode: 0, utilization: 1.5 }), 400, 'BAD_REQUEST', /report\.utilization must be a number 0\.\.1, got 1\.5/);
    await bad('POST', '/v1/report', JSON.stringify({ modid: 3, cmdid: 5, ip: '10.1.0.1', port: 7000, retcode: 0, utilization: '0.4' }), 400, 'BAD_REQUEST', /utilization must be a number/);
    await bad('POST', '/v1/report', JSON.stringify({ reports: [] , x: 1 }), 400, 'BAD_REQUEST', /nothing else/);
    await bad('POST', '/v1/report', 'x'.repeat((1 << 20) + 10), 413, 'PAYLOAD_TOO_LARGE', /over 1048576/);
    await bad('GET', '/v1/report', undefined, 405, 'METHOD_NOT_ALLOWED', /use POST/);
    await bad('GET', '/v1/host?modid=3', undefined, 400, 'BAD_REQUEST', /cmdid is required/);
    await bad('GET', '/v1/host?modid=-1&cmdid=2', undefined, 400, 'BAD_REQUEST', /modid must be an integer/);
    await bad('GET', '/v1/host?modid=4294967296&cmdid=2', undefined, 400, 'BAD_REQUEST', /modid must be an integer/);
    await bad('GET', '/v1/host?modid=3&cmdid=5x', undefined, 400, 'BAD_REQUEST', /cmdid must be an integer/);
    await bad('POST', '/v1/host?modid=3&cmdid=5', undefined, 405, 'METHOD_NOT_ALLOWED', /use GET/);
    await bad('GET', '/v2/nothing', undefined, 404, 'NOT_FOUND', /no such endpoint/);
    expect(sidecar.stats().http!.reports, 'only the valid posts were taken').to.equal(22);
  });

  it('sidecar-http - route-change streams: the state at once, then every change, heartbeats, one serialisation per change', async () => {
    await c.addRoute(3, 6, hs, 'default', { base_ejection_time: 60 });
    await waitFor(() => c.latest(3, 6), { what: 'route published' });
    const streams = await Promise.all([0, 1, 2].map(() => Stream.open(port, '/v1/routes/stream?modid=3&cmdid=6')));
    try {
      for (const s of streams) expect(s.status).to.equal(200);
      const initial = await Promise.all(streams.map((s) => waitForEvent(s.subscribe, (e) => e.event === 'route', { what: 'initial state' })));
      for (const e of initial) expect((JSON.parse(e.data) as RouteState).hosts.every((h) => h.state === 'healthy')).to.equal(true);
      const sent = sidecar.stats().http!.streamEvents;
      await call(port, 'POST', '/v1/report', JSON.stringify({ reports: Array.from({ length: 20 }, () => ({ modid: 3, cmdid: 6, ip: '10.1.0.3', port: 7000, retcode: 1 })) }));
      const changed = await Promise.all(
        streams.map((s) =>
          waitForEvent(s.subscribe, (e) => e.event === 'route' && (JSON.parse(e.data) as RouteState).hosts.some((h) => h.ip === '10.1.0.3' && h.state === 'overloaded'), { what: 'ejection on the stream' }),
        ),
      );
      const v = (JSON.parse(changed[0]!.data) as RouteState).version;
      for (const e of changed) expect(e.id).to.equal(String(v));
      expect(sidecar.stats().http!.streamEvents - sent, 'every stream got every change').to.be.a('number').and.satisfy((n: number) => n % 3 === 0 && n >= 3);
      for (const s of streams) await waitForEvent(s.subscribe, (e) => e.event === 'comment', { what: 'heartbeat' });
      // an unknown route streams its status, then its state once registered
      const late = await Stream.open(port, '/v1/routes/stream?modid=3&cmdid=7');
      streams.push(late);
      await waitForEvent(late.subscribe, (e) => e.event === 'status', { what: 'status of an unknown route' });
      await c.addRoute(3, 7, hs.slice(0, 1));
      const st = await waitForEvent(late.subscribe, (e) => e.event === 'route', { what: 'the route once registered' });
      expect((JSON.parse(st.data) as RouteState).hosts.map((h) => h.ip)).to.deep.equal(['10.1.0.1']);
    } finally {
      for (const s of streams) s.close();
    }
  });
});
