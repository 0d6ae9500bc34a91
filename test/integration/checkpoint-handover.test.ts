import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { connectNats, type NatsConnection } from '../../src/nats/connect.ts';
import { CheckpointStore } from '../../src/cluster/checkpoints.ts';
import { RouteActor } from '../../actors/route.ts';
import { useNatsServer } from '../helpers/cluster.ts';

const T0 = 1_700_000_000_000;

function record(cmdid: number, rev: number): Uint8Array {
  const r = new RouteActor({
    modid: 5,
    cmdid,
    nodeId: 'n',
    entry: { v: 1, modid: 5, cmdid, hosts: [{ ip: '10.0.0.1', port: 80, weight: 100 }], updated_by: 'test', ts: 0 },
    now: T0,
  });
  return CheckpointStore.encodeRecord(r.checkpoint(T0), T0, rev);
}

describe('checkpoint handover - a partition’s checkpoints stored together', function () {
  this.timeout(30_000);
  const server = useNatsServer();
  let nc: NatsConnection;
  let store: CheckpointStore;

  beforeEach(async () => {
    nc = await connectNats({ url: server().url, name: 'checkpoint-handover' });
    store = await CheckpointStore.open(nc, `ch${randomBytes(3).toString('hex')}`);
  });
  afterEach(async () => {
    await nc.close();
  });

  it('checkpoint handover - the records come back from several parts; a route checkpoint stored after the handover is seen, with its stream sequence', async () => {
    const records = Array.from({ length: 40 }, (_, i) => [`5.${i + 1}`, record(i + 1, 100 + i)] as const);
    await store.putEncoded(3, '5.1', record(1, 50));
    await store.putHandover(3, records, 'node-a', 2000);
    const h = await store.readHandover(3);
    expect(h).to.not.equal(undefined);
    expect([...h!.records.keys()]).to.deep.equal(records.map(([k]) => k));
    for (const [k, v] of records) expect(h!.records.get(k)).to.deep.equal(v);
    expect(CheckpointStore.decodeRecord(h!.records.get('5.7')!)!.rev).to.equal(106);
    // the route checkpoint stored before is older: nothing after the handover
    expect(await store.storedAfter(3, h!.seq)).to.equal(false);
    // another partition's writes are not this one's
    await store.putEncoded(4, '5.2', record(2, 60));
    expect(await store.storedAfter(3, h!.seq)).to.equal(false);
    await store.putEncoded(3, '5.2', record(2, 200));
    expect(await store.storedAfter(3, h!.seq)).to.equal(true);
    const stored = await store.readPartition(3);
    expect([...stored.keys()].sort()).to.deep.equal(['5.1', '5.2']);
    expect(stored.get('5.1')!.seq).to.be.below(h!.seq);
    expect(stored.get('5.2')!.seq).to.be.above(h!.seq);
  });

  it('checkpoint handover - none stored, a partition without routes, and a part left by another handover', async () => {
    expect(await store.readHandover(9)).to.equal(undefined);
    await store.putHandover(9, [], 'node-a');
    expect((await store.readHandover(9))!.records.size).to.equal(0);
    // a later, smaller handover: its own parts only
    await store.putHandover(2, Array.from({ length: 30 }, (_, i) => [`5.${i + 1}`, record(i + 1, 1)] as const), 'node-a', 2000);
    await store.putHandover(2, [['5.1', record(1, 2)]], 'node-b', 2000);
    const h = await store.readHandover(2);
    expect([...h!.records.keys()]).to.deep.equal(['5.1']);
    expect(CheckpointStore.decodeRecord(h!.records.get('5.1')!)!.rev).to.equal(2);
    // a part overwritten by another handover: this one cannot be read whole
    await store.kv.put('2.handover-0', (await store.kv.get('2.handover-1'))!.value);
    expect(await store.readHandover(2)).to.equal(undefined);
  });
});
