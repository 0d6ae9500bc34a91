import { expect } from 'chai';
import { StaticOwnership } from '../../src/cluster/ownership.ts';

describe('cluster - explicit ownership (--own)', () => {
  it('cluster - a lost partition is dropped at once and owned again after the retake delay, never one outside the assignment', async () => {
    const own = new StaticOwnership([1, 2, 3], { retakeMs: 20 });
    const seen: number[][] = [];
    own.onChange((o) => seen.push([...o].sort((a, b) => a - b)));
    own.lost(2);
    own.lost(2); // already dropped: no second change
    own.lost(9); // never owned
    expect(seen).to.deep.equal([[1, 3]]);
    expect(own.owned().has(2)).to.equal(false);
    await new Promise<void>((resolve) => {
      const stop = own.onChange(() => {
        stop();
        resolve();
      });
    });
    expect(seen).to.deep.equal([[1, 3], [1, 2, 3]]);
    await own.close();
  });
});
