import { expect } from 'chai';
import { compareSummaries, type RouteSummary } from '../../src/console/backend.ts';
import { bucketFor, MIN_WINDOW_S } from '../../src/console/queries.ts';

function summary(route: string, o: Partial<RouteSummary> = {}): RouteSummary {
  const [m, c] = route.split('.').map(Number);
  return { route, modid: m!, cmdid: c!, published: true, registered: true, profile: 'default', version: 1, ts: 1, sender: 'n', panic: false, removed: false, hosts: 3, states: { healthy: 3, probing: 0, overloaded: 0, draining: 0 }, unhealthy: 0, ...o };
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
});
