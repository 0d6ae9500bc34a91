import { expect } from 'chai';
import { EventQueue } from '../../src/sim/heap.ts';
import { changeActive, drawLatency } from '../../src/sim/hosts.ts';
import { notePick, noteReport } from '../../src/sim/feedback.ts';
import { streamRandom } from '../../src/sim/random.ts';
import { changeMarks, parseScenario } from '../../src/sim/scenario.ts';
import type { PickableHost } from '../../actors/strategies/index.ts';

describe('sim - event queue', () => {
  it('sim - pops by time, and in insertion order at the same time', () => {
    const q = new EventQueue<string>();
    const r = streamRandom(5, 0);
    const times: number[] = [];
    for (let i = 0; i < 500; i++) {
      const t = Math.floor(r() * 50);
      times.push(t);
      q.push(t, `${t}:${i}`);
    }
    const out: string[] = [];
    for (let it = q.pop(); it !== undefined; it = q.pop()) out.push(it.ev);
    const expected = times.map((t, i) => ({ t, i })).sort((a, b) => a.t - b.t || a.i - b.i).map(({ t, i }) => `${t}:${i}`);
    expect(out).to.deep.equal(expected);
    expect(q.size).to.equal(0);
  });
});

describe('sim - host behaviour', () => {
  it('sim - a flapping change is active for for_s out of every every_s, from at_s', () => {
    const c = { at_s: 10, for_s: 10, every_s: 20 };
    expect(changeActive(c, 9_999)).to.equal(false);
    expect(changeActive(c, 10_000)).to.equal(true);
    expect(changeActive(c, 19_999)).to.equal(true);
    expect(changeActive(c, 20_000)).to.equal(false);
    expect(changeActive(c, 30_000)).to.equal(true);
    expect(changeActive({ at_s: 15, for_s: 30 }, 45_000)).to.equal(false);
    expect(changeActive({ at_s: 15 }, 1e9)).to.equal(true);
  });

  it('sim - latency draws follow their distribution', () => {
    const r = streamRandom(1, 2);
    const n = 20_000;
    const mean = (f: () => number) => {
      let s = 0;
      for (let i = 0; i < n; i++) s += f();
      return s / n;
    };
    expect(drawLatency({ dist: 'fixed', ms: 7 }, r)).to.equal(7);
    expect(mean(() => drawLatency({ dist: 'normal', mean_ms: 167, sd_ms: 5 }, r))).to.be.closeTo(167, 0.2);
    expect(mean(() => drawLatency({ dist: 'exponential', mean_ms: 10 }, r))).to.be.closeTo(10, 0.3);
    // lognormal: mean = median × e^(σ²/2)
    expect(mean(() => drawLatency({ dist: 'lognormal', median_ms: 100, sigma: 0.5 }, r))).to.be.closeTo(100 * Math.exp(0.125), 2);
    const choice = mean(() => (drawLatency({ dist: 'choice', ms: [1, 1000], weights: [3, 1] }, r) === 1000 ? 1 : 0));
    expect(choice).to.be.closeTo(0.25, 0.015);
  });
});

describe('sim - the agent feedback', () => {
  it('sim - a pick adds a call in flight; a report removes it and moves the peak-EWMA latency estimate as the agent does', () => {
    const h: PickableHost = { ip: '10.0.0.1', port: 1, pickWeight: 100, state: 'healthy', latencyMs: 0, inflight: 0 };
    const opts = { timeoutMs: 1000, decayMs: 10_000 };
    notePick(h, 0);
    notePick(h, 0);
    expect(h.inflight).to.equal(2);
    noteReport(h, true, 100, 100, opts);
    expect(h.inflight).to.equal(1);
    expect(h.latencyMs).to.equal(100);
    // a slower sample replaces the estimate at once
    noteReport(h, true, 200, 200, opts);
    expect(h.inflight).to.equal(0);
    expect(h.latencyMs).to.equal(200);
    // a faster one pulls it down by 1 - e^(-dt/decay)
    noteReport(h, true, 100, 10_200, opts);
    expect(h.latencyMs).to.be.closeTo(200 * Math.exp(-1) + 100 * (1 - Math.exp(-1)), 1e-9);
    expect(h.inflight).to.equal(0);
  });
});

describe('sim - scenario files', () => {
  const base = { name: 's', duration_s: 1, load: { kind: 'open', rate_per_s: 10 }, hosts: [{ latency: { dist: 'fixed', ms: 1 } }] };

  it('sim - a minimal scenario parses', () => {
    expect(parseScenario(base).ok).to.equal(true);
  });

  it('sim - bad scenarios are errors naming the field', () => {
    const bad = (v: unknown) => {
      const r = parseScenario(v);
      expect(r.ok).to.equal(false);
      return r.ok ? '' : r.error;
    };
    expect(bad({ ...base, duration_s: undefined })).to.match(/duration_s or calls/);
    expect(bad({ ...base, hosts: [{ latency: { dist: 'weird', ms: 1 } }] })).to.match(/^hosts\.0\.latency/);
    expect(bad({ ...base, extra: 1 })).to.match(/extra|propert/i);
    expect(bad({ ...base, route: { params: { err_rate: 7 } } })).to.match(/route\.params: parameter err_rate/);
    expect(bad({ ...base, strategies: ['nope'] })).to.match(/unknown strategy "nope"/);
    expect(bad({ ...base, hosts: [{ latency: { dist: 'fixed', ms: 1 }, changes: [{ at_s: 1, every_s: 2 }] }] })).to.match(/every_s needs for_s/);
    expect(bad({ ...base, hosts: [{ latency: { dist: 'choice', ms: [1, 2], weights: [1] } }] })).to.match(/weights must match/);
    expect(bad({ ...base, hosts: [{ latency: { dist: 'fixed', ms: 1 }, report_utilization: true }] })).to.match(/^hosts\.0: report_utilization needs a capacity/);
  });

  it('sim - change marks list every start and end of a change within the run', () => {
    const r = parseScenario({ ...base, hosts: [{ name: 'f', latency: { dist: 'fixed', ms: 1 }, changes: [{ at_s: 10, for_s: 10, every_s: 20 }] }] });
    if (!r.ok) throw new Error(r.error);
    expect(changeMarks(r.scenario, 45_000).map((m) => m.t)).to.deep.equal([10_000, 20_000, 30_000, 40_000]);
  });

  it('sim - change marks include the changes of an open load rate', () => {
    const r = parseScenario({ ...base, load: { kind: 'open', rate_per_s: 10, changes: [{ at_s: 5, for_s: 10, rate_per_s: 40, label: 'surge' }, { at_s: 40, rate_per_s: 20 }] }, hosts: [{ latency: { dist: 'fixed', ms: 1 } }] });
    if (!r.ok) throw new Error(r.error);
    expect(changeMarks(r.scenario, 45_000)).to.deep.equal([
      { t: 5_000, label: 'surge' },
      { t: 15_000, label: 'load back' },
      { t: 40_000, label: 'load 20/s' },
    ]);
  });
});
