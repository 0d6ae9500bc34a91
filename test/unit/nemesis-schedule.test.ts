import { expect } from 'chai';
import { FaultKind, groupProblem, randomPlan, shortPlan, type FaultGroup } from '../nemesis/schedule.ts';
import { HostBehaviour, ID_SCALE, latencyOf, makeWorkload } from '../nemesis/workload.ts';

const SIZES = { servers: 3, nodes: 3, sinks: 2 };
const LEASE = 2000;

function take(seed: number, n: number): FaultGroup[] {
  const out: FaultGroup[] = [];
  const it = randomPlan(seed, SIZES, LEASE);
  for (let i = 0; i < n; i++) out.push(it.next().value as FaultGroup);
  return out;
}

describe('nemesis schedule', () => {
  it('nemesis - the short plan keeps the quorum rule and holds every fault the suite requires', () => {
    const plan = shortPlan(LEASE);
    for (const g of plan) expect(groupProblem(g, SIZES), JSON.stringify(g)).to.equal(undefined);
    const all = plan.flatMap((g) => g.faults);
    expect(all.some((f) => f.kind === FaultKind.kill && f.target.kind === 'nats' && 'leaderOf' in f.target && f.target.leaderOf === 'leases'), 'kill -9 of the leases leader').to.equal(true);
    expect(all.some((f) => f.kind === FaultKind.pause && f.target.kind === 'node' && f.durationMs > LEASE), 'a node paused past its lease').to.equal(true);
    expect(all.some((f) => f.kind === FaultKind.kill && f.target.kind === 'sink'), 'kill -9 of a sink').to.equal(true);
    expect(all.some((f) => f.kind === FaultKind.restart && f.target.kind === 'nats'), 'a nats-server restart').to.equal(true);
    expect(plan.some((g) => g.faults.length === 2), 'an overlapping pair').to.equal(true);
    expect(all.some((f) => f.kind === FaultKind.clusterRestart), 'the full-cluster restart').to.equal(true);
    for (const g of plan) expect(g.quietMs, 'quiet after each heal').to.be.greaterThan(LEASE + 1000);
  });

  it('nemesis - a random plan is the same for a seed, another for another seed, and every group keeps the rules', () => {
    const a = take(42, 300);
    expect(take(42, 300)).to.deep.equal(a);
    expect(take(43, 300)).to.not.deep.equal(a);
    for (const g of a) expect(groupProblem(g, SIZES), JSON.stringify(g)).to.equal(undefined);
    const faults = a.flatMap((g) => g.faults);
    for (const k of Object.values(FaultKind)) expect(faults.some((f) => f.kind === k), k).to.equal(true);
    for (const kind of ['nats', 'node', 'sink'] as const) expect(faults.some((f) => f.target.kind === kind), kind).to.equal(true);
    const pairs = a.filter((g) => g.faults.length === 2).length;
    expect(pairs, 'pairs').to.be.within(60, 140);
    expect(faults.some((f) => f.target.kind === 'nats' && 'leaderOf' in f.target), 'a stream leader as a target').to.equal(true);
    for (const g of a) expect(g.quietMs).to.be.at.least(LEASE + 2000);
  });

  it('nemesis - the rules refuse two servers down at once, a cluster restart with company and a pair that does not overlap', () => {
    const kill = (index: number, offsetMs: number, durationMs: number) => ({ kind: FaultKind.kill, target: { kind: 'nats' as const, index }, offsetMs, durationMs });
    expect(groupProblem({ quietMs: 0, faults: [kill(0, 0, 3000), kill(1, 2000, 3000)] }, SIZES)).to.match(/two nats-servers down at once/);
    expect(groupProblem({ quietMs: 0, faults: [kill(0, 0, 3000), { kind: FaultKind.pause, target: { kind: 'nats', leaderOf: 'leases' }, offsetMs: 1000, durationMs: 1000 }] }, SIZES)).to.match(/two nats-servers/);
    expect(groupProblem({ quietMs: 0, faults: [{ kind: FaultKind.clusterRestart, target: { kind: 'cluster' }, offsetMs: 0, durationMs: 3000 }, { kind: FaultKind.kill, target: { kind: 'node', index: 0 }, offsetMs: 0, durationMs: 1000 }] }, SIZES)).to.match(/alone/);
    expect(groupProblem({ quietMs: 0, faults: [kill(0, 0, 1000), { kind: FaultKind.kill, target: { kind: 'node', index: 0 }, offsetMs: 2000, durationMs: 1000 }] }, SIZES)).to.match(/does not overlap/);
    expect(groupProblem({ quietMs: 0, faults: [{ kind: FaultKind.kill, target: { kind: 'node', index: 5 }, offsetMs: 0, durationMs: 1000 }] }, SIZES)).to.match(/no node-5/);
    expect(groupProblem({ quietMs: 0, faults: [kill(0, 0, 3000), { kind: FaultKind.pause, target: { kind: 'node', index: 1 }, offsetMs: 1000, durationMs: 3000 }] }, SIZES)).to.equal(undefined);
  });
});

describe('nemesis workload', () => {
  it('nemesis - a report id survives ClickHouse Float32 latency exactly, for every id an agent can make', () => {
    const f32 = new Float32Array(1);
    for (const n of [1, 2, 3, 1000, 123_457, 1_000_001, ID_SCALE - 1]) {
      f32[0] = latencyOf(n);
      expect(Math.round((f32[0] - 1) * ID_SCALE), `id ${n}`).to.equal(n);
      expect(latencyOf(n)).to.be.within(1, 2);
    }
  });

  it('nemesis - every route has callers, and a host fails only inside its windows', () => {
    const agents = Array.from({ length: 10 }, (_, i) => `a${i}`);
    const w = makeWorkload({ seed: 7, routes: 10, hostsPerRoute: 4, agents, routesPerAgent: 4, spanMs: 120_000, failuresPerRouteMinute: 2 });
    const called = new Set([...w.callers.values()].flat());
    expect(called.size).to.equal(10);
    expect(w.failures.length).to.equal(40);
    const f = w.failures[0]!;
    const b = new HostBehaviour([{ ...f, errorRate: 1 }], 1);
    expect(b.retcode(f.route, f.host, f.from)).to.equal(1);
    expect(b.retcode(f.route, f.host, f.to)).to.equal(0);
    expect(b.retcode(f.route, 'elsewhere:1', f.from)).to.equal(0);
  });
});
