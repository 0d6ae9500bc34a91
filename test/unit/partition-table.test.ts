import { expect } from 'chai';
import { PartitionPhase, PartitionTable, type PartitionSub } from '../../src/node/partition-table.ts';

class FakeSub implements PartitionSub {
  unsubscribed = false;
  private readonly waiting: number;
  constructor(waiting: number) {
    this.waiting = waiting;
  }
  unsubscribe(): void {
    this.unsubscribed = true;
  }
  getPending(): number {
    return this.waiting;
  }
}

describe('partition table - one record per partition with its phase and flags', () => {
  it('partition table - every partition starts released, with no flag and no subscription', () => {
    const t = new PartitionTable<FakeSub>(4);
    for (let p = 0; p < 4; p++) {
      expect(t.get(p)).to.deep.equal({ partition: p, phase: PartitionPhase.released, sub: undefined, kept: false, heldBack: false, reasserting: false, verifyNext: false });
      expect(t.isActive(p)).to.equal(false);
      expect(t.isHanding(p)).to.equal(false);
    }
    expect(t.active()).to.deep.equal([]);
    expect(t.subscribed()).to.deep.equal([]);
    expect(t.isActive(4)).to.equal(false);
    t.take(9);
    t.take(1);
    expect(t.active(), 'a partition beyond the count is kept too, in order').to.deep.equal([1, 9]);
  });

  it('partition table - taken, a partition is restoring (active, no reports taken); served, its reports are subscribed', () => {
    const t = new PartitionTable<FakeSub>(8);
    t.take(5);
    t.take(2);
    expect(t.get(5).phase).to.equal(PartitionPhase.restoring);
    expect(t.active()).to.deep.equal([2, 5]);
    expect(t.subscribed()).to.deep.equal([]);
    t.serve(5, new FakeSub(3));
    t.serve(2, new FakeSub(4));
    expect(t.get(5).phase).to.equal(PartitionPhase.serving);
    expect(t.subscribed()).to.deep.equal([2, 5]);
    expect(t.pending()).to.equal(7);
  });

  it('partition table - handing over: reports no longer taken, nothing published, still active; dropped at its end', () => {
    const t = new PartitionTable<FakeSub>(4);
    const sub = new FakeSub(0);
    t.take(1);
    t.serve(1, sub);
    t.unsubscribe(1);
    t.hand(1);
    expect(sub.unsubscribed).to.equal(true);
    expect(t.get(1).phase).to.equal(PartitionPhase.handing);
    expect(t.isHanding(1)).to.equal(true);
    expect(t.isActive(1)).to.equal(true);
    expect(t.subscribed()).to.deep.equal([]);
    t.drop(1);
    t.endHanding(1);
    expect(t.get(1).phase).to.equal(PartitionPhase.released);
    expect(t.isActive(1)).to.equal(false);
  });

  it('partition table - a restore that ends while its partition is handed over subscribes, but the partition stays handing', () => {
    const t = new PartitionTable<FakeSub>(2);
    t.take(0);
    t.hand(0);
    t.serve(0, new FakeSub(0));
    expect(t.get(0).phase).to.equal(PartitionPhase.handing);
    expect(t.subscribed()).to.deep.equal([0]);
  });

  it('partition table - handed over at a graceful stop, a partition is released but keeps its routes (active); taken again or dropped, it is not kept', () => {
    const t = new PartitionTable<FakeSub>(3);
    t.take(2);
    t.serve(2, new FakeSub(0));
    t.unsubscribe(2);
    t.hand(2);
    t.keep(2);
    t.endHanding(2);
    expect(t.get(2)).to.deep.include({ phase: PartitionPhase.released, kept: true });
    expect(t.isActive(2)).to.equal(true);
    expect(t.isHanding(2)).to.equal(false);
    expect(t.active()).to.deep.equal([2]);
    t.drop(2);
    expect(t.get(2).kept).to.equal(false);
    expect(t.isActive(2)).to.equal(false);
    t.keep(2);
    expect(t.isActive(2), 'a dropped partition is not kept by a handover ending after').to.equal(false);
  });

  it('partition table - a handover that fails leaves the partition served (without its subscription)', () => {
    const t = new PartitionTable<FakeSub>(2);
    t.take(1);
    t.serve(1, new FakeSub(0));
    t.unsubscribe(1);
    t.hand(1);
    t.endHanding(1);
    expect(t.get(1).phase).to.equal(PartitionPhase.serving);
    expect(t.isActive(1)).to.equal(true);
  });

  it('partition table - handing a partition not held changes nothing', () => {
    const t = new PartitionTable<FakeSub>(2);
    t.hand(0);
    expect(t.get(0).phase).to.equal(PartitionPhase.released);
    expect(t.isActive(0)).to.equal(false);
  });

  it('partition table - verifyNext outlives the drop and is taken once by the next takeover', () => {
    const t = new PartitionTable<FakeSub>(2);
    t.take(1);
    t.get(1).verifyNext = true;
    t.drop(1);
    t.take(1);
    expect(t.takeVerify(1)).to.equal(true);
    expect(t.takeVerify(1)).to.equal(false);
  });

  it('partition table - heldBack and reasserting are the partition’s own flags, kept across phases', () => {
    const t = new PartitionTable<FakeSub>(2);
    t.take(0);
    const r = t.get(0);
    r.heldBack = true;
    r.reasserting = true;
    t.serve(0, new FakeSub(0));
    expect(t.get(0)).to.deep.include({ heldBack: true, reasserting: true });
    expect(t.get(1)).to.deep.include({ heldBack: false, reasserting: false });
  });
});
