import { expect } from 'chai';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { probePort, startNatsServer, PortBusyError } from '../../src/nats/natsd.ts';
import { LarsError, NatsUnreachableError } from '../../src/lib/errors.ts';
import { createAgent } from '../../src/agent/agent.ts';
import { freePort } from '../helpers/clickhouse-server.ts';
import { lars } from '../helpers/cli.ts';
import { waitFor } from '../helpers/wait.ts';
import { useNatsWithoutJetStream } from '../helpers/nats-no-js.ts';

/** Mocha hooks: a loopback port that accepts connections and never says a word; its port, once listening, and the sockets it accepted. */
function useSilentPort(): { port: () => number; sockets: Socket[] } {
  let server: Server;
  let port = 0;
  const sockets: Socket[] = [];
  before(async () => {
    server = createServer((s) => void sockets.push(s));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as { port: number }).port;
  });
  after(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((r) => server.close(r));
  });
  return { port: () => port, sockets };
}

describe('natsd: what lars does with the NATS it finds', function () {
  this.timeout(60_000);

  describe('a NATS server without JetStream', () => {
    const natsUrl = useNatsWithoutJetStream();
    let url: string;
    before(() => (url = natsUrl()));

    it('natsd - lars node fails fast: JetStream is not enabled, start nats-server with -js', async () => {
      const t0 = Date.now();
      const r = await lars(['node', '--nats', url], {}, 20_000);
      expect(r.code, r.stderr).to.equal(1);
      expect(r.stderr).to.contain(`JetStream is not enabled on ${url}: start nats-server with -js`);
      expect(Date.now() - t0).to.be.lessThan(15_000);
    });

    it('natsd - lars sink fails fast the same way', async () => {
      const r = await lars(['sink', '--nats', url, '--clickhouse-url', 'http://127.0.0.1:1'], {}, 20_000);
      expect(r.code, r.stderr).to.equal(1);
      expect(r.stderr).to.contain(`JetStream is not enabled on ${url}: start nats-server with -js`);
    });

    it('natsd - every command that reads or writes JetStream says the same, once, and exits 1', async () => {
      const commands = [
        ['route', 'add', '1', '1', '10.0.0.1:80'],
        ['route', 'ls'],
        ['route', 'watch', '1', '1'],
        ['host', 'drain', '1', '1', '10.0.0.1:80'],
        ['cluster', 'status'],
        ['agent', '--udp-ports', 'off', '--http-port', String(await freePort())],
      ];
      const results = await Promise.all(commands.map((c) => lars([...c, '--nats', url], {}, 20_000)));
      commands.forEach((c, i) => {
        const r = results[i]!;
        expect(r.code, `${c.join(' ')}: ${r.stderr}`).to.equal(1);
        const errors = r.stderr.split('\n').filter((l) => l.startsWith('lars '));
        expect(errors, c.join(' ')).to.deep.equal([`lars ${c[0]}${c[0] === 'agent' ? '' : ` ${c[1]}`}: JetStream is not enabled on ${url}: start nats-server with -js`]);
      });
    });

    it('natsd - lars dev fails fast the same way', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'lars-natsd-'));
      try {
        const r = await lars(['dev', '--plain', '--duration', '5', '--data-dir', dir, '--nats', url], {}, 20_000);
        expect(r.code, r.stderr).to.equal(1);
        expect(r.stderr).to.contain(`JetStream is not enabled on ${url}: start nats-server with -js`);
        expect(r.stdout).to.not.contain('starting nats-server');
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });

  describe('a port that accepts connections and says nothing', () => {
    const silent = useSilentPort();

    it('natsd - lars route ls and lars node say nothing answered as NATS, and exit instead of hanging', async () => {
      const url = `nats://127.0.0.1:${silent.port()}`;
      const t0 = Date.now();
      const [ls, node] = await Promise.all([lars(['route', 'ls', '--nats', url], {}, 20_000), lars(['node', '--nats', url], {}, 20_000)]);
      for (const [r, what] of [[ls, 'route ls'], [node, 'node']] as const) {
        expect(r.code, r.stderr).to.equal(1);
        expect(r.stderr.trim()).to.equal(
          `lars ${what}: cannot reach NATS at ${url} (something accepted the connection but sent no NATS greeting within 3 s): give --nats (LARS_NATS_URL) the client port of a NATS server (4222 by default)`,
        );
      }
      // the 3 s connect timeout, then the process ends: nothing is left open
      expect(Date.now() - t0).to.be.lessThan(10_000);
    });
  });

  describe('the SDK on a port that accepts connections and says nothing', () => {
    const silent = useSilentPort();

    it('natsd - createAgent rejects with what is wrong and leaves no socket open (the open-handle check sees any)', async () => {
      const err = await createAgent({ servers: `nats://127.0.0.1:${silent.port()}` }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).to.be.instanceOf(NatsUnreachableError);
      expect((err as Error).message).to.contain('sent no NATS greeting within 3 s');
      // the client's own socket to the silent server is closed: the server sees it go
      await waitFor(() => silent.sockets.length > 0 && silent.sockets.every((s) => s.closed || s.readableEnded), { what: 'the client socket closed', timeoutMs: 5000 });
    });
  });

  describe('a port taken by something that is not NATS', () => {
    let server: Server;
    let port: number;
    before(async () => {
      server = createServer((s) => s.end('HTTP/1.1 400 Bad Request\r\n\r\n'));
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      port = (server.address() as { port: number }).port;
    });
    after(async () => {
      await new Promise((r) => server.close(r));
    });

    it('natsd - probePort tells NATS, nothing and something else apart', async () => {
      expect(await probePort(port)).to.deep.include({ kind: 'other' });
      const p = await probePort(port);
      expect(p.kind === 'other' && p.what).to.match(/not a NATS server \(it answered "HTTP\/1\.1 400 Bad Request"\)/);
      expect(await probePort(await freePort())).to.deep.equal({ kind: 'free' });
    });

    it('natsd - lars dev says what is on the port and exits 1 instead of dumping the nats-server banner', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'lars-natsd-'));
      try {
        const r = await lars(['dev', '--plain', '--duration', '5', '--data-dir', dir, '--nats', `nats://127.0.0.1:${port}`], {}, 20_000);
        expect(r.code, r.stderr).to.equal(1);
        expect(r.stderr).to.match(new RegExp(`port ${port} is already in use by .*not a NATS server`));
        expect(r.stderr).to.contain('--nats nats://127.0.0.1:<port>');
        expect(r.stderr + r.stdout).to.not.contain('JETSTREAM');
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it('natsd - commands other than lars dev say something else answers there', async () => {
      const url = `nats://127.0.0.1:${port}`;
      const r = await lars(['route', 'ls', '--nats', url], {}, 20_000);
      expect(r.code, r.stderr).to.equal(1);
      expect(r.stderr.trim()).to.equal(`lars route ls: cannot reach NATS at ${url} (something else answers there, not a NATS server): give --nats (LARS_NATS_URL) the client port of a NATS server (4222 by default)`);
    });

    it('natsd - startNatsServer on the busy port fails with a one-line PortBusyError', async () => {
      const err = await startNatsServer({ port }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).to.be.instanceOf(PortBusyError);
      expect((err as LarsError).message).to.match(new RegExp(`^port ${port} is already in use by .*not a NATS server`));
      expect((err as LarsError).message.split('\n')).to.have.length(1);
    });
  });
});
