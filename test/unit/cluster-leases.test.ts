import { expect } from 'chai';
import { planLeases, rendezvousOwner, type LeaseView, type LeasePlanInput } from '../../actors/ownership.ts';
import { clusterNames } from '../../src/cluster/names.ts';
import { decodeMember } from '../../src/cluster/membership.ts';
import { decodeLease, encodeLease } from '../../src/cluster/leases.ts';
import { encode } from '../../schemas/codec.ts';

const P = 16;
const live = ['a', 'b', 'c'];

function input(over: Partial<LeasePlanInput>): LeasePlanInput {
  return { self: 'a', live, partitions: P, held: new Set(), leases: new Map(), now: 10_000, leaseMs: 2000, ...over };
}

function mine(self: string, members = live): number[] {
  return Array.from({ length: P }, (_, p) => p).filter((p) => rendezvousOwner(p, members) === self);
}

describe('cluster - lease planning', () => {
  it('cluster - a node creates the missing leases of exactly the partitions rendezvous hashing gives it', () => {
    const acts = planLeases(input({}));
    expect(acts.every((a) => a.kind === 'create')).to.equal(true);
    expect(acts.map((a) => a.partition)).to.deep.equal(mine('a'));
  });

  it('cluster - a lease renewed within the lease time is left alone; one not renewed for the lease time is taken over on the revision seen', () => {
    const ps = mine('a');
    const leases = new Map<number, LeaseView>();
    leases.set(ps[0]!, { owner: 'x', revision: 7, seenAt: 10_000 - 1999 });
    leases.set(ps[1]!, { owner: 'x', revision: 9, seenAt: 10_000 - 2000 });
    const acts = planLeases(input({ leases, held: new Set(ps.slice(2)) }));
    expect(acts).to.deep.equal([{ kind: 'takeover', partition: ps[1], revision: 9 }]);
  });

  it('cluster - a lease left under its own name by an earlier run is taken over at once', () => {
    const ps = mine('a');
    const leases = new Map<number, LeaseView>([[ps[0]!, { owner: 'a', revision: 3, seenAt: 10_000 }]]);
    const acts = planLeases(input({ leases, held: new Set(ps.slice(1)) }));
    expect(acts).to.deep.equal([{ kind: 'takeover', partition: ps[0], revision: 3 }]);
  });

  it('cluster - a held partition that now belongs to another live member is released to it; nothing is taken that belongs to others', () => {
    const all = Array.from({ length: P }, (_, p) => p);
    const acts = planLeases(input({ live: ['a', 'b'], held: new Set(all) }));
    const rel = acts.filter((a) => a.kind === 'release');
    expect(rel.map((a) => a.partition)).to.deep.equal(mine('b', ['a', 'b']));
    for (const a of rel) expect(a).to.have.property('to', 'b');
    expect(acts.filter((a) => a.kind !== 'release')).to.deep.equal([]);
  });

  it('cluster - a node that is not a live member takes nothing and hands what it holds to the live ones', () => {
    expect(planLeases(input({ live: ['b', 'c'] }))).to.deep.equal([]);
    const acts = planLeases(input({ live: ['b', 'c'], held: new Set([0, 1, 2]) }));
    expect(acts.map((a) => [a.kind, a.partition, a.kind === 'release' ? a.to : ''])).to.deep.equal([0, 1, 2].map((p) => ['release', p, rendezvousOwner(p, ['b', 'c'])]));
    expect(planLeases(input({ live: [], held: new Set([0]) }))).to.deep.equal([]);
  });
});

describe('cluster - names and records', () => {
  it('cluster - lease keys round-trip and member keys are valid KV keys', () => {
    const n = clusterNames('lars');
    expect(n.leasesBucket).to.equal('lars_leases');
    expect(n.membersBucket).to.equal('lars_members');
    expect(n.checkpointsBucket).to.equal('lars_checkpoints');
    for (const p of [0, 7, 4095]) expect(n.leasePartition(n.leaseKey(p))).to.equal(p);
    expect(n.leasePartition('px')).to.equal(undefined);
    expect(n.memberKey('host.name:1/2')).to.match(/^[A-Za-z0-9_=-]+$/);
    expect(n.memberKey('a.b')).to.not.equal(n.memberKey('a_b'));
  });

  it('cluster - bad member and lease values are rejected, good ones decoded', () => {
    const put = (v: unknown): { value: Uint8Array; operation: 'PUT' } => ({ value: encode(v), operation: 'PUT' });
    expect(decodeMember(put({ v: 1, node: 'n1', started: 1, ts: 2, leaving: true, partitions: [1, 2] }))).to.deep.equal({ v: 1, node: 'n1', started: 1, ts: 2, leaving: true, partitions: [1, 2] });
    expect(decodeMember(put({ v: 2, node: 'n1', started: 1, ts: 2 }))).to.equal(undefined);
    expect(decodeMember(put({ v: 1, node: '', started: 1, ts: 2 }))).to.equal(undefined);
    expect(decodeMember(put({ v: 1, node: 'n', started: 1, ts: 2, partitions: ['x'] }))).to.equal(undefined);
    expect(decodeMember({ value: new Uint8Array([0xc1]), operation: 'PUT' })).to.equal(undefined);
    expect(decodeLease({ value: encodeLease('n2', 5), operation: 'PUT' })).to.deep.equal({ v: 1, node: 'n2', ts: 5 });
    expect(decodeLease({ value: encodeLease('n2', 5), operation: 'DEL' })).to.equal(undefined);
    expect(decodeLease(put({ v: 1, node: 3, ts: 5 }))).to.equal(undefined);
  });
});
