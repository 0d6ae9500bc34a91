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
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import { useCluster, hosts, PARTITIONS, type TestCluster } from '../helpers/cluster.ts';
import { waitFor } from '../helpers/wait.ts';
import { decode } from '../../schemas/codec.ts';
import { names } from '../../schemas/subjects.ts';
import { parseReportMsgId } from '../../schemas/msg-id.ts';
import type { ReportBatch } from '../../schemas/messages.ts';
import { seededRandom } from '../../actors/strategies/index.ts';
import { ensureGo, goEnv } from '../../scripts/go.mjs';

/** Runs `go test -run <pattern>` in the SDK with the cluster named in the environment. */
function goTest(pattern: string, env: Record<string, string>): Promise<{ code: number | null; out: string }> {
  const { dir, env: goenv } = goEnv();
  return new Promise((resolve, reject) => {
    const child = spawn('go', ['test', '-count=1', '-v', '-run', pattern, '.'], { cwd: dir, env: { ...goenv, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
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
    const nc = await c.connection();
    const n = names(c.prefix);
    const jsm = await jetstreamManager(nc);
    const total = (await jsm.streams.info(n.reportsStream)).state.messages;
    const consumer = await jetstream(nc).consumers.get(n.reportsStream);
    const ids = new Set<string>();
    let reports = 0;
    let seen = 0;
    while (seen < total) {
      const batch = await consumer.fetch({ max_messages: 1000, expires: 2000 });
      for await (const m of batch) {
        seen++;
        const id = m.headers?.get('Nats-Msg-Id') ?? '';
        const parsed = parseReportMsgId(id);
        expect(parsed, `msg id ${id}`).to.not.equal(undefined);
        const b = decode(m.data) as ReportBatch;
        if (b.sender !== live.agent || ids.has(id)) continue;
        ids.add(id);
        expect(parsed!.sender).to.equal(live.agent);
        reports += b.reports.length;
      }
    }
    expect(reports).to.equal(live.reports);
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
});
