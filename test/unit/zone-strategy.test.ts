import { expect } from 'chai';
import { createStrategy, seededRandom, StrategyName, type PickView } from '../../actors/strategies/index.ts';
import { createZoneAware, localHealthyShare, spillFraction, ZONE_MIN_HEALTHY_PERCENT, type ZonedHost } from '../../actors/strategies/zone.ts';
import type { HostState } from '../../schemas/messages.ts';

interface TestHost extends ZonedHost {
  pickWeight: number;
  state: HostState;
}

function host(i: number, zone: string | undefined, state: HostState = 'healthy', weight = 100, pickWeight = state === 'healthy' ? weight : state === 'probing' ? weight / 10 : 0): TestHost {
  return { ip: `10.0.0.${i}`, port: 8000, zone, weight, pickWeight, state, latencyMs: 0, inflight: 0 };
}

function view(hosts: ZonedHost[], panic = false): PickView {
  return { hosts, panic, probeNum: 10 };
}

/** Share of `n` picks landing on hosts outside `zone`. */
function remoteShare(s: { pick(key?: string): number }, hosts: ZonedHost[], zone: string, n: number, key?: (i: number) => string): number {
  let remote = 0;
  for (let i = 0; i < n; i++) {
    const j = s.pick(key?.(i));
    expect(j, 'a host').to.be.at.least(0);
    if (hosts[j]!.zone !== zone) remote++;
  }
  return remote / n;
}

describe('strategies/zone', () => {
  it('zone - spillFraction: nothing at or above the threshold, 1 - h/t below it, all at 0', () => {
    expect(ZONE_MIN_HEALTHY_PERCENT).to.equal(70);
    expect(spillFraction(1, 70)).to.equal(0);
    expect(spillFraction(0.7, 70)).to.equal(0);
    expect(spillFraction(0.35, 70)).to.be.closeTo(0.5, 1e-12);
    expect(spillFraction(0.14, 70)).to.be.closeTo(0.8, 1e-12);
    expect(spillFraction(0, 70)).to.equal(1);
    expect(spillFraction(0.99, 100)).to.be.closeTo(0.01, 1e-12);
    expect(spillFraction(0.01, 0)).to.equal(0);
  });

  it('zone - localHealthyShare by weight: probing counts its probe fraction, overloaded 0 even at full pick weight (panic), draining and other zones left out', () => {
    const hs = [
      host(1, 'a', 'healthy', 100),
      host(2, 'a', 'probing', 100), // pick weight 10 → 0.1
      host(3, 'a', 'overloaded', 200, 200), // panic: full pick weight, still 0
      host(4, 'a', 'draining', 500),
      host(5, 'b', 'healthy', 1000),
      host(6, undefined, 'healthy', 1000),
    ];
    expect(localHealthyShare(hs, 'a')).to.be.closeTo((100 + 10) / 400, 1e-12);
    expect(localHealthyShare(hs, 'b')).to.equal(1);
    expect(localHealthyShare(hs, 'zz')).to.equal(0);
  });

  it('zone - a healthy host counts fully whatever its pick weight (load-driven or slow-starting): a zone of small hosts does not spill', () => {
    const hs = [host(1, 'a', 'healthy', 100, 43), host(2, 'a', 'healthy', 100, 10), host(3, 'b', 'healthy', 100, 171)];
    expect(localHealthyShare(hs, 'a')).to.equal(1);
    const s = createZoneAware(() => createStrategy(StrategyName.swrr), { zone: 'a', random: seededRandom(1) });
    s.update(view(hs));
    expect(s.spill).to.equal(0);
  });

  it('zone - all local hosts healthy: every pick stays local', () => {
    const hs = [host(1, 'a'), host(2, 'a'), host(3, 'a'), host(4, 'b'), host(5, 'b'), host(6, 'b')];
    const s = createZoneAware(() => createStrategy(StrategyName.swrr), { zone: 'a', random: seededRandom(1) });
    s.update(view(hs));
    expect(s.spill).to.equal(0);
    expect(remoteShare(s, hs, 'a', 6000, undefined)).to.equal(0);
    // and the local hosts share the calls evenly
    const n = [0, 0, 0];
    for (let i = 0; i < 3000; i++) n[s.pick()]!++;
    expect(n).to.deep.equal([1000, 1000, 1000]);
  });

  for (const name of Object.values(StrategyName)) {
    it(`zone - spill-over in proportion to the local deficit, and back on recovery (${name})`, () => {
      const hs = [host(1, 'a'), host(2, 'a'), host(3, 'a'), host(4, 'b'), host(5, 'b'), host(6, 'c')];
      const s = createZoneAware(() => createStrategy(name, { random: seededRandom(7) }), { zone: 'a', random: seededRandom(3) });
      const key = name === StrategyName.hash ? (i: number) => `user-${i}` : undefined;
      const N = 20_000;
      // 2 of 3 local hosts ejected: h = 1/3, spill = 1 - (1/3)/0.7
      hs[0]!.state = 'overloaded';
      hs[0]!.pickWeight = 0;
      hs[1]!.state = 'overloaded';
      hs[1]!.pickWeight = 0;
      s.update(view(hs));
      const expected = 1 - 1 / 3 / 0.7;
      expect(s.spill).to.be.closeTo(expected, 1e-12);
      expect(remoteShare(s, hs, 'a', N, key)).to.be.closeTo(expected, 0.02);
      // every local host ejected: everything goes to the other zones
      hs[2]!.state = 'overloaded';
      hs[2]!.pickWeight = 0;
      s.update(view(hs));
      expect(s.spill).to.equal(1);
      expect(remoteShare(s, hs, 'a', N, key)).to.equal(1);
      // probing hosts take a little back
      for (const h of hs.slice(0, 3)) {
        h.state = 'probing';
        h.pickWeight = 10;
      }
      s.update(view(hs));
      expect(s.spill).to.be.closeTo(1 - 0.1 / 0.7, 1e-12);
      expect(remoteShare(s, hs, 'a', N, key)).to.be.closeTo(1 - 0.1 / 0.7, 0.02);
      // recovered: all local again
      for (const h of hs.slice(0, 3)) {
        h.state = 'healthy';
        h.pickWeight = 100;
      }
      s.update(view(hs));
      expect(s.spill).to.equal(0);
      expect(remoteShare(s, hs, 'a', N, key)).to.equal(0);
    });
  }

  it('zone - one local host of three down (h = 2/3 < 0.7) spills 1/21 of the calls; with a threshold of 60 none', () => {
    const hs = [host(1, 'a', 'overloaded'), host(2, 'a'), host(3, 'a'), host(4, 'b')];
    const s = createZoneAware(() => createStrategy(StrategyName.swrr), { zone: 'a', random: seededRandom(5) });
    s.update(view(hs));
    expect(s.spill).to.be.closeTo(1 - 2 / 3 / 0.7, 1e-12);
    expect(remoteShare(s, hs, 'a', 42_000)).to.be.closeTo(1 / 21, 0.01);
    const s60 = createZoneAware(() => createStrategy(StrategyName.swrr), { zone: 'a', minHealthyPercent: 60 });
    s60.update(view(hs));
    expect(s60.spill).to.equal(0);
    expect(() => createZoneAware(() => createStrategy(StrategyName.swrr), { zone: 'a', minHealthyPercent: 101 })).to.throw(RangeError);
  });

  it('zone - with no pickable host elsewhere the local zone takes everything, however weak', () => {
    const hs = [host(1, 'a', 'overloaded'), host(2, 'a', 'overloaded'), host(3, 'a'), host(4, 'b', 'overloaded')];
    const s = createZoneAware(() => createStrategy(StrategyName.swrr), { zone: 'a' });
    s.update(view(hs));
    expect(s.spill).to.equal(0);
    for (let i = 0; i < 100; i++) expect(s.pick()).to.equal(2);
  });

  it('zone - no host in the caller zone (or none with a zone): the same picks as the plain strategy', () => {
    const hs = [host(1, undefined), host(2, 'b'), host(3, undefined, 'healthy', 300)];
    const s = createZoneAware(() => createStrategy(StrategyName.p2c, { random: seededRandom(11) }), { zone: 'a', random: seededRandom(2) });
    const plain = createStrategy(StrategyName.p2c, { random: seededRandom(11) });
    s.update(view(hs));
    plain.update(view(hs));
    for (let i = 0; i < 1000; i++) expect(s.pick()).to.equal(plain.pick());
  });

  it('zone - a key keeps its zone and its host while the spill is stable', () => {
    const hs = [host(1, 'a', 'overloaded'), host(2, 'a', 'overloaded'), host(3, 'a'), host(4, 'b'), host(5, 'b')];
    const s = createZoneAware(() => createStrategy(StrategyName.hash), { zone: 'a' });
    s.update(view(hs));
    for (let k = 0; k < 200; k++) {
      const first = s.pick(`k${k}`);
      for (let i = 0; i < 5; i++) expect(s.pick(`k${k}`)).to.equal(first);
    }
  });

  it('zone - no host at all: -1', () => {
    const s = createZoneAware(() => createStrategy(StrategyName.swrr), { zone: 'a' });
    s.update(view([]));
    expect(s.pick()).to.equal(-1);
    s.update(view([host(1, 'a', 'overloaded'), host(2, 'b', 'overloaded')]));
    expect(s.pick()).to.equal(-1);
  });
});
