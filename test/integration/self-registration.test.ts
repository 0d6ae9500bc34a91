/**
 * Self-registration lifecycle on a real nats-server and route node, with
 * service instances as child processes (HTTP servers on loopback that
 * register themselves, test/helpers/self-service.ts) and an agent calling
 * them for real: hosts join, a kill -9 leaves the route within the TTL, a
 * graceful stop under traffic fails no call, a CPU-bound stretch longer
 * than the TTL does not drop the host (heartbeats from a worker thread), a
 * service stuck past the stall limit leaves, and an admin entry and
 * self-registered hosts merge.
 */
import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TestCluster, useNatsServer, PARTITIONS } from '../helpers/cluster.ts';
import { freePort } from '../helpers/clickhouse-server.ts';
import { waitFor } from '../helpers/wait.ts';
import { lars, larsLive } from '../helpers/cli.ts';
import { createServer, type Server } from 'node:http';
import type { RouteState } from '../../schemas/messages.ts';

const SERVICE = join(dirname(fileURLToPath(import.meta.url)), '..', 'helpers', 'self-service.ts');
const M = 4242;
const C = 1;

interface Service {
  port: number;
  child: ChildProcess;
  lines: string[];
  exited: Promise<void>;
}

function pickable(s: RouteState | undefined): string[] {
  return (s?.hosts ?? []).filter((h) => h.pick_weight > 0).map((h) => `${h.ip}:${h.port}`).sort();
}

describe('self-registration: services add and remove themselves (real nats-server, route node, service processes)', function () {
  this.timeout(60_000);
  const server = useNatsServer();
  let c: TestCluster;
  let services: Service[] = [];

  beforeEach(async () => {
    c = await TestCluster.start(server());
    await c.startNode();
  });
  afterEach(async () => {
    for (const s of services) {
      if (s.child.exitCode === null && s.child.signalCode === null) s.child.kill('SIGKILL');
      await s.exited;
    }
    services = [];
    await c.stop(true);
  });

  async function startService(ttlMs: number, heartbeatMs: number, env: Record<string, string> = {}): Promise<Service> {
    const port = await freePort();
    const child = spawn(process.execPath, ['--import', 'tsx', SERVICE, server().url, c.prefix, String(M), String(C), String(port), String(ttlMs), String(heartbeatMs)], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    const lines: string[] = [];
    let buf = '';
    const keep = (d: Buffer): void => {
      buf += d.toString();
      const parts = buf.split('\n');
      buf = parts.pop() ?? '';
      lines.push(...parts);
    };
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    const s: Service = { port, child, lines, exited };
    services.push(s);
    await waitFor(
      () => {
        if (child.exitCode !== null) throw new Error(`service ${port} exited: ${lines.join('\n')}`);
        return lines.includes('ready');
      },
      { timeoutMs: 20_000, what: `service on ${port} registered` },
    );
    return s;
  }

  it('selfreg - services join; kill -9 leaves the route within the TTL; a graceful stop under traffic fails no call', async () => {
    const TTL = 2000;
    const [a, b, d] = [await startService(TTL, 300), await startService(TTL, 300), await startService(TTL, 300)];
    const all = [a, b, d].map((s) => `127.0.0.1:${s.port}`).sort();
    await waitFor(() => JSON.stringify(pickable(c.latest(M, C))) === JSON.stringify(all), { timeoutMs: 10_000, what: 'three self-registered hosts in the route' });
    const agent = await c.agent();
    // real calls through the agent, reported, while services come and go
    let stop = false;
    const failures: string[] = [];
    const seen = new Map<number, number>();
    const caller = (async () => {
      while (!stop) {
        const h = await agent.getHost(M, C);
        if (!h.ok) {
          failures.push(`no host: ${h.message}`);
          continue;
        }
        const t0 = Date.now();
        try {
          const r = await fetch(`http://${h.ip}:${h.port}/`, { signal: AbortSignal.timeout(1000) });
          await r.text();
          agent.report(M, C, h, r.ok ? 0 : 1, Date.now() - t0);
          if (!r.ok) failures.push(`${h.port}: HTTP ${r.status}`);
          seen.set(h.port, (seen.get(h.port) ?? 0) + 1);
        } catch (err) {
          agent.report(M, C, h, 1, Date.now() - t0);
          failures.push(`${h.port}: ${(err as Error).message}`);
        }
      }
    })();
    try {
      await waitFor(() => [a, b, d].every((s) => (seen.get(s.port) ?? 0) > 5), { what: 'calls reaching every service' });
      expect(failures).to.deep.equal([]);

      // a graceful stop: draining first, the host leaves the agents' picks, its server stays up until deregistered
      b.child.kill('SIGTERM');
      await waitFor(() => b.lines.includes('stopped'), { timeoutMs: 10_000, what: 'service b stopped gracefully' });
      await b.exited;
      const left = pickable(c.latest(M, C));
      expect(left).to.not.include(`127.0.0.1:${b.port}`);
      const callsAfterB = failures.length;
      expect(failures, 'a graceful stop fails no call').to.deep.equal([]);

      // kill -9: no more heartbeats; the host leaves within the TTL (plus the node's tick and propagation)
      const t0 = Date.now();
      d.child.kill('SIGKILL');
      await d.exited;
      await waitFor(() => !pickable(c.latest(M, C)).includes(`127.0.0.1:${d.port}`), { timeoutMs: TTL + 2000, what: 'the killed service leaving the route' });
      const goneMs = Date.now() - t0;
      console.log(`      killed service left the route after ${goneMs} ms (TTL ${TTL} ms); ${failures.length - callsAfterB} calls failed on it meanwhile`);
      expect(goneMs).to.be.at.most(TTL + 1000);
      expect(pickable(c.latest(M, C))).to.deep.equal([`127.0.0.1:${a.port}`]);
    } finally {
      stop = true;
      await caller;
    }
  });

  it('selfreg - a service CPU-bound for 3 s, longer than its 2 s TTL, stays in its route (heartbeats from a worker thread); the admin entry and self-registered hosts merge, the admin one winning', async () => {
    const s = await startService(2000, 400);
    const me = `127.0.0.1:${s.port}`;
    await waitFor(() => pickable(c.latest(M, C)).includes(me), { timeoutMs: 10_000, what: 'the service in the route' });
    const from = c.states.items.length;
    s.child.kill('SIGUSR2');
    await waitFor(() => s.lines.includes('busy'), { timeoutMs: 10_000, what: 'the busy stretch begun' });
    const busyAt = Date.now();
    // heartbeats go on while the service's event loop is blocked
    await waitFor(() => c.node!.selfRegistered(M, C).some((h) => h.heardAt > busyAt + 2000), { timeoutMs: 5000, what: 'a heartbeat 2 s into the busy stretch' });
    expect(s.lines.includes('idle'), 'still busy when that heartbeat came').to.equal(false);
    await waitFor(() => s.lines.includes('idle'), { timeoutMs: 10_000, what: 'the busy stretch over' });
    const during = c.states.items.slice(from).filter((x) => x.modid === M && x.cmdid === C);
    expect(during.every((x) => pickable(x).includes(me)), 'never out of the route').to.equal(true);
    expect(pickable(c.latest(M, C))).to.include(me);

    // the admin adds the same host with its own weight, and another host: both show, the admin weight counts
    await c.addRoute(M, C, [
      { ip: '127.0.0.1', port: s.port, weight: 30 },
      { ip: '10.9.9.9', port: 80, weight: 100 },
    ]);
    await waitFor(() => c.latest(M, C)?.hosts.length === 2 && c.latest(M, C)!.hosts.find((h) => h.port === s.port)?.weight === 30, { timeoutMs: 10_000, what: 'the admin entry merged' });
    // the admin removes its entry: the self-registered host alone keeps the route
    await c.registry.removeHosts(M, C, [], 'test');
    await waitFor(() => JSON.stringify(c.latest(M, C)?.hosts.map((h) => `${h.ip}:${h.port}:${h.weight}:${h.state}`).filter((x) => !x.endsWith(':draining'))) === JSON.stringify([`${me}:100:healthy`]), { timeoutMs: 10_000, what: 'the self-registered host alone, at its own weight' });
  });

  it('selfreg - a service stuck past maxStallMs leaves its route within the TTL and comes back when it recovers', async () => {
    const s = await startService(2000, 400, { SELF_MAX_STALL_MS: '1000', SELF_BUSY_MS: '6000' });
    const me = `127.0.0.1:${s.port}`;
    await waitFor(() => pickable(c.latest(M, C)).includes(me), { timeoutMs: 10_000, what: 'the service in the route' });
    s.child.kill('SIGUSR2');
    await waitFor(() => s.lines.includes('busy'), { timeoutMs: 10_000, what: 'the stuck stretch begun' });
    const stuckAt = Date.now();
    // heartbeats stop about 1 s in; the host leaves one TTL (2 s) after the last one the node heard
    await waitFor(() => !pickable(c.latest(M, C)).includes(me), { timeoutMs: 5000, what: 'the stuck service out of its route' });
    expect(Date.now() - stuckAt, 'left within stall limit + TTL + the node tick').to.be.lessThan(4500);
    expect(s.lines.includes('idle'), 'still stuck when it left').to.equal(false);
    await waitFor(() => s.lines.includes('idle'), { timeoutMs: 10_000, what: 'the stretch over' });
    await waitFor(() => pickable(c.latest(M, C)).includes(me), { timeoutMs: 5000, what: 'back in its route' });
  });

  it('selfreg - lars agent --register keeps a service in its route while it answers, the HTTP API registers and deregisters another; lars route ls shows each origin', async () => {
    const listen = async (): Promise<{ server: Server; port: number }> => {
      const port = await freePort();
      const server = createServer((_q, r) => r.end('ok'));
      await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
      return { server, port };
    };
    const a = await listen();
    const b = await listen();
    const httpPort = await freePort();
    const env = { LARS_NATS_URL: server().url, LARS_PREFIX: c.prefix, LARS_PARTITIONS: String(PARTITIONS) };
    const side = larsLive(['agent', '--udp-ports', 'off', '--http-port', String(httpPort), '--register', `${M}/${C}@127.0.0.1:${a.port},40,z1`, '--register-ttl', '2000'], env);
    try {
      await waitFor(() => pickable(c.latest(M, C)).includes(`127.0.0.1:${a.port}`), { timeoutMs: 20_000, what: 'the --register host in the route' });
      expect(c.latest(M, C)!.hosts.find((h) => h.port === a.port)).to.include({ weight: 40, zone: 'z1' });
      // the HTTP API: one heartbeat registers (the service posts them itself)
      const post = (path: string, body: unknown): Promise<Response> => fetch(`http://127.0.0.1:${httpPort}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      const bad = await post('/v1/register', { modid: M, cmdid: C, ip: '127.0.0.1', port: 0 });
      expect(bad.status).to.equal(400);
      expect(((await bad.json()) as { message: string }).message).to.match(/port/);
      const ok = await post('/v1/register', { modid: M, cmdid: C, ip: '127.0.0.1', port: b.port, ttl_ms: 60_000, instance: 'svc-b' });
      expect(ok.status).to.equal(200);
      expect(await ok.json()).to.include({ ok: true, ttl_ms: 60_000, heartbeat_ms: 12_000 });
      await waitFor(() => pickable(c.latest(M, C)).includes(`127.0.0.1:${b.port}`), { timeoutMs: 10_000, what: 'the HTTP-registered host in the route' });
      // the admin also lists a; route ls shows both origins
      await c.addRoute(M, C, [{ ip: '127.0.0.1', port: a.port, weight: 40, zone: 'z1' }]);
      await waitFor(() => c.node!.stats().routes === 1 && c.latest(M, C)?.hosts.length === 2, { what: 'the merged route' });
      const ls = await lars(['route', 'ls', String(M), String(C)], env);
      expect(ls.code, ls.stderr).to.equal(0);
      const rowOf = (port: number): string => ls.stdout.split('\n').find((l) => l.includes(`127.0.0.1:${port}`)) ?? '';
      expect(rowOf(a.port)).to.match(/admin \+ self \(.*lars agent\)/);
      expect(rowOf(b.port)).to.match(/self \(svc-b\)/);
      await c.registry.removeHosts(M, C, [], 'test');
      // the service beside the sidecar stops answering: its heartbeats stop, it leaves within the TTL
      const t0 = Date.now();
      await new Promise<void>((r) => a.server.close(() => r()));
      a.server.closeAllConnections();
      await waitFor(() => !pickable(c.latest(M, C)).includes(`127.0.0.1:${a.port}`), { timeoutMs: 6000, what: 'the silent service leaving the route' });
      expect(Date.now() - t0).to.be.at.most(2000 + 1500);
      // deregistering over HTTP answers once the host has left
      const gone = await post('/v1/deregister', { modid: M, cmdid: C, ip: '127.0.0.1', port: b.port, drain_ms: 200 });
      expect(gone.status).to.equal(200);
      await waitFor(() => !pickable(c.latest(M, C)).includes(`127.0.0.1:${b.port}`), { timeoutMs: 5000, what: 'the deregistered host out of the route' });
    } finally {
      side.child.kill('SIGTERM');
      await side.exited;
      a.server.closeAllConnections();
      b.server.closeAllConnections();
      await new Promise<void>((r) => b.server.close(() => r()));
      if (a.server.listening) await new Promise<void>((r) => a.server.close(() => r()));
    }
  });
});
