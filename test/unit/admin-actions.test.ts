import { expect } from 'chai';
import { RouteActor } from '../../actors/route.ts';
import { createStrategy } from '../../actors/strategies/index.ts';
import { entry } from '../helpers/route-entry.ts';
import { applyHostAction, riskOf } from '../../src/admin/host-actions.ts';
import type { Profile, RegistryEntry, RouteEvent, RouteState } from '../../schemas/messages.ts';

const T0 = 1_700_000_000_000;
const H1 = '10.0.0.1:8000';

function marked(n: number, profile: Profile, mark?: 'drained' | 'ejected'): RegistryEntry {
  const e = entry(n, profile);
  if (mark) e.hosts[0] = { ...e.hosts[0]!, admin: { state: mark, by: 'alice', ts: T0 } };
  return e;
}

function setup(profile: Profile): { r: RouteActor; events: RouteEvent[]; flush: (t: number) => RouteState | undefined } {
  const r = new RouteActor({ modid: 1, cmdid: 2, nodeId: 'n1', entry: entry(3, profile), now: T0 });
  r.flush(T0);
  const events: RouteEvent[] = [];
  return {
    r,
    events,
    flush: (t) => {
      const c = r.flush(t);
      if (c) events.push(...c.events);
      return c?.state;
    },
  };
}

const h1 = (s: RouteState | undefined) => s?.hosts.find((h) => `${h.ip}:${h.port}` === H1);

describe("route actor - an operator's actions", () => {
  it('admin - a drained host takes no traffic and stays in the route past drain_time; undrained, it is healthy again', () => {
    const { r, events, flush } = setup('default');
    r.applyRegistry(marked(3, 'default', 'drained'), T0 + 10);
    const s = flush(T0 + 10);
    expect(h1(s)).to.include({ state: 'draining', reason: 'admin_drain', pick_weight: 0 });
    expect(events.at(-1)).to.include({ ip: '10.0.0.1', from: 'healthy', to: 'draining', reason: 'admin_drain', by: 'alice' });
    // an hour of ticks: a removed host would have been dropped after drain_time
    for (let t = 1; t <= 3600; t++) r.tick(T0 + 10 + t * 1000);
    expect(r.host(H1)?.state).to.equal('draining');
    // reports judge nothing while drained
    for (let i = 0; i < 50; i++) r.report(H1, 1, 5, T0 + 3_700_000);
    expect(r.host(H1)?.state).to.equal('draining');
    r.applyRegistry({ ...marked(3, 'default'), updated_by: 'bob' }, T0 + 3_800_000);
    expect(h1(flush(T0 + 3_800_000))).to.include({ state: 'healthy', reason: 'admin_undrain' });
    // who asked: the mark's author for a drain, the entry's last writer for an undrain; the node's own judgements name nobody
    expect(events.at(-1)).to.include({ reason: 'admin_undrain', by: 'bob' });
    expect(events.filter((e) => !e.reason.startsWith('admin_')).every((e) => e.by === undefined)).to.equal(true);
  });

  it('admin - an ejected host stays out (no report, no elapsed time brings it back, not even in panic, no lars probe); cleared, it is probed back', () => {
    for (const profile of ['default', 'lars'] as const) {
      const { r, flush } = setup(profile);
      r.applyRegistry(marked(3, profile, 'ejected'), T0 + 10);
      expect(h1(flush(T0 + 10))).to.include({ state: 'overloaded', reason: 'admin_eject', pick_weight: 0 });
      for (let t = 1; t <= 600; t++) {
        r.report(H1, 0, 5, T0 + 10 + t * 1000);
        r.tick(T0 + 10 + t * 1000);
      }
      expect(r.host(H1)?.state, profile).to.equal('overloaded');
      const st = r.snapshot(T0 + 700_000);
      // lars' strategy never probes it
      const lars = createStrategy('lars');
      const hosts = st.hosts.map((h) => ({ ip: h.ip, port: h.port, pickWeight: h.pick_weight, state: h.state, reason: h.reason, latencyMs: 0, inflight: 0 }));
      lars.update({ hosts, panic: false, probeNum: 1 });
      const picks = new Set(Array.from({ length: 100 }, () => lars.pick()));
      expect(picks.has(0), `${profile}: lars probed the ejected host`).to.equal(false);
      r.applyRegistry(marked(3, profile), T0 + 800_000);
      expect(h1(flush(T0 + 800_000)), profile).to.include({ state: profile === 'lars' ? 'healthy' : 'probing', reason: 'admin_clear' });
    }
  });

  it('admin - with every other host failing (panic), an ejected host still gets no traffic', () => {
    const { r, flush } = setup('default');
    r.applyRegistry(marked(3, 'default', 'ejected'), T0 + 10);
    flush(T0 + 10);
    for (let i = 0; i < 100; i++) for (const k of ['10.0.0.2:8000', '10.0.0.3:8000']) r.report(k, 1, 5, T0 + 20 + i);
    r.tick(T0 + 1000);
    const s = flush(T0 + 1000)!;
    expect(s.panic).to.equal(true);
    expect(h1(s)!.pick_weight).to.equal(0);
  });

  it('admin - a sick host drained and undrained comes back ejected (its ejection goes on), then probing; not healthy', () => {
    const { r, events, flush } = setup('default');
    for (let i = 0; i < 20; i++) r.report(H1, 1, 5, T0 + 20 + i);
    r.tick(T0 + 100);
    const ejected = h1(flush(T0 + 100))!;
    expect(ejected).to.include({ state: 'overloaded', pick_weight: 0 });
    const until = r.host(H1)!.ejectUntil;
    expect(until).to.be.greaterThan(T0 + 1000);
    r.applyRegistry(marked(3, 'default', 'drained'), T0 + 500);
    expect(h1(flush(T0 + 500))).to.include({ state: 'draining', reason: 'admin_drain' });
    r.applyRegistry({ ...marked(3, 'default'), updated_by: 'bob' }, T0 + 1000);
    expect(h1(flush(T0 + 1000))).to.include({ state: 'overloaded', reason: 'admin_undrain', pick_weight: 0 });
    expect(events.at(-1)).to.include({ from: 'draining', to: 'overloaded', reason: 'admin_undrain', by: 'bob' });
    expect(r.host(H1)!.ejectUntil, 'the same ejection').to.equal(until);
    // the ejection ends when it would have: probing, with trial traffic
    r.tick(until - 1);
    expect(r.host(H1)!.state).to.equal('overloaded');
    r.tick(until);
    expect(h1(flush(until))).to.include({ state: 'probing', reason: 'timeout' });
  });

  it('admin - a host drained while probing comes back probing; drained after its ejection ended, probing too', () => {
    const { r, flush } = setup('default');
    for (let i = 0; i < 20; i++) r.report(H1, 1, 5, T0 + 20 + i);
    r.tick(T0 + 100);
    const until = r.host(H1)!.ejectUntil;
    r.tick(until);
    expect(r.host(H1)!.state).to.equal('probing');
    r.applyRegistry(marked(3, 'default', 'drained'), until + 10);
    r.applyRegistry(marked(3, 'default'), until + 20);
    expect(h1(flush(until + 20))).to.include({ state: 'probing', reason: 'admin_undrain' });
    // the lars profile has no probing: an ejection over while drained is healthy again
    const l = setup('lars');
    for (let i = 0; i < 20; i++) l.r.report(H1, 1, 5, T0 + 20 + i);
    l.r.tick(T0 + 100);
    expect(l.r.host(H1)!.state).to.equal('overloaded');
    l.r.applyRegistry(marked(3, 'lars', 'drained'), T0 + 200);
    l.r.applyRegistry(marked(3, 'lars'), T0 + 3_600_000);
    expect(h1(l.flush(T0 + 3_600_000))).to.include({ state: 'healthy', reason: 'admin_undrain' });
  });

  it('admin - the CLI actions: each sets or lifts its mark with who and when, and an action already in force changes nothing', () => {
    const h = { ip: '10.0.0.1', port: 80, weight: 100, zone: 'z' };
    const d = applyHostAction(h, 'drain', 'alice', 5)!;
    expect(d).to.deep.equal({ ...h, admin: { state: 'drained', by: 'alice', ts: 5 } });
    expect(applyHostAction(d, 'drain', 'bob', 6)).to.equal(undefined);
    expect(applyHostAction(d, 'undrain', 'bob', 7)).to.deep.equal(h);
    expect(applyHostAction(h, 'undrain', 'bob', 7)).to.equal(undefined);
    expect(applyHostAction(h, 'clear', 'bob', 7)).to.equal(undefined);
    const e = applyHostAction(h, 'eject', 'carol', 8)!;
    expect(e.admin).to.deep.equal({ state: 'ejected', by: 'carol', ts: 8 });
    expect(applyHostAction(e, 'clear', 'carol', 9)).to.deep.equal(h);
    expect(applyHostAction(h, 'weight', 'dave', 9, 50)).to.deep.equal({ ...h, weight: 50 });
    expect(applyHostAction(h, 'weight', 'dave', 9, 100)).to.equal(undefined);
  });

  it('admin - a drain or eject of the last healthy host, or into panic, is a risk that says what would happen; anything else is not', () => {
    const e = entry(3, 'default');
    const A = { ip: '10.0.0.1', port: 8000 };
    const state = (states: string[], panic = false): RouteState => ({
      v: 1,
      sender: 'n1',
      modid: 1,
      cmdid: 2,
      version: 3,
      ts: T0,
      profile: 'default',
      panic,
      removed: false,
      probe_num: 1,
      hosts: states.map((st, i) => ({ ip: `10.0.0.${i + 1}`, port: 8000, weight: 100, state: st as 'healthy', reason: 'registered', since: T0, pick_weight: st === 'healthy' ? 100 : 0 })),
    });
    // the others sick: the last healthy one
    const last = riskOf(e, state(['healthy', 'overloaded', 'probing']), A, 'drain');
    expect(last).to.equal('10.0.0.1:8000 is the last healthy host of route 1.2 (the others: 10.0.0.2:8000 overloaded, 10.0.0.3:8000 probing): the route goes into panic: its traffic spreads over every host, the failing ones included');
    expect(riskOf(e, state(['healthy', 'overloaded', 'probing']), A, 'eject')).to.equal(last);
    // one of two healthy left out of three: below the default panic_threshold of 50 %
    expect(riskOf(e, state(['healthy', 'healthy', 'overloaded']), A, 'eject')).to.equal(
      'route 1.2 would go into panic (1 of 3 hosts healthy, below panic_threshold 50 %): its traffic spreads over every host, the failing ones included',
    );
    // a drain leaves the active set: 1 of 2 is not below 50 %
    expect(riskOf(e, state(['healthy', 'healthy', 'overloaded']), A, 'drain')).to.equal(undefined);
    expect(riskOf(e, state(['healthy', 'healthy', 'healthy']), A, 'eject')).to.equal(undefined);
    // a host already out, or an action that adds traffic, risks nothing
    expect(riskOf(e, state(['overloaded', 'overloaded', 'overloaded']), A, 'drain')).to.equal(undefined);
    for (const a of ['undrain', 'clear', 'weight'] as const) expect(riskOf(e, state(['healthy', 'overloaded', 'overloaded']), A, a)).to.equal(undefined);
    // an operator's mark counts even before the route node published it
    const marks = entry(2, 'default');
    marks.hosts[1] = { ...marks.hosts[1]!, admin: { state: 'drained', by: 'alice', ts: T0 } };
    expect(riskOf(marks, undefined, A, 'drain')).to.equal('10.0.0.1:8000 is the last healthy host of route 1.2 (the others: 10.0.0.2:8000 drained): callers get no host (NO_HOST)');
    // a route's only host; lars has no panic
    expect(riskOf(entry(1, 'lars'), undefined, A, 'eject')).to.equal("10.0.0.1:8000 is the last healthy host of route 1.2 (it is the route's only host): callers get no host (NO_HOST)");
    const lars = { ...state(['healthy', 'overloaded']), profile: 'lars' as const };
    expect(riskOf(entry(2, 'lars'), lars, A, 'drain')).to.equal('10.0.0.1:8000 is the last healthy host of route 1.2 (the others: 10.0.0.2:8000 overloaded): callers get only the trial calls Lars sends to the hosts it ejected');
  });
});
