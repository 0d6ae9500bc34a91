import { newCallCounters } from '../../src/agent/call.ts';
import { expect } from 'chai';
import { createServer, type Server } from 'node:net';
import { networkInterfaces } from 'node:os';
import type { AddressInfo } from 'node:net';
import { ErrorCode, ListenError } from '../../src/lib/errors.ts';
import { DEFAULT_HTTP_HOST } from '../../src/http/listen.ts';
import { startMetricsServer, createRegistry, registerSidecarMetrics, type HasSidecarStats, type ConnectionState } from '../../src/cli/metrics.ts';
import { parsePrometheusText, sampleValue } from '../helpers/metrics-parse.ts';
import { createConsoleHandler, startConsoleServer, TOKEN_COOKIE } from '../../src/console/server.ts';
import type { ConsoleBackend } from '../../src/console/backend.ts';
import type { NatsConnection } from '@nats-io/transport-node';

/** A TCP server holding a port on loopback, as another program would. */
async function holdPort(): Promise<{ server: Server; port: number }> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as AddressInfo).port };
}

/** An IPv4 address of this machine that is not loopback, if it has one. */
function outsideAddress(): string | undefined {
  return Object.values(networkInterfaces())
    .flat()
    .find((a) => a && a.family === 'IPv4' && !a.internal)?.address;
}

async function refused(url: string): Promise<boolean> {
  try {
    await fetch(url, { signal: AbortSignal.timeout(3000) });
    return false;
  } catch (err) {
    return ((err as { cause?: { code?: string } }).cause?.code ?? '') === 'ECONNREFUSED';
  }
}

/** The parts of a console backend the read guard touches (no NATS). */
const stubBackend = { routes: async () => [], engine: undefined } as unknown as ConsoleBackend;

describe('http - listeners: loopback by default, a port in use as one line', () => {
  it('http - the metrics server and the console bind 127.0.0.1 unless told otherwise, out of reach of the machine\'s other addresses', async () => {
    expect(DEFAULT_HTTP_HOST).to.equal('127.0.0.1');
    const m = await startMetricsServer({ port: 0, ready: () => ({ ready: true }) });
    const c = await startConsoleServer({ port: 0 });
    try {
      expect(m.host).to.equal('127.0.0.1');
      expect(m.url).to.equal(`http://127.0.0.1:${m.port}/`);
      expect(c.url).to.equal(`http://127.0.0.1:${c.port}/`);
      expect((await fetch(`http://127.0.0.1:${m.port}/healthz`)).status).to.equal(200);
      expect((await fetch(`http://127.0.0.1:${c.port}/healthz`)).status).to.equal(200);
      const outside = outsideAddress();
      if (outside) {
        expect(await refused(`http://${outside}:${m.port}/healthz`), `metrics via ${outside}`).to.equal(true);
        expect(await refused(`http://${outside}:${c.port}/healthz`), `console via ${outside}`).to.equal(true);
      }
    } finally {
      await m.close();
      await c.close();
    }
  });

  it('http - a port in use is a ListenError LARS_PORT_IN_USE of one line naming port, address and flag', async () => {
    const held = await holdPort();
    try {
      const errs = await Promise.all([
        startMetricsServer({ port: held.port, ready: () => ({ ready: true }) }).then(() => undefined, (e: unknown) => e),
        startConsoleServer({ port: held.port }).then(() => undefined, (e: unknown) => e),
      ]);
      const [metrics, console] = errs;
      for (const e of errs) {
        expect(e).to.be.instanceOf(ListenError);
        expect((e as ListenError).code).to.equal(ErrorCode.portInUse);
        expect((e as ListenError).port).to.equal(held.port);
        expect((e as Error).message).to.not.include('\n');
      }
      expect((metrics as Error).message).to.equal(`HTTP port ${held.port} on 127.0.0.1 is in use: stop what holds it, or choose another port with --http`);
      expect((console as Error).message).to.equal(`HTTP port ${held.port} on 127.0.0.1 is in use: stop what holds it, or choose another port with --port`);
    } finally {
      held.server.close();
    }
  });

  it('http - an address not of this machine is a ListenError LARS_LISTEN naming --http-host', async () => {
    // 198.51.100.0/24 is reserved for documentation: no machine has it
    const e = await startMetricsServer({ port: 0, host: '198.51.100.7', ready: () => ({ ready: true }) }).then(() => undefined, (x: unknown) => x);
    expect(e).to.be.instanceOf(ListenError);
    expect((e as ListenError).code).to.equal(ErrorCode.listen);
    expect((e as Error).message).to.equal('cannot listen on 198.51.100.7: not an address of this machine; give --http-host one of its addresses, 127.0.0.1 or 0.0.0.0');
  });

  it('http - a console server answers 503 until its backend is attached, then serves it and is ready', async () => {
    const c = await startConsoleServer({ port: 0 });
    try {
      const base = `http://127.0.0.1:${c.port}`;
      expect((await fetch(`${base}/api/routes`)).status).to.equal(503);
      expect((await fetch(`${base}/readyz`)).status).to.equal(503);
      c.attach({ backend: stubBackend });
      expect((await fetch(`${base}/api/routes`)).status).to.equal(200);
      expect((await fetch(`${base}/readyz`)).status).to.equal(200);
    } finally {
      await c.close();
    }
  });
});

describe('console - reading guarded by the token (--console-auth all)', () => {
  it('console - every /api/ read wants the token as bearer header or cookie; actions the header only; the page itself is open', async () => {
    const c = await startConsoleServer({ port: 0, backend: stubBackend, token: 'open-sesame', readAuth: true });
    try {
      const base = `http://127.0.0.1:${c.port}`;
      const none = await fetch(`${base}/api/routes`);
      expect(none.status).to.equal(401);
      expect(((await none.json()) as { error: string }).error).to.match(/token/);
      expect((await fetch(`${base}/api/routes`, { headers: { authorization: 'Bearer wrong' } })).status).to.equal(401);
      expect((await fetch(`${base}/api/routes/1/1/stream`)).status, 'the live stream too').to.equal(401);
      expect((await fetch(`${base}/api/routes`, { headers: { authorization: 'Bearer open-sesame' } })).status).to.equal(200);
      expect((await fetch(`${base}/api/routes`, { headers: { cookie: `other=1; ${TOKEN_COOKIE}=open-sesame` } })).status).to.equal(200);
      expect((await fetch(`${base}/api/routes`, { headers: { cookie: `${TOKEN_COOKIE}=wrong` } })).status).to.equal(401);
      // a cookie alone never acts: a page of another site cannot make the browser act with it
      const act = await fetch(`${base}/api/routes/1/1/hosts/10.0.0.1:80/drain`, { method: 'POST', headers: { cookie: `${TOKEN_COOKIE}=open-sesame` }, body: '{}' });
      expect(act.status).to.equal(401);
      expect((await fetch(`${base}/`)).status, 'the page has no data').to.equal(200);
      expect((await fetch(`${base}/healthz`)).status).to.equal(200);
    } finally {
      await c.close();
    }
  });

  it('console - without --console-auth all reading is open and actions still want the token', async () => {
    const c = await startConsoleServer({ port: 0, backend: stubBackend, token: 'open-sesame' });
    try {
      const base = `http://127.0.0.1:${c.port}`;
      expect((await fetch(`${base}/api/routes`)).status).to.equal(200);
      expect((await fetch(`${base}/api/routes/1/1/hosts/10.0.0.1:80/drain`, { method: 'POST', body: '{}' })).status).to.equal(401);
    } finally {
      await c.close();
    }
  });

  it('console - guarding reading without a token is refused at start', () => {
    expect(() => createConsoleHandler({ backend: stubBackend, readAuth: true })).to.throw(/token/);
  });
});

describe('metrics - the sidecar', () => {
  it('metrics - lars_sidecar_* from the APIs, lars_agent_* from its agent, lars_nats_connected from the connection', async () => {
    const registry = createRegistry({ defaultMetrics: false });
    const agentStats = { picks: 7, reports: 5, batches: 1, ackedBatches: 1, retriedBatches: 0, confirmedBatches: 0, pendingReports: 0, droppedReports: 2, routes: 3, routeUpdates: 4, staleUpdates: 0, heldEmptyUpdates: 0, resyncs: 0, rejects: {}, calls: newCallCounters() };
    const sidecar: HasSidecarStats = {
      agent: { stats: () => agentStats },
      stats: () => ({
        udp: { datagrams: 11, getHost: 6, getRoute: 1, reports: 3, replies: 7, sendErrors: 0, bad: { short_frame: 1 } },
        http: { requests: 9, badRequests: 2, reports: 4, streams: 1, streamEvents: 3, registrations: 0 },
        routesRefused: 1,
      }),
    };
    const nc = { stats: () => ({ inMsgs: 1, outMsgs: 2, inBytes: 3, outBytes: 4 }) } as unknown as NatsConnection;
    const conn: ConnectionState = { connected: () => true, reconnects: () => 0, stop: () => undefined };
    registerSidecarMetrics(registry, sidecar, nc, conn);
    const m = parsePrometheusText(await registry.metrics());
    expect(sampleValue(m, 'lars_sidecar_udp_datagrams_total')).to.equal(11);
    expect(sampleValue(m, 'lars_sidecar_udp_requests_total', { request: 'get_host' })).to.equal(6);
    expect(sampleValue(m, 'lars_sidecar_udp_dropped_total', { kind: 'short_frame' })).to.equal(1);
    expect(sampleValue(m, 'lars_sidecar_http_requests_total')).to.equal(9);
    expect(sampleValue(m, 'lars_sidecar_http_reports_total')).to.equal(4);
    expect(sampleValue(m, 'lars_sidecar_routes_refused_total')).to.equal(1);
    expect(sampleValue(m, 'lars_agent_picks_total')).to.equal(7);
    expect(sampleValue(m, 'lars_agent_dropped_reports_total')).to.equal(2);
    expect(sampleValue(m, 'lars_agent_routes')).to.equal(3);
    expect(sampleValue(m, 'lars_nats_connected')).to.equal(1);
  });
});
