/**
 * The KV side of the registry on a real nats-server: conflicts recognised by
 * their JetStream code, conflicting updates retried, the watcher's own
 * end-of-initial-values marker, and replica counts on a single server.
 */
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import { jetstreamManager } from '@nats-io/jetstream';
import { deadline } from '@nats-io/transport-node';
import { names } from '../../schemas/subjects.ts';
import { startNatsServer, type NatsServer } from '../../src/nats/natsd.ts';
import { connectNats, type NatsConnection } from '../../src/nats/connect.ts';
import { Registry } from '../../src/registry/registry.ts';
import { RouteStore } from '../../src/registry/route-store.ts';
import { bindBucket, isConflict, openBucket, watchBucket } from '../../src/nats/buckets.ts';
import { readClusterSnapshot } from '../../src/cluster/status.ts';
import { createAgent } from '../../src/agent/agent.ts';
import { ensureStreams } from '../../src/nats/streams.ts';
import { TEST_STREAM_LIMITS } from '../helpers/clickhouse-server.ts';

function memoryLog() {
  const records: Array<Record<string, unknown>> = [];
  const log = pino({ level: 'info' }, { write: (s: string) => records.push(JSON.parse(s) as Record<string, unknown>) });
  return { log, records };
}

const bucketName = () => `b${randomBytes(4).toString('hex')}`;

describe('registry kv', function () {
  this.timeout(30_000);
  let nats: NatsServer;
  let nc: NatsConnection;

  before(async () => {
    nats = await startNatsServer();
    nc = await connectNats({ url: nats.url });
  });
  after(async () => {
    await nc?.close();
    await nats?.stop();
  });

  it('registry - a lost compare-and-set is a conflict by its JetStream code, other errors are not', async () => {
    const kv = await openBucket(nc, bucketName());
    const rev = await kv.put('k', 'a');
    await kv.put('k', 'b');
    const stale = await kv.put('k', 'c', { previousSeq: rev }).catch((e: unknown) => e);
    expect(isConflict(stale)).to.equal(true);
    const exists = await kv.create('k', 'd').catch((e: unknown) => e);
    expect(isConflict(exists)).to.equal(true);
    expect(isConflict(new Error('wrong last sequence: 3'))).to.equal(false);
    expect(isConflict(undefined)).to.equal(false);
  });

  it('registry - concurrent updates of one route all land (conflicts are retried)', async () => {
    const n = names(`t${randomBytes(4).toString('hex')}`);
    const regs = await Promise.all([0, 1, 2, 3].map(() => Registry.open(nc, n)));
    await Promise.all(
      Array.from({ length: 8 }, (_, i) => regs[i % regs.length]!.addHosts(100, 7, [{ ip: `10.0.0.${i + 1}`, port: 80, weight: 100 }], `w${i}`)),
    );
    const r = await regs[0]!.get(100, 7);
    expect(r?.entry.hosts.map((h) => h.ip).sort()).to.deep.equal(Array.from({ length: 8 }, (_, i) => `10.0.0.${i + 1}`).sort());
  });

  it('registry - watchBucket is initialized once every existing key came through, and at once on an empty bucket', async () => {
    const empty = await openBucket(nc, bucketName());
    const w0 = await watchBucket(empty, () => undefined, { initTimeoutMs: 20_000 });
    await deadline(w0.initialized, 2_000);
    w0.stop();

    const kv = await openBucket(nc, bucketName());
    for (let i = 0; i < 200; i++) await kv.put(`k${i}`, String(i));
    await kv.delete('k7');
    const seen = new Set<string>();
    let atInit = -1;
    const w = await watchBucket(kv, (e) => void seen.add(e.key), { initTimeoutMs: 20_000 });
    await deadline(w.initialized, 5_000);
    atInit = seen.size;
    expect(atInit).to.equal(200);
    await kv.put('late', 'x');
    await deadline(
      (async () => {
        while (!seen.has('late')) await new Promise((r) => setTimeout(r, 10));
      })(),
      5_000,
    );
    w.stop();
  });

  it('replicas (single server) - buckets and streams get one replica by default; an explicit count is applied to an existing bucket and logged', async () => {
    const kv = await openBucket(nc, bucketName());
    expect((await kv.status()).replicas).to.equal(1);
    const n = names(`t${randomBytes(4).toString('hex')}`);
    const s = await ensureStreams(nc, n, TEST_STREAM_LIMITS);
    expect(s.reports.config.num_replicas).to.equal(1);
    expect(s.events.config.num_replicas).to.equal(1);

    const name = bucketName();
    await openBucket(nc, name);
    const { log, records } = memoryLog();
    // A single 2.9 server records the count (and keeps one copy): what `auto` avoids asking for.
    const again = await openBucket(nc, name, 5, { replicas: 3, log });
    await again.put('k', 'v');
    expect((await again.get('k'))?.string()).to.equal('v');
    expect(records.filter((r) => r['msg'] === 'stream replica count changed').map((r) => [r['stream'], r['from'], r['to']])).to.deep.equal([[`KV_${name}`, 1, 3]]);
    const jsm = await jetstreamManager(nc);
    expect((await jsm.streams.info(`KV_${name}`)).config.num_replicas).to.equal(3);
    // Opened again with the same count: nothing to change, nothing logged.
    await openBucket(nc, name, 5, { replicas: 3, log });
    expect(records.filter((r) => r['msg'] === 'stream replica count changed')).to.have.length(1);
  });

  it('registry - readers bind with direct get and never send STREAM.MSG.GET (nats-server 2.9.10 crashes on one that meets a stream in creation)', async () => {
    const n = names(`t${randomBytes(4).toString('hex')}`);
    const spy = nc.subscribe('$JS.API.STREAM.MSG.GET.>');
    const seen: string[] = [];
    void (async () => {
      for await (const m of spy) seen.push(m.subject);
    })();
    // before any node ran: no bucket, no handle
    expect(await bindBucket(nc, n.routesBucket)).to.equal(undefined);
    expect(await RouteStore.bind(nc, n)).to.equal(undefined);
    const snap = await readClusterSnapshot(nc, n.prefix);
    expect(snap.members).to.have.length(0);
    // with the buckets there: an agent's first pick, a store read, the status reader
    const reg = await Registry.open(nc, n);
    await reg.addHosts(5, 6, [{ ip: '10.0.0.1', port: 80, weight: 100 }], 't');
    const store = await RouteStore.open(nc, n);
    expect(await store.get(5, 6)).to.equal(undefined);
    const bound = await RouteStore.bind(nc, n);
    expect(bound).to.not.equal(undefined);
    await bound!.get(5, 6);
    const agent = await createAgent({ nc, prefix: n.prefix });
    await agent.getRoute(5, 6);
    await agent.close();
    await readClusterSnapshot(nc, n.prefix);
    // a concurrent creator's fallback binds the same way
    await openBucket(nc, n.routesBucket, 5).catch(() => undefined);
    await nc.flush();
    expect(seen).to.deep.equal([]);
    spy.unsubscribe();
  });
});
