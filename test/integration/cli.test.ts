import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { createServer, type Server, type Socket } from 'node:net';
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { startNatsServer, type NatsServer } from '../../src/nats/natsd.ts';
import { connectNats } from '../../src/nats/connect.ts';
import { RouteStore } from '../../src/registry/route-store.ts';
import { names } from '../../schemas/subjects.ts';
import { TestCluster, PARTITIONS, uniquePrefix } from '../helpers/cluster.ts';
import { samplePicks } from '../helpers/traffic.ts';
import { waitFor } from '../helpers/wait.ts';
import { LARS_BIN, hasScript, lars, larsLive, larsOnTerminal } from '../helpers/cli.ts';
import type { RegistryEntry, RouteState } from '../../schemas/messages.ts';
import { ensureStreams } from '../../src/nats/streams.ts';
import { CONFIG_KEYS } from '../../src/lib/config.ts';
import { openEngine, type AnalyticsEngine } from '../../src/analytics/engine.ts';
import { runMigrations } from '../../src/analytics/migrate.ts';
import { startSink, type Sink } from '../../src/analytics/sink.ts';
import { publishBatches, reportBatch } from '../helpers/analytics-fixtures.ts';
import { TEST_STREAM_LIMITS, countRows, findClickHouseServer, freePort, randomDatabase, useNatsAndClickHouse } from '../helpers/clickhouse-server.ts';

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
    // no slow start: a host added later gets its full weight at once, so the split below is exact
    let r = await lars(['route', 'add', '20', '1', '10.0.0.1:8000', '10.0.0.2:8000,50', '--param', 'drain_time=60', '--param', 'slow_start_window=0'], env);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout).to.contain('route 20.1: 2 host(s)');
    // exact weight ratios are swrr's
    const a = await c.agent({ strategy: 'swrr' });
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
    const rows = JSON.parse(ls.stdout) as Array<{ registry: { hosts: unknown[] }; effective: RouteState; stale: boolean }>;
    expect(rows[0]!.registry.hosts).to.have.length(2);
    expect(rows[0]!.effective.hosts.find((h) => h.ip === '10.0.0.1')!.state).to.equal('draining');
    expect(rows[0]!.stale).to.equal(false);
    const human = await lars(['route', 'ls'], env);
    expect(human.stdout).to.match(/10\.0\.0\.1:8000\s+draining/);
    expect(human.stdout).to.match(/route 20\.1 .*published (just now|\d+ s ago) by node-/);
    expect(human.stdout).not.to.contain('STALE');
    // deleting the whole route needs a yes; without a terminal, --yes
    r = await lars(['route', 'rm', '20', '1'], env);
    expect(r.code, r.stderr).to.equal(2);
    expect(r.stderr.trim()).to.match(/^lars route rm: deleting the whole route 20\.1 needs confirmation: pass --yes/);
    expect((await lars(['route', 'ls', '20', '1'], env)).code).to.equal(0);
    r = await lars(['route', 'rm', '20', '1', '--yes'], env);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout).to.contain('deleted');
    await waitFor(async () => (await a.getHost(20, 1)).ok === false, { what: 'route removed at the agent' });
    expect((await a.getHost(20, 1)) as object).to.include({ code: 'NO_ROUTE' });
  });

  it('cli - on a terminal, route rm of a whole route asks first', async function () {
    if (!hasScript()) this.skip();
    await lars(['route', 'add', '24', '1', '10.0.0.1:8000', '10.0.0.2:8000'], env);
    const no = larsOnTerminal(['route', 'rm', '24', '1'], env, 'n\n');
    expect(await no.exited, no.output()).to.equal(1);
    expect(no.output()).to.contain('delete route 24.1 and its 2 host(s)? [y/N]');
    expect(no.output()).to.contain('lars route rm: route 24.1 kept (not confirmed)');
    expect((await lars(['route', 'ls', '24', '1'], env)).code).to.equal(0);
    const yes = larsOnTerminal(['route', 'rm', '24', '1'], env, 'y\n');
    expect(await yes.exited, yes.output()).to.equal(0);
    expect(yes.output()).to.contain('route 24.1 deleted');
    expect((await lars(['route', 'ls', '24', '1'], env)).code).to.equal(1);
  });

  it('cli - --json on route add, rm and ls prints the data', async () => {
    let r = await lars(['route', 'add', '22', '1', '10.0.0.1:8000,7,z1', '10.0.0.2:8000', '--json'], env);
    expect(r.code, r.stderr).to.equal(0);
    const added = JSON.parse(r.stdout) as RegistryEntry;
    expect(added).to.include({ modid: 22, cmdid: 1 });
    expect(added.hosts).to.deep.include({ ip: '10.0.0.1', port: 8000, weight: 7, zone: 'z1' });
    r = await lars(['route', 'rm', '22', '1', '10.0.0.2:8000', '--json'], env);
    expect(r.code, r.stderr).to.equal(0);
    const removed = JSON.parse(r.stdout) as { deleted: boolean; entry: RegistryEntry };
    expect(removed.deleted).to.equal(false);
    expect(removed.entry.hosts.map((h) => h.ip)).to.deep.equal(['10.0.0.1']);
    r = await lars(['route', 'ls', '--json'], env);
    expect((JSON.parse(r.stdout) as Array<{ registry: RegistryEntry }>).some((x) => x.registry.modid === 22)).to.equal(true);
    r = await lars(['route', 'rm', '22', '1', '--yes', '--json'], env);
    expect(JSON.parse(r.stdout)).to.deep.equal({ modid: 22, cmdid: 1, deleted: true });
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

  it('cli - route watch on an unregistered route says so and shows it once it appears', async () => {
    const w = larsLive(['route', 'watch', '23', '4'], env);
    try {
      await waitFor(() => w.errLines.some((l) => l.includes('route 23.4 is not registered; watching for it to appear')), { what: 'not-registered notice', timeoutMs: 20_000 });
      expect(w.lines).to.deep.equal([]);
      const r = await lars(['route', 'add', '23', '4', '10.0.0.4:8000'], env);
      expect(r.code, r.stderr).to.equal(0);
      await waitFor(() => w.lines.some((l) => /^route 23\.4 .*version/.test(l)) && w.lines.some((l) => /10\.0\.0\.4:8000\s+healthy/.test(l)), { what: 'route shown once registered' });
    } finally {
      w.child.kill('SIGINT');
    }
    expect(await w.exited).to.equal(0);
  });

  it('cli - route ls says when the published state is older than the registry (no route node)', async () => {
    const prefix = uniquePrefix();
    const penv = { ...env, LARS_PREFIX: prefix };
    // a state published long ago by a node that is gone, for a route registered later
    const nc = await connectNats({ url: server.url });
    try {
      const store = await RouteStore.open(nc, names(prefix));
      const old: RouteState = { v: 1, sender: 'node-gone', modid: 5, cmdid: 6, version: 3, ts: Date.now() - 10 * 60_000, profile: 'default', panic: false, removed: false, probe_num: 0, hosts: [] };
      await store.put(old);
    } finally {
      await nc.close();
    }
    let r = await lars(['route', 'add', '5', '6', '10.0.0.5:8000'], penv);
    expect(r.code, r.stderr).to.equal(0);
    r = await lars(['route', 'ls'], penv);
    expect(r.code, r.stderr).to.equal(0);
    expect(r.stdout).to.match(/route 5\.6 .*published 10 min ago by node-gone/);
    expect(r.stdout).to.match(/STALE: the registry changed (just now|\d+ s ago) and no route node has published it since: is one running\?/);
    const json = JSON.parse((await lars(['route', 'ls', '--json'], penv)).stdout) as Array<{ stale: boolean; served: boolean | null }>;
    expect(json[0]!.stale).to.equal(true);
    // no route node ever took leases under this prefix: the leases cannot tell whether one serves it
    expect(json[0]!.served).to.equal(null);
    // a registered route with no state at all
    await lars(['route', 'add', '5', '7', '10.0.0.5:8000'], penv);
    r = await lars(['route', 'ls', '5', '7'], penv);
    expect(r.stdout).to.contain('route 5.7  (no effective state yet: is a route node running?)');
  });

  it('cli - route ls says a route is not served once no route node holds its partition', async () => {
    const prefix = uniquePrefix();
    const penv = { ...env, LARS_PREFIX: prefix };
    type Row = { effective?: RouteState; served: boolean | null };
    const ls = async (): Promise<Row[]> => JSON.parse((await lars(['route', 'ls', '--json'], penv)).stdout) as Row[];
    // the default lease: a node on a loaded machine can run a few hundred ms behind its heartbeat, which a short lease would read as not live
    const node = larsLive(['node'], { ...penv, LARS_LOG_LEVEL: 'info' });
    let code: number | null = null;
    try {
      await waitFor(() => node.lines.some((l) => l.includes('route node ready')), { what: 'node ready', timeoutMs: 20_000 });
      expect((await lars(['route', 'add', '6', '1', '10.0.0.6:8000'], penv)).code).to.equal(0);
      await waitFor(async () => (await ls()).some((r) => r.effective !== undefined && r.served === true), { what: 'route published and served', timeoutMs: 20_000 });
      let text = '';
      await waitFor(
        async () => {
          text = (await lars(['route', 'ls'], penv)).stdout;
          return text.includes('route 6.1') && !text.includes('NOT SERVED');
        },
        { what: 'route ls to show route 6.1 served', explain: () => `last output:\n${text}`, timeoutMs: 20_000 },
      );
    } finally {
      node.child.kill('SIGINT');
      code = await node.exited;
    }
    expect(code).to.equal(0);
    const rows = await ls();
    expect(rows[0]!.effective?.hosts.map((h) => h.ip)).to.deep.equal(['10.0.0.6']);
    expect(rows[0]!.served).to.equal(false);
    const text = await lars(['route', 'ls'], penv);
    expect(text.stdout).to.match(/NOT SERVED: partition \d+: no route node holds its lease .*; this is the last state published, not a live one: is a route node running\?/);
  });

  it('cli - usage and config errors exit 2 with one line; other failures exit 1', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lars-cfg-'));
    const typo = join(dir, 'typo.json');
    writeFileSync(typo, JSON.stringify({ prefx: 'x', partitions: '8' }));
    const longZone = 'z'.repeat(70);
    const cases: Array<[string[], number, RegExp]> = [
      [['route', 'add', '1'], 2, /^lars route add: missing cmdid/],
      [['route', 'add', '1', '2', '10.0.0.1:99999'], 2, /port must be in 1..65535/],
      [['route', 'add', '1', '2', '300.0.0.1:80'], 2, /bad IPv4/],
      [['route', 'add', '1', '2', '10.0.0.1:80,0'], 2, /weight must be/],
      [['route', 'add', '1', '2', '127.0.0.1:80,10,zone,extra'], 2, /host must be ip:port\[,weight\[,zone\]\], got 4 comma-separated fields/],
      [['route', 'add', '1', '2', `10.0.0.1:80,10,${longZone}`], 2, /zone must be at most 64 characters, got 70/],
      [['route', 'add', '4294967296', '2', '10.0.0.1:80'], 2, /modid must be/],
      [['route', 'add', '-1', '1', '10.0.0.1:80'], 2, /^lars route add: modid must be an integer in 0..4294967295, got "-1"/],
      [['route', 'add', '1', '2', '10.0.0.1:80', '--param', 'nope=1'], 2, /unknown parameter nope/],
      [['route', 'add', '1', '2', '10.0.0.1:80', '--param', 'err_rate=7'], 2, /err_rate must be in 0..1/],
      [['route', 'add', '1', '2', '10.0.0.1:80', '--profile', 'x'], 2, /--profile must be one of default, lars, got "x"/],
      [['route', 'add', '1', '2', '--param'], 2, /--param needs a value/],
      [['route', 'frob'], 2, /^lars route: unknown route command "frob"; use add, rm, ls, watch/],
      [['route', 'ad', '1', '2'], 2, /unknown route command "ad"; did you mean add\?/],
      [['route', 'ls', '--bogus'], 2, /^lars route ls: unknown option --bogus; run 'lars route ls --help'$/],
      [['route', 'ls', '--jsn'], 2, /unknown option --jsn; did you mean --json\?/],
      [['--bogus', 'route', 'ls'], 2, /^lars route ls: unknown option --bogus;/],
      [['help', 'nosuch'], 2, /no help for unknown command "nosuch"/],
      [['route', 'ls', '1', '2', '3'], 2, /unexpected argument "3"/],
      [['nosuch'], 2, /^lars: unknown command "nosuch"/],
      [['rout', 'ls'], 2, /unknown command "rout"; did you mean route\?/],
      [['node', '--own', '5-2'], 2, /--own range 5-2 runs backwards; write 2-5/],
      [['node', '--own', '0-70'], 2, new RegExp(`--own 0-70 is outside 0..${PARTITIONS - 1} \\(the cluster has ${PARTITIONS} partitions\\)`)],
      [['route', 'ls', '--partitions', 'x'], 2, /--partitions must be an integer, got "x"/],
      [['route', 'ls', '--nats', 'notaurl'], 2, /bad NATS URL "notaurl"/],
      [['route', 'ls', '--log-level', 'loud'], 2, /--log-level must be one of trace, debug, info, warn, error, fatal, silent, got "loud"/],
      [['route', 'ls', '--config', typo], 2, /unknown key "prefx"; did you mean "prefix"\?; partitions must be an integer \(a JSON number\), got a string/],
      [['route', 'ls', '9', '9'], 1, /^lars route ls: route 9\.9 is not registered$/],
      [['route', 'rm', '9', '9', '--yes'], 1, /^lars route rm: route 9\.9 is not registered$/],
      [['route', 'rm', '9', '9'], 1, /^lars route rm: route 9\.9 is not registered$/],
    ];
    // a few at a time: each is a node process
    const results: Array<Awaited<ReturnType<typeof lars>>> = [];
    for (let i = 0; i < cases.length; i += 4) results.push(...(await Promise.all(cases.slice(i, i + 4).map(([args]) => lars(args, env)))));
    cases.forEach(([args, code, re], i) => {
      const r = results[i]!;
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).to.equal(code);
      expect(r.stderr.trim().split('\n'), args.join(' ')).to.have.length(1);
      expect(r.stderr.trim(), args.join(' ')).to.match(re);
      expect(r.stderr, args.join(' ')).not.to.match(/To specify a positional argument|pino|at .*\.ts:\d+/);
    });
    const down = await lars(['route', 'ls'], { ...env, LARS_NATS_URL: 'nats://127.0.0.1:1' });
    expect(down.code).to.equal(1);
    expect(down.stderr.trim()).to.equal('lars route ls: cannot reach NATS at nats://127.0.0.1:1 (connection refused): start nats-server -js there, or give --nats (LARS_NATS_URL) a running one');
    const nodeDown = await lars(['node'], { ...env, LARS_NATS_URL: 'nats://127.0.0.1:1' });
    expect(nodeDown.code).to.equal(1);
    expect(nodeDown.stderr.trim()).to.equal('lars node: cannot reach NATS at nats://127.0.0.1:1 (connection refused): start nats-server -js there, or give --nats (LARS_NATS_URL) a running one');
    // flags are checked before anything connects: a bad one is a usage error even with NATS away
    const badLease = await lars(['node', '--lease-ms', '5'], { ...env, LARS_NATS_URL: 'nats://127.0.0.1:1' });
    expect(badLease.code, badLease.stderr).to.equal(2);
    expect(badLease.stderr.trim()).to.equal(`lars node: --lease-ms takes milliseconds in 200..600000, got "5"; run 'lars node --help'`);
  });

  it('cli - help, version and completion exit 0 and show placeholders', async () => {
    const [bare, version, helpRoute, routeHelp, addHelp, completion] = await Promise.all([
      lars([]),
      lars(['--version']),
      lars(['help', 'route']),
      lars(['route', '--help']),
      lars(['route', 'add', '--help']),
      lars(['completion']),
    ]);
    expect(bare.code).to.equal(0);
    expect(bare.stdout).to.match(/Commands:[\s\S]*lars node[\s\S]*lars route/);
    expect(version.code).to.equal(0);
    expect(version.stdout.trim()).to.match(/^\d+\.\d+\.\d+/);
    expect(helpRoute.code).to.equal(0);
    expect(helpRoute.stdout).to.contain('lars route add <modid> <cmdid> [hosts..]');
    expect(helpRoute.stdout).to.equal(routeHelp.stdout);
    expect(addHelp.code).to.equal(0);
    expect(addHelp.stdout).to.contain('lars route add <modid> <cmdid>');
    expect(addHelp.stdout).to.match(/--profile\s+<default\|lars>/);
    // the global flags once, in lars --help; a command's help lists its own and points there
    expect(bare.stdout).to.match(/--nats\s+<url>.*\[default:\s+nats:\/\/127\.0\.0\.1:4222\]/s);
    for (const spec of Object.values(CONFIG_KEYS)) expect(bare.stdout, `--${spec.flag} in lars --help`).to.match(new RegExp(`--${spec.flag}\\s`));
    expect(addHelp.stdout).not.to.match(/--nats\b|--prefix\b|--log-level\b|Configuration \(flags/);
    expect(addHelp.stdout.trim().split('\n').at(-1)).to.equal('global flags: see lars --help');
    expect(routeHelp.stdout.trim().split('\n').at(-1)).to.equal('global flags: see lars --help');
    expect(routeHelp.stdout).not.to.match(/--nats\b/);
    // every long-running command's flags show their placeholder and default
    const [nodeHelp, devHelp] = await Promise.all([lars(['node', '--help']), lars(['dev', '--help'])]);
    for (const h of [nodeHelp, devHelp]) {
      expect(h.stdout).not.to.match(/--nats\b|--clickhouse-url\b/);
      expect(h.stdout.trim().split('\n').at(-1)).to.equal('global flags: see lars --help');
    }
    expect(nodeHelp.stdout).to.match(/--own\s+<partitions>[\s\S]*\[default:\s+shared\s+with\s+the\s+other\s+nodes\s+by\s+leases\]/);
    expect(nodeHelp.stdout).to.match(/--lease-ms\s+<ms>[\s\S]*\[default:\s+2000\]/);
    expect(devHelp.stdout).to.match(/--speed\s+<factor>[\s\S]*\[default:\s+1\]/);
    expect(devHelp.stdout).to.match(/--duration\s+<seconds>[\s\S]*\[default:\s+until\s+Ctrl-C\]/);
    expect(completion.code).to.equal(0);
    expect(completion.stdout).to.contain('--get-yargs-completions');
    const [completionHelp, helpCompletion, completionExtra, typo] = await Promise.all([lars(['completion', '--help']), lars(['help', 'completion']), lars(['completion', 'extra']), lars(['complet'])]);
    expect(completionHelp.code).to.equal(0);
    expect(completionHelp.stdout).to.contain('lars completion >> ~/.bashrc');
    expect(helpCompletion.stdout).to.equal(completionHelp.stdout);
    expect(completionExtra.code).to.equal(2);
    expect(completionExtra.stdout, 'no script before the error').to.equal('');
    expect(completionExtra.stderr.trim()).to.equal(`lars completion: unexpected argument "extra"; run 'lars completion --help'`);
    expect(typo.stderr.trim()).to.match(/unknown command "complet"; did you mean completion\?/);
    const words = await lars(['--get-yargs-completions', 'lars', 'route', '']);
    expect(words.stdout.split('\n')).to.include.members(['add', 'rm', 'ls', 'watch']);
  });

  it('cli - flags override environment, environment overrides the config file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lars-cfg-'));
    const file = join(dir, 'lars.json');
    writeFileSync(file, JSON.stringify({ natsUrl: 'nats://127.0.0.1:2', prefix: c.prefix, partitions: PARTITIONS }));
    // file alone: unreachable URL from the file
    let r = await lars(['route', 'ls', '--config', file], { LARS_NATS_URL: '' });
    expect(r.stderr.trim()).to.match(/^lars route ls: cannot reach NATS at nats:\/\/127\.0\.0\.1:2 \(/);
    // environment beats the file
    r = await lars(['route', 'ls', '--config', file], { LARS_NATS_URL: server.url });
    expect(r.code, r.stderr).to.equal(0);
    // a flag beats the environment
    r = await lars(['route', 'ls', '--config', file, '--nats', 'nats://127.0.0.1:3'], { LARS_NATS_URL: server.url });
    expect(r.stderr.trim()).to.match(/^lars route ls: cannot reach NATS at nats:\/\/127\.0\.0\.1:3 \(/);
  });
});

describe('lars node logs (real nats-server)', function () {
  this.timeout(90_000);

  it('cli - node logs are pretty on request, JSON by default off a terminal', async () => {
    const server = await startNatsServer();
    const env = { LARS_NATS_URL: server.url, LARS_PREFIX: uniquePrefix(), LARS_PARTITIONS: '4', LARS_LOG_LEVEL: 'info' };
    const pretty = larsLive(['node', '--log-format', 'pretty'], env);
    const json = larsLive(['node'], env);
    try {
      await waitFor(() => pretty.lines.some((l) => l.includes('route node ready')), { what: 'pretty ready line', timeoutMs: 20_000 });
      await waitFor(() => json.lines.some((l) => l.includes('route node ready')), { what: 'json ready line', timeoutMs: 20_000 });
      const p = pretty.lines.find((l) => l.includes('route node ready'))!;
      expect(p).to.match(/^\[\d\d:\d\d:\d\d\.\d{3}\] INFO/);
      expect(p).not.to.contain('"time"');
      const j = JSON.parse(json.lines.find((l) => l.includes('route node ready'))!) as { time: number; msg: string };
      expect(j.msg).to.equal('route node ready; Ctrl-C to stop');
      expect(j.time).to.be.a('number');
    } finally {
      pretty.child.kill('SIGINT');
      json.child.kill('SIGINT');
      await Promise.all([pretty.exited, json.exited]);
      await server.stop();
    }
  });

  it('cli - on a terminal, node logs are pretty without asking', async function () {
    if (!hasScript()) this.skip();
    const server = await startNatsServer();
    const t = larsOnTerminal(['node'], { LARS_NATS_URL: server.url, LARS_PREFIX: uniquePrefix(), LARS_PARTITIONS: '4', LARS_LOG_LEVEL: 'info' });
    try {
      await waitFor(() => t.output().includes('route node ready'), { what: 'ready line on the terminal', timeoutMs: 20_000 });
      const plain = t.output().replace(/\u001b\[[0-9;]*m/g, '');
      expect(plain).to.match(/\[\d\d:\d\d:\d\d\.\d{3}\] INFO: [^:]+: route node ready; Ctrl-C to stop/);
      expect(plain).not.to.contain('"time":');
    } finally {
      process.kill(-t.child.pid!, 'SIGINT');
      await t.exited;
      await server.stop();
    }
  });

  it('cli - lars node logs a lost NATS connection once and its recovery once', async () => {
    let server = await startNatsServer();
    const env = { LARS_NATS_URL: server.url, LARS_PREFIX: uniquePrefix(), LARS_PARTITIONS: '4', LARS_LOG_LEVEL: 'info' };
    const node = larsLive(['node'], env);
    const msgs = () => node.lines.filter((l) => l.startsWith('{')).map((l) => (JSON.parse(l) as { msg: string; level: number }));
    try {
      await waitFor(() => msgs().some((m) => m.msg.startsWith('route node ready')), { what: 'node ready', timeoutMs: 20_000 });
      await server.stop();
      await waitFor(() => msgs().some((m) => m.msg.startsWith('lost connection')), { what: 'lost-connection line' });
      server = await server.restart();
      await waitFor(() => msgs().some((m) => m.msg.startsWith('reconnected')), { what: 'reconnected line', timeoutMs: 20_000 });
      const lost = msgs().filter((m) => m.msg.startsWith('lost connection'));
      const back = msgs().filter((m) => m.msg.startsWith('reconnected'));
      expect(lost).to.have.length(1);
      expect(lost[0]!.msg).to.equal(`lost connection to ${server.url}; reconnecting`);
      expect(lost[0]!.level).to.equal(40);
      expect(back).to.have.length(1);
      expect(back[0]!.msg).to.match(new RegExp(`^reconnected to ${server.url} after (\\d+ ms|\\d+\\.\\d s)$`));
    } finally {
      node.child.kill('SIGINT');
      await node.exited;
      await server.stop();
    }
  });
});

describe('lars stats (real nats-server and clickhouse-server)', function () {
  this.timeout(120_000);
  before(function () {
    if (!findClickHouseServer()) this.skip();
  });
  const servers = useNatsAndClickHouse();
  let engine: AnalyticsEngine;
  let sink: Sink;
  let env: Record<string, string>;

  before(async () => {
    const { nats, ch, nc } = servers();
    const prefix = uniquePrefix();
    const n = names(prefix);
    await ensureStreams(nc, n, TEST_STREAM_LIMITS);
    engine = await openEngine({ url: ch.url, database: randomDatabase(), requestTimeoutMs: 10_000 });
    await runMigrations(engine);
    sink = await startSink({ nc, names: n, engine, batch: { maxWaitMs: 100 } });
    // route 300.1: one host, 3 calls, 1 error → an error rate of 1/3
    await publishBatches(nc, n, [reportBatch({ modid: 300, cmdid: 1, ts: Date.now() - 60_000, sender: 'svc', hosts: [['10.0.3.1', 80]], reports: [[0, 0, 5, 0], [0, 0, 5, 10], [0, 1, 5, 20]] })]);
    await waitFor(async () => (await countRows(engine, 'reports')) === 3, { what: 'seeded reports' });
    env = { LARS_NATS_URL: nats.url, LARS_PREFIX: prefix, LARS_CLICKHOUSE_URL: ch.url, LARS_CLICKHOUSE_DATABASE: engine.database };
  });
  after(async () => {
    await sink?.stop();
    await engine?.close();
  });

  it('cli - a refused ClickHouse login says which settings to fix', async () => {
    const { ch } = servers();
    const r = await lars(['stats', 'errors'], { ...env, LARS_CLICKHOUSE_USER: 'nobody-here' }, 60_000);
    expect(r.code, r.stderr).to.equal(1);
    expect(r.stderr.trim(), r.stderr).to.match(new RegExp(`^lars stats: cannot use ClickHouse at ${ch.url.replace(/[.]/g, '\\.')}/?: the user or password is refused: set --clickhouse-user and --clickhouse-password \\(LARS_CLICKHOUSE_USER, LARS_CLICKHOUSE_PASSWORD\\); ClickHouse said: .*nobody-here`));
  });

  it('cli - lars stats prints rounded tables, and full values with --json', async () => {
    const [json, human] = await Promise.all([lars(['stats', 'errors', '--route', '300.1', '--json'], env, 60_000), lars(['stats', 'errors', '--route', '300.1'], env, 60_000)]);
    expect(json.code, json.stderr).to.equal(0);
    const rows = JSON.parse(json.stdout) as Array<Record<string, unknown>>;
    expect(rows).to.have.length(1);
    expect(rows[0]).to.include({ host: '10.0.3.1', calls: 3, errors: 1 });
    expect(rows[0]!['error_rate']).to.be.closeTo(1 / 3, 1e-3);
    expect(human.code, human.stderr).to.equal(0);
    const lines = human.stdout.trimEnd().split('\n');
    expect(lines[0]).to.match(/^modid\s+cmdid\s+host\s+port\s+calls\s+errors\s+error_rate$/);
    expect(lines[2]).to.match(/^\s*300\s+1\s+10\.0\.3\.1\s+80\s+3\s+1\s+0\.333$/);
  });
});

describe('lars stats on an embedded ClickHouse another process holds', function () {
  this.timeout(120_000);

  it('cli - lars stats says which process holds the chdb directory, in one line without the engine\'s own exception', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lars-chdb-'));
    const engineModule = new URL('../../src/analytics/engine.ts', import.meta.url).href;
    const script = `const { openEngine } = await import(${JSON.stringify(engineModule)}); await openEngine({ path: ${JSON.stringify(join(dir, 'clickhouse'))}, database: 'lars' }); console.log('open'); setInterval(() => {}, 1000);`;
    const holder = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      const opened = new Promise<void>((resolve, reject) => {
        holder.stdout.on('data', (d: Buffer) => d.toString().includes('open') && resolve());
        holder.once('exit', (code) => reject(new Error(`the process holding chdb exited (${code})`)));
      });
      await opened;
      const r = await lars(['stats', 'errors', '--data-dir', dir], {}, 60_000);
      expect(r.code, r.stderr).to.equal(1);
      expect(r.stderr.trim().split('\n')).to.deep.equal([
        `lars stats: the embedded ClickHouse at ${join(dir, 'clickhouse')} is in use by another process (pid ${holder.pid}), a running sink or node: chdb opens a data directory in one process only; query through that process, or point both at a ClickHouse server with LARS_CLICKHOUSE_URL`,
      ]);
    } finally {
      if (holder.exitCode === null && holder.signalCode === null) {
        const gone = new Promise((r) => holder.once('exit', r));
        holder.kill('SIGKILL');
        await gone;
      }
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('lars output to a reader that goes away', function () {
  this.timeout(60_000);

  it('cli - a closed stdout (lars ... | head) ends the command quietly, without a stack trace', async () => {
    for (const args of [['simulate', 'slow-host'], ['--help']]) {
      const child = spawn(process.execPath, [LARS_BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      // the reader is gone before lars writes a line
      child.stdout.destroy();
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
      expect(code, `${args.join(' ')}: ${stderr}`).to.equal(0);
      expect(stderr, args.join(' ')).to.not.match(/EPIPE|node:events|at .*:\d+:\d+/);
    }
  });
});

describe('lars stats and lars sink on a ClickHouse URL that cannot be used', function () {
  this.timeout(60_000);
  let other: Server;
  let otherPort: number;
  const accepted: Socket[] = [];
  before(async () => {
    other = createServer((s) => {
      accepted.push(s);
      s.end('hello\n');
    });
    await new Promise<void>((r) => other.listen(0, '127.0.0.1', r));
    otherPort = (other.address() as { port: number }).port;
  });
  after(async () => {
    for (const s of accepted) s.destroy();
    await new Promise((r) => other.close(r));
  });

  it('cli - each says what is wrong there and what to do, in one line, and exits 1', async () => {
    const refused = `http://127.0.0.1:${await freePort()}`;
    const cases: Array<[string, RegExp]> = [
      [refused, /\(?connection refused: start clickhouse-server there, or give --clickhouse-url \(LARS_CLICKHOUSE_URL\) a running one; unset, the embedded chdb is used$/],
      [`http://127.0.0.1:${otherPort}`, /something else answers there, not ClickHouse's HTTP interface: give --clickhouse-url \(LARS_CLICKHOUSE_URL\) a ClickHouse HTTP port \(8123 by default\)$/],
    ];
    for (const [url, re] of cases) {
      const r = await lars(['stats', 'errors', '--clickhouse-url', url], {}, 30_000);
      expect(r.code, r.stderr).to.equal(1);
      expect(r.stderr.trim().split('\n'), url).to.have.length(1);
      expect(r.stderr.trim(), url).to.match(new RegExp(`^lars stats: cannot use ClickHouse at ${url.replace(/[.]/g, '\\.')}/: `));
      expect(r.stderr.trim(), url).to.match(re);
    }
  });
});
