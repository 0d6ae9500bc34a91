import { expect } from 'chai';
import { RouteActor } from '../../actors/route.ts';
import { entry } from '../helpers/route-entry.ts';
import { DEFAULT_PARAMS, resolveParams } from '../../actors/params.ts';
import type { Profile } from '../../schemas/messages.ts';

const T0 = 1_700_000_000_000;
const H1 = '10.0.0.1:8000';

function route(n: number, profile: Profile, params: Record<string, number> = {}): RouteActor {
  const r = new RouteActor({ modid: 1, cmdid: 2, nodeId: 'n1', entry: entry(n, profile, params), now: T0 });
  r.flush(T0);
  return r;
}

describe('guard rails - minimum request volume (min_requests)', () => {
  it('guard - a single failure on an idle host does not eject it at the end of its window (default profile)', () => {
    expect(DEFAULT_PARAMS.min_requests).to.equal(10);
    const r = route(3, 'default');
    r.report(H1, 1, 5, T0 + 1000);
    r.tick(T0 + DEFAULT_PARAMS.idle_timeout * 1000);
    expect(r.host(H1)!.state).to.equal('healthy');
    expect(r.host(H1)!.rerr).to.equal(0); // a fresh window
  });

  it('guard - with min_requests calls in the window the window error rate judges the host', () => {
    const r = route(3, 'default', { min_requests: 10 });
    for (let i = 0; i < 10; i++) r.report(H1, 1, 5, T0 + 1000 + i);
    r.tick(T0 + DEFAULT_PARAMS.idle_timeout * 1000);
    expect(r.host(H1)!.state).to.equal('overloaded');
    expect(r.host(H1)!.reason).to.equal('window_error_rate');
  });

  it('guard - the lars profile keeps Lars: one failed call in a window of one call overloads the host', () => {
    expect(resolveParams('lars').ok && (resolveParams('lars') as { ok: true; params: { min_requests: number } }).params.min_requests).to.equal(1);
    const r = route(3, 'lars');
    r.report(H1, 1, 5, T0 + 1000);
    r.tick(T0 + 15_000);
    expect(r.host(H1)!.state).to.equal('overloaded');
  });
});

describe('guard rails - counters reset when an ejection ends', () => {
  it('guard - a host back from ejection is judged on its trial calls only: reports of calls in flight while it was out do not count', () => {
    const r = route(5, 'default');
    let t = T0;
    for (let i = 0; i < 15; i++) r.report(H1, 1, 5, (t += 1));
    expect(r.host(H1)!.state).to.equal('overloaded');
    // calls that were in flight come back failed while it is out
    for (let i = 0; i < 30; i++) r.report(H1, 1, 5, (t += 1));
    r.tick(T0 + DEFAULT_PARAMS.base_ejection_time * 1000 + 100);
    const h = r.host(H1)!;
    expect(h.state).to.equal('probing');
    expect([h.vsucc, h.verr, h.rsucc, h.rerr, h.continErr, h.continSucc, h.probeErr, h.latCalls]).to.deep.equal([0, 0, 0, 0, 0, 0, 0, 0]);
    // one failed trial is not yet probe_err_limit (2)
    r.report(H1, 1, 5, T0 + DEFAULT_PARAMS.base_ejection_time * 1000 + 200);
    expect(r.host(H1)!.state).to.equal('probing');
  });
});

describe('guard rails - one host may always be ejected (eject_at_least_one)', () => {
  it('guard - default 1 (Envoy): a failing host of a two-host route is ejected and the other takes the traffic', () => {
    expect(DEFAULT_PARAMS.eject_at_least_one).to.equal(1);
    const r = route(2, 'default', { max_ejection_percent: 10 });
    for (let i = 0; i < 15; i++) r.report(H1, 1, 5, T0 + i);
    expect(r.host(H1)!.state).to.equal('overloaded');
    const st = r.flush(T0 + 20)!.state;
    expect(st.panic).to.equal(false); // 1 well host of 2 is not under 50 %
    expect(st.hosts.map((h) => h.pick_weight)).to.deep.equal([0, 100]);
  });

  it('guard - a one-host route ejects its host (the event is published) and panic keeps it pickable', () => {
    const r = route(1, 'default');
    for (let i = 0; i < 15; i++) r.report(H1, 1, 5, T0 + i);
    const ch = r.flush(T0 + 20)!;
    expect(ch.events.map((e) => `${e.from}>${e.to}`)).to.deep.equal(['healthy>overloaded']);
    expect(ch.state.panic).to.equal(true);
    expect(ch.state.hosts[0]!.pick_weight).to.equal(100);
  });

  it('guard - with 0, a route too small for max_ejection_percent ejects nobody: the host is only marked suspect', () => {
    const r = route(3, 'default', { max_ejection_percent: 10, eject_at_least_one: 0 });
    for (let i = 0; i < 15; i++) r.report(H1, 1, 5, T0 + i);
    expect(r.host(H1)!.state).to.equal('healthy');
    expect(r.host(H1)!.suspect).to.equal(true);
    const big = route(10, 'default', { max_ejection_percent: 10, eject_at_least_one: 0 });
    for (let i = 0; i < 15; i++) big.report(H1, 1, 5, T0 + i);
    expect(big.host(H1)!.state).to.equal('overloaded');
  });

  it('guard - the parameters are checked: min_requests at least 1, eject_at_least_one 0 or 1', () => {
    expect(resolveParams('default', { min_requests: 0 }).ok).to.equal(false);
    expect(resolveParams('default', { eject_at_least_one: 2 }).ok).to.equal(false);
    expect(resolveParams('default', { eject_at_least_one: 0 }).ok).to.equal(true);
  });
});
