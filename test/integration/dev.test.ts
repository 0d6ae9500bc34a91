import { expect } from 'chai';
import { mkdtempSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { hasScript, lars, larsLive, larsOnTerminal } from '../helpers/cli.ts';
import { freePort } from '../helpers/clickhouse-server.ts';
import { startNatsServer } from '../../src/nats/natsd.ts';
import { waitFor } from '../helpers/wait.ts';
import type { RouteState } from '../../schemas/messages.ts';


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

  it('dev - a second run starts clean: a host out when the first stopped is healthy again from the first route state', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lars-dev-'));
    const port = await freePort();
    const args = ['dev', '--plain', '--speed', '4', '--console', 'off', '--data-dir', dir, '--nats', `nats://127.0.0.1:${port}`];
    const off = { LARS_CLICKHOUSE_URL: 'http://127.0.0.1:9' };
    // stopped 3 s in at 4x: 12 s into the scenario, while :9003 fails (5-15 s) and is out
    const first = await lars([...args, '--duration', '3'], off, 60_000);
    expect(first.code, first.stderr).to.equal(0);
    const states = [...first.stdout.matchAll(/^route v\d+: (.*)$/gm)].map((m) => m[1]!);
    expect(states.at(-1), first.stdout).to.match(/:9003=(overloaded|probing)/);
    const second = await lars([...args, '--duration', '1'], off, 60_000);
    expect(second.code, second.stderr).to.equal(0);
    expect(/^route v\d+: (.*)$/m.exec(second.stdout)?.[1]).to.equal(':9001=healthy :9002=healthy :9003=healthy :9004=healthy :9005=healthy');
  });

  it("dev - on a NATS with a route node and a route 1.1 of someone else's, it refuses and says why and how to go on; with a prefix of its own it runs beside them", async () => {
    const nats = await startNatsServer();
    const env = { LARS_NATS_URL: nats.url, LARS_CLICKHOUSE_URL: 'http://127.0.0.1:9' };
    const node = larsLive(['node'], { ...env, LARS_LOG_LEVEL: 'info', LARS_NODE_ID: 'ops-node-1' });
    try {
      await waitFor(() => node.lines.some((l) => l.includes('route node ready')), { what: 'node ready', timeoutMs: 20_000 });
      expect((await lars(['route', 'add', '1', '1', '10.9.9.9:8000'], env)).code).to.equal(0);
      const ls = async (prefix = 'lars'): Promise<RouteState | undefined> =>
        (JSON.parse((await lars(['route', 'ls', '1', '1', '--json', '--prefix', prefix], env)).stdout) as Array<{ effective?: RouteState }>)[0]?.effective;
      await waitFor(async () => (await ls())?.hosts.length === 1, { what: 'route 1.1 published', timeoutMs: 20_000 });
      const dir = mkdtempSync(join(tmpdir(), 'lars-dev-'));
      const r = await lars(['dev', '--plain', '--duration', '2', '--console', 'off', '--data-dir', dir], env, 60_000);
      expect(r.code, r.stdout).to.equal(1);
      expect(r.stderr.trim()).to.match(
        /^lars dev: NATS at nats:\/\/127\.0\.0\.1:\d+ already has route node ops-node-1 and route 1\.1 with 10\.9\.9\.9:8000 \(by [^)]+\) under prefix lars: the demo would take partitions from them and replace route 1\.1 with its own hosts; give the demo a prefix of its own \(--prefix lars_dev\), or --force to use this one anyway$/,
      );
      // nothing of theirs touched
      expect((await ls())?.hosts.map((h) => `${h.ip}:${h.port}`)).to.deep.equal(['10.9.9.9:8000']);
      // beside them, on a prefix of its own
      const beside = await lars(['dev', '--plain', '--speed', '4', '--duration', '2', '--console', 'off', '--data-dir', dir, '--prefix', 'lars_dev'], env, 60_000);
      expect(beside.code, beside.stderr).to.equal(0);
      expect(beside.stdout).to.match(/^route v\d+: :9001=healthy/m);
      // and leaves nothing registered there when it stops
      expect(beside.stderr).to.contain('stopping demo route 1.1…');
      expect(JSON.parse((await lars(['route', 'ls', '--json', '--prefix', 'lars_dev'], env)).stdout)).to.deep.equal([]);
      expect((await ls())?.hosts.map((h) => `${h.ip}:${h.port}`)).to.deep.equal(['10.9.9.9:8000']);
      // the node kept its partitions and its route
      expect(node.lines.concat(node.errLines).filter((l) => /partition lost|written by another node/.test(l))).to.deep.equal([]);
    } finally {
      node.child.kill('SIGTERM');
      await node.exited;
      await nats.stop();
    }
  });
});
