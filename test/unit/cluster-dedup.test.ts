import { expect } from 'chai';
import { ReportDedup, DedupVerdict } from '../../src/cluster/report-dedup.ts';

describe('cluster - repeated report batches', () => {
  it('cluster - a seq seen once is fresh, seen again a duplicate, per sender instance', () => {
    const d = new ReportDedup({ clock: () => 0 });
    expect(d.seeMsgId('agent-1/i1/1')).to.equal(DedupVerdict.fresh);
    expect(d.seeMsgId('agent-1/i1/2')).to.equal(DedupVerdict.fresh);
    expect(d.seeMsgId('agent-1/i1/1')).to.equal(DedupVerdict.duplicate);
    expect(d.seeMsgId('agent-1/i1/2')).to.equal(DedupVerdict.duplicate);
    // another instance (a restarted agent) and another sender start afresh
    expect(d.seeMsgId('agent-1/i2/1')).to.equal(DedupVerdict.fresh);
    expect(d.seeMsgId('host/with/slashes/i1/1')).to.equal(DedupVerdict.fresh);
    expect(d.seeMsgId('host/with/slashes/i1/1')).to.equal(DedupVerdict.duplicate);
  });

  it('cluster - out-of-order seqs inside the window are judged exactly; older than the window cannot be judged', () => {
    const d = new ReportDedup({ window: 64, clock: () => 0 });
    for (const s of [5, 3, 9, 4]) expect(d.see('a', s), `seq ${s}`).to.equal(DedupVerdict.fresh);
    for (const s of [5, 3, 9, 4]) expect(d.see('a', s), `seq ${s} again`).to.equal(DedupVerdict.duplicate);
    expect(d.see('a', 6)).to.equal(DedupVerdict.fresh);
    // a jump clears the bits the window slid over
    expect(d.see('a', 70)).to.equal(DedupVerdict.fresh);
    expect(d.see('a', 9)).to.equal(DedupVerdict.duplicate);
    expect(d.see('a', 7)).to.equal(DedupVerdict.fresh);
    expect(d.see('a', 6)).to.equal(DedupVerdict.unknown);
    expect(d.see('a', 6 + 64 * 3 + 1)).to.equal(DedupVerdict.fresh);
    // a jump past the whole window forgets everything below it
    expect(d.see('a', 70)).to.equal(DedupVerdict.unknown);
    expect(d.see('a', 6 + 64 * 3)).to.equal(DedupVerdict.fresh);
  });

  it('cluster - a random stream with repeats: every first sighting is fresh, every repeat inside the window a duplicate', () => {
    const d = new ReportDedup({ window: 256, clock: () => 0 });
    const seen = new Set<number>();
    let high = 0;
    let seed = 7;
    const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) % n);
    for (let i = 0; i < 20_000; i++) {
      const seq = rnd(4) === 0 && high > 0 ? Math.max(1, high - rnd(200)) : ++high;
      const v = d.see('s', seq);
      expect(v, `seq ${seq}`).to.equal(seen.has(seq) ? DedupVerdict.duplicate : DedupVerdict.fresh);
      seen.add(seq);
    }
  });

  it('cluster - senders are forgotten after the duplicate window and bounded in number', () => {
    let now = 0;
    const d = new ReportDedup({ ttlMs: 120_000, maxSenders: 3, clock: () => now });
    expect(d.see('a', 1)).to.equal(DedupVerdict.fresh);
    now = 119_000;
    expect(d.see('a', 1)).to.equal(DedupVerdict.duplicate);
    now = 239_001;
    expect(d.see('a', 1), 'heard from last 120 s ago').to.equal(DedupVerdict.fresh);
    for (const k of ['b', 'c', 'e']) d.see(k, 1);
    expect(d.size).to.equal(3);
    expect(d.see('a', 1), 'least recently heard, evicted').to.equal(DedupVerdict.fresh);
    expect(d.see('e', 1)).to.equal(DedupVerdict.duplicate);
    // expired senders go even when under the bound
    now += 200_000;
    d.see('z', 1);
    expect(d.size).to.equal(1);
  });

  it('cluster - batches without a usable message id cannot be judged and are taken', () => {
    const d = new ReportDedup();
    for (const id of [undefined, '', 'nope', 'a/b/0', 'a/b/x', '/b/1', 'a//1']) {
      expect(d.seeMsgId(id), String(id)).to.equal(DedupVerdict.unknown);
      expect(d.seeMsgId(id), `${String(id)} again`).to.equal(DedupVerdict.unknown);
    }
    expect(d.size).to.equal(0);
  });
});
