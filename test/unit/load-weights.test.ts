import { expect } from 'chai';
import { RouteActor, parseCheckpoint } from '../../actors/route.ts';
import { DEFAULT_PARAMS } from '../../actors/params.ts';
import { loadWeight, slowStartFactor, NO_TIME } from '../../actors/load-weights.ts';
import { entry } from '../helpers/route-entry.ts';
import type { Profile, ReportBatch, ReportTuple, RouteState, UtilizationTuple } from '../../schemas/messages.ts';

const T0 = 1_700_000_000_000;
const key = (i: number): string => `10.0.0.${i}:8000`;

/** What one host did in one period: calls, errors among them, and the utilization it reported (none when absent). */
interface Load {
  calls: number;
  errors?: number;
  util?: number;
}

class Route {
  t = T0;
  readonly r: RouteActor;
  readonly n: number;
  constructor(n: number, profile: Profile = 'default', params: Record<string, number> = {}) {
    this.n = n;
    // these tests count the versions load weights publish: the call policy's own are tested in call-policy.test.ts
    this.r = new RouteActor({ modid: 1, cmdid: 2, nodeId: 'n1', entry: entry(n, profile, { call_policy: 0, ...params }), now: this.t });
    this.r.flush(this.t);
  }

  /** One batch with every host's calls and utilization at the current time. */
  ingest(loads: readonly Load[]): void {
    const reports: ReportTuple[] = [];
    const utilization: UtilizationTuple[] = [];
    loads.forEach((l, h) => {
        // errors spread among the calls (none in a row)
      const e = l.errors ?? 0;
      for (let i = 0; i < l.calls; i++) reports.push([h, Math.floor(((i + 1) * e) / l.calls) > Math.floor((i * e) / l.calls) ? 1 : 0, 10, 0]);
      if (l.util !== undefined) utilization.push([h, l.util]);
    });
    const hosts = Array.from({ length: this.n }, (_, i): [string, number] => [`10.0.0.${i + 1}`, 8000]);
    const batch: ReportBatch = { v: 1, sender: 'a', modid: 1, cmdid: 2, ts: this.t, hosts, reports };
    if (utilization.length > 0) batch.utilization = utilization;
    if (reports.length > 0) this.r.ingest(batch, this.t);
  }

  /** `seconds` periods of 1 s with the same load each: a batch, then the tick that ends the period. Returns the states published. */
  run(loads: readonly Load[], seconds: number): RouteState[] {
    const out: RouteState[] = [];
    for (let s = 0; s < seconds; s++) {
      this.ingest(loads);
      this.t += 1000;
      this.r.tick(this.t);
      const c = this.r.flush(this.t);
      if (c) out.push(c.state);
    }
    return out;
  }

  picks(): number[] {
    return this.r.snapshot(this.t).hosts.map((h) => h.pick_weight);
  }
}

/** Hosts of capacities 1:2:4, each at 100 calls/s: utilizations 1, 0.5, 0.25. */
const UNEVEN: Load[] = [
  { calls: 100, util: 1 },
  { calls: 100, util: 0.5 },
  { calls: 100, util: 0.25 },
];

describe('load weights - the arithmetic', () => {
  it("load weights - gRPC's weight: qps / (utilization + error share × penalty)", () => {
    expect(loadWeight(100, 0.5, 0, 1)).to.equal(200);
    expect(loadWeight(100, 0.5, 0.1, 1)).to.be.closeTo(100 / 0.6, 1e-9);
    expect(loadWeight(100, 0.5, 0.1, 0)).to.equal(200);
    expect(loadWeight(100, 0.5, 0.1, 2)).to.be.closeTo(100 / 0.7, 1e-9);
    // no calls or no utilization: no weight
    expect(loadWeight(0, 0.5, 0, 1)).to.equal(0);
    expect(loadWeight(100, 0, 0, 1)).to.equal(0);
    // a utilization so small that the weight overflows: no weight, not Infinity
    expect(loadWeight(2, Number.MIN_VALUE, 0, 1)).to.equal(0);
    expect(loadWeight(2, 1e-300, 0, 1)).to.be.closeTo(2e300, 1e286);
  });

  it('load weights - slow start: the minimum share at once, then linear to the whole weight over the window', () => {
    const p = { slow_start_window: 10, slow_start_min_percent: 10 };
    expect(slowStartFactor(T0, T0, p)).to.equal(0.1);
    expect(slowStartFactor(T0, T0 + 500, p)).to.equal(0.1);
    expect(slowStartFactor(T0, T0 + 5000, p)).to.equal(0.5);
    expect(slowStartFactor(T0, T0 + 9999, p)).to.be.closeTo(0.9999, 1e-9);
    expect(slowStartFactor(T0, T0 + 10_000, p)).to.equal(1);
    expect(slowStartFactor(NO_TIME, T0, p), 'not ramping').to.equal(1);
    expect(slowStartFactor(T0, T0, { ...p, slow_start_window: 0 }), 'off').to.equal(1);
  });
});

describe('load weights - in the route actor', () => {
  it('load weights - after the blackout, pick weights follow capacity, scaled to the mean registry weight', () => {
    const a = new Route(3);
    // the first period gives weights; they are used once they are 10 s old
    const before = a.run(UNEVEN, 10);
    expect(before, 'nothing to publish during the blackout').to.deep.equal([]);
    expect(a.picks()).to.deep.equal([100, 100, 100]);
    const after = a.run(UNEVEN, 1);
    expect(after).to.have.length(1);
    // load weights 100, 200, 400 (mean 233.3), scaled to the mean weight 100, to 1 %
    expect(after[0]!.hosts.map((h) => h.pick_weight)).to.deep.equal([43, 86, 171]);
    expect(a.r.host(key(1))!.loadWeight).to.equal(100);
    // steady load: nothing new to publish
    expect(a.run(UNEVEN, 5)).to.deep.equal([]);
  });

  it('load weights - a host without utilization keeps its registry weight; the others share the rest', () => {
    const a = new Route(3);
    a.run([{ calls: 100, util: 1 }, { calls: 100 }, { calls: 100, util: 0.25 }], 11);
    expect(a.picks()).to.deep.equal([40, 100, 160]);
  });

  it('load weights - errors count against a host: the error share times the penalty is added to its utilization', () => {
    // 10 % errors, spread: too few for the node to eject the host
    const loads: Load[] = [{ calls: 100, util: 0.5 }, { calls: 100, errors: 10, util: 0.5 }];
    const a = new Route(2);
    a.run(loads, 11);
    expect(a.r.host(key(2))!.state).to.equal('healthy');
    // 100 / 0.5 = 200 against 100 / (0.5 + 0.1 × 1) = 166.7
    expect(a.picks()).to.deep.equal([109, 91]);
    const b = new Route(2, 'default', { error_utilization_penalty: 5 });
    b.run(loads, 11);
    // 200 against 100 / (0.5 + 0.1 × 5) = 100
    expect(b.picks()).to.deep.equal([133, 67]);
    const c = new Route(2, 'default', { error_utilization_penalty: 0 });
    c.run(loads, 11);
    expect(c.picks()).to.deep.equal([100, 100]);
  });

  it('load weights - a weight not renewed for weight_expiration_period lapses: back to the registry weight', () => {
    const a = new Route(3);
    a.run(UNEVEN, 11);
    expect(a.picks()).to.deep.equal([43, 86, 171]);
    const noUtil = UNEVEN.map((l) => ({ calls: l.calls }));
    // last renewed at 11 s: still in use 179 s later
    expect(a.run(noUtil, 179)).to.deep.equal([]);
    const lapsed = a.run(noUtil, 1);
    expect(lapsed.map((s) => s.hosts.map((h) => h.pick_weight))).to.deep.equal([[100, 100, 100]]);
    // reported again: a new blackout
    expect(a.run(UNEVEN, 10)).to.deep.equal([]);
    expect(a.run(UNEVEN, 1)[0]!.hosts.map((h) => h.pick_weight)).to.deep.equal([43, 86, 171]);
  });

  it('load weights - moves under weight_change_percent are not published', () => {
    const a = new Route(2);
    a.run([{ calls: 100, util: 0.5 }, { calls: 100, util: 0.5 }], 11);
    expect(a.picks()).to.deep.equal([100, 100]);
    // 4 % apart: 102 against 98 moves each by 2 %
    expect(a.run([{ calls: 104, util: 0.5 }, { calls: 100, util: 0.5 }], 3)).to.deep.equal([]);
    // 20 % apart: published
    const moved = a.run([{ calls: 120, util: 0.5 }, { calls: 100, util: 0.5 }], 1);
    expect(moved[0]!.hosts.map((h) => h.pick_weight)).to.deep.equal([109, 91]);
  });

  it('load weights - the lars profile keeps registry weights whatever the hosts report', () => {
    const a = new Route(3, 'lars');
    expect(a.run(UNEVEN, 30)).to.deep.equal([]);
    expect(a.picks()).to.deep.equal([100, 100, 100]);
  });

  it('load weights - load_weighting 0 turns them off', () => {
    const a = new Route(3, 'default', { load_weighting: 0 });
    a.run(UNEVEN, 30);
    expect(a.picks()).to.deep.equal([100, 100, 100]);
  });
});

describe('load weights - slow start', () => {
  it('load weights - a host back from probing ramps from 10 % to its whole weight over slow_start_window', () => {
    const a = new Route(3);
    for (let i = 0; i < 15; i++) a.r.report(key(1), 1, 1, a.t);
    expect(a.r.host(key(1))!.state).to.equal('overloaded');
    a.run([{ calls: 0 }, { calls: 10 }, { calls: 10 }], DEFAULT_PARAMS.base_ejection_time);
    expect(a.r.host(key(1))!.state).to.equal('probing');
    for (let i = 0; i < DEFAULT_PARAMS.probe_succ_limit; i++) a.r.report(key(1), 0, 1, a.t);
    expect(a.r.host(key(1))!.state).to.equal('healthy');
    expect(a.r.flush(a.t)!.state.hosts[0]!.pick_weight, 'at once').to.equal(10);
    const ramp = a.run([{ calls: 10 }, { calls: 10 }, { calls: 10 }], 10).map((s) => s.hosts[0]!.pick_weight);
    expect(ramp).to.deep.equal([10, 20, 30, 40, 50, 60, 70, 80, 90, 100].slice(1));
    expect(a.r.host(key(1))!.rampStart).to.equal(NO_TIME);
  });

  it('load weights - hosts created with the route do not ramp; a host added to a running route does', () => {
    const a = new Route(3);
    expect(a.picks()).to.deep.equal([100, 100, 100]);
    a.r.applyRegistry(entry(4, 'default'), a.t);
    expect(a.r.flush(a.t)!.state.hosts.map((h) => h.pick_weight)).to.deep.equal([100, 100, 100, 10]);
    a.run([{ calls: 10 }, { calls: 10 }, { calls: 10 }, { calls: 10 }], 5);
    expect(a.picks()).to.deep.equal([100, 100, 100, 50]);
  });

  it('load weights - a host back from an ejection keeps its load weight (no new blackout) and ramps toward it', () => {
    const a = new Route(3);
    a.run(UNEVEN, 11);
    expect(a.picks()).to.deep.equal([43, 86, 171]);
    for (let i = 0; i < 15; i++) a.r.report(key(3), 1, 1, a.t);
    expect(a.r.host(key(3))!.state).to.equal('overloaded');
    expect(a.picks()[2]).to.equal(0);
    a.run([...UNEVEN.slice(0, 2), { calls: 0 }], DEFAULT_PARAMS.base_ejection_time - 1);
    expect(a.picks().slice(0, 2), 'the others keep their weights meanwhile').to.deep.equal([43, 86]);
    a.run([...UNEVEN.slice(0, 2), { calls: 0 }], 1);
    for (let i = 0; i < DEFAULT_PARAMS.probe_succ_limit; i++) a.r.report(key(3), 0, 1, a.t);
    expect(a.r.host(key(3))!.state).to.equal('healthy');
    // 10 % of its load weight, not of its registry weight
    expect(a.picks()[2]).to.equal(17);
    a.run(UNEVEN, 5);
    expect(a.picks()[2]).to.be.closeTo(86, 1);
  });

  it('load weights - a drained host forgets its load weight: re-added, it starts afresh', () => {
    const a = new Route(3);
    a.run(UNEVEN, 11);
    a.r.applyRegistry(entry(2, 'default'), a.t);
    expect(a.r.host(key(3))!.state).to.equal('draining');
    expect(a.r.host(key(3))!.loadWeight).to.equal(0);
    a.r.applyRegistry(entry(3, 'default'), a.t);
    expect(a.r.host(key(3))!.state).to.equal('healthy');
    // slow start toward its registry weight: no load weight in use yet
    expect(a.picks()[2]).to.equal(10);
  });
});

describe('load weights - checkpoints', () => {
  it('load weights - a route resumed from a checkpoint mid-period publishes what the original publishes', () => {
    const a = new Route(3);
    a.run(UNEVEN, 8);
    a.ingest(UNEVEN);
    a.t += 400;
    const cp = JSON.parse(JSON.stringify(a.r.checkpoint(a.t))) as unknown;
    const parsed = parseCheckpoint(cp);
    expect(parsed.ok).to.equal(true);
    if (!parsed.ok) return;
    const b = new RouteActor({ modid: 1, cmdid: 2, nodeId: 'n1', entry: entry(3, 'default', { call_policy: 0 }), now: a.t, checkpoint: parsed.value });
    b.flush(a.t);
    const twin = { t: a.t, r: b };
    for (let s = 0; s < 6; s++) {
      const load = s % 2 === 0 ? UNEVEN : UNEVEN.map((l) => ({ ...l, calls: l.calls + 30 }));
      for (const x of [a, twin]) {
        const hosts = Array.from({ length: 3 }, (_, i): [string, number] => [`10.0.0.${i + 1}`, 8000]);
        const reports: ReportTuple[] = [];
        load.forEach((l, h) => {
          for (let i = 0; i < l.calls; i++) reports.push([h, 0, 10, 0]);
        });
        x.r.ingest({ v: 1, sender: 'a', modid: 1, cmdid: 2, ts: x.t, hosts, reports, utilization: load.map((l, h): UtilizationTuple => [h, l.util!]) }, x.t);
        x.t += 1000;
        x.r.tick(x.t);
      }
      expect(b.flush(twin.t)?.state.hosts.map((h) => h.pick_weight), `second ${s}`).to.deep.equal(a.r.flush(a.t)?.state.hosts.map((h) => h.pick_weight));
    }
    expect(a.picks()).to.not.deep.equal([100, 100, 100]);
  });

  it('load weights - a checkpoint written before load weights still resumes; a bad load field is refused', () => {
    const a = new Route(2);
    const cp = a.r.checkpoint(a.t) as unknown as Record<string, unknown>;
    const old = JSON.parse(JSON.stringify(cp)) as Record<string, unknown>;
    delete old['load_period_start'];
    delete old['load_unit'];
    for (const h of old['hosts'] as Array<Record<string, unknown>>) {
      for (const k of ['load_calls', 'load_errors', 'util_sum', 'util_samples', 'load_weight', 'load_since', 'load_ts', 'ramp_start', 'balance']) delete h[k];
    }
    const parsed = parseCheckpoint(old);
    expect(parsed.ok).to.equal(true);
    if (parsed.ok) {
      const b = new RouteActor({ modid: 1, cmdid: 2, nodeId: 'n1', entry: entry(2, 'default'), now: a.t, checkpoint: parsed.value });
      expect(b.host(key(1))).to.include({ loadWeight: 0, loadSince: NO_TIME, balance: 0, rampStart: NO_TIME });
    }
    const bad = JSON.parse(JSON.stringify(cp)) as { hosts: Array<Record<string, unknown>> };
    bad.hosts[0]!['load_weight'] = 'x';
    expect(parseCheckpoint(bad)).to.deep.equal({ ok: false, error: 'hosts[0].load_weight must be a number' });
  });
});
