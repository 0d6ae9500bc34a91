import { expect } from 'chai';
import { pino } from 'pino';
import { ClosedConnectionError, NoRespondersError, RequestError, TimeoutError } from '@nats-io/transport-node';
import { Outbox } from '../../src/agent/outbox.ts';
import { PublishFailure, classifyPublishError, type PublishFn } from '../../src/agent/publisher.ts';
import { parseReportMsgId, reportMsgId } from '../../schemas/msg-id.ts';
import { ReportBatcher } from '../../src/agent/report-batcher.ts';
import { names } from '../../schemas/subjects.ts';
import { validateReportBatch, type ReportBatch } from '../../schemas/messages.ts';
import { waitFor } from '../helpers/wait.ts';

interface Call {
  subject: string;
  msgId: string;
  resolve: () => void;
  reject: (err: unknown) => void;
}

/** A publisher whose acks the test gives (or refuses) one by one. */
function manualPublisher(): { publish: PublishFn; calls: Call[] } {
  const calls: Call[] = [];
  const publish: PublishFn = (subject, _data, msgId) =>
    new Promise<void>((resolve, reject) => {
      calls.push({ subject, msgId, resolve, reject });
    });
  return { publish, calls };
}

function recordingLog(): { log: pino.Logger; records: Array<Record<string, unknown>> } {
  const records: Array<Record<string, unknown>> = [];
  const log = pino({ level: 'info', base: null }, { write: (s: string) => records.push(JSON.parse(s) as Record<string, unknown>) });
  return { log, records };
}

const data = new Uint8Array([1, 2, 3]);
const noResponders = (): Error => new Error('jetstream is not enabled', { cause: new RequestError('no responders', { cause: new NoRespondersError('lars.report.1.1.1') }) });

describe('agent outbox', () => {
  it('outbox - msg ids carry sender, instance and sequence, and parse back', () => {
    const id = reportMsgId('agent/with/slashes', 'a1b2', 42);
    expect(parseReportMsgId(id)).to.deep.equal({ sender: 'agent/with/slashes', instance: 'a1b2', seq: 42 });
    expect(parseReportMsgId('no-slashes')).to.equal(undefined);
    expect(parseReportMsgId('a/b/0')).to.equal(undefined);
    expect(parseReportMsgId('a/b/x')).to.equal(undefined);
  });

  it('outbox - publish errors are classified by type, not message text', () => {
    expect(classifyPublishError(noResponders())).to.equal(PublishFailure.noStream);
    expect(classifyPublishError(new TimeoutError())).to.equal(PublishFailure.timeout);
    expect(classifyPublishError(new Error('timeout'))).to.equal(PublishFailure.other);
  });

  it('outbox - at most `window` publishes are outstanding; each ack lets the next go, with msg ids in sequence', async () => {
    const { publish, calls } = manualPublisher();
    const o = new Outbox({ publish, sender: 's', instance: 'i', window: 3, maxReports: 1000 });
    for (let k = 0; k < 5; k++) o.add('lars.report.0.1.1', data, 10);
    expect(calls.map((c) => c.msgId)).to.deep.equal(['s/i/1', 's/i/2', 's/i/3']);
    expect(o.stats()).to.include({ pendingReports: 50, pendingBatches: 5 });
    calls[0]!.resolve();
    await waitFor(() => calls.length === 4);
    expect(calls[3]!.msgId).to.equal('s/i/4');
    for (const c of calls.slice(1)) c.resolve();
    await waitFor(() => calls.length === 5);
    calls[4]!.resolve();
    await o.settled(1000);
    expect(o.stats()).to.include({ pendingReports: 0, pendingBatches: 0, ackedBatches: 5, ackedReports: 50, retriedBatches: 0, droppedReports: 0 });
  });

  it('outbox - a failed batch is retried after a pause with the same msg id; settled() waits for its ack', async () => {
    const { publish, calls } = manualPublisher();
    const o = new Outbox({ publish, sender: 's', instance: 'i', window: 8, maxReports: 1000, backoffMs: [20] });
    o.add('subj', data, 5);
    o.add('subj', data, 5);
    let done = false;
    const flushed = o.settled(5000).then(() => (done = true));
    calls[0]!.reject(new TimeoutError());
    calls[1]!.resolve();
    await waitFor(() => calls.length === 3, { what: 'retry' });
    expect(calls[2]!.msgId).to.equal('s/i/1');
    expect(done, 'settled before the retried batch is acked').to.equal(false);
    calls[2]!.resolve();
    await flushed;
    expect(o.stats()).to.include({ ackedBatches: 2, retriedBatches: 1, droppedReports: 0 });
  });

  it('outbox - with no stream, batches are held and retried, and the fix is logged once per interval', async () => {
    const { publish, calls } = manualPublisher();
    const { log, records } = recordingLog();
    const o = new Outbox({ publish, sender: 's', instance: 'i', window: 4, maxReports: 1000, backoffMs: [1, 2, 4], log, noStreamHint: 'start a route node' });
    o.add('lars.report.0.1.1', data, 3);
    for (let k = 0; k < 5; k++) {
      await waitFor(() => calls.length === k + 1, { what: `attempt ${k + 1}` });
      calls[k]!.reject(noResponders());
    }
    await waitFor(() => calls.length === 6, { what: 'still retrying' });
    const lines = records.filter((r) => String(r['msg']).includes('no JetStream stream captures lars.report.0.1.1'));
    expect(lines).to.have.length(1);
    expect(String(lines[0]!['msg'])).to.include('start a route node');
    expect(o.stats()).to.include({ pendingReports: 3, droppedReports: 0 });
    calls[5]!.resolve();
    await o.settled(1000);
    expect(o.stats()).to.include({ ackedBatches: 1, retriedBatches: 5 });
  });

  it('outbox - beyond maxReports the oldest batches not on the wire are dropped, counted and logged', async () => {
    const { publish, calls } = manualPublisher();
    const { log, records } = recordingLog();
    const o = new Outbox({ publish, sender: 's', instance: 'i', window: 1, maxReports: 30, log });
    for (let k = 0; k < 6; k++) o.add('subj', data, 10);
    // batch 1 is on the wire; 2..6 queued; the bound keeps 30 reports: batches 1, 5, 6
    expect(o.stats()).to.include({ pendingReports: 30, pendingBatches: 3, droppedReports: 30 });
    expect(records.filter((r) => String(r['msg']).includes('maxPendingReports'))).to.have.length(1);
    calls[0]!.resolve();
    await waitFor(() => calls.length === 2);
    expect(calls[1]!.msgId).to.equal('s/i/5');
    calls[1]!.resolve();
    await waitFor(() => calls.length === 3);
    calls[2]!.resolve();
    await o.settled(1000);
    expect(o.stats()).to.include({ ackedReports: 30, droppedReports: 30, pendingReports: 0 });
  });

  it('outbox - reports outside the outbox (the batcher) count against the bound', () => {
    const { publish } = manualPublisher();
    let buffered = 25;
    const o = new Outbox({ publish, sender: 's', instance: 'i', window: 1, maxReports: 30, extraPending: () => buffered });
    o.add('subj', data, 5); // on the wire
    o.add('subj', data, 5); // 5 + 5 + 25 > 30: dropped
    expect(o.stats()).to.include({ pendingReports: 5, droppedReports: 5 });
    buffered = 0;
    o.add('subj', data, 5);
    expect(o.stats()).to.include({ pendingReports: 10, droppedReports: 5 });
  });

  it('outbox - settled() rejects with LARS_TIMEOUT when acks do not come; abandon() counts what is left', async () => {
    const { publish } = manualPublisher();
    const o = new Outbox({ publish, sender: 's', instance: 'i', maxReports: 100 });
    o.add('subj', data, 7);
    let err: unknown;
    await o.settled(30).catch((e: unknown) => (err = e));
    expect((err as { code?: string }).code).to.equal('LARS_TIMEOUT');
    expect(o.abandon()).to.equal(7);
    expect(o.stats()).to.include({ droppedReports: 7, pendingReports: 0 });
  });
  it('outbox - a closed connection fails waiting and later flushes at once, and stops retrying', async () => {
    const { publish, calls } = manualPublisher();
    const o = new Outbox({ publish, sender: 's', instance: 'i', maxReports: 100, backoffMs: [1] });
    o.add('subj', data, 4);
    const waiting = o.settled(10_000).then(
      () => 'resolved',
      (e: unknown) => (e as { code?: string }).code,
    );
    calls[0]!.reject(new ClosedConnectionError());
    expect(await waiting).to.equal('LARS_CLOSED');
    expect(await o.settled(10_000).catch((e: unknown) => (e as { code?: string }).code)).to.equal('LARS_CLOSED');
    o.add('subj', data, 1);
    expect(calls).to.have.length(1);
    expect(o.abandon()).to.equal(5);
  });
});

describe('agent outbox: publishes lost with a stream leader or a server', () => {
  it('outbox - with nothing acknowledged for probeMs, the oldest batch is published again; its ack sends every older unanswered publish again at once', async () => {
    const { publish, calls } = manualPublisher();
    const o = new Outbox({ publish, sender: 's', instance: 'i', window: 4, maxReports: 1000, probeMs: 30 });
    for (let k = 0; k < 3; k++) o.add('subj', data, 2);
    expect(calls.map((c) => c.msgId)).to.deep.equal(['s/i/1', 's/i/2', 's/i/3']);
    // the leader is gone: none of the three is ever answered
    await waitFor(() => calls.length === 4, { what: 'a probe' });
    expect(calls[3]!.msgId, 'the probe is the oldest batch').to.equal('s/i/1');
    // a new leader answers the probe: 2 and 3 went out before it and are unanswered, so they were lost
    calls[3]!.resolve();
    await waitFor(() => calls.length === 6, { what: 'the lost publishes sent again' });
    expect(calls.slice(4).map((c) => c.msgId)).to.deep.equal(['s/i/2', 's/i/3']);
    calls[4]!.resolve();
    calls[5]!.resolve();
    await o.settled(1000);
    // the first publishes' late answers change nothing
    calls[0]!.resolve();
    calls[1]!.reject(new TimeoutError());
    await waitFor(() => o.stats().ackedBatches === 3);
    expect(o.stats()).to.include({ ackedBatches: 3, ackedReports: 6, retriedBatches: 3, pendingBatches: 0, droppedReports: 0 });
  });

  it('outbox - acks in the order of the publishes send nothing again', async () => {
    const { publish, calls } = manualPublisher();
    const o = new Outbox({ publish, sender: 's', instance: 'i', window: 8, maxReports: 1000, probeMs: 10_000 });
    for (let k = 0; k < 8; k++) o.add('subj', data, 1);
    for (const c of calls.slice(0, 8)) c.resolve();
    await o.settled(1000);
    expect(calls).to.have.length(8);
    expect(o.stats()).to.include({ ackedBatches: 8, retriedBatches: 0 });
  });

  it('outbox - a stall holds the window and probes with one batch every probeMs, then along backoffMs once fastRetryMs has passed without an ack', async () => {
    const { publish, calls } = manualPublisher();
    const times: number[] = [];
    const failing: PublishFn = (subject, d, msgId) => {
      times.push(Date.now());
      return publish(subject, d, msgId);
    };
    const o = new Outbox({ publish: failing, sender: 's', instance: 'i', window: 4, maxReports: 1000, probeMs: 20, fastRetryMs: 300, backoffMs: [300] });
    for (let k = 0; k < 3; k++) o.add('subj', data, 1);
    // no responders for every publish (no leader and no core subscriber): each fails at once
    let answered = 0;
    await waitFor(
      () => {
        for (; answered < calls.length; answered++) calls[answered]!.reject(noResponders());
        return times.length > 0 && times.at(-1)! - times[0]! > 1100 && times.length >= 8;
      },
      { what: 'probes past the fast phase', timeoutMs: 5000, intervalMs: 1 },
    );
    for (; answered < calls.length; answered++) calls[answered]!.reject(noResponders());
    const probes = calls.slice(3);
    expect(new Set(probes.map((c) => c.msgId)), 'only the oldest batch goes out during a stall').to.deep.equal(new Set(['s/i/1']));
    const gaps = times.slice(3).map((t, i, a) => (i === 0 ? t - times[2]! : t - a[i - 1]!));
    const early = gaps.filter((_, i) => times[3 + i]! - times[0]! < 300);
    expect(early.length, 'probes in the fast phase').to.be.at.least(3);
    for (const g of early) expect(g).to.be.at.least(15);
    const late = gaps.filter((_, i) => times[3 + i]! - times[0]! > 300 + 20 + 50);
    expect(late.length).to.be.at.least(1);
    // the backoff's 300 ms with the client's jitter: 150-450 ms, far above probeMs
    for (const g of late) expect(g, 'past fastRetryMs the backoff applies').to.be.at.least(140);
    // the stream is back: the probe is acknowledged, then the rest of the window goes
    const n = calls.length;
    await waitFor(() => calls.length > n, { timeoutMs: 2000, what: 'the next probe' });
    calls[n]!.resolve();
    await waitFor(() => calls.length >= n + 3, { what: 'the held batches' });
    expect(calls.slice(n + 1, n + 3).map((c) => c.msgId)).to.deep.equal(['s/i/2', 's/i/3']);
    for (const c of calls.slice(n + 1)) c.resolve();
    await o.settled(1000);
    expect(o.stats()).to.include({ ackedBatches: 3, pendingBatches: 0, droppedReports: 0 });
  });

  it('outbox - during a stall a batch never sent goes out once at once (route nodes judge it on the subject); only retries wait for the probe', async () => {
    const { publish, calls } = manualPublisher();
    const o = new Outbox({ publish, sender: 's', instance: 'i', window: 4, maxReports: 1000, probeMs: 30, fastRetryMs: 10_000 });
    o.add('subj', data, 1);
    // the stream has no leader: the first publish fails, the outbox stalls and probes with it
    await waitFor(() => calls.length === 1);
    calls[0]!.reject(new TimeoutError());
    await waitFor(() => calls.length === 2, { what: 'the first probe' });
    expect(calls[1]!.msgId).to.equal('s/i/1');
    // new batches during the stall: each published once at once
    o.add('subj', data, 1);
    o.add('subj', data, 1);
    expect(calls.slice(2).map((c) => c.msgId)).to.deep.equal(['s/i/2', 's/i/3']);
    // they fail too; the probes go on with the oldest only
    calls[2]!.reject(new TimeoutError());
    calls[3]!.reject(new TimeoutError());
    calls[1]!.reject(new TimeoutError());
    await waitFor(() => calls.length >= 6, { what: 'two more probes' });
    expect(new Set(calls.slice(4).map((c) => c.msgId)), 'probes').to.deep.equal(new Set(['s/i/1']));
    // the stream answers the probe: the two others are sent again, once each
    const n = calls.length;
    calls[n - 1]!.resolve();
    await waitFor(() => calls.length >= n + 2, { what: 'the failed fresh batches sent again' });
    expect(calls.slice(n, n + 2).map((c) => c.msgId)).to.deep.equal(['s/i/2', 's/i/3']);
    for (const c of calls.slice(n)) c.resolve();
    await o.settled(1000);
    expect(o.stats()).to.include({ ackedBatches: 3, pendingBatches: 0, droppedReports: 0 });
  });

  it('outbox - batches acknowledged around a stall are published once more, with their ids, confirmDelayMs after it ended; those acks count once', async () => {
    const { publish, calls } = manualPublisher();
    const o = new Outbox({ publish, sender: 's', instance: 'i', window: 8, maxReports: 1000, probeMs: 20, confirmDelayMs: 150 });
    o.add('subj', data, 1);
    calls[0]!.resolve();
    await waitFor(() => o.stats().ackedBatches === 1);
    // long before any stall: not confirmed later
    await new Promise((r) => setTimeout(r, 200)); // the fault's timing: batch 1's ack well before the stall
    o.add('subj', data, 2);
    await waitFor(() => calls.length === 2);
    calls[1]!.reject(new TimeoutError());
    await waitFor(() => calls.length >= 3, { what: 'a probe' });
    o.add('subj', data, 3);
    // the stream answers again: the probe and the fresh batch are acknowledged
    for (const c of calls.slice(2)) c.resolve();
    await waitFor(() => o.stats().ackedBatches === 3 && o.stats().pendingBatches === 0);
    const n = calls.length;
    await waitFor(() => calls.length >= n + 2, { what: 'the confirmation publishes', timeoutMs: 2000 });
    expect(calls.slice(n).map((c) => c.msgId).sort(), 'batches 2 and 3, not 1').to.deep.equal(['s/i/2', 's/i/3']);
    expect(o.stats()).to.include({ pendingBatches: 2, pendingReports: 5, ackedBatches: 3, ackedReports: 6 });
    for (const c of calls.slice(n)) c.resolve();
    await waitFor(() => o.stats().confirmedBatches === 2);
    expect(o.stats()).to.include({ pendingBatches: 0, pendingReports: 0, ackedBatches: 3, ackedReports: 6, droppedReports: 0 });
    await new Promise((r) => setTimeout(r, 300)); // nothing more comes: one confirmation per stall
    expect(calls.length).to.equal(n + 2);
  });

  it('outbox - a reconnect probes at once; its ack brings back what was out on the old connection', async () => {
    const { publish, calls } = manualPublisher();
    const o = new Outbox({ publish, sender: 's', instance: 'i', window: 4, maxReports: 1000, probeMs: 10_000 });
    o.add('subj', data, 1);
    o.add('subj', data, 1);
    expect(calls).to.have.length(2);
    o.kick();
    expect(calls.map((c) => c.msgId)).to.deep.equal(['s/i/1', 's/i/2', 's/i/1']);
    o.add('subj', data, 1);
    expect(calls.map((c) => c.msgId), 'only a batch never sent goes out until the probe is answered').to.deep.equal(['s/i/1', 's/i/2', 's/i/1', 's/i/3']);
    calls[2]!.resolve();
    await waitFor(() => calls.length === 5, { what: 'batch 2 again' });
    expect(calls[4]!.msgId, 'out before the probe on the old connection: sent again').to.equal('s/i/2');
    calls[3]!.resolve();
    calls[4]!.resolve();
    await o.settled(1000);
    expect(o.stats()).to.include({ ackedBatches: 3, retriedBatches: 2 });
  });

  it('outbox - an ack of an earlier publish settles a batch whose probe then fails; nothing is sent again for it', async () => {
    const { publish, calls } = manualPublisher();
    const o = new Outbox({ publish, sender: 's', instance: 'i', window: 4, maxReports: 1000, probeMs: 20 });
    o.add('subj', data, 5);
    await waitFor(() => calls.length === 2, { what: 'a probe' });
    calls[0]!.resolve();
    await o.settled(1000);
    calls[1]!.reject(new TimeoutError());
    o.add('subj', data, 1);
    calls[2]!.resolve();
    await o.settled(1000);
    expect(calls.map((c) => c.msgId)).to.deep.equal(['s/i/1', 's/i/1', 's/i/2']);
    expect(o.stats()).to.include({ ackedBatches: 2, ackedReports: 6, retriedBatches: 1, pendingBatches: 0 });
  });

  it('outbox - a batch dropped by the bound while a stall holds the window is never probed', async () => {
    const { publish, calls } = manualPublisher();
    const o = new Outbox({ publish, sender: 's', instance: 'i', window: 1, maxReports: 20, probeMs: 20 });
    o.add('subj', data, 10); // on the wire, never answered
    o.add('subj', data, 10); // queued
    o.add('subj', data, 10); // over the bound: batch 2 (queued) is dropped
    expect(o.stats()).to.include({ droppedReports: 10, pendingBatches: 2 });
    await waitFor(() => calls.length === 2, { what: 'a probe' });
    calls[1]!.resolve();
    await waitFor(() => calls.length === 3, { what: 'the next batch' });
    expect(calls.map((c) => c.msgId)).to.deep.equal(['s/i/1', 's/i/1', 's/i/3']);
    calls[2]!.resolve();
    await o.settled(1000);
    expect(o.stats()).to.include({ ackedBatches: 2, droppedReports: 10, pendingReports: 0 });
  });
});

describe('agent report batcher', () => {
  const n = names('t');

  it('batcher - a route batch leaves at maxReports, with hosts indexed once', () => {
    const out: ReportBatch[] = [];
    let now = 1000;
    const b = new ReportBatcher({ names: n, partitions: 8, sender: 'a', zone: 'z', maxReports: 3, maxDelayMs: 50, clock: () => now, sink: (_s, batch) => out.push(batch) });
    const h1 = { ip: '10.0.0.1', port: 80 };
    b.add(1, 1, h1, 0, 1.5);
    now += 4;
    b.add(1, 1, { ip: '10.0.0.1', port: 80 }, 1, 2);
    expect(out).to.have.length(0);
    b.add(1, 1, h1, 0, 3);
    expect(out).to.have.length(1);
    expect(out[0]).to.deep.include({ sender: 'a', zone: 'z', modid: 1, cmdid: 1, ts: 1000, hosts: [['10.0.0.1', 80]] });
    expect(out[0]!.reports).to.deep.equal([
      [0, 0, 1.5, 0],
      [0, 1, 2, 4],
      [0, 0, 3, 4],
    ]);
    expect(b.buffered).to.equal(0);
    b.stop();
  });

  it('batcher - a batch carries the latest utilization per host, and none when no report had one', () => {
    const out: ReportBatch[] = [];
    const b = new ReportBatcher({ names: n, partitions: 8, sender: 'a', maxReports: 4, maxDelayMs: 50, clock: () => 1000, sink: (_s, batch) => out.push(batch) });
    const h1 = { ip: '10.0.0.1', port: 80 };
    const h2 = { ip: '10.0.0.2', port: 80 };
    const h3 = { ip: '10.0.0.3', port: 80 };
    b.add(1, 1, h1, 0, 1, 0.2);
    b.add(1, 1, h2, 0, 1);
    b.add(1, 1, h3, 0, 1, 0.9);
    b.add(1, 1, h1, 0, 1, 0.4);
    expect(out).to.have.length(1);
    expect(out[0]!.utilization).to.deep.equal([
      [0, 0.4],
      [2, 0.9],
    ]);
    // the next batch starts without any
    for (let i = 0; i < 4; i++) b.add(1, 1, h2, 0, 1);
    expect(out).to.have.length(2);
    expect(out[1]).not.to.have.property('utilization');
    expect(validateReportBatch(out[0]).ok && validateReportBatch(out[1]).ok).to.equal(true);
    b.stop();
  });

  it('batcher - a partial batch leaves after maxDelayMs', async () => {
    const out: ReportBatch[] = [];
    const b = new ReportBatcher({ names: n, partitions: 8, sender: 'a', maxReports: 100, maxDelayMs: 5, sink: (_s, batch) => out.push(batch) });
    b.add(2, 3, { ip: '10.0.0.2', port: 81 }, 0, 1);
    expect(b.buffered).to.equal(1);
    await waitFor(() => out.length === 1, { what: 'age flush', timeoutMs: 2000 });
    expect(b.buffered).to.equal(0);
    expect(b.batches).to.equal(1);
  });
});
