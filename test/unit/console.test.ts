import { expect } from 'chai';
import { compareSummaries, type RouteSummary } from '../../src/console/backend.ts';
import { bucketFor, denseSeries, MIN_WINDOW_S } from '../../src/console/queries.ts';

function summary(route: string, o: Partial<RouteSummary> = {}): RouteSummary {
  const [m, c] = route.split('.').map(Number);
  return { route, modid: m!, cmdid: c!, published: true, registered: true, profile: 'default', version: 1, ts: 1, sender: 'n', panic: false, shed: 0, removed: false, hosts: 3, states: { healthy: 3, probing: 0, overloaded: 0, draining: 0 }, unhealthy: 0, ...o };
}

describe('console - pure parts', () => {
  it('console - routes sort worst first: panic, then unhealthy hosts, then unpublished, then by route', () => {
    const list = [summary('1.1'), summary('2.1', { unhealthy: 2 }), summary('3.1', { panic: true }), summary('4.1', { published: false }), summary('0.9', { unhealthy: 1 })];
    expect(list.sort(compareSummaries).map((r) => r.route)).to.deep.equal(['3.1', '2.1', '0.9', '4.1', '1.1']);
  });

  it('console - chart buckets: about 120 points, at least 5 s, whole steps', () => {
    expect(bucketFor(MIN_WINDOW_S)).to.equal(5);
    expect(bucketFor(600)).to.equal(5);
    expect(bucketFor(601)).to.equal(10);
    expect(bucketFor(3600)).to.equal(30);
    expect(bucketFor(7 * 24 * 3600)).to.equal(3600);
    for (const w of [120, 900, 3600, 86_400]) expect(w / bucketFor(w)).to.be.at.most(120);
  });

  it('console - a series is dense: zero calls and null latency where there were none, the bucket still filling only with calls', () => {
    const row = (t: number, calls: number, p50: number) => ({ t, calls: String(calls), errors: 0, p50, p99: p50 * 2 });
    // buckets of 10 s from 1000 to now 1057: calls at 1000 and 1030, none at 1010, 1020, 1040; 1050 is still filling
    const s = denseSeries(10, 1000, 1057, [row(1000, 90, 10), row(1030, 30, 30.004)]);
    expect(s.t).to.deep.equal([1000, 1010, 1020, 1030, 1040]);
    expect(s.calls).to.deep.equal([90, 0, 0, 30, 0]);
    expect(s.errors).to.deep.equal([0, 0, 0, 0, 0]);
    expect(s.p50).to.deep.equal([10, null, null, 30, null]);
    expect(s.p99).to.deep.equal([20, null, null, 60.01, null]);
    // the bucket still filling, once it has calls
    expect(denseSeries(10, 1000, 1057, [row(1050, 4, 12)]).t).to.deep.equal([1000, 1010, 1020, 1030, 1040, 1050]);
    // rows outside the window are not drawn
    expect(denseSeries(10, 1000, 1057, [row(990, 4, 12), row(1100, 4, 12)]).calls).to.deep.equal([0, 0, 0, 0, 0]);
  });
});
