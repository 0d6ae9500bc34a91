import { expect } from 'chai';
import {
  createP2cEwma,
  createStrategy,
  DEFAULT_STRATEGY,
  latencyAt,
  liveInflight,
  notePick,
  noteRelease,
  noteReport,
  p2cEwmaCost,
  pickBounded,
  seededRandom,
  weighsLoad,
  StrategyName,
  type PickableHost,
  type PickView,
  type Strategy,
} from '../../actors/strategies/index.ts';
import { WeightedPairs } from '../../actors/strategies/pair.ts';
import type { HostState } from '../../schemas/messages.ts';

function host(i: number, pickWeight = 100, state: HostState = 'healthy'): PickableHost {
  return { ip: `10.0.0.${i}`, port: 8000 + i, pickWeight, state, latencyMs: 0, inflight: 0 };
}

function view(hosts: PickableHost[]): PickView {
  return { hosts, panic: false, probeNum: 10 };
}

function share(s: Strategy, n: number, hosts: number): number[] {
  const c = new Array<number>(hosts).fill(0);
  for (let i = 0; i < n; i++) c[s.pick()]!++;
  return c;
}

const OPTS = { timeoutMs: 1000, decayMs: 10_000 };

describe('strategies - p2c_ewma', () => {
  it('strategies - p2c_ewma is the default strategy', () => {
    expect(DEFAULT_STRATEGY).to.equal(StrategyName.p2c_ewma);
    expect(createStrategy(StrategyName.p2c_ewma).name).to.equal('p2c_ewma');
  });

  it('strategies - p2c_ewma sends almost nothing to a host whose estimate is 10x its peers', () => {
    const hosts = [host(1), host(2), host(3), host(4)];
    const t = 0;
    for (const h of hosts) {
      notePick(h, t);
      noteReport(h, true, h === hosts[0] ? 1000 : 100, t, OPTS);
    }
    const s = createP2cEwma({ random: seededRandom(7), now: () => t });
    s.update(view(hosts));
    const c = share(s, 10_000, 4);
    expect(c[0]).to.equal(0);
    expect(c[1]! + c[2]! + c[3]!).to.equal(10_000);
  });

  it('strategies - p2c and p2c_ewma count calls in flight per unit of pick weight: a host weighted 4x carries 4x the calls', () => {
    for (const name of [StrategyName.p2c, StrategyName.p2c_ewma]) {
      const small = host(1, 100);
      const large = host(2, 400);
      for (const h of [small, large]) {
        h.latencyMs = 100;
        h.latencyTs = 0;
      }
      const s = createStrategy(name, { random: seededRandom(3), now: () => 0 });
      s.update(view([small, large]));
      // 2 in flight on the small one, 6 on the large one: 2 per 100 of weight against 1.5
      small.inflight = 2;
      large.inflight = 6;
      expect(share(s, 100, 2), `${name}: the large host is the less loaded`).to.deep.equal([0, 100]);
      // 2 against 9: 2 per 100 against 2.25
      large.inflight = 9;
      expect(share(s, 100, 2), `${name}: now the small one is`).to.deep.equal([100, 0]);
    }
  });

  it('strategies - the in-flight scale is 1 with equal weights and hardly moves for a probing host; an idle host costs its latency whatever its weight', () => {
    const pairs = new WeightedPairs();
    pairs.update(view([host(1), host(2), host(3)]));
    expect([...pairs.scale]).to.deep.equal([1, 1, 1]);
    const hosts = [host(1), host(2), host(3, 10, 'probing'), host(4, 0, 'overloaded')];
    pairs.update(view(hosts));
    // the mean weight a pick lands on: (100² + 100² + 10²) / 210
    const mean = 20_100 / 210;
    expect([...pairs.scale]).to.deep.equal([mean / 100, mean / 100, mean / 10, 1]);
    hosts[2]!.latencyMs = 50;
    expect(p2cEwmaCost(hosts[2]!, 0, 10_000, 1000, 10)).to.equal(50);
    hosts[2]!.inflight = 1;
    expect(p2cEwmaCost(hosts[2]!, 0, 10_000, 1000, 10)).to.equal(50 * 11);
    hosts[0]!.latencyMs = 50;
    hosts[0]!.inflight = 3;
    expect(p2cEwmaCost(hosts[0]!, 0, 10_000, 1000, 1)).to.equal(p2cEwmaCost(hosts[0]!, 0));
  });

  it('strategies - a failure counts as at least the timeout: a host failing in 1 ms looks slow, not fast', () => {
    const fast = host(1);
    const ok = host(2);
    notePick(fast, 0);
    noteReport(fast, false, 1, 1, OPTS);
    notePick(ok, 0);
    noteReport(ok, true, 50, 50, OPTS);
    expect(fast.latencyMs).to.equal(1000);
    expect(p2cEwmaCost(fast, 50)).to.be.greaterThan(p2cEwmaCost(ok, 50) * 10);
  });

  it('strategies - a call given up on at the timeout counts as twice its latency, as it counted in flight: the estimate does not drop, and the host stays costlier than a loaded peer', () => {
    const slow = host(1);
    const peer = host(2);
    noteReport(slow, true, 170, 0, OPTS);
    notePick(slow, 100);
    // just before the timeout, the call in flight makes the host look 2 × 999 ms
    expect(latencyAt(slow, 1099, 10_000, 1000)).to.be.closeTo(1998, 1e-9);
    noteReport(slow, false, 1000, 1100, OPTS);
    expect(slow.inflight).to.equal(0);
    expect(slow.latencyMs).to.equal(2000);
    expect(latencyAt(slow, 1100, 10_000, 1000)).to.equal(2000);
    // a peer at the usual 178 ms with 5 calls in flight (178 × 6 = 1068) is the cheaper pick
    noteReport(peer, true, 178, 1100, OPTS);
    for (let i = 0; i < 5; i++) notePick(peer, 1050);
    expect(p2cEwmaCost(slow, 1120)).to.be.greaterThan(p2cEwmaCost(peer, 1120));
    // a fast error is no timeout: at least the timeout, as before
    const err = host(3);
    notePick(err, 0);
    noteReport(err, false, 5, 5, OPTS);
    expect(err.latencyMs).to.equal(1000);
  });

  it('strategies - peak EWMA: a slower sample is taken at once, a faster one pulls down with time, the estimate decays with the time since the last sample', () => {
    const h = host(1);
    noteReport(h, true, 100, 0, OPTS);
    noteReport(h, true, 400, 10, OPTS);
    expect(h.latencyMs).to.equal(400);
    noteReport(h, true, 100, 10, OPTS); // no time elapsed: no pull
    expect(h.latencyMs).to.equal(400);
    noteReport(h, true, 100, 10_010, OPTS);
    expect(h.latencyMs).to.be.closeTo(400 * Math.exp(-1) + 100 * (1 - Math.exp(-1)), 1e-9);
    expect(latencyAt(h, 10_010 + 10_000, 10_000)).to.be.closeTo(h.latencyMs * Math.exp(-1), 1e-9);
  });

  it('strategies - a host that stopped answering looks slow before its first timeout comes back (age of its calls in flight)', () => {
    const h = host(1);
    noteReport(h, true, 100, 0, OPTS);
    notePick(h, 1000);
    notePick(h, 1200);
    // mean age at 1500: 400 ms; about twice that for the oldest
    expect(latencyAt(h, 1500, 10_000)).to.be.closeTo(800, 1e-9);
    noteReport(h, true, 300, 1300, OPTS);
    expect(h.inflight).to.equal(1);
    expect(latencyAt(h, 1500, 10_000)).to.be.closeTo(Math.max(300 * Math.exp(-0.02), 2 * 300), 1e-9);
  });

  it('strategies - a caller reporting latencies shorter than pick to report cannot make a busy host look ever older', () => {
    const h = host(1);
    notePick(h, 0);
    notePick(h, 0);
    notePick(h, 0);
    // answered at 1000, but the caller measured only 10 ms of it
    noteReport(h, true, 10, 1000, OPTS);
    noteReport(h, true, 10, 1000, OPTS);
    expect(h.inflight).to.equal(1);
    // the call left was picked no earlier than the ones answered (990): age 10, not 1000 + 990
    expect(latencyAt(h, 1000, 10_000)).to.be.closeTo(20, 1e-9);
  });

  it('strategies - p2c_ewma follows the route weights: an ejected host (0) is never picked, a probing one in proportion to its reduced weight', () => {
    const hosts = [host(1, 100), host(2, 0, 'overloaded'), host(3, 10, 'probing'), host(4, 100)];
    const s = createP2cEwma({ random: seededRandom(3) });
    s.update(view(hosts));
    const c = share(s, 21_000, 4);
    expect(c[1]).to.equal(0);
    // With equal costs the first drawn wins: host 3 is drawn first about 10/210 of the time.
    expect(c[2]! / 21_000).to.be.closeTo(10 / 210, 0.01);
  });

  it('strategies - p2c_ewma with one candidate returns it; with none, -1', () => {
    const s = createP2cEwma();
    s.update(view([host(1, 0, 'overloaded'), host(2)]));
    expect(s.pick()).to.equal(1);
    s.update(view([host(1, 0, 'overloaded')]));
    expect(s.pick()).to.equal(-1);
  });
});

describe('strategies - bounded trial calls to a probing host', () => {
  it('strategies - a probing host gets one trial call in flight per agent; the next pick goes elsewhere until it is answered', () => {
    const hosts = [host(1, 10, 'probing'), host(2, 0, 'overloaded'), host(3, 100)];
    const s = createStrategy(StrategyName.swrr);
    s.update(view(hosts));
    let trials = 0;
    for (let i = 0; i < 220; i++) {
      const k = pickBounded(s, hosts, undefined, i);
      expect(k).to.not.equal(1);
      if (k === 0) trials++;
      notePick(hosts[k]!, i);
    }
    expect(trials).to.equal(1);
    expect(hosts[0]!.inflight).to.equal(1);
    noteReport(hosts[0]!, true, 5, 300, OPTS);
    let again = 0;
    for (let i = 0; i < 220; i++) if (pickBounded(s, hosts, undefined, 300) === 0) again++;
    expect(again).to.be.greaterThan(0);
  });

  it('strategies - with only a probing host at its bound there is no host; a larger bound lets more trials through', () => {
    const hosts = [host(1, 10, 'probing')];
    const s = createStrategy(StrategyName.p2c_ewma);
    s.update(view(hosts));
    expect(pickBounded(s, hosts, undefined, 0)).to.equal(0);
    notePick(hosts[0]!, 0);
    expect(pickBounded(s, hosts, undefined, 10)).to.equal(-1);
    expect(pickBounded(s, hosts, undefined, 10, 2)).to.equal(0);
    // a trial never reported stops counting after the timeout
    expect(pickBounded(s, hosts, undefined, 1001, 1, 1000)).to.equal(0);
  });
});

describe('strategies - calls never reported', () => {
  it('strategies - a pick never reported counts while the host is silent for less than the timeout, then not at all', () => {
    const a = host(1);
    const b = host(2);
    for (const h of [a, b]) {
      notePick(h, 0);
      noteReport(h, true, 5, 5, OPTS);
    }
    notePick(a, 10); // the caller never reports it
    expect(latencyAt(a, 500, 10_000, 1000)).to.be.closeTo(980, 1e-9);
    expect(liveInflight(a, 500, 1000)).to.equal(1);
    let t = 500;
    const s = createP2cEwma({ random: seededRandom(5), now: () => t, timeoutMs: 1000 });
    s.update(view([a, b]));
    expect(share(s, 1000, 2)).to.deep.equal([0, 1000]);
    // silent for more than the timeout: the call is taken as lost, the host is even with its peer again
    t = 1011;
    expect(liveInflight(a, t, 1000)).to.equal(0);
    const c = share(s, 1000, 2);
    expect(c[0]! / 1000).to.be.closeTo(0.5, 0.06);
    // the next pick forgets it for good
    notePick(a, t, OPTS);
    expect(a.inflight).to.equal(1);
  });
});

describe('strategies - the clock on the pick path', () => {
  /** A clock that counts its reads. */
  function countingClock(start = 0): { now: () => number; reads: () => number; set(t: number): void } {
    let t = start;
    let n = 0;
    return {
      now: () => {
        n++;
        return t;
      },
      reads: () => n,
      set: (v: number) => {
        t = v;
      },
    };
  }

  it('strategies - only p2c and p2c_ewma weigh load on every pick', () => {
    expect(Object.values(StrategyName).filter((n) => weighsLoad(n)).sort()).to.deep.equal(['p2c', 'p2c_ewma']);
  });

  it('strategies - a strategy that does not weigh load reads the clock for the first call in flight only, and counts every call', () => {
    const hosts = [host(1), host(2)];
    const s = createStrategy(StrategyName.swrr);
    s.update(view(hosts));
    const c = countingClock(100);
    for (let i = 0; i < 1000; i++) {
      const k = pickBounded(s, hosts, undefined, c.now);
      notePick(hosts[k]!, c.now, OPTS, false);
    }
    expect(c.reads()).to.equal(2);
    expect(hosts.map((h) => h.inflight)).to.deep.equal([500, 500]);
    expect(hosts.map((h) => h.lifeTs)).to.deep.equal([100, 100]);
    // a report is a sign of life as before; with nothing left in flight the next pick reads the clock again
    noteReport(hosts[0]!, true, 5, 200, OPTS);
    expect(hosts[0]!.lifeTs).to.equal(200);
  });

  it('strategies - a host that turns probing with calls never reported is not blocked for longer than the timeout', () => {
    const h = host(1);
    const s = createStrategy(StrategyName.swrr);
    const c = countingClock(0);
    s.update(view([h]));
    for (let i = 0; i < 5; i++) notePick(h, c.now, OPTS, false); // five calls never reported
    (h as { state: HostState }).state = 'probing';
    s.update(view([h]));
    c.set(500);
    expect(pickBounded(s, [h], undefined, c.now, 1, 1000)).to.equal(-1);
    c.set(1001);
    expect(pickBounded(s, [h], undefined, c.now, 1, 1000)).to.equal(0);
    // the trial is counted with the time (a probing host always reads the clock) and bounds the next pick
    notePick(h, c.now, OPTS, false);
    expect(h.inflight).to.equal(1);
    expect(h.lifeTs).to.equal(1001);
    expect(pickBounded(s, [h], undefined, c.now, 1, 1000)).to.equal(-1);
  });
});

describe('strategies - a pick given back', () => {
  it('strategies - a released pick stops counting in flight, frees a probing host for its next trial, and teaches nothing of the host', () => {
    const h = host(1, 10, 'probing');
    const s = createStrategy(StrategyName.swrr);
    s.update(view([h]));
    expect(pickBounded(s, [h], undefined, 0)).to.equal(0);
    notePick(h, 0, OPTS);
    expect(pickBounded(s, [h], undefined, 5)).to.equal(-1);
    noteRelease(h, 5);
    expect(h.inflight).to.equal(0);
    expect(h.latencyMs).to.equal(0);
    expect(h.latencyTs).to.equal(undefined);
    expect(pickBounded(s, [h], undefined, 6)).to.equal(0);
    // with other calls in flight, their mean age is kept
    const b = host(2);
    notePick(b, 100, OPTS);
    notePick(b, 200, OPTS);
    noteRelease(b, 200);
    expect(b.inflight).to.equal(1);
    expect(latencyAt(b, 300, 10_000, 1000)).to.equal(400);
    // nothing in flight: nothing to give back
    noteRelease(h, 7);
    expect(h.inflight).to.equal(0);
  });
});
