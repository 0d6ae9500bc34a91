import { expect } from 'chai';
import { checkExactlyOnce, checkFencing, checkHealing, checkIdle, checkReadiness, checkVersions, FENCE_TOLERANCE_MS, judge } from '../nemesis/checks.ts';
import { gaps, incarnations, ownedIntervals, unownedSeries } from '../nemesis/ownership.ts';
import type { History, LeaseEntry, ProcEvent, RouteMsg } from '../nemesis/types.ts';

const T0 = 1_700_000_000_000;
const LEASE = 2000;

/** A quiet history of `partitions` partitions, all held by n0 (renewed every 500 ms) from T0 to T0 + 60 s. */
function history(partitions = 2, over: Partial<History> = {}): History {
  const leases: LeaseEntry[] = [];
  let rev = 0;
  for (let t = T0 + 1000; t < T0 + 60_000; t += 500) for (let p = 0; p < partitions; p++) leases.push({ p, rev: ++rev, node: 'n0', created: t, seen: t, via: 'watch-0' });
  return {
    seed: 1,
    prefix: 't',
    partitions,
    leaseMs: LEASE,
    nodes: ['n0', 'n1'],
    routes: ['1.1'],
    runStart: T0,
    nemesisStart: T0 + 5000,
    nemesisEnd: T0 + 50_000,
    runEnd: T0 + 60_000,
    procEvents: [ev(T0, 'node-n0', 'start'), ev(T0 + 500, 'node-n0', 'up'), ev(T0, 'node-n1', 'start'), ev(T0 + 500, 'node-n1', 'up')],
    leases,
    leaseRenumbered: [],
    leaseRenumberedCount: 0,
    leaseSampleFailures: [],
    routeMsgs: [],
    ready: [],
    applied: [],
    agentSamples: [],
    faults: [],
    heals: [],
    idle: { routes: [], start: T0 + 50_000, end: T0 + 60_000 },
    agents: [],
    sinksDrained: true,
    tallies: [],
    harnessLagMaxMs: 10,
    harnessStalls: [],
    ...over,
  };
}

function ev(t: number, proc: string, what: ProcEvent['what']): ProcEvent {
  return { t, proc, what };
}

function msg(t: number, version: number, sender = 'n0', over: Partial<RouteMsg> = {}): RouteMsg {
  return { t, route: '1.1', partition: 0, sender, version, ts: t - 1, hash: `h${version}`, hosts: [`10.0.0.1:80 healthy ${version}`], ...over };
}

/** Drops partition p's lease revisions written in [from, to). */
function silence(h: History, p: number, from: number, to: number): void {
  h.leases = h.leases.filter((e) => !(e.p === p && e.created >= T0 + from && e.created < T0 + to));
}

describe('nemesis ownership', () => {
  it('nemesis - incarnations end at kill or exit and carry their paused stretches', () => {
    const es = [ev(0, 'x', 'start'), ev(10, 'x', 'pause'), ev(20, 'x', 'resume'), ev(30, 'x', 'kill'), ev(31, 'x', 'exit'), ev(40, 'x', 'start'), ev(50, 'x', 'pause')];
    expect(incarnations(es, 'x', 100)).to.deep.equal([
      { from: 0, to: 30, paused: [{ from: 10, to: 20 }] },
      { from: 40, to: 100, paused: [{ from: 50, to: 100 }] },
    ]);
  });

  it('nemesis - a lease is owned while renewed within the lease time by a live, unpaused holder, never from an earlier incarnation', () => {
    const h = history(1);
    // renewals stop at +20 s: owned until the last one is a lease time old
    silence(h, 0, 20_000, 60_000);
    let owned = ownedIntervals(h.leases, h.procEvents, { partitions: 1, leaseMs: LEASE, procOf: (n) => `node-${n}`, end: h.runEnd });
    expect(gaps(owned[0]!, T0 + 5000, T0 + 60_000)).to.deep.equal([{ from: T0 + 19_500 + LEASE, to: T0 + 60_000 }]);
    // the holder paused for 3 s: no owner meanwhile, though renewals written before count again after it
    const h2 = history(1);
    h2.procEvents.push(ev(T0 + 10_000, 'node-n0', 'pause'), ev(T0 + 13_000, 'node-n0', 'resume'));
    owned = ownedIntervals(h2.leases, h2.procEvents, { partitions: 1, leaseMs: LEASE, procOf: (n) => `node-${n}`, end: h2.runEnd });
    expect(gaps(owned[0]!, T0 + 5000, T0 + 20_000)).to.deep.equal([{ from: T0 + 10_000, to: T0 + 13_000 }]);
    // killed at +10 s and started again at +12 s: the old incarnation's lease is not the new one's
    const h3 = history(1);
    silence(h3, 0, 10_000, 14_000);
    h3.procEvents.push(ev(T0 + 10_000, 'node-n0', 'kill'), ev(T0 + 12_000, 'node-n0', 'start'));
    owned = ownedIntervals(h3.leases, h3.procEvents, { partitions: 1, leaseMs: LEASE, procOf: (n) => `node-${n}`, end: h3.runEnd });
    expect(gaps(owned[0]!, T0 + 5000, T0 + 20_000)).to.deep.equal([{ from: T0 + 10_000, to: T0 + 14_000 }]);
    const series = unownedSeries(owned, T0 + 9000, T0 + 15_000, 1000).map(([t, n]) => [t - T0, n]);
    expect(series).to.deep.equal([[9000, 0], [10_000, 1], [11_000, 1], [12_000, 1], [13_000, 1], [14_000, 0], [15_000, 0]]);
  });
});

describe('nemesis checks', () => {
  it('nemesis - exactly once: a missing report and a report stored twice are each named with the agent and the id', () => {
    const h = history(1, {
      agents: [{ agent: 'a1', made: 10, reports: 10, pending: 0, dropped: 0, acked: 10, staleUpdates: 0, noHost: 0 }],
      tallies: [{ caller: 'a1', made: 10, rows: 10, distinct: 9, foreign: 0, missingSample: [4], duplicateSample: [{ id: 7, rows: 2, seqs: [31, 45] }] }],
    });
    const r = checkExactlyOnce(h);
    expect(r.lost).to.equal(1);
    expect(r.duplicates).to.equal(1);
    expect(r.result.violations.map((v) => v.what).join('\n')).to.match(/a1: 1 of 10 acknowledged reports missing.*ids 4/).and.match(/a1: 1 rows stored more than once \(id 7: 2 rows, stream seqs 31\/45\)/);
    h.tallies = [{ caller: 'a1', made: 10, rows: 10, distinct: 10, foreign: 0, missingSample: [], duplicateSample: [] }];
    expect(checkExactlyOnce(h).result.ok).to.equal(true);
    h.agents[0]!.dropped = 2;
    expect(checkExactlyOnce(h).result.violations[0]!.what).to.match(/2 dropped/);
  });

  it('nemesis - versions: backwards at an agent, two contents for one version, and a state stamped below a version already out are violations', () => {
    const h = history(1, {
      applied: [
        { t: T0 + 1000, agent: 'a1', route: '1.1', version: 5, hash: 'x' },
        { t: T0 + 2000, agent: 'a1', route: '1.1', version: 4, hash: 'y' },
      ],
    });
    let r = checkVersions(h);
    expect(r.result.violations[0]!.what).to.match(/agent a1 applied route 1.1 v4 at \+2.0 s after v5/);
    h.applied = [];
    h.routeMsgs = [msg(T0 + 1000, 7, 'n0', { hash: 'aaa' }), msg(T0 + 1500, 7, 'n1', { hash: 'bbb' })];
    r = checkVersions(h);
    expect(r.stale).to.equal(1);
    expect(r.result.violations[0]!.what).to.match(/route 1.1 v7 has 2 contents: aaa published by n0.*bbb published by n1/);
    // v9 out at +1 s; v8 stamped at +3 s: below what agents hold
    h.routeMsgs = [msg(T0 + 1000, 9), msg(T0 + 3100, 8, 'n1', { ts: T0 + 3000 })];
    expect(checkVersions(h).result.violations[0]!.what).to.match(/v8 published by n1 at \+3.0 s after v9/);
    // the same v8 stamped before v9 was out and delivered late: not a new publish below
    h.routeMsgs = [msg(T0 + 1000, 9), msg(T0 + 3100, 8, 'n1', { ts: T0 + 900 })];
    expect(checkVersions(h).result.ok).to.equal(true);
  });

  it('nemesis - fencing: a state received beyond the tolerance after another node leased its partition is a violation, unless it was stamped before and held by a paused server', () => {
    const h = history(1);
    // n1 takes partition 0 at +20 s
    h.leases.push({ p: 0, rev: 10_000, node: 'n1', created: T0 + 20_000, seen: T0 + 20_000, via: 'sample' });
    h.leases = h.leases.filter((e) => !(e.node === 'n0' && e.created > T0 + 20_000));
    h.routeMsgs = [msg(T0 + 21_000, 9, 'n0', { ts: T0 + 20_990 })];
    let r = checkFencing(h);
    expect(r.fenced).to.equal(1);
    expect(r.result.violations[0]!.what).to.match(/route 1.1 v9 from n0 received at \+21.0 s, 1000 ms after n1's lease on partition 0 .*; stamped 990 ms after that lease/);
    h.routeMsgs = [msg(T0 + 20_000 + FENCE_TOLERANCE_MS - 10, 9, 'n0', { ts: T0 + 19_000 })];
    expect(checkFencing(h).result.ok, 'within the tolerance').to.equal(true);
    // stamped in time, received late with nothing to explain the delay: counted
    h.routeMsgs = [msg(T0 + 21_000, 9, 'n0', { ts: T0 + 19_900 })];
    expect(checkFencing(h).result.violations[0]!.what).to.match(/stamped 100 ms before it, delivered late/);
    // the same while the harness stood still: its receive time says nothing
    h.harnessStalls = [{ from: T0 + 19_950, to: T0 + 20_990 }];
    expect(checkFencing(h).fenced).to.equal(0);
    h.harnessStalls = [];
    h.routeMsgs = [msg(T0 + 24_000, 9, 'n0', { ts: T0 + 19_000 })];
    h.procEvents.push(ev(T0 + 19_500, 'nats-1', 'pause'), ev(T0 + 23_900, 'nats-1', 'resume'));
    r = checkFencing(h);
    expect(r.fenced, 'stamped before, held by a paused server').to.equal(0);
    expect(r.result.notes.join(' ')).to.match(/late delivery/);
    // the sender's own takeover stored just after the receipt (a takeover superseded before any observer read it,
    // its renewal stored a little later): within the tolerance it counts as held, beyond it not
    const h2 = history(1);
    h2.leases = h2.leases.filter((e) => e.created < T0 + 20_000);
    h2.leases.push({ p: 0, rev: 10_000, node: 'n1', created: T0 + 20_000, seen: T0 + 20_000, via: 'sample' });
    h2.leases.push({ p: 0, rev: 10_001, node: 'n0', created: T0 + 22_100, seen: T0 + 22_100, via: 'watch-1' });
    h2.routeMsgs = [msg(T0 + 22_000, 9, 'n0', { ts: T0 + 21_990 })];
    expect(checkFencing(h2).result.ok, 'own lease 100 ms after').to.equal(true);
    h2.routeMsgs = [msg(T0 + 21_700, 9, 'n0', { ts: T0 + 21_690 })];
    expect(checkFencing(h2).fenced, 'own lease 400 ms after').to.equal(1);
    // the sender took the lease back before it published
    h.leases.push({ p: 0, rev: 10_001, node: 'n0', created: T0 + 30_000, seen: T0 + 30_000, via: 'sample' });
    h.routeMsgs = [msg(T0 + 30_500, 10, 'n0', { ts: T0 + 30_400 })];
    expect(checkFencing(h).result.ok).to.equal(true);
  });

  it('nemesis - healing: a partition unowned longer than the lease time + 1 s after a heal is named with its times and last holder', () => {
    const h = history(2, { heals: [{ group: 1, faults: ['kill nats-0'], at: T0 + 20_000, upAt: T0 + 19_000, windowEnd: T0 + 40_000 }] });
    silence(h, 1, 15_000, 28_000);
    let r = checkHealing(h);
    expect(r.maxMs).to.equal(28_000 - 20_000);
    expect(r.result.violations[0]!.what).to.match(/after kill nats-0 healed at \+20.0 s: 1 partitions unowned longer than 3000 ms, e.g. partition 1 unowned from \+16.5 s to \+28.0 s, 8.0 s after the heal \(last lease n0 at \+14.5 s\)/);
    const ok = history(2, { heals: [{ group: 1, faults: ['kill nats-0'], at: T0 + 20_000, upAt: T0 + 19_000, windowEnd: T0 + 40_000 }] });
    silence(ok, 1, 15_000, 22_000);
    r = checkHealing(ok);
    expect(r.result.ok).to.equal(true);
    expect(r.maxMs).to.equal(2000);
    const stuck = history(2, { heals: [{ group: 1, faults: ['cluster-restart nats-*'], at: undefined, upAt: T0 + 19_000, windowEnd: T0 + 40_000 }] });
    expect(checkHealing(stuck).result.violations[0]!.what).to.match(/JetStream did not answer writes/);
  });

  it('nemesis - readiness: ready while owning nothing with partitions long unowned, or not ready while owning with all owned, past the bound', () => {
    const h = history(2);
    silence(h, 1, 10_000, 30_000);
    h.ready = [
      { t: T0 + 11_000, node: 'n1', ready: true, owned: 0 },
      { t: T0 + 20_000, node: 'n1', ready: true, owned: 0 },
      { t: T0 + 20_000, node: 'n0', ready: true, owned: 1 },
    ];
    let r = checkReadiness(h);
    expect(r.count).to.equal(1);
    expect(r.result.violations[0]!.what).to.match(/node n1 answered ready at \+20.0 s owning no partition while partition 1 had been unowned for 8.5 s/);
    const h2 = history(2);
    h2.ready = [0, 1, 2, 3, 4].map((k) => ({ t: T0 + 30_000 + k * 1000, node: 'n0', ready: false, reason: 'x', owned: 2 }));
    r = checkReadiness(h2);
    expect(r.result.violations[0]!.what).to.match(/node n0 answered not ready from \+30.0 s to \+34.0 s .* while serving 2 partitions with every partition owned/);
    h2.ready = h2.ready.slice(0, 3);
    expect(checkReadiness(h2).result.ok, 'within the bound').to.equal(true);
  });

  it('nemesis - idle routes: more than one new version per minute without traffic is a violation', () => {
    const h = history(1, { idle: { routes: ['1.1'], start: T0 + 40_000, end: T0 + 60_000 } });
    h.routeMsgs = [msg(T0 + 39_000, 3), msg(T0 + 45_000, 4), msg(T0 + 50_000, 5), msg(T0 + 55_000, 6)];
    const r = checkIdle(h);
    expect(r.result.violations[0]!.what).to.match(/route 1.1: 3 new versions in 15.5 s without traffic \(v4…v6 by n0\); at most 1 allowed; v4 at \+45.0 s: 10.0.0.1:80 healthy 4; v5/);
    h.routeMsgs = [msg(T0 + 39_000, 3), msg(T0 + 41_000, 3), msg(T0 + 45_000, 4)];
    expect(checkIdle(h).result.ok).to.equal(true);
  });

  it('nemesis - a quiet history passes every check and gives zero figures', () => {
    const v = judge(history(4));
    expect(v.checks.filter((c) => !c.ok).map((c) => c.violations)).to.deep.equal([]);
    expect(v.figures.chaos_lost_reports + v.figures.chaos_duplicate_rows + v.figures.chaos_stale_versions + v.figures.chaos_fenced_publishes_seen).to.equal(0);
  });
});
