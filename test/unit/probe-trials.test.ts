import { expect } from 'chai';
import { RouteActor, parseCheckpoint } from '../../actors/route.ts';
import { DEFAULT_DEFAULTS } from '../../actors/params.ts';
import { trialWeight } from '../../actors/strategies/hosts.ts';
import { entry } from '../helpers/route-entry.ts';
import type { ReportBatch, RouteHost, RouteState } from '../../schemas/messages.ts';

const T0 = 1_700_000_000_000;
const H1 = '10.0.0.1:8000';
const HOSTS: Array<[string, number]> = Array.from({ length: 4 }, (_, i) => [`10.0.0.${i + 1}`, 8000]);

/** A batch from `sender` with one result per listed host index. */
function batch(sender: string, t: number, results: Array<[host: number, retcode: number]>): ReportBatch {
  return { v: 1, sender, modid: 1, cmdid: 2, ts: t, hosts: HOSTS, reports: results.map(([h, rc]) => [h, rc, 10, 0]) };
}

/** A route of 4 hosts whose first host is probing, with agents a, b, c calling it (c last). */
function probingRoute(params: Record<string, number> = {}): { r: RouteActor; t: number } {
  let t = T0;
  const r = new RouteActor({ modid: 1, cmdid: 2, nodeId: 'n1', entry: entry(4, 'default', params), now: t });
  for (const s of ['a', 'b', 'c']) r.ingest(batch(s, t, [[1, 0], [2, 0]]), t);
  for (let i = 0; i < 15; i++) r.report(H1, 1, 1, t);
  expect(r.host(H1)!.state).to.equal('overloaded');
  t += DEFAULT_DEFAULTS.base_ejection_time * 1000;
  r.tick(t);
  expect(r.host(H1)!.state).to.equal('probing');
  return { r, t };
}

function h1(s: RouteState): RouteHost {
  return s.hosts.find((h) => h.ip === '10.0.0.1')!;
}

describe('probe trials - one agent at a time', () => {
  it('trials - a probing host is given to the agent of the latest batch, named in the route state; the others pick it with weight 0', () => {
    const { r, t } = probingRoute();
    const st = r.flush(t)!.state;
    expect(h1(st)).to.include({ state: 'probing', pick_weight: 10, trial_agent: 'c' });
    expect(trialWeight(h1(st), 'c')).to.equal(10);
    expect(trialWeight(h1(st), 'a')).to.equal(0);
    // healthy hosts name no agent
    expect(st.hosts.slice(1).every((h) => h.trial_agent === undefined)).to.equal(true);
    expect(st.hosts.slice(1).map((h) => trialWeight(h, 'a'))).to.deep.equal([100, 100, 100]);
  });

  it('trials - while the named agent reports the host it keeps it; silent for probe_trial_timeout, another agent takes over', () => {
    const p = probingRoute();
    const r = p.r;
    let t = p.t;
    r.flush(t);
    // c's trial comes back before the timeout: still c's
    t += 1500;
    r.ingest(batch('c', t, [[0, 0]]), t);
    r.ingest(batch('a', t, [[1, 0]]), t);
    t += 1500;
    r.tick(t);
    expect(r.host(H1)!.trialAgent).to.equal('c');
    expect(r.flush(t), 'nothing changed').to.equal(undefined);
    // c silent about the host for 2 s: the latest other sender, a, takes over
    t += 500;
    r.tick(t);
    expect(r.host(H1)!.trialAgent).to.equal('a');
    expect(h1(r.flush(t)!.state).trial_agent).to.equal('a');
  });

  it('trials - leaving probing ends the naming; a route without report batches names nobody', () => {
    const { r, t } = probingRoute();
    for (let i = 0; i < DEFAULT_DEFAULTS.probe_succ_limit; i++) r.report(H1, 0, 1, t);
    expect(r.host(H1)!.state).to.equal('healthy');
    expect(r.host(H1)!.trialAgent).to.equal(undefined);
    expect(h1(r.flush(t)!.state)).not.to.have.property('trial_agent');

    const quiet = new RouteActor({ modid: 1, cmdid: 2, nodeId: 'n1', entry: entry(4, 'default'), now: T0 });
    for (let i = 0; i < 15; i++) quiet.report(H1, 1, 1, T0);
    quiet.tick(T0 + DEFAULT_DEFAULTS.base_ejection_time * 1000);
    expect(quiet.host(H1)!.state).to.equal('probing');
    expect(h1(quiet.flush(T0 + 5000)!.state)).not.to.have.property('trial_agent');
    // the first batch names an agent at the next tick
    quiet.ingest(batch('z', T0 + 5100, [[1, 0]]), T0 + 5100);
    quiet.tick(T0 + 5200);
    expect(h1(quiet.flush(T0 + 5200)!.state).trial_agent).to.equal('z');
  });

  it('trials - in panic, and with probe_trial_timeout 0, every agent may probe', () => {
    const off = probingRoute({ probe_trial_timeout: 0 });
    expect(h1(off.r.flush(off.t)!.state)).not.to.have.property('trial_agent');

    const { r, t } = probingRoute();
    // two more hosts fail: 1 well host of 4 is below the panic threshold
    for (const h of ['10.0.0.2:8000', '10.0.0.3:8000']) for (let i = 0; i < 15; i++) r.report(h, 1, 1, t);
    expect(r.inPanic).to.equal(true);
    const st = r.flush(t)!.state;
    expect(h1(st).state).to.equal('probing');
    expect(h1(st)).not.to.have.property('trial_agent');
  });

  it('trials - a checkpoint keeps the named agent and the senders', () => {
    const { r, t } = probingRoute();
    r.flush(t);
    const cp = parseCheckpoint(JSON.parse(JSON.stringify(r.checkpoint(t))));
    expect(cp.ok).to.equal(true);
    if (!cp.ok) return;
    const b = new RouteActor({ modid: 1, cmdid: 2, nodeId: 'n1', entry: entry(4, 'default'), now: t, checkpoint: cp.value });
    expect(b.host(H1)!.trialAgent).to.equal('c');
    // both hand over to the same agent when c stays silent
    for (const x of [r, b]) x.tick(t + 2000);
    expect(b.host(H1)!.trialAgent).to.equal(r.host(H1)!.trialAgent);
    expect(b.host(H1)!.trialAgent).to.equal('b');
  });
});
