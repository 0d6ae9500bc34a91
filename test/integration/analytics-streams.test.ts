/** ensureStreams: idempotent, safe to race from many processes, and the streams capture core publishes. */
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { jetstreamManager } from '@nats-io/jetstream';
import { names } from '../../schemas/subjects.ts';
import { startNatsServer, type NatsServer } from '../../src/nats/natsd.ts';
import { connectNats, type NatsConnection } from '../../src/nats/connect.ts';
import { ensureStreams, DEFAULT_EVENT_STREAM_LIMITS } from '../../src/nats/streams.ts';
import { publishBatches, publishEvents, faultScenario } from '../helpers/analytics-fixtures.ts';
import { TEST_STREAM_LIMITS, waitFor } from '../helpers/clickhouse-server.ts';

describe('streams', function () {
  this.timeout(30_000);
  let nats: NatsServer;
  const conns: NatsConnection[] = [];

  before(async () => {
    nats = await startNatsServer();
    for (let i = 0; i < 3; i++) conns.push(await connectNats({ url: nats.url }));
  });
  after(async () => {
    for (const c of conns) await c.close();
    await nats?.stop();
  });

  it('streams - many concurrent ensureStreams from several connections agree on one pair of streams', async () => {
    const n = names(`s${randomBytes(3).toString('hex')}`);
    const results = await Promise.all(Array.from({ length: 12 }, (_, i) => ensureStreams(conns[i % 3]!, n, TEST_STREAM_LIMITS)));
    for (const r of results) {
      expect(r.reports.config.name).to.equal(n.reportsStream);
      expect(r.reports.config.subjects).to.deep.equal([n.reportAll]);
      expect(r.events.config.subjects).to.deep.equal([n.eventAll]);
    }
    const c = results[0]!.reports.config;
    expect(c.storage).to.equal('file');
    expect(c.discard).to.equal('old');
    expect(c.max_age).to.be.greaterThan(0);
    expect(c.max_bytes).to.equal(TEST_STREAM_LIMITS.reports.maxBytes);
    expect(results[0]!.events.config.max_age).to.equal(DEFAULT_EVENT_STREAM_LIMITS.maxAgeMs * 1e6);
    const jsm = await jetstreamManager(conns[0]!);
    const all: string[] = [];
    for await (const s of jsm.streams.list()) all.push(s.config.name);
    expect(all.filter((x) => x === n.reportsStream || x === n.eventsStream)).to.have.length(2);
  });

  it('streams - an existing stream keeps its limits (an operator may have tuned them)', async () => {
    const n = names(`s${randomBytes(3).toString('hex')}`);
    await ensureStreams(conns[0]!, n, { reports: { maxBytes: 100 * 2 ** 20 }, events: TEST_STREAM_LIMITS.events });
    const again = await ensureStreams(conns[1]!, n, TEST_STREAM_LIMITS);
    expect(again.reports.config.max_bytes).to.equal(100 * 2 ** 20);
  });

  it('streams - core publishes of reports and events are captured', async () => {
    const n = names(`s${randomBytes(3).toString('hex')}`);
    await ensureStreams(conns[0]!, n, TEST_STREAM_LIMITS);
    const sc = faultScenario(3, 4, Date.now());
    await publishBatches(conns[1]!, n, sc.batches);
    await publishEvents(conns[2]!, n, sc.events);
    const jsm = await jetstreamManager(conns[0]!);
    await waitFor(async () => (await jsm.streams.info(n.reportsStream)).state.messages === sc.batches.length, 'reports captured');
    await waitFor(async () => (await jsm.streams.info(n.eventsStream)).state.messages === sc.events.length, 'events captured');
  });
});
