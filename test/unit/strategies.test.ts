import { expect } from 'chai';
import {
  createHash,
  createLars,
  createP2c,
  createStrategy,
  createSwrr,
  STRATEGIES,
  weighsLoad,
  fnv1a32,
  hash32,
  integerWeights,
  seededRandom,
  StrategyName,
  swrrSequence,
  type PickableHost,
  type Random,
  type PickView,
  type Strategy,
} from '../../actors/strategies/index.ts';
import type { HostState } from '../../schemas/messages.ts';

function host(i: number, pickWeight = 100, state: HostState = 'healthy', latencyMs = 0, inflight = 0): PickableHost {
  return { ip: `10.0.0.${i}`, port: 8000 + i, pickWeight, state, latencyMs, inflight };
}

function view(hosts: PickableHost[], opts: { panic?: boolean; probeNum?: number } = {}): PickView {
  return { hosts, panic: opts.panic ?? false, probeNum: opts.probeNum ?? 10 };
}

function picks(s: Strategy, n: number, key?: string): number[] {
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(s.pick(key));
  return out;
}

function counts(xs: number[]): Map<number, number> {
  const m = new Map<number, number>();
  for (const x of xs) m.set(x, (m.get(x) ?? 0) + 1);
  return m;
}

/** Hosts in the states given, weight 0 when overloaded or draining (as the route publishes them). */
function larsHosts(...states: HostState[]): PickableHost[] {
  return states.map((st, i) => host(i, st === 'healthy' || st === 'probing' ? 100 : 0, st));
}

describe('strategies/lars', () => {
  it('strategies/lars - round robin over healthy hosts', () => {
    const s = createLars();
    s.update(view(larsHosts('healthy', 'healthy', 'healthy')));
    expect(picks(s, 7)).to.deep.equal([0, 1, 2, 0, 1, 2, 0]);
  });

  it('strategies/lars - one call in probe_num+1 probes an overloaded host (33 calls split 3/15/15)', () => {
    const s = createLars();
    s.update(view(larsHosts('healthy', 'overloaded', 'healthy')));
    const got = picks(s, 33);
    expect(Object.fromEntries(counts(got))).to.deep.equal({ 0: 15, 1: 3, 2: 15 });
    got.forEach((h, i) => expect(h === 1, `call ${i + 1}`).to.equal((i + 1) % 11 === 0));
  });

  it('strategies/lars - all overloaded: probe_num calls answer -1, the next a probe', () => {
    const s = createLars();
    s.update(view(larsHosts('overloaded', 'overloaded')));
    const ten = Array<number>(10).fill(-1);
    expect(picks(s, 22)).to.deep.equal([...ten, 0, ...ten, 1]);
  });

  it('strategies/lars - probes rotate across overloaded hosts', () => {
    const s = createLars();
    s.update(view(larsHosts('overloaded', 'healthy', 'overloaded', 'overloaded'), { probeNum: 2 }));
    expect(picks(s, 12)).to.deep.equal([1, 1, 0, 1, 1, 2, 1, 1, 3, 1, 1, 0]);
  });

  it('strategies/lars - probe_num comes from the view', () => {
    const s = createLars();
    s.update(view(larsHosts('overloaded'), { probeNum: 3 }));
    expect(picks(s, 8)).to.deep.equal([-1, -1, -1, 0, -1, -1, -1, 0]);
  });

  it('strategies/lars - draining hosts are never picked, not even as probes', () => {
    const s = createLars();
    s.update(view(larsHosts('draining', 'healthy', 'draining'), { probeNum: 1 }));
    expect(picks(s, 6)).to.deep.equal([1, 1, 1, 1, 1, 1]);
    s.update(view(larsHosts('draining', 'draining'), { probeNum: 1 }));
    expect(picks(s, 6)).to.deep.equal([-1, -1, -1, -1, -1, -1]);
  });

  it('strategies/lars - a healthy host with pick weight 0 is only probed', () => {
    const s = createLars();
    s.update(view([host(0, 100), host(1, 0, 'healthy')], { probeNum: 2 }));
    expect(picks(s, 6)).to.deep.equal([0, 0, 1, 0, 0, 1]);
  });

  it('strategies/lars - panic ignores states: round robin over hosts with pickWeight > 0', () => {
    const s = createLars();
    const hosts = [host(0, 100, 'overloaded'), host(1, 100, 'healthy'), host(2, 0, 'draining'), host(3, 50, 'probing')];
    s.update(view(hosts, { panic: true }));
    expect(picks(s, 6)).to.deep.equal([0, 1, 3, 0, 1, 3]);
  });

  it('strategies/lars - rotation position survives update with the same hosts', () => {
    const s = createLars();
    const v = view(larsHosts('healthy', 'healthy', 'healthy', 'healthy'));
    s.update(v);
    expect(picks(s, 2)).to.deep.equal([0, 1]);
    s.update(view(larsHosts('healthy', 'healthy', 'healthy', 'healthy')));
    expect(picks(s, 3)).to.deep.equal([2, 3, 0]);
    // Host 1 overloaded: the idle rotation goes on after host 0.
    s.update(view(larsHosts('healthy', 'overloaded', 'healthy', 'healthy')));
    expect(picks(s, 3)).to.deep.equal([2, 3, 0]);
  });

  it('strategies/lars - the probe counter survives update', () => {
    const s = createLars();
    s.update(view(larsHosts('healthy', 'overloaded')));
    expect(picks(s, 9)).to.deep.equal(Array(9).fill(0));
    s.update(view(larsHosts('healthy', 'overloaded')));
    expect(picks(s, 2)).to.deep.equal([0, 1]);
  });

  it('strategies/lars - a removed host: rotation goes on where it stood', () => {
    const s = createLars();
    const hosts = larsHosts('healthy', 'healthy', 'healthy', 'healthy');
    s.update(view(hosts));
    expect(picks(s, 2)).to.deep.equal([0, 1]);
    // Host 1 (last picked) leaves: next is the old host 2, now at index 1.
    s.update(view([hosts[0]!, hosts[2]!, hosts[3]!]));
    expect(picks(s, 3)).to.deep.equal([1, 2, 0]);
  });

  it('strategies/lars - an empty route answers -1', () => {
    const s = createLars();
    s.update(view([]));
    expect(picks(s, 25)).to.deep.equal(Array(25).fill(-1));
  });
});

describe('strategies/swrr', () => {
  it("strategies/swrr - weights 5,1,1 give nginx's sequence a a b a c a a", () => {
    const s = createSwrr();
    s.update(view([host(0, 5), host(1, 1), host(2, 1)]));
    const seq = [0, 0, 1, 0, 2, 0, 0];
    expect(picks(s, 14)).to.deep.equal([...seq, ...seq]);
    expect(Array.from(swrrSequence([5, 1, 1], 7))).to.deep.equal(seq);
  });

  it('strategies/swrr - each host is picked exactly its weight times per period', () => {
    const weights = [7, 3, 0, 11, 1, 5];
    const s = createSwrr();
    s.update(view(weights.map((w, i) => host(i, w))));
    const c = counts(picks(s, 27 * 3));
    weights.forEach((w, i) => expect(c.get(i) ?? 0, `host ${i}`).to.equal(w * 3));
  });

  it('strategies/swrr - precomputed sequence equals live SWRR on random integer weights', () => {
    const rnd = seededRandom(42);
    for (let t = 0; t < 60; t++) {
      const n = 1 + Math.floor(rnd() * 12);
      const weights = Array.from({ length: n }, () => (rnd() < 0.15 ? 0 : 1 + Math.floor(rnd() * 300)));
      const hosts = weights.map((w, i) => host(i, w));
      const pre = createSwrr();
      const live = createSwrr({ maxPeriod: 0 });
      pre.update(view(hosts));
      live.update(view(hosts));
      const period = weights.reduce((a, b) => a + b, 0);
      const len = Math.max(1, 2 * period + 5);
      const a = picks(pre, len);
      expect(a, `weights ${weights.join(',')}`).to.deep.equal(picks(live, len));
      if (period > 0) expect(a).to.deep.equal(Array.from(swrrSequence(weights, len)));
    }
  });

  it('strategies/swrr - fractional (probing) weights precompute the exact sequence', () => {
    const weights = [100, 37.5, 0.25];
    expect(integerWeights(Float64Array.from(weights), 4096)).to.not.equal(null);
    const s = createSwrr();
    s.update(view(weights.map((w, i) => host(i, w))));
    const len = 2 * 551 + 3; // reduced period: 400 + 150 + 1
    expect(picks(s, len)).to.deep.equal(Array.from(swrrSequence(weights, len)));
  });

  it('strategies/swrr - weights with no short period run live with the right shares', () => {
    const weights = [1 / 3, 1, 2.0000001];
    expect(integerWeights(Float64Array.from(weights), 4096)).to.equal(null);
    const s = createSwrr();
    s.update(view(weights.map((w, i) => host(i, w))));
    const n = 30_000;
    const c = counts(picks(s, n));
    const total = weights.reduce((a, b) => a + b, 0);
    weights.forEach((w, i) => expect(c.get(i)! / n).to.be.closeTo(w / total, 0.001));
  });

  it('strategies/swrr - pickWeight 0 is never picked', () => {
    const s = createSwrr();
    s.update(view([host(0, 0), host(1, 3), host(2, 0, 'overloaded'), host(3, 1)]));
    expect(new Set(picks(s, 100))).to.deep.equal(new Set([1, 3]));
  });

  it('strategies/swrr - a random start spreads agents over the sequence', () => {
    const hosts = Array.from({ length: 10 }, (_, i) => host(i));
    const firsts = new Set<number>();
    for (let a = 0; a < 50; a++) {
      const s = createSwrr({ random: seededRandom(a + 1) });
      s.update(view(hosts));
      const got = picks(s, 10);
      // Still the round robin, entered at another point.
      expect(new Set(got).size).to.equal(10);
      firsts.add(got[0]!);
    }
    expect(firsts.size).to.be.greaterThan(5);
  });

  it('strategies/swrr - offset skips that many picks of the sequence', () => {
    const s = createSwrr({ offset: 3 });
    s.update(view([host(0, 5), host(1, 1), host(2, 1)]));
    expect(picks(s, 7)).to.deep.equal([0, 2, 0, 0, 0, 0, 1]);
    const live = createSwrr({ offset: 3, maxPeriod: 0 });
    live.update(view([host(0, 5), host(1, 1), host(2, 1)]));
    expect(picks(live, 7)).to.deep.equal([0, 2, 0, 0, 0, 0, 1]);
  });

  it('strategies/swrr - update with unchanged weights keeps the position, a change rebuilds', () => {
    const s = createSwrr();
    s.update(view([host(0, 5), host(1, 1), host(2, 1)]));
    expect(picks(s, 3)).to.deep.equal([0, 0, 1]);
    s.update(view([host(0, 5), host(1, 1), host(2, 1)]));
    expect(picks(s, 4)).to.deep.equal([0, 2, 0, 0]);
    s.update(view([host(0, 5), host(1, 0), host(2, 1)]));
    const c = counts(picks(s, 60));
    expect([c.get(0), c.get(1), c.get(2)]).to.deep.equal([50, undefined, 10]);
  });
});

describe('strategies/p2c', () => {
  it('strategies/p2c - prefers the host with the lower cost', () => {
    const s = createP2c({ random: seededRandom(7) });
    s.update(view([host(0, 100, 'healthy', 10), host(1, 100, 'healthy', 1)]));
    expect(new Set(picks(s, 200))).to.deep.equal(new Set([1]));
  });

  it('strategies/p2c - the most expensive of three is never picked', () => {
    const s = createP2c({ random: seededRandom(7) });
    s.update(view([host(0, 100, 'healthy', 1), host(1, 100, 'healthy', 2), host(2, 100, 'healthy', 3)]));
    const c = counts(picks(s, 3000));
    expect(c.get(2)).to.equal(undefined);
    // The cheapest wins whenever it is drawn: 2 pairs in 3.
    expect(c.get(0)! / 3000).to.be.closeTo(2 / 3, 0.03);
  });

  it('strategies/p2c - in-flight calls count: cost = latency × (inflight + 1)', () => {
    const hosts = [host(0, 100, 'healthy', 5, 3), host(1, 100, 'healthy', 10, 0)];
    const s = createP2c({ random: seededRandom(3) });
    s.update(view(hosts));
    expect(new Set(picks(s, 50))).to.deep.equal(new Set([1])); // 20 vs 10
    hosts[0]!.inflight = 0; // read live, no update
    expect(new Set(picks(s, 50))).to.deep.equal(new Set([0])); // 5 vs 10
    hosts[0]!.latencyMs = 0; // unknown counts as 1 ms
    hosts[1]!.latencyMs = 2;
    expect(new Set(picks(s, 50))).to.deep.equal(new Set([0])); // 1 vs 2
  });

  it('strategies/p2c - ties go to the first drawn, so equal costs follow the weights', () => {
    const s = createP2c({ random: seededRandom(11) });
    s.update(view([host(0, 300), host(1, 100)]));
    const n = 20_000;
    expect(counts(picks(s, n)).get(0)! / n).to.be.closeTo(0.75, 0.015);
  });

  it('strategies/p2c - candidates are drawn by weight and always distinct', () => {
    const s = createP2c({ random: seededRandom(5) });
    // Equal costs: the first drawn wins, so shares follow the weights.
    s.update(view([host(0, 1), host(1, 2), host(2, 0), host(3, 7)]));
    const n = 30_000;
    const c = counts(picks(s, n));
    expect(c.get(2)).to.equal(undefined);
    expect(c.get(0)! / n).to.be.closeTo(0.1, 0.01);
    expect(c.get(1)! / n).to.be.closeTo(0.2, 0.01);
    // Distinct: the costlier host would win only against itself, so it never does.
    const hosts = [host(0, 1, 'healthy', 1), host(1, 1000, 'healthy', 50)];
    s.update(view(hosts));
    expect(new Set(picks(s, 500))).to.deep.equal(new Set([0]));
  });

  it('strategies/p2c - pickWeight 0 is never picked, even when cheapest', () => {
    const s = createP2c({ random: seededRandom(1) });
    s.update(view([host(0, 0, 'overloaded', 1), host(1, 100, 'healthy', 50), host(2, 100, 'healthy', 60)]));
    expect(new Set(picks(s, 200))).to.deep.equal(new Set([1]));
  });

  it('strategies/p2c - one candidate is picked without a draw', () => {
    const noDraw: Random = () => {
      throw new Error('drew');
    };
    const s = createP2c({ random: noDraw });
    s.update(view([host(0, 0), host(1, 5)]));
    expect(picks(s, 3)).to.deep.equal([1, 1, 1]);
  });
});

describe('strategies/hash', () => {
  const keys = Array.from({ length: 10_000 }, (_, i) => `user-${i}`);
  const ten = () => Array.from({ length: 10 }, (_, i) => host(i));

  it('strategies/hash - a key always maps to the same host, across instances and updates', () => {
    const a = createHash();
    const b = createHash();
    a.update(view(ten()));
    b.update(view(ten()));
    const first = keys.slice(0, 500).map((k) => a.pick(k));
    expect(keys.slice(0, 500).map((k) => a.pick(k))).to.deep.equal(first);
    expect(keys.slice(0, 500).map((k) => b.pick(k))).to.deep.equal(first);
    a.update(view(ten()));
    expect(keys.slice(0, 500).map((k) => a.pick(k))).to.deep.equal(first);
  });

  it('strategies/hash - keys spread over all hosts', () => {
    const s = createHash();
    s.update(view(ten()));
    const c = counts(keys.map((k) => s.pick(k)));
    expect(c.size).to.equal(10);
    for (const n of c.values()) expect(n / keys.length).to.be.within(0.05, 0.16);
  });

  it('strategies/hash - a host at pickWeight 0 only remaps the keys it had', () => {
    const s = createHash();
    s.update(view(ten()));
    const before = keys.map((k) => s.pick(k));
    const hosts = ten();
    hosts[4] = host(4, 0, 'overloaded');
    s.update(view(hosts));
    const after = keys.map((k) => s.pick(k));
    let kept = 0;
    before.forEach((h, i) => {
      if (h === after[i]) kept++;
      else expect(h, keys[i]).to.equal(4);
      expect(after[i]).to.not.equal(4);
    });
    expect(kept / keys.length).to.be.at.least(0.75);
    s.update(view(ten()));
    expect(keys.map((k) => s.pick(k))).to.deep.equal(before);
  });

  it('strategies/hash - heavier hosts own more of the ring', () => {
    const s = createHash();
    s.update(view([host(0, 400), host(1, 100), host(2, 100)]));
    const c = counts(keys.map((k) => s.pick(k)));
    expect(c.get(0)! / keys.length).to.be.within(0.55, 0.78);
  });

  it('strategies/hash - without a key, smooth weighted round robin', () => {
    const s = createHash();
    const w = createSwrr();
    const v = view([host(0, 5), host(1, 1), host(2, 1)]);
    s.update(v);
    w.update(v);
    expect(picks(s, 14)).to.deep.equal(picks(w, 14));
    expect(picks(s, 7, '')).to.deep.equal(picks(w, 7));
  });

  it('strategies/hash - hash32 is FNV-1a over UTF-8 with the fmix32 finalizer', () => {
    expect(fnv1a32('')).to.equal(0x811c9dc5);
    expect(fnv1a32('a')).to.equal(0xe40c292c);
    expect(fnv1a32('foobar')).to.equal(0xbf9cf968);
    const ref = (s: string) => {
      let h = 0x811c9dc5;
      for (const byte of new TextEncoder().encode(s)) h = Math.imul(h ^ byte, 0x01000193);
      return h >>> 0;
    };
    for (const s of ['10.0.0.1:80#0', 'é', '中文键', 'emoji 😀 key', 'lone \ud800 surrogate', 'end \udc00', 'tail \ud83d']) {
      expect(fnv1a32(s), s).to.equal(ref(s));
    }
    expect(hash32('a')).to.not.equal(fnv1a32('a'));
    expect(hash32('a')).to.be.within(0, 0xffffffff);
  });
});

describe('strategies/index', () => {
  const names = Object.values(StrategyName);

  it('strategies/index - createStrategy builds each named strategy', () => {
    for (const name of names) expect(createStrategy(name, { random: seededRandom(1) }).name).to.equal(name);
    expect(() => createStrategy('nope' as StrategyName)).to.throw(RangeError);
  });

  it('strategies/index - the table has one entry per contract name, and nothing else answers to a name', () => {
    expect(Object.keys(STRATEGIES).sort()).to.deep.equal([...names].sort());
    for (const name of names) expect(weighsLoad(name)).to.equal(STRATEGIES[name].weighsLoad);
    for (const other of ['nope', 'toString', '__proto__', 'constructor']) {
      expect(weighsLoad(other), other).to.equal(false);
      expect(() => createStrategy(other as StrategyName), other).to.throw(RangeError);
    }
  });

  it('strategies/index - every strategy returns -1 on an empty or all-zero route', () => {
    const zero = [host(0, 0, 'overloaded'), host(1, 0, 'draining'), host(2, 0, 'overloaded')];
    for (const name of names) {
      const s = createStrategy(name, { random: seededRandom(1) });
      s.update(view([]));
      expect(picks(s, 30), `${name} empty`).to.deep.equal(Array(30).fill(-1));
      expect(picks(s, 30, 'k'), `${name} empty, key`).to.deep.equal(Array(30).fill(-1));
      s.update(view(zero));
      if (name === StrategyName.lars) {
        // Lars' probe rule: an overloaded host every probe_num + 1 calls.
        expect(picks(s, 22).filter((h) => h !== -1)).to.have.length(2);
      } else {
        expect(picks(s, 30), `${name} all zero`).to.deep.equal(Array(30).fill(-1));
        expect(picks(s, 30, 'k'), `${name} all zero, key`).to.deep.equal(Array(30).fill(-1));
      }
    }
  });

  it('strategies/index - seededRandom is deterministic and in [0, 1)', () => {
    const a = seededRandom(9);
    const b = seededRandom(9);
    for (let i = 0; i < 1000; i++) {
      const x = a();
      expect(x).to.equal(b());
      expect(x).to.be.at.least(0).and.below(1);
    }
  });
});
