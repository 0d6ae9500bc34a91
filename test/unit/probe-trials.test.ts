import { expect } from 'chai';
import { RouteActor, parseCheckpoint } from '../../actors/route.ts';
import { DEFAULT_PARAMS } from '../../actors/params.ts';
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

/**
 * Agents a, b, c each send a batch of successes on hosts 2 and 3 at `t` (c
 * last): agents calling the route now. As an agent's batches do, it lists
 * only the hosts it reports: not the probing host 1.
 */
function calling(r: RouteActor, t: number, senders = ['a', 'b', 'c']): void {
  for (const s of senders) r.ingest({ v: 1, sender: s, modid: 1, cmdid: 2, ts: t, hosts: HOSTS.slice(1, 3), reports: [[0, 0, 10, 0], [1, 0, 10, 0]] }, t);
}

/** A route of 4 hosts whose first host is probing, with agents a, b, c calling it (c last, 100 ms before). */
/** The call policy's versions are left out of these counts (tested in call-policy.test.ts). */
const NO_POLICY = { call_policy: 0 };

function probingRoute(params: Record<string, number> = {}): { r: RouteActor; t: number } {
  let t = T0;
  const r = new RouteActor({ modid: 1, cmdid: 2, nodeId: 'n1', entry: entry(4, 'default', { ...NO_POLICY, ...params }), now: t });
  calling(r, t);
  for (let i = 0; i < 15; i++) r.report(H1, 1, 1, t);
  expect(r.host(H1)!.state).to.equal('overloaded');
  t += DEFAULT_PARAMS.base_ejection_time * 1000;
  calling(r, t - 100);
  r.tick(t);
  expect(r.host(H1)!.state).to.equal('probing');
  return { r, t };
}

/** Ticks `r` every 100 ms (a node's default tick) through `ms` from `t`, flushing after each tick; returns the versions published. */
function idle(r: RouteActor, t: number, ms: number): RouteState[] {
  const out: RouteState[] = [];
  for (let now = t + 100; now <= t + ms; now += 100) {
    r.tick(now);
    const ch = r.flush(now);
    if (ch) out.push(ch.state);
  }
  return out;
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
    // c silent about the host for 2 s while a calls the route: a takes over
    r.ingest(batch('a', t, [[1, 0]]), t);
    t += 500;
    r.tick(t);
    expect(r.host(H1)!.trialAgent).to.equal('a');
    expect(h1(r.flush(t)!.state).trial_agent).to.equal('a');
  });

  it('trials - leaving probing ends the naming; a route without report batches names nobody', () => {
    const { r, t } = probingRoute();
    for (let i = 0; i < DEFAULT_PARAMS.probe_succ_limit; i++) r.report(H1, 0, 1, t);
    expect(r.host(H1)!.state).to.equal('healthy');
    expect(r.host(H1)!.trialAgent).to.equal(undefined);
    expect(h1(r.flush(t)!.state)).not.to.have.property('trial_agent');

    const quiet = new RouteActor({ modid: 1, cmdid: 2, nodeId: 'n1', entry: entry(4, 'default'), now: T0 });
    for (let i = 0; i < 15; i++) quiet.report(H1, 1, 1, T0);
    quiet.tick(T0 + DEFAULT_PARAMS.base_ejection_time * 1000);
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
    const b = new RouteActor({ modid: 1, cmdid: 2, nodeId: 'n1', entry: entry(4, 'default', NO_POLICY), now: t, checkpoint: cp.value });
    expect(b.host(H1)!.trialAgent).to.equal('c');
    // both hand over to the same agent when c stays silent while a and b call
    for (const x of [r, b]) {
      calling(x, t + 1900, ['a', 'b']);
      x.tick(t + 2000);
    }
    expect(b.host(H1)!.trialAgent).to.equal(r.host(H1)!.trialAgent);
    expect(b.host(H1)!.trialAgent).to.equal('b');
  });
});

describe('probe trials - no work without traffic', () => {
  it('trials - agents that stop calling: the trial agent is handed over at most once, then dropped, then no version for 10 minutes', () => {
    const p = probingRoute();
    const r = p.r;
    let t = p.t;
    expect(h1(r.flush(t)!.state).trial_agent).to.equal('c');
    // c sends a trial and closes; a and b call a while longer, then close too
    t += 500;
    r.ingest(batch('c', t, [[0, 0]]), t);
    t += 500;
    calling(r, t, ['a', 'b']);
    const versions = idle(r, t, 10 * 60_000);
    // c silent about the host for 2 s after its trial, b heard since: b takes over; 2 s on nobody is heard: dropped
    expect(versions.map((v) => h1(v).trial_agent ?? null)).to.deep.equal(['b', null]);
    expect(versions.map((v) => v.ts - t)).to.deep.equal([1500, 3500]);
    expect(versions.every((v) => h1(v).state === 'probing')).to.equal(true);
    expect(r.host(H1)!.state).to.equal('probing');
  });

  it('trials - a host that becomes probing after its agents stopped names nobody and publishes only its change of state', () => {
    let t = T0;
    const r = new RouteActor({ modid: 1, cmdid: 2, nodeId: 'n1', entry: entry(4, 'default', NO_POLICY), now: t });
    calling(r, t);
    for (let i = 0; i < 15; i++) r.report(H1, 1, 1, t);
    r.flush(t);
    const versions = idle(r, t, 10 * 60_000);
    expect(versions).to.have.length(1);
    expect(h1(versions[0]!)).to.include({ state: 'probing' });
    expect(h1(versions[0]!)).not.to.have.property('trial_agent');
    // the next agent to report is named at the next tick
    t += 10 * 60_000;
    r.ingest(batch('d', t, [[1, 0]]), t);
    r.tick(t + 100);
    expect(h1(r.flush(t + 100)!.state).trial_agent).to.equal('d');
  });

  it('trials - the only agent calling keeps the host while its picks miss it; dropped once it stops calling', () => {
    const p = probingRoute();
    const r = p.r;
    let t = p.t;
    r.flush(t);
    // c calls the route every 500 ms for 10 s, never the probing host; a and b were last heard before the probe began
    const versions: RouteState[] = [];
    for (let i = 0; i < 20; i++) {
      t += 500;
      calling(r, t, ['c']);
      versions.push(...idle(r, t, 400));
    }
    expect(versions, 'c keeps the host').to.deep.equal([]);
    expect(r.host(H1)!.trialAgent).to.equal('c');
    const after = idle(r, t, 60_000);
    expect(after.map((v) => h1(v).trial_agent ?? null)).to.deep.equal([null]);
    expect(after[0]!.ts - t).to.equal(2000);
  });

  it('trials - an agent last heard before the trial agent went silent is not named: the host is left without one', () => {
    const p = probingRoute();
    const r = p.r;
    let t = p.t;
    r.flush(t);
    // only c calls from now on, then stops; a and b (heard 100 ms before the probe) never come back
    t += 1000;
    calling(r, t, ['c']);
    const versions = idle(r, t, 60_000);
    expect(versions.map((v) => h1(v).trial_agent ?? null)).to.deep.equal([null]);
  });

  it('trials - a checkpoint carries when the senders were heard; one without (an older node) counts them as not heard lately', () => {
    const { r, t } = probingRoute();
    r.flush(t);
    const cp = r.checkpoint(t);
    expect(cp).to.include({ last_sender: 'c', last_heard: t - 100, prev_sender: 'b', prev_heard: t - 100 });
    const old: Record<string, unknown> = JSON.parse(JSON.stringify(cp)) as Record<string, unknown>;
    delete old['last_heard'];
    delete old['prev_heard'];
    const parsed = parseCheckpoint(old);
    expect(parsed.ok).to.equal(true);
    if (!parsed.ok) return;
    const b = new RouteActor({ modid: 1, cmdid: 2, nodeId: 'n1', entry: entry(4, 'default', NO_POLICY), now: t, checkpoint: parsed.value });
    expect(b.host(H1)!.trialAgent).to.equal('c');
    // c silent for 2 s, and nobody is known to have been heard lately: dropped, not handed to b
    const versions = idle(b, t, 60_000);
    expect(versions.map((v) => h1(v).trial_agent ?? null)).to.deep.equal([null]);
    expect(parseCheckpoint({ ...cp, last_heard: 'x' })).to.deep.equal({ ok: false, error: 'last_heard must be a number' });
  });

  it('trials - in panic a trial agent changes without a version (agents are not told one)', () => {
    const { r, t } = probingRoute();
    for (const h of ['10.0.0.2:8000', '10.0.0.3:8000']) for (let i = 0; i < 15; i++) r.report(h, 1, 1, t);
    expect(r.inPanic).to.equal(true);
    r.flush(t);
    // c silent; a and b call: the trial agent moves, unseen
    calling(r, t + 1900, ['a', 'b']);
    r.tick(t + 2000);
    expect(r.host(H1)!.trialAgent).to.equal('b');
    expect(r.flush(t + 2000)).to.equal(undefined);
  });
});
