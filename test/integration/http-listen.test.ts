/**
 * Every HTTP listener of the `lars` commands binds loopback unless told
 * otherwise, and a port in use is one line naming it (the real binary, a
 * real nats-server).
 */
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { startNatsServer, type NatsServer } from '../../src/nats/natsd.ts';
import { lars, larsLive } from '../helpers/cli.ts';
import { freePort } from '../helpers/clickhouse-server.ts';
import { waitFor } from '../helpers/wait.ts';

/** An IPv4 address of this machine that is not loopback, if it has one. */
function outsideAddress(): string | undefined {
  return Object.values(networkInterfaces())
    .flat()
    .find((a) => a && a.family === 'IPv4' && !a.internal)?.address;
}

/** The status of GET url, or the connection error's code. */
async function probe(url: string): Promise<number | string> {
  try {
    return (await fetch(url, { signal: AbortSignal.timeout(3000) })).status;
  } catch (err) {
    return (err as { cause?: { code?: string } }).cause?.code ?? 'failed';
  }
}

describe('http - the lars commands listen on loopback by default; a port in use is one line', function () {
  this.timeout(120_000);
  let server: NatsServer;
  let dir: string;
  before(async () => {
    server = await startNatsServer();
    dir = mkdtempSync(join(tmpdir(), 'lars-listen-'));
  });
  after(async () => {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const env = () => ({ LARS_NATS_URL: server.url, LARS_PREFIX: `t${randomBytes(4).toString('hex')}`, LARS_PARTITIONS: '8', LARS_DATA_DIR: dir, LARS_CLICKHOUSE_URL: '', LARS_HTTP_HOST: '' });

  it('http - node --http, sink --http, console and agent (--http and its API) answer on 127.0.0.1 and not on the machine\'s other address', async () => {
    const outside = outsideAddress();
    const [node, sink, cons, agentHttp, agentApi] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort()]);
    const procs = [
      { what: 'lars node --http', p: larsLive(['node', '--own', '0-7', '--http', String(node)], env()), port: node },
      { what: 'lars sink --http', p: larsLive(['sink', '--http', String(sink)], env()), port: sink },
      { what: 'lars console', p: larsLive(['console', '--port', String(cons), '--analytics', 'off'], env()), port: cons },
      { what: 'lars agent --http', p: larsLive(['agent', '--udp-ports', 'off', '--http', String(agentHttp), '--http-port', String(agentApi)], env()), port: agentHttp },
    ];
    try {
      for (const { what, p, port } of procs) {
        await waitFor(async () => (await probe(`http://127.0.0.1:${port}/healthz`)) === 200, { what, timeoutMs: 30_000, explain: () => p.errLines.join('\n') });
      }
      await waitFor(async () => (await probe(`http://127.0.0.1:${agentApi}/readyz`)) === 200, { what: "the agent's API port, /readyz", timeoutMs: 30_000 });
      expect(await (await fetch(`http://127.0.0.1:${agentApi}/metrics`)).text()).to.include('lars_sidecar_udp_datagrams_total');
      if (outside) {
        for (const { what, port } of [...procs, { what: "lars agent's API", port: agentApi }]) {
          expect(await probe(`http://${outside}:${port}/healthz`), `${what} via ${outside}`).to.equal('ECONNREFUSED');
        }
      }
    } finally {
      for (const { p } of procs) p.child.kill('SIGTERM');
    }
    for (const { what, p } of procs) expect(await p.exited, `${what}: ${p.errLines.join('\n')}`).to.equal(0);
  });

  it('http - LARS_HTTP_HOST=0.0.0.0 opens a listener to the other addresses', async function () {
    const outside = outsideAddress();
    if (!outside) this.skip();
    const port = await freePort();
    const p = larsLive(['node', '--own', '0-7', '--http', String(port)], { ...env(), LARS_HTTP_HOST: '0.0.0.0' });
    try {
      await waitFor(async () => (await probe(`http://${outside}:${port}/healthz`)) === 200, { what: 'lars node on every interface', timeoutMs: 30_000, explain: () => p.errLines.join('\n') });
    } finally {
      p.child.kill('SIGTERM');
    }
    expect(await p.exited).to.equal(0);
  });

  it('http - a port in use: node, sink, console and agent exit 1 with one line naming the port, the address and the flag', async () => {
    const holder: Server = createServer();
    const port = await freePort();
    await new Promise<void>((resolve) => holder.listen(port, '127.0.0.1', resolve));
    try {
      const cases: Array<[string[], string, string]> = [
        [['node', '--own', '0-7', '--http', String(port)], 'node', '--http'],
        [['sink', '--http', String(port)], 'sink', '--http'],
        [['console', '--port', String(port), '--analytics', 'off'], 'console', '--port'],
        [['agent', '--udp-ports', '0', '--http-port', '0', '--http', String(port)], 'agent', '--http'],
        [['agent', '--udp-ports', 'off', '--http-port', String(port)], 'agent', '--http-port'],
      ];
      const results = await Promise.all(cases.map(([args]) => lars(args, env())));
      cases.forEach(([args, cmd, flag], i) => {
        const r = results[i]!;
        expect(r.code, args.join(' ')).to.equal(1);
        expect(r.stderr.trim().split('\n'), `${args.join(' ')}: ${r.stderr}`).to.deep.equal([`lars ${cmd}: HTTP port ${port} on 127.0.0.1 is in use: stop what holds it, or choose another port with ${flag}`]);
      });
    } finally {
      holder.close();
    }
  });
});
