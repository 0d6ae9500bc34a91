/**
 * The Go SDK (clients/go) against a real nats-server and route node: its own
 * live tests (`go test -run TestLive`, told where the cluster is by the
 * environment), the reports it published read back from the REPORTS
 * stream, and a mixed test: a Go and a TypeScript agent on one route hold
 * the same version and, for swrr from the same seeded start, pick the same
 * sequence.
 */
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { useCluster, hosts, uniquePrefix, PARTITIONS, TEST_CLUSTER_STREAM_LIMITS, type TestCluster } from '../helpers/cluster.ts';
import { waitFor } from '../helpers/wait.ts';
import { decode } from '../../schemas/codec.ts';
import { names } from '../../schemas/subjects.ts';
import { parseReportMsgId } from '../../schemas/msg-id.ts';
import type { ReportBatch } from '../../schemas/messages.ts';
import { seededRandom } from '../../actors/strategies/index.ts';
import { ensureGo, goEnv, runGo } from '../../scripts/go.mjs';
import { startNatsServer, type NatsServer } from '../../src/nats/natsd.ts';
import { connectNats, type NatsConnection } from '../../src/nats/connect.ts';
import { ensureStreams } from '../../src/nats/streams.ts';
import { openEngine } from '../../src/analytics/engine.ts';
import { runMigrations } from '../../src/analytics/migrate.ts';
import { startSink } from '../../src/analytics/sink.ts';
import { randomDatabase, sharedChdbPath } from '../helpers/clickhouse-server.ts';

/** The SDK's test binary, built once per run (its output streams, unlike `go test`'s). */
let testBinary: string | undefined;

function buildTestBinary(): string {
  if (testBinary !== undefined) return testBinary;
  const out = join(mkdtempSync(join(tmpdir(), 'lars-go-')), 'lars.test');
  const r = runGo(['test', '-c', '-o', out, '.'], { stdio: 'pipe', timeoutMs: 300_000 });
  if (r.status !== 0) throw new Error(`go test -c failed:\n${r.stdout}\n${r.stderr}`);
  testBinary = out;
  return out;
}

/** `go run .` in `dir` without blocking this process (the route node of the test cluster runs in it). */
function goRunAsync(dir: string, env: Record<string, string>): Promise<{ code: number | null; out: string }> {
  const { env: goenv } = goEnv();
  return new Promise((resolve, reject) => {
    const child = spawn('go', ['run', '.'], { cwd: dir, env: { ...goenv, ...env, PWD: dir }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const t = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('error', (e) => {
      clearTimeout(t);
      reject(e);
    });
    child.on('close', (code) => {
      clearTimeout(t);
      resolve({ code, out });
    });
  });
}

/** Runs the SDK's tests matching `pattern` with the cluster named in the environment; `onLine` sees each line of output as it comes. */
function goTest(pattern: string, env: Record<string, string>, onLine?: (line: string) => void): Promise<{ code: number | null; out: string }> {
  const bin = buildTestBinary();
  const { dir } = goEnv();
  return new Promise((resolve, reject) => {
    const child = spawn(bin, ['-test.count=1', '-test.v', '-test.run', pattern], { cwd: dir, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let partial = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      partial += d.toString();
      const lines = partial.split('\n');
      partial = lines.pop()!;
      for (const l of lines) onLine?.(l);
    });
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const t = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`go test ${pattern} timed out:\n${out}`));
    }, 170_000);
    child.on('exit', (code) => {
      clearTimeout(t);
      resolve({ code, out });
    });
  });
}

/**
 * The distinct report batches of `sender` in the REPORTS stream: reports, distinct ids, and every stored copy.
 * `withIds` false: core publishes, which carry no msg id (each message counts as its own batch).
 */
async function storedReports(nc: NatsConnection, prefix: string, sender: string, withIds = true): Promise<{ reports: number; distinct: number; messages: number }> {
  const n = names(prefix);
  const jsm = await jetstreamManager(nc);
  const total = (await jsm.streams.info(n.reportsStream)).state.messages;
  const consumer = await jetstream(nc).consumers.get(n.reportsStream);
  const ids = new Set<string>();
  let reports = 0;
  let seen = 0;
  let messages = 0;
  while (seen < total) {
    const batch = await consumer.fetch({ max_messages: 1000, expires: 2000 });
    for await (const m of batch) {
      seen++;
      const b = decode(m.data) as ReportBatch;
      if (b.sender !== sender) continue;
      messages++;
      const id = withIds ? (m.headers?.get('Nats-Msg-Id') ?? '') : `seq ${m.seq}`;
      if (withIds) expect(parseReportMsgId(id)?.sender, `msg id ${id}`).to.equal(sender);
      if (ids.has(id)) continue;
      ids.add(id);
      reports += b.reports.length;
    }
  }
  return { reports, distinct: ids.size, messages };
}

function line(out: string, tag: string): Record<string, unknown> {
  const l = out.split('\n').find((x) => x.startsWith(`${tag} `));
  expect(l, `${tag} line in:\n${out}`).to.not.equal(undefined);
  return JSON.parse(l!.slice(tag.length + 1)) as Record<string, unknown>;
}

describe('Go SDK (clients/go) on a real cluster', function () {
  this.timeout(180_000);
  const cluster = useCluster();
  let c: TestCluster;
  before(function () {
    if (!ensureGo()) this.skip();
  });
  beforeEach(() => {
    c = cluster();
  });
  after(() => {
    if (testBinary !== undefined) rmSync(dirname(testBinary), { recursive: true, force: true });
    testBinary = undefined;
  });

  function env(extra: Record<string, string> = {}): Record<string, string> {
    return { LARS_TEST_NATS_URL: c.server.url, LARS_TEST_PREFIX: c.prefix, LARS_TEST_PARTITIONS: String(PARTITIONS), LARS_TEST_ROUTE: '41,1', LARS_TEST_MIXED: '41,2', ...extra };
  }

  it('go-sdk - a failing host leaves the Go agent\'s picks after the route update; its reports are in the REPORTS stream', async () => {
    await c.addRoute(41, 1, hosts(3, '127.0.2.', 7300));
    await waitFor(() => c.latest(41, 1), { what: 'route 41.1 published' });
    const r = await goTest('TestLiveFailingHostLeavesPicks', env());
    expect(r.code, r.out).to.equal(0);
    expect(r.out, 'the live test ran').to.not.match(/SKIP/);
    const live = line(r.out, 'GO_LIVE') as { agent: string; reports: number; ejected_ms: number; version: number };
    expect(live.ejected_ms).to.be.below(10_000);
    // the route node published the version the Go agent saw
    expect(c.states.items.some((s) => s.modid === 41 && s.cmdid === 1 && s.version === live.version)).to.equal(true);
    // every acknowledged report is in the stream, under the Go agent's id
    const stored = await storedReports(await c.connection(), c.prefix, live.agent);
    expect(stored.reports).to.equal(live.reports);
  });

  it('go-sdk - Go and TypeScript agents on one route hold the same version and pick the same swrr sequence from the same seed', async () => {
    await c.addRoute(41, 2, [...hosts(2, '127.0.3.', 7400, 300), ...hosts(3, '127.0.4.', 7400, 100)]);
    await waitFor(() => c.latest(41, 2), { what: 'route 41.2 published' });
    const seed = 1234;
    const ts = await c.agent({ strategy: 'swrr', random: seededRandom(seed) });
    const state = await ts.getRoute(41, 2);
    expect(state).to.not.equal(undefined);
    const tsPicks: string[] = [];
    for (let i = 0; i < 40; i++) {
      const p = await ts.getHost(41, 2);
      if (!p.ok) throw new Error(p.message);
      tsPicks.push(`${p.ip}:${p.port}`);
    }
    const r = await goTest('TestLiveMixedSwrr', env({ LARS_TEST_SEED: String(seed) }));
    expect(r.code, r.out).to.equal(0);
    const go = line(r.out, 'GO_MIXED') as { version: number; picks: string[] };
    expect(go.version).to.equal(state!.version);
    expect(go.picks).to.deep.equal(tsPicks);
    expect(new Set(tsPicks).size, 'the sequence visits every host').to.equal(5);
  });

  it('go-sdk - the nats-server killed and started again on its store: Go agents on their own and on a caller\'s connection lose no acknowledged report, drop none, confirm the batches acknowledged around the outage, and pick from the cache while the server is away', async () => {
    let server: NatsServer = await startNatsServer();
    const prefix = uniquePrefix();
    let admin: NatsConnection | undefined;
    try {
      admin = await connectNats({ url: server.url, name: 'admin' });
      await ensureStreams(admin, names(prefix), TEST_CLUSTER_STREAM_LIMITS);
      await admin.close();
      admin = undefined;
      let restarted: Promise<void> | undefined;
      const r = await goTest('TestLiveOutage', { ...env(), LARS_TEST_NATS_URL: server.url, LARS_TEST_PREFIX: prefix, LARS_TEST_OUTAGE: '1' }, (l) => {
        if (l === 'GO_READY') server.process.kill('SIGKILL');
        if (l === 'GO_DISCONNECTED') {
          restarted = (async () => {
            await new Promise((res) => setTimeout(res, 3000)); // the outage: traffic goes on for its length
            server = await startNatsServer({ port: server.port, storeDir: server.storeDir });
          })();
        }
      });
      await restarted;
      expect(r.code, r.out).to.equal(0);
      const out = line(r.out, 'GO_OUTAGE') as Record<string, { reports: number; batches: number; retried: number; confirmed: number }>;
      expect(Object.keys(out).sort()).to.deep.equal(['go-outage', 'go-outage-shared']);
      admin = await connectNats({ url: server.url, name: 'admin' });
      for (const [agent, o] of Object.entries(out)) {
        expect(o.retried, `${agent}: batches retried across the outage`).to.be.above(0);
        expect(o.confirmed, `${agent}: batches confirmed after the outage`).to.be.above(0);
        const stored = await storedReports(admin, prefix, agent);
        expect(stored.reports, `${agent}: reports in the stream (distinct msg ids)`).to.equal(o.reports);
        expect(stored.distinct).to.equal(o.batches);
        expect(stored.messages, `${agent}: stored once: retries and confirmations inside the duplicate window are dropped by the stream`).to.equal(stored.distinct);
      }
    } finally {
      await admin?.close().catch(() => undefined);
      await server.stop();
    }
  });

  it('go-sdk - the routes bucket lost a route\'s state: the Go agent takes the route\'s new versions from 1 again', async () => {
    const r = await goTest('TestLiveVersionsStartAgain', env({ LARS_TEST_VERSIONS: '1' }));
    expect(r.code, r.out).to.equal(0);
    expect((line(r.out, 'GO_VERSIONS') as { resets: number }).resets).to.equal(1);
  });

  it('go-sdk - calls refused by their hosts as overloaded: the route node publishes that the route sheds, and the Go agent\'s Call refuses most new calls at once', async () => {
    await c.addRoute(41, 9, hosts(2, '127.0.7.', 7700));
    await waitFor(() => c.latest(41, 9), { what: 'route 41.9 published' });
    const r = await goTest('TestLiveShedding', env({ LARS_TEST_SHED: '41,9' }));
    expect(r.code, r.out).to.equal(0);
    const out = line(r.out, 'GO_SHED') as { shed: number; refused: number };
    expect(out.refused).to.be.at.least(50);
    expect(c.states.items.some((s) => s.modid === 41 && s.cmdid === 9 && (s.shed ?? 0) === out.shed), 'the node published the shed share the Go agent saw').to.equal(true);
  });

  it('go-sdk - core report delivery: plain publishes, unacknowledged, in the REPORTS stream all the same', async () => {
    const r = await goTest('TestLiveCoreDelivery', env({ LARS_TEST_CORE: '1' }));
    expect(r.code, r.out).to.equal(0);
    const out = line(r.out, 'GO_CORE') as { agent: string; reports: number };
    expect(out.reports).to.equal(30);
    const nc = await c.connection();
    await waitFor(async () => (await storedReports(nc, c.prefix, out.agent, false)).reports === 30, { what: 'the core-published reports in the stream' });
  });

  it('go-sdk - the sink stores the same rows for a Go agent\'s reports as for a TypeScript agent\'s (chdb)', async () => {
    const engine = await openEngine({ path: sharedChdbPath(), database: randomDatabase() });
    await runMigrations(engine);
    const sink = await startSink({ nc: await c.connection(), names: names(c.prefix), engine, batch: { maxWaitMs: 100 } });
    try {
      // the list TestLiveScriptedReports makes (clients/go/live_test.go, scriptedReports)
      const ts = await c.agent({ agentId: 'ts-rows', zone: 'z1' });
      for (let k = 0; k < 30; k++) ts.report(41, 3, { ip: `10.9.0.${1 + (k % 3)}`, port: 8000 + (k % 2) }, k % 5 === 0 ? 500 : 0, k * 1.25);
      await ts.flush();
      const r = await goTest('TestLiveScriptedReports', env({ LARS_TEST_SCRIPT: '1', LARS_TEST_AGENT_ID: 'go-rows' }));
      expect(r.code, r.out).to.equal(0);
      expect((line(r.out, 'GO_SCRIPT') as { reports: number }).reports).to.equal(30);
      const rows = async (caller: string): Promise<string[]> =>
        (
          await engine.query<Record<string, unknown>>(
            `SELECT modid, cmdid, toString(ip) AS ip, port, retcode, latency_ms, zone FROM ${engine.database}.reports WHERE caller = '${caller}' ORDER BY latency_ms, ip, port`,
          )
        ).map((x) => JSON.stringify([x['modid'], x['cmdid'], x['ip'], x['port'], x['retcode'], x['latency_ms'], x['zone']].map(String)));
      await waitFor(async () => (await rows('go-rows')).length === 30 && (await rows('ts-rows')).length === 30, { what: 'rows of both agents in ClickHouse', timeoutMs: 30_000 });
      const go = await rows('go-rows');
      expect(go).to.deep.equal(await rows('ts-rows'));
      expect(go.some((x) => x.includes('"500"'))).to.equal(true);
    } finally {
      await sink.stop();
      await engine.close();
    }
  });

  it("go-sdk - docs/go.md's first example runs as written: it picks a host of route 1.1 and reports the call", async () => {
    await c.addRoute(1, 1, hosts(2, '127.0.5.', 7500));
    await waitFor(() => c.latest(1, 1), { what: 'route 1.1 published' });
    const doc = readFileSync(join(import.meta.dirname, '..', '..', 'docs', 'go.md'), 'utf8');
    const code = /```go\n(package main\n[\s\S]*?)```/.exec(doc)?.[1];
    expect(code, 'a package main example in docs/go.md').to.be.a('string');
    const { env: goenv } = goEnv();
    const gopath = goenv['GOPATH']!.split(':')[0]!;
    const dir = join(gopath, 'src', 'lars-go-example', c.prefix);
    mkdirSync(dir, { recursive: true });
    try {
      writeFileSync(join(dir, 'main.go'), code!);
      const r = runGo(['run', '.'], { stdio: 'pipe', timeoutMs: 120_000, env: { PWD: dir, LARS_NATS_URL: c.server.url, LARS_PREFIX: c.prefix } }, dir);
      expect(r.status, `${r.stdout}\n${r.stderr}`).to.equal(0);
      expect(r.stdout).to.match(/^called 127\.0\.5\.[12]:7500$/m);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("go-sdk - docs/go.md's gRPC example runs as written: it registers its own health server and calls it through lars:///7.9", async () => {
    const doc = readFileSync(join(import.meta.dirname, '..', '..', 'docs', 'go.md'), 'utf8');
    const code = [...doc.matchAll(/```go\n(package main\n[\s\S]*?)```/g)].map((m) => m[1]!).find((b) => b.includes('lars:///7.9'));
    expect(code, 'the gRPC example in docs/go.md').to.be.a('string');
    const { env: goenv } = goEnv();
    const gopath = goenv['GOPATH']!.split(':')[0]!;
    const dir = join(gopath, 'src', 'lars-go-grpc-example', c.prefix);
    mkdirSync(dir, { recursive: true });
    try {
      writeFileSync(join(dir, 'main.go'), code!);
      // not runGo (spawnSync): the route node runs in this process and must take the registration while the program waits
      const r = await goRunAsync(dir, { LARS_NATS_URL: c.server.url, LARS_PREFIX: c.prefix });
      expect(r.code, r.out).to.equal(0);
      expect(r.out).to.match(/^lars:\/\/\/7\.9 answered SERVING$/m);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('go-sdk - Register: the host joins its route, stays past its TTL on heartbeats, and leaves on Stop', async () => {
    const r = await goTest('TestLiveRegister', env({ LARS_TEST_REGISTER: '1' }));
    expect(r.code, r.out).to.equal(0);
    const out = line(r.out, 'GO_REGISTER') as { joined: number; left: number };
    const joined = c.states.items.find((s) => s.modid === 41 && s.cmdid === 5 && s.version === out.joined);
    expect(joined?.hosts.some((h) => h.ip === '127.0.6.9' && h.port === 7600 && h.pick_weight > 0), 'the route node published the host').to.equal(true);
    await waitFor(() => (c.latest(41, 5)?.version ?? 0) >= out.left, { what: 'the leaving state seen here' });
    expect(c.latest(41, 5)!.hosts.some((h) => h.ip === '127.0.6.9' && h.pick_weight > 0)).to.equal(false);
  });
});
