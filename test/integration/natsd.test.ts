import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { findNatsServer, probePort, startNatsServer, PortBusyError } from '../../src/natsd.ts';
import { LarsError } from '../../src/errors.ts';
import { freePort } from '../helpers/clickhouse-server.ts';
import { lars } from '../helpers/cli.ts';
import { waitFor } from '../helpers/wait.ts';

describe('natsd: what lars does with the NATS it finds', function () {
  this.timeout(60_000);

  describe('a NATS server without JetStream', () => {
    let child: ChildProcess;
    let url: string;
    before(async () => {
      const port = await freePort();
      child = spawn(findNatsServer()!, ['-a', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' });
      await waitFor(async () => (await probePort(port)).kind === 'nats', { timeoutMs: 10_000, what: 'nats-server without -js' });
      url = `nats://127.0.0.1:${port}`;
    });
    after(async () => {
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await gone;
    });

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
