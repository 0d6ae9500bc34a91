import { expect } from 'chai';
import { readdirSync } from 'node:fs';
import { simulate, type SimResult } from '../../src/sim/engine.ts';
import { scenariosDir, shipped, scenario } from '../helpers/sim-scenarios.ts';
import type { Scenario } from '../../src/sim/scenario.ts';


/** The figures a run is judged by (everything but the per-bucket arrays). */
function figures(r: SimResult): unknown {
  return { calls: r.calls, failed: r.failed, latency: r.latency, hosts: r.hosts, changes: r.stateChanges, end: r.endMs };
}

describe('sim - determinism', () => {
  // A short slow-host run: the slowdown and its ejection fall inside it.
  const short: Scenario = { ...shipped('slow-host'), duration_s: 20 };

  it('sim - the same seed gives the same figures, for every strategy', () => {
    for (const strategy of ['swrr', 'p2c', 'lars'] as const) {
      const a = simulate(short, { strategy, seed: 7 });
      const b = simulate(short, { strategy, seed: 7 });
      expect(figures(a), strategy).to.deep.equal(figures(b));
      expect(a.timeline).to.deep.equal(b.timeline);
      expect(a.calls).to.be.greaterThan(15_000);
    }
  });

  it('sim - another seed gives other figures', () => {
    const a = simulate(short, { strategy: 'p2c', seed: 7 });
    const b = simulate(short, { strategy: 'p2c', seed: 8 });
    expect(a.calls).to.not.equal(b.calls);
    expect(a.latency.p50).to.not.equal(b.latency.p50);
  });

  it('sim - the scenario seed is used when none is given', () => {
    const a = simulate({ ...short, seed: 42 }, { strategy: 'swrr' });
    const b = simulate(short, { strategy: 'swrr', seed: 42 });
    expect(a.seed).to.equal(42);
    expect(figures(a)).to.deep.equal(figures(b));
  });
});

describe('sim - host model against queueing theory', () => {
  it("sim - closed loop, K callers on one host of capacity c and fixed latency L: throughput c/L and mean latency K·L/c (Little's law)", () => {
    const L = 100;
    const c = 4;
    const K = 10;
    const r = simulate(
      scenario({ calls: 20_000, load: { kind: 'closed', callers: K }, timeout_ms: 60_000, agents: 2, hosts: [{ latency: { dist: 'fixed', ms: L }, capacity: c }] }),
      { strategy: 'swrr', seed: 1 },
    );
    expect(r.failed).to.equal(0);
    const throughputPerS = (r.calls * 1000) / r.endMs;
    expect(throughputPerS).to.be.closeTo(c / (L / 1000), 0.01 * (c / (L / 1000)));
    expect(r.latency.mean).to.be.closeTo((K * L) / c, 0.01 * ((K * L) / c));
    expect(r.hosts[0]!.utilization).to.be.closeTo(1, 0.01);
  });

  it('sim - open loop, Poisson arrivals on one host of capacity 1 with exponential service (M/M/1): mean time in system 1/(μ−λ)', () => {
    const mu = 100; // per s: 10 ms mean service
    const lambda = 70; // ρ = 0.7
    const r = simulate(
      scenario({
        duration_s: 4000,
        load: { kind: 'open', rate_per_s: lambda },
        timeout_ms: 3_600_000,
        agents: 1,
        hosts: [{ latency: { dist: 'exponential', mean_ms: 1000 / mu }, capacity: 1 }],
      }),
      { strategy: 'swrr', seed: 3 },
    );
    expect(r.failed).to.equal(0);
    const expected = 1000 / (mu - lambda); // 33.3 ms
    expect(r.latency.mean).to.be.closeTo(expected, 0.04 * expected);
    expect(r.hosts[0]!.utilization).to.be.closeTo(lambda / mu, 0.02);
  });

  it('sim - a host slower than the timeout: every call fails at exactly the timeout, and the host keeps working', () => {
    const r = simulate(
      scenario({ duration_s: 10, load: { kind: 'open', rate_per_s: 100, arrivals: 'fixed' }, timeout_ms: 500, agents: 2, hosts: [{ count: 3, latency: { dist: 'fixed', ms: 2000 } }] }),
      { strategy: 'swrr', seed: 1 },
    );
    expect(r.calls).to.equal(1000);
    expect(r.ok).to.equal(0);
    expect(r.timeouts).to.equal(r.calls);
    expect(r.latency.p50).to.equal(500);
    expect(r.latency.max).to.equal(500);
    expect(r.latency.mean).to.equal(500);
    // Each call occupies its host 2 s, not 0.5 s: ~ 100 calls/s × 2 s in service across the hosts.
    const inService = r.hosts.reduce((a, h) => a + h.meanConcurrency, 0);
    expect(inService).to.be.greaterThan(150);
  });

  it('sim - slow-host, p2c_ewma: the calls lost are those of the slowdown\'s first second; an agent whose calls to the host timed out sends it none before the ejection', () => {
    const short: Scenario = { ...shipped('slow-host'), duration_s: 20 };
    for (let seed = 1; seed <= 5; seed++) {
      const r = simulate(short, { strategy: 'p2c_ewma', seed });
      const failed = r.timeline.failed;
      expect(failed[15], `seed ${seed}`).to.be.greaterThan(10);
      // the host is ejected between 16.0 and 16.3 s; before a timeout counted as twice its latency, seeds 1 and 3 to 5 lost 1 or 2 calls started then
      expect(failed.slice(16).reduce((a, b) => a + b, 0), `seed ${seed}`).to.equal(0);
      expect(r.failed, `seed ${seed}`).to.equal(failed[15]);
    }
  });

  it('sim - a capacity limit queues calls first in, first out', () => {
    // 1 call at a time, 100 ms each, 3 calls at once: answers at 100, 200, 300 ms.
    const r = simulate(
      scenario({ calls: 3, load: { kind: 'closed', callers: 3 }, timeout_ms: 10_000, agents: 1, hosts: [{ latency: { dist: 'fixed', ms: 100 }, capacity: 1 }] }),
      { strategy: 'swrr', seed: 1 },
    );
    expect(r.calls).to.equal(3);
    expect(r.latency.mean).to.equal(200);
    expect(r.latency.max).to.equal(300);
    expect(r.hosts[0]!.maxQueue).to.equal(2);
  });
});

describe('sim - host changes', () => {
  it('sim - a capacity that grows starts queued calls when the change starts', () => {
    // capacity 1, 1 s per call, 4 callers; at 0.5 s capacity 4: the three queued calls start then and answer at 1.5 s.
    const r = simulate(
      scenario({
        calls: 4,
        load: { kind: 'closed', callers: 4 },
        timeout_ms: 10_000,
        agents: 1,
        hosts: [{ latency: { dist: 'fixed', ms: 1000 }, capacity: 1, changes: [{ at_s: 0.5, capacity: 4 }] }],
      }),
      { strategy: 'swrr', seed: 1 },
    );
    expect(r.calls).to.equal(4);
    expect(r.latency.mean).to.equal((1000 + 3 * 1500) / 4);
    expect(r.endMs).to.equal(1500);
  });

  it('sim - a slow period applies to the calls a host starts during it', () => {
    const r = simulate(
      scenario({
        duration_s: 3,
        load: { kind: 'open', rate_per_s: 10, arrivals: 'fixed' },
        timeout_ms: 10_000,
        agents: 1,
        hosts: [{ latency: { dist: 'fixed', ms: 10 }, changes: [{ at_s: 1, for_s: 1, latency: { dist: 'fixed', ms: 500 } }] }],
      }),
      { strategy: 'swrr', seed: 1 },
    );
    expect(r.calls).to.equal(30);
    expect(r.timeline.p50).to.deep.equal([10, 500, 10]);
  });
});

describe('sim - agents, reports and the route actor', () => {
  it('sim - a host failing fast is ejected by the real route actor and its share drops', () => {
    const r = simulate(shipped('fast-failure'), { strategy: 'swrr', seed: 1 });
    const failing = r.hosts.find((h) => h.label === 'failing')!;
    expect(r.stateChanges.some((c) => c.host === 'failing' && c.to === 'overloaded')).to.equal(true);
    expect(failing.stateChanges).to.be.greaterThan(0);
    expect(failing.sharePct).to.be.lessThan(5);
    expect(r.errors).to.be.greaterThan(0);
  });

  it('sim - a closed-loop caller whose pick finds no host fails the call and tries again', () => {
    // The lars strategy answers -1 (NO_HOST) while every host is overloaded, except one probe in probe_num + 1.
    const r = simulate(
      scenario({
        duration_s: 5,
        load: { kind: 'closed', callers: 2 },
        timeout_ms: 1000,
        agents: 1,
        route: { profile: 'lars' },
        hosts: [{ count: 2, latency: { dist: 'fixed', ms: 1 }, errors: { rate: 1 } }],
      }),
      { strategy: 'lars', seed: 1 },
    );
    expect(r.ok).to.equal(0);
    expect(r.noHost).to.be.greaterThan(0);
    expect(r.failed).to.equal(r.calls);
  });

  it('sim - uneven capacity: with the hosts reporting utilization the route weighs them by capacity and the busiest is within 10 % of the mean; without, the small ones saturate', () => {
    const uneven = shipped('uneven-capacity');
    const maxOverMean = (r: SimResult): number => {
      const u = r.hosts.map((h) => h.utilization!);
      return Math.max(...u) / (u.reduce((a, b) => a + b, 0) / u.length);
    };
    const withUtil = simulate(uneven, { strategy: 'p2c_ewma', seed: 1 });
    expect(withUtil.failed).to.equal(0);
    expect(maxOverMean(withUtil)).to.be.at.most(1.1);
    // the large hosts (capacity 40) got about four times the small ones' (10) calls
    const share = (label: string): number => withUtil.hosts.find((h) => h.label === label)!.sharePct;
    expect(share('large1') / share('small1')).to.be.within(3, 4.5);
    const silent = { ...uneven, hosts: uneven.hosts.map((g) => ({ ...g, report_utilization: false })) };
    const without = simulate(silent, { strategy: 'p2c_ewma', seed: 1 });
    expect(maxOverMean(without)).to.be.greaterThan(1.15);
    expect(without.hosts.find((h) => h.label === 'small1')!.utilization).to.be.greaterThan(0.95);
  });

  it('sim - every shipped scenario parses and is named after its file', () => {
    for (const f of readdirSync(scenariosDir).filter((n) => n.endsWith('.json'))) {
      const s = shipped(f.slice(0, -5));
      expect(s.name, f).to.equal(f.slice(0, -5));
    }
  });
});
