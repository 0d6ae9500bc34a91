import { expect } from 'chai';
import { rendezvousOwner, ownedPartitions } from '../../actors/ownership.ts';

describe('ownership - rendezvous hashing of partitions', () => {
  const members = ['node-a', 'node-b', 'node-c'];

  it('ownership - every partition has exactly one owner among the members', () => {
    const owned = members.map((m) => ownedPartitions(m, members, 64));
    expect(owned.flat().sort((a, b) => a - b)).to.deep.equal(Array.from({ length: 64 }, (_, i) => i));
    for (const o of owned) expect(o.length, 'spread').to.be.within(10, 35);
    expect(rendezvousOwner(0, [])).to.equal(undefined);
  });

  it('ownership - a member leaving moves only the partitions it owned', () => {
    const before = Array.from({ length: 64 }, (_, p) => rendezvousOwner(p, members));
    const after = Array.from({ length: 64 }, (_, p) => rendezvousOwner(p, ['node-a', 'node-c']));
    for (let p = 0; p < 64; p++) {
      if (before[p] !== 'node-b') expect(after[p], `partition ${p}`).to.equal(before[p]);
      else expect(after[p]).to.be.oneOf(['node-a', 'node-c']);
    }
  });

  it('ownership - the owner does not depend on the order of the member list', () => {
    for (let p = 0; p < 64; p++) expect(rendezvousOwner(p, members)).to.equal(rendezvousOwner(p, [...members].reverse()));
  });
});
