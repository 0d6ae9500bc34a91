import { expect } from 'chai';
import { jetstream } from '@nats-io/jetstream';
import { headers } from '@nats-io/transport-node';
import { useCluster, hosts, PARTITIONS } from '../helpers/cluster.ts';
import { waitFor } from '../helpers/wait.ts';
import { encode } from '../../schemas/codec.ts';
import { partitionOf } from '../../schemas/subjects.ts';
import type { ReportBatch } from '../../schemas/messages.ts';

describe('route node - repeated report batches', () => {
  const cluster = useCluster();

  function batch(modid: number, cmdid: number, n: number, retcode: number): Uint8Array {
    const b: ReportBatch = { v: 1, sender: 'dedup-agent', modid, cmdid, ts: Date.now(), hosts: [['10.9.0.1', 8000]], reports: Array.from({ length: n }, (_, i) => [0, retcode, 1, i] as [number, number, number, number]) };
    return encode(b);
  }

  it('route node - the same batch published twice with the same message id is ingested once and counted as duplicate', async () => {
    const c = cluster();
    await c.addRoute(71, 1, hosts(2, '10.9.0.'));
    await waitFor(() => c.node!.route(71, 1), { what: 'route loaded' });
    const subject = c.n.report(partitionOf(71, 1, PARTITIONS), 71, 1);
    const js = jetstream(c.nc);
    const first = await js.publish(subject, batch(71, 1, 5, 0), { msgID: 'dedup-agent/i1/1' });
    // a retry of the same batch: the stream stores it once, the route node's subscription sees it again
    const retry = await js.publish(subject, batch(71, 1, 5, 0), { msgID: 'dedup-agent/i1/1' });
    expect(retry.duplicate, 'the stream knows it as a duplicate').to.equal(true);
    expect(retry.seq).to.equal(first.seq);
    // the same repeat as a core publish carrying the header
    const h = headers();
    h.set('Nats-Msg-Id', 'dedup-agent/i1/1');
    c.nc.publish(subject, batch(71, 1, 5, 0), { headers: h });
    // a later batch of the same sender, and a batch of another instance with the same seq
    await js.publish(subject, batch(71, 1, 3, 0), { msgID: 'dedup-agent/i1/2' });
    await js.publish(subject, batch(71, 1, 2, 0), { msgID: 'dedup-agent/i2/1' });
    await waitFor(() => c.node!.stats().reports >= 10 && c.node!.rejects.count('duplicate') >= 2, { what: 'every batch seen' });
    const s = c.node!.stats();
    expect(s.reports, 'reports ingested').to.equal(5 + 3 + 2);
    expect(s.batches).to.equal(5);
    expect(c.node!.rejects.count('duplicate')).to.equal(2);
    expect(c.node!.route(71, 1)!.host('10.9.0.1:8000')!.vsucc + c.node!.route(71, 1)!.host('10.9.0.1:8000')!.rsucc).to.be.greaterThan(0);
  });

  it('route node - batches without a message id are never taken for repeats', async () => {
    const c = cluster();
    await c.addRoute(72, 1, hosts(2, '10.9.0.'));
    await waitFor(() => c.node!.route(72, 1), { what: 'route loaded' });
    const subject = c.n.report(partitionOf(72, 1, PARTITIONS), 72, 1);
    for (let i = 0; i < 3; i++) c.nc.publish(subject, batch(72, 1, 4, 0));
    await waitFor(() => c.node!.stats().reports >= 12, { what: 'three batches ingested' });
    expect(c.node!.stats().reports).to.equal(12);
    expect(c.node!.rejects.count('duplicate')).to.equal(0);
  });
});
