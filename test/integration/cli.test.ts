import { expect } from 'chai';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { startNatsServer, type NatsServer } from '../../src/natsd.ts';
import { TestCluster, PARTITIONS } from '../helpers/cluster.ts';
import { samplePicks } from '../helpers/traffic.ts';
import { waitFor } from '../helpers/wait.ts';
import { lars, larsLive } from '../helpers/cli.ts';
import type { RouteState } from '../../schemas/messages.ts';

describe('lars CLI (real nats-server)', function () {
  this.timeout(90_000);
  let server: NatsServer;
  let c: TestCluster;
  let env: Record<string, string>;

  before(async () => {
    server = await startNatsServer();
    c = await TestCluster.start(server);
    await c.startNode({ tickMs: 25 });
    env = { LARS_NATS_URL: server.url, LARS_PREFIX: c.prefix, LARS_PARTITIONS: String(PARTITIONS) };
  });
  after(async () => {
    await c.stop();
  });

  it('cli - route add/rm reach agents; a removed host drains', async () => {
    let r = await lars(['route', 'add', '20', '1', '10.0.0.1:8000', '10.0.0.2:8000,50', '--param', 'drain_time=60'], env);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout).to.contain('route 20.1: 2 host(s)');
    const a = await c.agent();
    await waitFor(async () => (await a.getRoute(20, 1))?.hosts.length === 2, { what: 'agent sees the route' });
    r = await lars(['route', 'add', '20', '1', '10.0.0.3:8000'], env);
    expect(r.code, r.stderr).to.equal(0);
    await waitFor(async () => (await a.getRoute(20, 1))?.hosts.length === 3, { what: 'agent sees the new host' });
    const picks = samplePicks(a, 20, 1, 250);
    // weights 100, 50, 100 → 40%, 20%, 40%
    expect(picks.get('10.0.0.2:8000')).to.equal(50);
    r = await lars(['route', 'rm', '20', '1', '10.0.0.1:8000'], env);
    expect(r.code, r.stderr).to.equal(0);
    await waitFor(async () => (await a.getRoute(20, 1))?.hosts.find((h) => h.ip === '10.0.0.1')?.state === 'draining', { what: 'host draining at the agent' });
    expect(samplePicks(a, 20, 1, 500).get('10.0.0.1:8000') ?? 0).to.equal(0);
    const ls = await lars(['route', 'ls', '20', '1', '--json'], env);
    expect(ls.code, ls.stderr).to.equal(0);
    const rows = JSON.parse(ls.stdout) as Array<{ registry: { hosts: unknown[] }; effective: RouteState }>;
    expect(rows[0]!.registry.hosts).to.have.length(2);
    expect(rows[0]!.effective.hosts.find((h) => h.ip === '10.0.0.1')!.state).to.equal('draining');
    const human = await lars(['route', 'ls'], env);
    expect(human.stdout).to.match(/10\.0\.0\.1:8000\s+draining/);
    r = await lars(['route', 'rm', '20', '1'], env);
    expect(r.stdout).to.contain('deleted');
    await waitFor(async () => (await a.getHost(20, 1)).ok === false, { what: 'route removed at the agent' });
    expect((await a.getHost(20, 1)) as object).to.include({ code: 'NO_ROUTE' });
  });

  it('cli - route watch streams the effective route as it changes', async () => {
    await lars(['route', 'add', '21', '1', '10.0.0.1:8000', '10.0.0.2:8000'], env);
    const w = larsLive(['route', 'watch', '21', '1', '--json'], env);
    try {
      await waitFor(() => w.lines.some((l) => l.startsWith('{')), { what: 'first route state', timeoutMs: 20_000 });
      const first = JSON.parse(w.lines.find((l) => l.startsWith('{'))!) as RouteState;
      await lars(['route', 'add', '21', '1', '10.0.0.9:8000,7'], env);
      await waitFor(() => w.lines.some((l) => l.startsWith('{') && (JSON.parse(l) as RouteState).version > first.version && l.includes('10.0.0.9')), { what: 'changed route streamed' });
    } finally {
      w.child.kill('SIGINT');
    }
    expect(await w.exited).to.equal(0);
  });

  it('cli - bad arguments and an unreachable NATS fail with one line and a non-zero exit', async () => {
    const cases: Array<[string[], number, RegExp]> = [
      [['route', 'add', '1'], 2, /missing cmdid/],
      [['route', 'add', '1', '2', '10.0.0.1:99999'], 2, /port must be in 1..65535/],
      [['route', 'add', '1', '2', '300.0.0.1:80'], 2, /bad IPv4/],
      [['route', 'add', '1', '2', '10.0.0.1:80,0'], 2, /weight must be/],
      [['route', 'add', '4294967296', '2', '10.0.0.1:80'], 2, /modid must be/],
      [['route', 'add', '1', '2', '10.0.0.1:80', '--param', 'nope=1'], 2, /unknown parameter nope/],
      [['route', 'add', '1', '2', '10.0.0.1:80', '--param', 'err_rate=7'], 2, /err_rate must be in 0..1/],
      [['route', 'frob'], 2, /unknown route command/],
      [['route', 'ls', '--bogus'], 2, /Unknown option/],
      [['nosuch'], 2, /unknown command/],
      [['route', 'ls', '--partitions', 'x'], 1, /must be an integer/],
    ];
    for (const [args, code, re] of cases) {
      const r = await lars(args, env);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).to.equal(code);
      expect(r.stderr.trim().split('\n'), args.join(' ')).to.have.length(1);
      expect(r.stderr).to.match(re);
    }
    const down = await lars(['route', 'ls'], { ...env, LARS_NATS_URL: 'nats://127.0.0.1:1' });
    expect(down.code).to.equal(1);
    expect(down.stderr.trim()).to.equal('lars route: cannot reach NATS at nats://127.0.0.1:1');
    const nodeDown = await lars(['node'], { ...env, LARS_NATS_URL: 'nats://127.0.0.1:1' });
    expect(nodeDown.code).to.equal(1);
    expect(nodeDown.stderr.trim()).to.equal('lars node: cannot reach NATS at nats://127.0.0.1:1');
    const help = await lars(['route', '--help'], env);
    expect(help.code).to.equal(0);
    expect(help.stdout).to.contain('lars route add <modid> <cmdid>');
  });

  it('cli - flags override environment, environment overrides the config file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lars-cfg-'));
    const file = join(dir, 'lars.json');
    writeFileSync(file, JSON.stringify({ natsUrl: 'nats://127.0.0.1:2', prefix: c.prefix, partitions: PARTITIONS }));
    // file alone: unreachable URL from the file
    let r = await lars(['route', 'ls', '--config', file], { LARS_NATS_URL: '' });
    expect(r.stderr.trim()).to.equal('lars route: cannot reach NATS at nats://127.0.0.1:2');
    // environment beats the file
    r = await lars(['route', 'ls', '--config', file], { LARS_NATS_URL: server.url });
    expect(r.code, r.stderr).to.equal(0);
    // a flag beats the environment
    r = await lars(['route', 'ls', '--config', file, '--nats', 'nats://127.0.0.1:3'], { LARS_NATS_URL: server.url });
    expect(r.stderr.trim()).to.equal('lars route: cannot reach NATS at nats://127.0.0.1:3');
  });
});
