import { expect } from 'chai';
import { RouteActor } from '../../actors/route.ts';
import { entry } from '../helpers/route-entry.ts';
import { LARS_DEFAULTS, DEFAULT_PARAMS, resolveParams } from '../../actors/params.ts';
import type { Profile, RegistryEntry, RouteEvent, RouteState } from '../../schemas/messages.ts';

/** A manual clock: tests advance it instead of sleeping. */
class Clock {
  t = 1_700_000_000_000;
  now = (): number => this.t;
  advance(ms: number): number {
    this.t += ms;
    return this.t;
  }
}

const H1 = '10.0.0.1:8000';
/** A second ejection, after a failed probe: 2 × base_ejection_time, times probe_failure_multiplier. */
const AFTER_FAILED_PROBE_MS = 2 * DEFAULT_PARAMS.base_ejection_time * DEFAULT_PARAMS.probe_failure_multiplier * 1000;

function route(n: number, profile: Profile, params: Record<string, number> = {}, clock = new Clock()): { r: RouteActor; clock: Clock; events: RouteEvent[] } {
  const r = new RouteActor({ modid: 1, cmdid: 2, nodeId: 'n1', entry: entry(n, profile, params), now: clock.now() });
  const events: RouteEvent[] = [];
  r.flush(clock.now());
  return {
    r,
    clock,
    events,
  };
}

function drain(r: RouteActor, clock: Clock, into: RouteEvent[]): RouteState | undefined {
  const c = r.flush(clock.now());
  if (c) into.push(...c.events);
  return c?.state;
}

describe('route actor - lars profile arithmetic', () => {
  it('route - lars defaults are the shipped ones', () => {
    expect(LARS_DEFAULTS).to.deep.equal({
      probe_num: 10,
      init_succ_cnt: 180,
      init_err_cnt: 5,
      err_rate: 0.1,
      succ_rate: 0.5,
      contin_err_limit: 15,
      contin_succ_limit: 15,
      window_err_rate: 0.7,
      idle_timeout: 15,
      overload_timeout: 15,
    });
    const p = resolveParams('lars');
    expect(p.ok && p.params.max_ejection_percent).to.equal(100);
    expect(p.ok && p.params.panic_threshold).to.equal(0);
  });

  it('route - 15 consecutive errors overload a healthy host', () => {
    const { r, clock, events } = route(3, 'lars');
    for (let i = 0; i < 14; i++) r.report(H1, 1, 1, clock.now());
    expect(r.host(H1)!.state).to.equal('healthy');
    r.report(H1, 1, 1, clock.now());
    expect(r.host(H1)!.state).to.equal('overloaded');
    drain(r, clock, events);
    expect(events).to.have.length(1);
    expect(events[0]).to.include({ from: 'healthy', to: 'overloaded', reason: 'consecutive_errors' });
    expect(events[0]!.figures.consecutive_errors).to.equal(15);
    expect(events[0]!.figures.err_rate).to.be.closeTo(15 / 195, 1e-12);
  });

  it('route - 180 virtual successes and 21 errors trip err_rate (20 do not)', () => {
    const { r, clock, events } = route(3, 'lars', { contin_err_limit: 1000 });
    for (let i = 0; i < 20; i++) r.report(H1, 1, 1, clock.now());
    expect(r.host(H1)!.state, '20/200 is not > 0.1').to.equal('healthy');
    r.report(H1, 1, 1, clock.now());
    expect(r.host(H1)!.state).to.equal('overloaded');
    drain(r, clock, events);
    expect(events[0]).to.include({ reason: 'error_rate' });
    expect(events[0]!.figures.err_rate).to.be.closeTo(21 / 201, 1e-12);
  });

  it('route - successes interleaved reset the consecutive run', () => {
    const { r, clock } = route(3, 'lars');
    for (let i = 0; i < 14; i++) r.report(H1, 1, 1, clock.now());
    r.report(H1, 0, 1, clock.now());
    for (let i = 0; i < 5; i++) r.report(H1, 1, 1, clock.now());
    // 19 errors / (181 + 19) = 0.095: neither rule fires
    expect(r.host(H1)!.state).to.equal('healthy');
    expect(r.host(H1)!.continErr).to.equal(5);
  });

  it('route - an overloaded host is forced back after overload_timeout', () => {
    const { r, clock, events } = route(3, 'lars');
    for (let i = 0; i < 15; i++) r.report(H1, 1, 1, clock.now());
    drain(r, clock, events);
    clock.advance(14_999);
    r.tick(clock.now());
    expect(r.host(H1)!.state).to.equal('overloaded');
    clock.advance(1);
    r.tick(clock.now());
    expect(r.host(H1)!.state).to.equal('healthy');
    drain(r, clock, events);
    expect(events[1]).to.include({ from: 'overloaded', to: 'healthy', reason: 'timeout' });
    // back to Lars' set_idle counters
    expect(r.host(H1)!.vsucc).to.equal(180);
    expect(r.host(H1)!.verr).to.equal(0);
  });

  it('route - an overloaded host comes back when vsucc/(vsucc+verr) > succ_rate', () => {
    const { r, clock, events } = route(3, 'lars');
    for (let i = 0; i < 15; i++) r.report(H1, 1, 1, clock.now());
    expect(r.host(H1)!.verr).to.equal(5); // init_err_cnt
    for (let i = 0; i < 5; i++) r.report(H1, 0, 1, clock.now());
    expect(r.host(H1)!.state, '5/10 is not > 0.5').to.equal('overloaded');
    r.report(H1, 0, 1, clock.now());
    expect(r.host(H1)!.state).to.equal('healthy');
    drain(r, clock, events);
    expect(events.at(-1)).to.include({ reason: 'success_rate' });
  });

  it('route - contin_succ_limit brings an overloaded host back when succ_rate cannot', () => {
    const { r, clock, events } = route(3, 'lars', { succ_rate: 1 });
    for (let i = 0; i < 15; i++) r.report(H1, 1, 1, clock.now());
    for (let i = 0; i < 14; i++) r.report(H1, 0, 1, clock.now());
    expect(r.host(H1)!.state).to.equal('overloaded');
    r.report(H1, 0, 1, clock.now());
    expect(r.host(H1)!.state).to.equal('healthy');
    drain(r, clock, events);
    expect(events.at(-1)).to.include({ reason: 'consecutive_successes' });
  });

  it('route - window_err_rate overloads at the end of the idle window', () => {
    const { r, clock, events } = route(3, 'lars', { err_rate: 0.9, contin_err_limit: 1000 });
    for (let i = 0; i < 7; i++) r.report(H1, 1, 1, clock.now());
    for (let i = 0; i < 3; i++) r.report(H1, 0, 1, clock.now());
    clock.advance(14_000);
    r.tick(clock.now());
    expect(r.host(H1)!.state).to.equal('healthy');
    clock.advance(1_000);
    r.tick(clock.now());
    expect(r.host(H1)!.state).to.equal('overloaded');
    drain(r, clock, events);
    expect(events[0]).to.include({ reason: 'window_error_rate' });
    expect(events[0]!.figures.window_err_rate).to.be.closeTo(0.7, 1e-12);
  });

  it('route - a window under window_err_rate just resets the counters', () => {
    const { r, clock } = route(3, 'lars', { err_rate: 0.9, contin_err_limit: 1000 });
    for (let i = 0; i < 6; i++) r.report(H1, 1, 1, clock.now());
    for (let i = 0; i < 4; i++) r.report(H1, 0, 1, clock.now());
    clock.advance(15_000);
    // Lars checks the window on the next report
    r.report(H1, 0, 1, clock.now());
    const h = r.host(H1)!;
    expect(h.state).to.equal('healthy');
    expect([h.vsucc, h.verr, h.rsucc, h.rerr]).to.deep.equal([180, 0, 0, 0]);
  });

  it('route - lars has no ejection cap: every failing host is overloaded', () => {
    const { r, clock } = route(5, 'lars');
    for (let h = 1; h <= 5; h++) for (let i = 0; i < 15; i++) r.report(`10.0.0.${h}:8000`, 1, 1, clock.now());
    expect(r.hosts().every((h) => h.state === 'overloaded')).to.equal(true);
    expect(r.inPanic).to.equal(false);
  });

  it('route - lars ignores latency', () => {
    const { r, clock } = route(5, 'lars');
    for (let round = 0; round < 100; round++) {
      for (let h = 1; h <= 5; h++) r.report(`10.0.0.${h}:8000`, 0, h === 1 ? 200 : 10, clock.now());
    }
    clock.advance(500);
    r.tick(clock.now());
    expect(r.host(H1)!.state).to.equal('healthy');
  });
});

describe('route actor - default profile', () => {
  it('route - a host 20x slower than its peers is ejected as a latency outlier', () => {
    const { r, clock, events } = route(5, 'default');
    for (let round = 0; round < 100; round++) {
      for (let h = 1; h <= 5; h++) r.report(`10.0.0.${h}:8000`, 0, h === 1 ? 200 : 10, clock.now());
    }
    r.tick(clock.advance(250));
    expect(r.host(H1)!.state).to.equal('overloaded');
    drain(r, clock, events);
    const e = events.find((x) => x.reason === 'latency_outlier')!;
    expect(e).to.include({ ip: '10.0.0.1', to: 'overloaded' });
    expect(e.figures.latency_ms).to.be.greaterThan(150);
    expect(e.figures.peer_latency_ms).to.be.closeTo(10, 0.5);
    for (let h = 2; h <= 5; h++) expect(r.host(`10.0.0.${h}:8000`)!.state).to.equal('healthy');
  });

  it('route - recovery goes through probing with trial traffic, ejection time grows', () => {
    const { r, clock, events } = route(5, 'default');
    for (let i = 0; i < 15; i++) r.report(H1, 1, 1, clock.now());
    expect(r.host(H1)!.state).to.equal('overloaded');
    expect(r.host(H1)!.ejectUntil - clock.now()).to.equal(DEFAULT_PARAMS.base_ejection_time * 1000);
    // a lars-style success does not bring it back in the default profile
    for (let i = 0; i < 20; i++) r.report(H1, 0, 1, clock.now());
    expect(r.host(H1)!.state).to.equal('overloaded');
    r.tick(clock.advance(DEFAULT_PARAMS.base_ejection_time * 1000));
    expect(r.host(H1)!.state).to.equal('probing');
    const st = drain(r, clock, events)!;
    const h1 = st.hosts.find((h) => h.ip === '10.0.0.1')!;
    expect(h1.pick_weight).to.equal(10); // 10% of 100
    // two probe errors: back out, the second ejection lasting twice the base, times probe_failure_multiplier
    r.report(H1, 1, 1, clock.now());
    r.report(H1, 1, 1, clock.now());
    expect(r.host(H1)!.state).to.equal('overloaded');
    expect(r.host(H1)!.ejectUntil - clock.now()).to.equal(AFTER_FAILED_PROBE_MS);
    r.tick(clock.advance(AFTER_FAILED_PROBE_MS - 1));
    expect(r.host(H1)!.state).to.equal('overloaded');
    r.tick(clock.advance(1));
    expect(r.host(H1)!.state).to.equal('probing');
    for (let i = 0; i < 5; i++) r.report(H1, 0, 1, clock.now());
    expect(r.host(H1)!.state).to.equal('healthy');
    drain(r, clock, events);
    expect(events.map((e) => `${e.from}>${e.to}:${e.reason}`)).to.deep.equal([
      'healthy>overloaded:consecutive_errors',
      'overloaded>probing:timeout',
      'probing>overloaded:probe_failure',
      'overloaded>probing:timeout',
      'probing>healthy:probe_success',
    ]);
    // the count decays after a stable period
    expect(r.host(H1)!.ejections).to.equal(2);
    r.tick(clock.advance(DEFAULT_PARAMS.ejection_decay_time * 1000));
    expect(r.host(H1)!.ejections).to.equal(1);
  });

  it('route - max_ejection_percent bounds ejections and panic spreads traffic over all hosts', () => {
    const { r, clock, events } = route(5, 'default');
    for (let h = 1; h <= 4; h++) for (let i = 0; i < 15; i++) r.report(`10.0.0.${h}:8000`, 1, 1, clock.now());
    const states = r.hosts().map((h) => h.state);
    expect(states.filter((s) => s === 'overloaded')).to.have.length(2); // floor(5 * 50%)
    expect(r.inPanic).to.equal(true); // 1 well host of 5 < 50%
    const st = r.flush(clock.now())!.state;
    expect(st.panic).to.equal(true);
    expect(st.hosts.map((h) => h.pick_weight)).to.deep.equal([100, 100, 100, 100, 100]);
    drain(r, clock, events);
  });

  it('route - without panic, ejected hosts get pick_weight 0', () => {
    const { r, clock } = route(5, 'default');
    for (let i = 0; i < 15; i++) r.report(H1, 1, 1, clock.now());
    const st = r.flush(clock.now())!.state;
    expect(st.panic).to.equal(false);
    expect(st.hosts.map((h) => h.pick_weight)).to.deep.equal([0, 100, 100, 100, 100]);
    expect(st.version).to.equal(2);
  });

  it('route - registry removal drains a host, then drops it; re-adding brings it back', () => {
    const { r, clock, events } = route(3, 'default');
    const e = entry(3, 'default');
    e.hosts = e.hosts.slice(1);
    r.applyRegistry(e, clock.now());
    expect(r.host(H1)!.state).to.equal('draining');
    let st = drain(r, clock, events)!;
    expect(st.hosts[0]).to.include({ state: 'draining', pick_weight: 0, reason: 'removed' });
    r.tick(clock.advance(DEFAULT_PARAMS.drain_time * 1000));
    expect(r.host(H1)).to.equal(undefined);
    st = drain(r, clock, events)!;
    expect(st.hosts).to.have.length(2);
    r.applyRegistry(entry(3, 'default'), clock.now());
    expect(r.host(H1)!.state).to.equal('healthy');
    drain(r, clock, events);
    expect(events.map((x) => `${x.ip}:${x.from}>${x.to}`)).to.deep.equal(['10.0.0.1:healthy>draining', '10.0.0.1:draining>none', '10.0.0.1:none>healthy']);
  });

  it('route - a report for an unknown host is counted, not applied', () => {
    const { r, clock } = route(2, 'default');
    const res = r.ingest(
      { v: 1, sender: 'a', modid: 1, cmdid: 2, ts: 0, hosts: [['10.0.0.1', 8000], ['10.9.9.9', 1]], reports: [[0, 0, 1, 0], [1, 0, 1, 0], [1, 1, 1, 0]] },
      clock.now(),
    );
    expect(res).to.deep.equal({ applied: 1, unknownHost: 2 });
  });

  it('route - a restart resumes version and host states from the last published state', () => {
    const { r, clock } = route(3, 'default');
    for (let i = 0; i < 15; i++) r.report(H1, 1, 1, clock.now());
    const last = r.flush(clock.now())!.state;
    const r2 = new RouteActor({ modid: 1, cmdid: 2, nodeId: 'n2', entry: entry(3, 'default'), now: clock.now(), restored: last });
    expect(r2.host(H1)!.state).to.equal('overloaded');
    const next = r2.flush(clock.now())!;
    expect(next.state.version).to.equal(last.version + 1);
    expect(next.events).to.have.length(0);
  });
});

describe('route actor - probing judges latency too', () => {
  it('route - a slow host whose probes succeed slowly stays out', () => {
    const { r, clock, events } = route(5, 'default');
    for (let round = 0; round < 100; round++) {
      for (let h = 1; h <= 5; h++) r.report(`10.0.0.${h}:8000`, 0, h === 1 ? 200 : 10, clock.now());
    }
    r.tick(clock.advance(250));
    expect(r.host(H1)!.state).to.equal('overloaded');
    r.tick(clock.advance(DEFAULT_PARAMS.base_ejection_time * 1000));
    expect(r.host(H1)!.state).to.equal('probing');
    r.report(H1, 0, 200, clock.now());
    r.report(H1, 0, 200, clock.now());
    expect(r.host(H1)!.state).to.equal('overloaded');
    r.tick(clock.advance(AFTER_FAILED_PROBE_MS));
    expect(r.host(H1)!.state).to.equal('probing');
    for (let i = 0; i < 5; i++) r.report(H1, 0, 11, clock.now());
    expect(r.host(H1)!.state).to.equal('healthy');
    drain(r, clock, events);
    expect(events.filter((e) => e.ip === '10.0.0.1').map((e) => e.reason)).to.deep.equal(['latency_outlier', 'timeout', 'probe_failure', 'timeout', 'probe_success']);
  });

  /** A route of 5 hosts whose first host, a latency outlier (200 ms against 10 ms), has just entered probing. */
  function slowProbing(): { r: RouteActor; clock: Clock } {
    const { r, clock } = route(5, 'default');
    for (let round = 0; round < 100; round++) {
      for (let h = 1; h <= 5; h++) r.report(`10.0.0.${h}:8000`, 0, h === 1 ? 200 : 10, clock.now());
    }
    r.tick(clock.advance(250));
    r.tick(clock.advance(DEFAULT_PARAMS.base_ejection_time * 1000));
    expect(r.host(H1)!.state).to.equal('probing');
    expect(r.peerLatency).to.equal(10);
    return { r, clock };
  }

  it('route - a trial call that fails as slowly as an outlier (a caller timed out) ends the probe round at once', () => {
    const { r, clock } = slowProbing();
    clock.advance(1050);
    r.report(H1, 1, 1000, clock.now());
    expect(r.host(H1)!.state).to.equal('overloaded');
    expect(r.host(H1)!.reason).to.equal('probe_failure');
    expect(r.host(H1)!.ejectUntil - clock.now()).to.equal(AFTER_FAILED_PROBE_MS);
  });

  it('route - only an ejection after a failed probe is lengthened by probe_failure_multiplier', () => {
    for (const m of [1, 3]) {
      const { r, clock } = route(5, 'default', { probe_failure_multiplier: m });
      const base = DEFAULT_PARAMS.base_ejection_time * 1000;
      for (let i = 0; i < 15; i++) r.report(H1, 1, 1, clock.now());
      expect(r.host(H1)!.ejectUntil - clock.now(), 'a first ejection: the base').to.equal(base);
      r.tick(clock.advance(base));
      expect(r.host(H1)!.state).to.equal('probing');
      r.report(H1, 1, 1, clock.now());
      r.report(H1, 1, 1, clock.now());
      expect(r.host(H1)!.reason).to.equal('probe_failure');
      expect(r.host(H1)!.ejectUntil - clock.now(), `multiplier ${m}`).to.equal(2 * base * m);
      r.tick(clock.advance(2 * base * m));
      r.report(H1, 1, 1, clock.now());
      r.report(H1, 1, 1, clock.now());
      expect(r.host(H1)!.ejectUntil - clock.now(), 'the third, after another failed probe').to.equal(Math.min(3 * base * m, DEFAULT_PARAMS.max_ejection_time * 1000));
    }
  });

  it('route - a fast error, a slow success, or a slow failure of a call picked before the round began counts one probe error', () => {
    for (const [retcode, latencyMs, after] of [
      [1, 5, 1050], // a fast error
      [0, 1000, 1050], // a slow success
      [1, 1000, 500], // longer than the round has lasted: picked before it began
    ] as const) {
      const { r, clock } = slowProbing();
      r.report(H1, retcode, latencyMs, clock.advance(after));
      expect(r.host(H1)!.state, `${retcode} ${latencyMs} ms`).to.equal('probing');
      expect(r.host(H1)!.probeErr).to.equal(1);
      r.report(H1, 1, 5, clock.advance(10));
      expect(r.host(H1)!.state).to.equal('overloaded');
    }
  });
});

describe('route actor - registry writes', () => {
  it('route - an identical registry write publishes no new version', () => {
    const { r, clock } = route(3, 'default', { base_ejection_time: 7 });
    for (let i = 0; i < 15; i++) r.report(H1, 1, 1, clock.now());
    const v = r.flush(clock.now())!.state.version;
    r.applyRegistry(entry(3, 'default', { base_ejection_time: 7 }), clock.advance(10));
    expect(r.isDirty).to.equal(false);
    expect(r.flush(clock.now())).to.equal(undefined);
    expect(r.currentVersion).to.equal(v);
  });

  it('route - every kind of registry change publishes a new version', () => {
    const changes: Array<[string, (e: RegistryEntry) => RegistryEntry]> = [
      ['profile', (e) => ({ ...e, profile: 'lars' })],
      ['params', (e) => ({ ...e, params: { base_ejection_time: 9 } })],
      ['weight', (e) => ({ ...e, hosts: e.hosts.map((h, i) => (i === 0 ? { ...h, weight: 50 } : h)) })],
      ['zone', (e) => ({ ...e, hosts: e.hosts.map((h, i) => (i === 0 ? { ...h, zone: 'z1' } : h)) })],
      ['host added', (e) => ({ ...e, hosts: [...e.hosts, { ip: '10.0.0.9', port: 8000, weight: 100 }] })],
      ['host removed', (e) => ({ ...e, hosts: e.hosts.slice(1) })],
    ];
    for (const [what, change] of changes) {
      const { r, clock } = route(3, 'default');
      const v = r.currentVersion;
      r.applyRegistry(change(entry(3, 'default')), clock.advance(10));
      expect(r.flush(clock.now())?.state.version, what).to.equal(v + 1);
    }
    // re-added while draining
    const { r, clock } = route(3, 'default');
    const e = entry(3, 'default');
    r.applyRegistry({ ...e, hosts: e.hosts.slice(1) }, clock.now());
    r.flush(clock.now());
    r.applyRegistry(e, clock.advance(10));
    const c = r.flush(clock.now())!;
    expect(c.events.map((x) => `${x.from}>${x.to}:${x.reason}`)).to.deep.equal(['draining>healthy:readded']);
  });

  it('route - switching to lars moves probing hosts to overloaded through the machine, with an event', () => {
    const { r, clock, events } = route(5, 'default');
    for (let i = 0; i < 15; i++) r.report(H1, 1, 1, clock.now());
    r.tick(clock.advance(DEFAULT_PARAMS.base_ejection_time * 1000));
    r.report(H1, 0, 1, clock.now());
    expect(r.host(H1)).to.include({ state: 'probing', continSucc: 1 });
    drain(r, clock, events);
    const at = clock.advance(100);
    r.applyRegistry(entry(5, 'lars'), at);
    const h = r.host(H1)!;
    expect(h).to.include({ state: 'overloaded', since: at, reason: 'profile_changed', ejections: 1, ejectUntil: at + LARS_DEFAULTS.overload_timeout * 1000 });
    // Lars' set_overload counters
    expect([h.vsucc, h.verr, h.rsucc, h.rerr, h.continSucc, h.continErr]).to.deep.equal([0, LARS_DEFAULTS.init_err_cnt, 0, 0, 0, 0]);
    const st = drain(r, clock, events)!;
    expect(st.profile).to.equal('lars');
    expect(st.hosts[0]).to.include({ state: 'overloaded', pick_weight: 0 });
    expect(events.at(-1)).to.include({ from: 'probing', to: 'overloaded', reason: 'profile_changed' });
    // from now on Lars' rules: 6 successes bring it back (6/11 > 0.5)
    for (let i = 0; i < 6; i++) r.report(H1, 0, 1, clock.now());
    expect(r.host(H1)!.state).to.equal('healthy');
  });

  it('route - a lars route restored from a published state with a probing host has it overloaded', () => {
    const { r, clock } = route(3, 'default');
    for (let i = 0; i < 15; i++) r.report(H1, 1, 1, clock.now());
    r.tick(clock.advance(DEFAULT_PARAMS.base_ejection_time * 1000));
    const last = r.flush(clock.now())!.state;
    expect(last.hosts[0]!.state).to.equal('probing');
    const r2 = new RouteActor({ modid: 1, cmdid: 2, nodeId: 'n2', entry: entry(3, 'lars'), now: clock.now(), restored: last });
    expect(r2.host(H1)).to.include({ state: 'overloaded', reason: 'timeout', since: last.hosts[0]!.since, ejections: 1 });
    expect(r2.host(H1)!.verr).to.equal(LARS_DEFAULTS.init_err_cnt);
    expect(r2.flush(clock.now())!.events).to.have.length(0);
  });
});

describe('route actor - the route names its strategy', () => {
  it('route - a default-profile route names no strategy unless its entry does; a lars-profile route defaults to lars', () => {
    const clock = new Clock();
    const d = new RouteActor({ modid: 1, cmdid: 2, nodeId: 'n1', entry: entry(3, 'default'), now: clock.now() });
    expect(d.flush(clock.now())!.state.strategy).to.equal(undefined);
    const l = new RouteActor({ modid: 1, cmdid: 2, nodeId: 'n1', entry: entry(3, 'lars'), now: clock.now() });
    expect(l.flush(clock.now())!.state.strategy).to.equal('lars');
    const named = new RouteActor({ modid: 1, cmdid: 2, nodeId: 'n1', entry: { ...entry(3, 'lars'), strategy: 'p2c_ewma' }, now: clock.now() });
    expect(named.flush(clock.now())!.state.strategy).to.equal('p2c_ewma');
  });

  it('route - changing the entry strategy publishes a new version; the same entry again does not', () => {
    const { r, clock } = route(3, 'default');
    const v = r.currentVersion;
    r.applyRegistry({ ...entry(3, 'default'), strategy: 'swrr' }, clock.advance(10));
    const ch = r.flush(clock.now());
    expect(ch?.state.strategy).to.equal('swrr');
    expect(ch?.state.version).to.equal(v + 1);
    r.applyRegistry({ ...entry(3, 'default'), strategy: 'swrr' }, clock.advance(10));
    expect(r.flush(clock.now())).to.equal(undefined);
    r.applyRegistry(entry(3, 'default'), clock.advance(10));
    expect(r.flush(clock.now())?.state.strategy).to.equal(undefined);
  });
});
