import { expect } from 'chai';
import { mkdtempSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { createServer } from 'node:net';
import { lars } from '../helpers/cli.ts';

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const p = typeof a === 'object' && a ? a.port : 0;
      s.close(() => resolve(p));
    });
  });
}

describe('lars dev (npm start)', function () {
  this.timeout(90_000);

  it('dev - starts its own nats-server, runs the demo: a host is ejected, probed and back, then stops cleanly', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lars-dev-'));
    const port = await freePort();
    const r = await lars(['dev', '--plain', '--speed', '4', '--duration', '9', '--data-dir', dir, '--nats', `nats://127.0.0.1:${port}`], { LARS_LOG_LEVEL: 'info' }, 60_000);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout).to.contain(`no NATS at nats://127.0.0.1:${port}: starting nats-server`);
    expect(r.stdout).to.match(/:9003 healthy -> overloaded {2}\((consecutive_errors|error_rate)/);
    expect(r.stdout).to.match(/:9003 overloaded -> probing/);
    expect(r.stdout).to.match(/:9003 probing -> healthy {2}\(probe_success/);
    expect(r.stdout).to.match(/stopping: \d+ calls/);
    expect(r.stdout).to.match(/analytics: reports and route events stream into chdb/);
    const calls = Number(/stopping: (\d+) calls/.exec(r.stdout)![1]);
    const stored = /analytics: (\d+) reports and (\d+) route events stored/.exec(r.stdout)!;
    expect(Number(stored[1]), 'every call stored').to.equal(calls);
    expect(Number(stored[2]), 'route events stored').to.be.at.least(4);
    expect(existsSync(join(dir, 'nats'))).to.equal(true);
    expect(existsSync(join(dir, 'node.log'))).to.equal(true);
    // the nats-server it started is gone
    const again = await lars(['route', 'ls', '--nats', `nats://127.0.0.1:${port}`]);
    expect(again.code).to.equal(1);
  });
});
