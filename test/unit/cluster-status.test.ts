import { expect } from 'chai';
import { summarizeCluster, type ClusterSnapshot } from '../../src/cluster/status.ts';
import { decodeMember, type MemberRecord } from '../../src/cluster/membership.ts';
import { encode } from '../../schemas/codec.ts';
import { formatClusterStatus, formatSinkWriters } from '../../src/cli/commands/cluster.ts';

const NOW = 1_700_000_000_000;

function member(node: string, over: Partial<MemberRecord> = {}): MemberRecord {
  return { v: 1, node, started: NOW - 600_000, ts: NOW, leaseMs: 2000, heartbeatMs: 500, ...over };
}

describe('cluster - status', () => {
  it('cluster - partitions per member add up, renewal ages are the oldest of each member, lag is the queue over the rate', () => {
    const snap: ClusterSnapshot = {
      members: [
        { record: member('a', { ingest: { reports: 1000, batches: 100, pending: 50, reportsPerSec: 500, batchesPerSec: 100 } }), storedAt: NOW - 200 },
        { record: member('b', { ingest: { reports: 10, batches: 1, pending: 0, reportsPerSec: 0, batchesPerSec: 0 } }), storedAt: NOW - 100 },
      ],
      leases: new Map([
        [0, { node: 'a', storedAt: NOW - 300 }],
        [1, { node: 'b', storedAt: NOW - 100 }],
        [2, { node: 'a', storedAt: NOW - 450 }],
        [3, { node: 'b', storedAt: NOW - 50 }],
      ]),
    };
    const s = summarizeCluster(snap, { prefix: 'lars', partitions: 4, now: NOW });
    expect(s.healthy).to.equal(true);
    expect(s.members.map((m) => [m.node, m.partitions, m.oldestRenewalAgeMs, m.heartbeatAgeMs, m.live, m.lagMs])).to.deep.equal([
      ['a', [0, 2], 450, 200, true, 500],
      ['b', [1, 3], 100, 100, true, 0],
    ]);
    const lines = formatClusterStatus(s);
    expect(lines[0]).to.equal('cluster lars: 2 live members of 2, 4 of 4 partitions leased, every partition owned');
    expect(lines).to.have.length(5);
    expect(lines[3]).to.match(/^a\s+live\s+10 min ago\s+200 ms ago\s+2\s+450 ms\s+500\s+50\s+500 ms$/);
  });

  it('cluster - a missing lease, an expired one and one held by a silent or leaving member are flagged', () => {
    const snap: ClusterSnapshot = {
      members: [
        { record: member('a'), storedAt: NOW - 100 },
        { record: member('silent'), storedAt: NOW - 1600 },
        { record: member('leaving', { leaving: true }), storedAt: NOW - 100 },
      ],
      leases: new Map([
        [0, { node: 'a', storedAt: NOW - 2100 }],
        [1, { node: 'silent', storedAt: NOW - 100 }],
        [2, { node: 'leaving', storedAt: NOW - 100 }],
        [4, { node: 'a', storedAt: NOW - 100 }],
      ]),
    };
    const s = summarizeCluster(snap, { prefix: 'lars', partitions: 5, now: NOW });
    expect(s.healthy).to.equal(false);
    expect(s.problems.map((p) => [p.partition, p.owner, p.problem])).to.deep.equal([
      [0, 'a', 'expired'],
      [1, 'silent', 'owner_not_live'],
      [2, 'leaving', 'owner_not_live'],
      [3, undefined, 'no_owner'],
    ]);
    expect(s.members.map((m) => [m.node, m.live, m.leaving, m.lagMs])).to.deep.equal([
      ['a', true, false, undefined],
      ['leaving', false, true, undefined],
      ['silent', false, false, undefined],
    ]);
    const text = formatClusterStatus(s).join('\n');
    expect(text).to.contain('4 partitions without a live owner');
    expect(text).to.match(/\n\s+3\s+-\s+-\s+no_owner/);
  });

  it('cluster - nothing stored: no members, every partition without an owner', () => {
    const s = summarizeCluster({ members: [], leases: new Map() }, { prefix: 'x', partitions: 3, now: NOW });
    expect(s.members).to.deep.equal([]);
    expect(s.problems.map((p) => p.problem)).to.deep.equal(['no_owner', 'no_owner', 'no_owner']);
    expect(formatClusterStatus(s)[1]).to.equal('(no rows)');
  });

  it('cluster - the sinks writing each stream: one line, a stream without a writer named as such, nothing when no sink ever ran', () => {
    expect(formatSinkWriters(undefined)).to.deep.equal([]);
    expect(formatSinkWriters([{ stream: 'reports', sink: 'sink-2', renewedAgoMs: 1_200 }])).to.deep.equal(['', 'sinks writing: reports by sink-2 (lease renewed 1 s ago); events by no sink']);
  });

  it('cluster - heartbeat figures round-trip; bad ones are left out, the member kept', () => {
    const ingest = { reports: 5, batches: 1, pending: 0, reportsPerSec: 2, batchesPerSec: 1 };
    const rec = member('a', { ingest });
    expect(decodeMember({ operation: 'PUT', value: encode(rec) })).to.deep.equal(rec);
    const bad = decodeMember({ operation: 'PUT', value: encode({ ...rec, leaseMs: -1, ingest: { ...ingest, pending: 'x' } }) });
    expect(bad?.node).to.equal('a');
    expect(bad?.ingest).to.equal(undefined);
    expect(bad?.leaseMs).to.equal(undefined);
  });
});
