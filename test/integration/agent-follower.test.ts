/**
 * The route follower on its own and inside the agent, and the bound on
 * unacknowledged reports, on a real nats-server. Route states are written
 * and published by the test itself (no route node), so every version is
 * under its control.
 */
import { expect } from 'chai';
import { pino } from 'pino';
import { jetstreamManager } from '@nats-io/jetstream';
import { startNatsServer, type NatsServer } from '../../src/nats/natsd.ts';
import { connectNats, type NatsConnection } from '../../src/nats/connect.ts';
import { RouteStore } from '../../src/registry/route-store.ts';
import { ensureStreams } from '../../src/nats/streams.ts';
import { encode } from '../../schemas/codec.ts';
import { RouteFollower } from '../../src/agent/route-follower.ts';
import { createAgent, type Agent } from '../../src/agent/agent.ts';
import { names, type Names } from '../../schemas/subjects.ts';
import type { HostState, RouteState } from '../../schemas/messages.ts';
import { uniquePrefix, TEST_CLUSTER_STREAM_LIMITS } from '../helpers/cluster.ts';
import { waitFor } from '../helpers/wait.ts';

function routeState(modid: number, cmdid: number, version: number, hosts: Array<[ip: string, state: HostState, pickWeight: number]>, removed = false): RouteState {
  return {
    v: 1,
    sender: 'test',
    modid,
    cmdid,
    version,
    ts: Date.now(),
    profile: 'default',
    panic: false,
    removed,
    probe_num: 3,
    hosts: hosts.map(([ip, state, pick_weight]) => ({ ip, port: 8000, weight: 100, state, reason: 'registered', since: 0, pick_weight })),
  };
}

function recordingLog(): { log: pino.Logger; records: Array<Record<string, unknown>> } {
  const records: Array<Record<string, unknown>> = [];
  const log = pino({ level: 'info', base: null }, { write: (s: string) => records.push(JSON.parse(s) as Record<string, unknown>) });
  return { log, records };
}

const logged = (records: Array<Record<string, unknown>>, text: string): Array<Record<string, unknown>> => records.filter((r) => String(r['msg']).includes(text));

describe('route follower and report bound (real nats-server)', function () {
  this.timeout(30_000);
  let server: NatsServer;
  let nc: NatsConnection;
  let n: Names;
  let store: RouteStore;
  const closers: Array<() => Promise<void> | void> = [];

  before(async () => {
    server = await startNatsServer();
    nc = await connectNats({ url: server.url, name: 'test' });
  });
  after(async () => {
    await nc.close();
    await server.stop();
  });
  beforeEach(async () => {
    n = names(uniquePrefix());
    store = await RouteStore.open(nc, n);
  });
  afterEach(async () => {
    for (const c of closers.splice(0)) await c();
  });

  async function publish(s: RouteState): Promise<void> {
    nc.publish(n.route(s.modid, s.cmdid), encode(s));
    await nc.flush();
  }

  async function agent(opts: Parameters<typeof createAgent>[0] = {}): Promise<Agent> {
    const a = await createAgent({ servers: server.url, prefix: n.prefix, partitions: 8, batchMaxDelayMs: 5, ...opts });
    closers.push(() => a.close());
    return a;
  }

  it('follower - loading, then not registered for a missing key, then loaded; a listener that throws does not stop the others', async () => {
    const { log, records } = recordingLog();
    const f = new RouteFollower({ nc, names: n, log });
    closers.push(() => f.close());
    expect(f.state(9, 1)).to.deep.equal({ status: 'loading' });
    expect(await f.get(9, 1)).to.equal(undefined);
    expect(f.state(9, 1)).to.deep.equal({ status: 'unregistered' });
    const seen: number[] = [];
    f.follow(9, 1, () => {
      throw new Error('listener bug');
    });
    f.follow(9, 1, (s) => seen.push(s.version));
    await publish(routeState(9, 1, 1, [['10.0.0.1', 'healthy', 100]]));
    await waitFor(() => seen.includes(1), { what: 'state reaching the second listener' });
    expect(f.state(9, 1).status).to.equal('loaded');
    expect(logged(records, 'route listener threw')).to.have.length(1);
    // a listener added later gets the current state at once
    let current: RouteState | undefined;
    f.follow(9, 1, (s) => (current = s));
    expect(current?.version).to.equal(1);
  });

  it('follower - an update leaving no pickable host is held unless it is a drain or a removal', async () => {
    const { log, records } = recordingLog();
    await store.put(routeState(3, 4, 1, [['10.0.0.1', 'healthy', 100], ['10.0.0.2', 'healthy', 100]]));
    const f = new RouteFollower({ nc, names: n, log });
    closers.push(() => f.close());
    const seen: number[] = [];
    f.follow(3, 4, (s) => seen.push(s.version));
    expect((await f.get(3, 4))?.version).to.equal(1);
    await publish(routeState(3, 4, 2, [])); // empty host list
    await publish(routeState(3, 4, 3, [['10.0.0.1', 'healthy', 0]])); // listed, but nothing explains weight 0
    await publish(routeState(3, 4, 4, [['10.0.0.1', 'draining', 0], ['10.0.0.2', 'draining', 0]])); // the registry removed them
    await waitFor(() => seen.includes(4), { what: 'drain applied' });
    expect(seen).to.deep.equal([1, 4]);
    expect(f.stats().heldEmptyUpdates).to.equal(2);
    expect(logged(records, 'no pickable host'), 'one line per route per interval').to.have.length(1);
    // nothing pickable is held now: an empty update is applied, and so is the tombstone
    await publish(routeState(3, 4, 5, []));
    await publish(routeState(3, 4, 6, [], true));
    await waitFor(() => seen.includes(6), { what: 'tombstone applied' });
    expect(seen).to.deep.equal([1, 4, 5, 6]);
    expect(f.state(3, 4)).to.deep.equal({ status: 'unregistered' });
    expect(await f.get(3, 4)).to.equal(undefined);
  });

  it('agent - NO_ROUTE says loading before the first read and not registered after; a held empty update keeps picking', async () => {
    const a = await agent();
    const first = a.pick(11, 1);
    expect(first).to.deep.include({ ok: false, code: 'NO_ROUTE', message: 'route is loading' });
    expect(await a.getHost(11, 1)).to.deep.include({ ok: false, code: 'NO_ROUTE', message: 'route is not registered' });
    await publish(routeState(11, 1, 1, [['10.0.0.7', 'healthy', 100]]));
    await waitFor(() => a.pick(11, 1).ok, { what: 'route loaded' });
    await publish(routeState(11, 1, 2, []));
    await waitFor(() => a.stats().heldEmptyUpdates === 1, { what: 'empty update held' });
    expect(a.pick(11, 1)).to.deep.include({ ok: true, ip: '10.0.0.7', port: 8000 });
    expect((await a.getRoute(11, 1))?.version).to.equal(1);
  });

  it('agent - with no stream the reports wait, bounded by maxPendingReports (oldest dropped, counted, logged), and are acknowledged once a stream exists', async () => {
    const { log, records } = recordingLog();
    const a = await agent({ batchMaxReports: 10, maxPendingReports: 50, retryBackoffMs: [50], log });
    const host = { ip: '10.0.0.1', port: 8000 };
    for (let i = 0; i < 200; i++) a.report(1, 1, host, 0, 1);
    a.flushAll();
    expect(a.stats()).to.include({ reports: 200, batches: 20, droppedReports: 150, pendingReports: 50 });
    await waitFor(() => logged(records, 'no JetStream stream captures').length > 0, { what: 'no-stream log' });
    const noStream = logged(records, 'no JetStream stream captures');
    expect(String(noStream[0]!['msg'])).to.include(`lars node`).and.include(n.reportsStream);
    expect(logged(records, 'maxPendingReports')).to.have.length(1);
    expect(a.stats().ackedBatches).to.equal(0);
    await ensureStreams(nc, n, TEST_CLUSTER_STREAM_LIMITS);
    await a.flush({ timeoutMs: 10_000 });
    expect(a.stats()).to.include({ ackedBatches: 5, pendingReports: 0, droppedReports: 150 });
    expect(a.stats().retriedBatches).to.be.greaterThan(0);
    const jsm = await jetstreamManager(nc);
    expect((await jsm.streams.info(n.reportsStream)).state.messages).to.equal(5);
  });

  it("agent - reportDelivery 'core' publishes without acks, as before", async () => {
    const a = await agent({ reportDelivery: 'core' });
    const got: number[] = [];
    const sub = nc.subscribe(n.reportAll, { callback: (_e, m) => void got.push(m.data.length) });
    closers.push(() => sub.unsubscribe());
    await nc.flush();
    a.report(2, 2, { ip: '10.0.0.1', port: 8000 }, 0, 1);
    await a.flush();
    await waitFor(() => got.length === 1, { what: 'core batch' });
    expect(a.stats()).to.include({ batches: 1, ackedBatches: 0, droppedReports: 0, pendingReports: 0 });
  });
});
