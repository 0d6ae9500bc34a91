import { expect } from 'chai';
import fc from 'fast-check';
import { fmix32, fnv1a32 } from '../../schemas/fnv.ts';
import { partitionOf } from '../../schemas/subjects.ts';
import { ownedPartitions } from '../../actors/ownership.ts';
import { hash32 } from '../../actors/strategies/hash32.ts';

/** The partition function as schemas/README.md states it, byte by byte. */
function documentedPartition(modid: number, cmdid: number, p: number): number {
  let h = 0x811c9dc5;
  for (const byte of new TextEncoder().encode(`${modid}.${cmdid}`)) {
    h ^= byte;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h % p;
}

describe('contract - one FNV-1a', () => {
  it('fnv - partitions keep their documented and pinned values', () => {
    expect([partitionOf(1, 1, 64), partitionOf(1, 2, 64), partitionOf(100, 7, 64), partitionOf(4294967295, 0, 64)]).to.deep.equal([5, 12, 19, 60]);
    const pinned: Array<[number, number, number]> = [[0, 0, 25], [1, 1, 389], [7, 9, 35], [123456, 654321, 505], [4294967295, 4294967295, 483]];
    for (const [m, c, p] of pinned) expect(partitionOf(m, c, 1024), `${m}.${c}`).to.equal(p);
  });

  it('fnv - partitionOf is the README formula for any route and partition count', () => {
    const u32 = fc.tuple(fc.nat(0xffff), fc.nat(0xffff)).map(([a, b]) => a * 0x10000 + b);
    fc.assert(fc.property(u32, u32, fc.integer({ min: 1, max: 4096 }), (m, c, p) => partitionOf(m, c, p) === documentedPartition(m, c, p)));
  });

  it('fnv - ownership and the hash strategy keep their values', () => {
    expect(fnv1a32('')).to.equal(0x811c9dc5);
    expect(fnv1a32('foobar')).to.equal(0xbf9cf968);
    expect(['', 'a', 'host#1', '10.0.0.1:80', 'héllo', '😀'].map(hash32)).to.deep.equal([2872998923, 444641715, 2631864702, 3629747543, 4198468525, 855877642]);
    expect(hash32('host#1')).to.equal(fmix32(fnv1a32('host#1')));
    const members = ['node-a', 'node-b', 'node-c'];
    expect(members.map((m) => ownedPartitions(m, members, 16))).to.deep.equal([[3, 4, 7, 8, 11, 12, 13, 15], [5, 6, 9, 10, 14], [0, 1, 2]]);
  });
});
