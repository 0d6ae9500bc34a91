import { expect } from 'chai';
import { AckedBatches, PendingBatch } from '../../src/agent/batch-queue.ts';

describe('acked batches (src/agent/batch-queue.ts)', () => {
  it('acked-batches - forgets the batches acknowledged before keepFrom, then the oldest beyond the bound of reports', () => {
    const a = new AckedBatches();
    const batch = (seq: number): PendingBatch => new PendingBatch(seq, `a/i/${seq}`, 's', new Uint8Array(1), 10);
    for (let i = 0; i < 3000; i++) a.keep(batch(i), i * 1000, (i - 100) * 1000, 1_000_000);
    // acknowledged within the last 100 s: 101 batches
    expect(a.takeSince(-Infinity).map((e) => e.seq)).to.deep.equal(Array.from({ length: 101 }, (_, k) => 2899 + k));
    for (let i = 0; i < 3000; i++) a.keep(batch(i), i * 1000, 0, 1_000_000);
    a.keep(batch(3000), 3_000_000, 0, 50);
    expect(a.takeSince(0).map((e) => e.seq), 'a bound of 50 reports').to.deep.equal([2996, 2997, 2998, 2999, 3000]);
    expect(a.takeSince(0), 'forgotten once taken').to.deep.equal([]);
  });
});
