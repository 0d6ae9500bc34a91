import { expect } from 'chai';
import { mkdtempSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { hasScript, lars, larsOnTerminal } from '../helpers/cli.ts';
import { freePort } from '../helpers/clickhouse-server.ts';


describe('lars dev (npm start)', function () {
  this.timeout(90_000);

  it('dev - starts its own nats-server, runs the demo: a host is ejected, probed and back, then stops cleanly', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lars-dev-'));
    const port = await freePort();
    const r = await lars(['dev', '--plain', '--speed', '4', '--duration', '11', '--data-dir', dir, '--nats', `nats://127.0.0.1:${port}`], { LARS_LOG_LEVEL: 'info' }, 60_000);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout).to.contain(`no NATS at nats://127.0.0.1:${port}: starting nats-server`);
    expect(r.stdout).to.match(/:9003 healthy -> overloaded {2}\((consecutive_errors|error_rate)/);
    expect(r.stdout).to.match(/:9003 overloaded -> probing/);
    expect(r.stdout).to.match(/:9003 probing -> healthy {2}\(probe_success/);
    expect(r.stdout).to.match(/stopping: \d+ calls/);
    // says what it simulates, and when the scenario starts again
    expect(r.stdout).to.match(/simulating: 5 hosts 127\.0\.0\.1:9001-9005 \(no real servers/);
    expect(r.stdout).to.contain('scenario: end of the 10 s scenario; starting it again (round 2)');
    // a probe that fails on latency is labelled as such
    for (const m of r.stdout.matchAll(/:9005 probing -> overloaded {2}\(probe_failure: ([^)]*)\)/g)) expect(m[1]).to.match(/^trial calls were slow/);
    expect(r.stdout).to.not.match(/:9005 probing -> overloaded {2}\(probe_failure: trial calls failed/);
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
    // a second run on the same data starts clean: the first route state it shows has every host healthy
    const second = await lars(['dev', '--plain', '--speed', '4', '--duration', '1', '--data-dir', dir, '--nats', `nats://127.0.0.1:${port}`], { LARS_CLICKHOUSE_URL: 'http://127.0.0.1:9' }, 60_000);
    expect(second.code, second.stderr).to.equal(0);
    expect(second.stdout).to.match(/analytics: off \(.*\); the demo runs without it/);
    const first = /^route v\d+: (.*)$/m.exec(second.stdout);
    expect(first?.[1]).to.equal(':9001=healthy :9002=healthy :9003=healthy :9004=healthy :9005=healthy');
  });

  it('dev - on a terminal, every redrawn screen keeps what it simulates and why analytics is off', async function () {
    if (!hasScript()) this.skip();
    const dir = mkdtempSync(join(tmpdir(), 'lars-dev-'));
    const port = await freePort();
    const t = larsOnTerminal(['dev', '--speed', '4', '--duration', '4', '--data-dir', dir, '--nats', `nats://127.0.0.1:${port}`], { LARS_CLICKHOUSE_URL: 'http://127.0.0.1:9' });
    expect(await t.exited, t.output()).to.equal(0);
    // each screen starts with a clear; the last ones are redraws long after start-up
    const screens = t.output().split('\u001b[2J').slice(1);
    expect(screens.length, 'redrawn several times').to.be.at.least(3);
    for (const screen of screens.slice(-2)) {
      expect(screen).to.match(/analytics: off \(.*\); the demo runs without it/);
      expect(screen).to.match(/simulating: 5 hosts 127\.0\.0\.1:9001-9005 \(no real servers/);
      expect(screen).to.match(/scenario round \d+ \(\d+s of 10s, then it starts again\)/);
    }
  });
});
