/**
 * A UDP thread's mirror of the sidecar agent's routes (src/sidecar/pick-mirror.ts):
 * picks from the route states the main thread forwards, a probing host left
 * to the route's one trial thread, reports handed on with Lars' int address,
 * new routes asked of the main thread once and within the route bound.
 */
import { expect } from 'chai';
import { PickMirror, trialThread } from '../../src/sidecar/pick-mirror.ts';
import { HostCache, UDP_COUNTER_SLOTS, udpStatsOf } from '../../src/sidecar/lars-udp.ts';
import { THREAD_COUNTER_SLOTS, THREAD_PICKS, THREAD_REFUSED } from '../../src/sidecar/thread-messages.ts';
import { FEEDBACK_DEFAULTS } from '../../actors/strategies/feedback.ts';
import { encode } from '../../schemas/codec.ts';
import { portsOfThread } from '../../src/sidecar/udp-threads.ts';
import { ArenaReader, ArenaStatus, ArenaWriter } from '../../src/sidecar/route-arena.ts';
import type { RouteState } from '../../schemas/messages.ts';

const state = (version: number, removed = false): RouteState => ({
  v: 1, sender: 'node', modid: 7, cmdid: 1, version, ts: 1, profile: 'default', panic: false, removed, probe_num: 10,
  hosts: [
    { ip: '10.0.0.1', port: 80, weight: 100, zone: null, state: 'probing', reason: 'consecutive_errors', since: 0, pick_weight: 100, trial_agent: 'sc' },
    { ip: '10.0.0.2', port: 80, weight: 100, zone: null, state: 'healthy', reason: 'registered', since: 0, pick_weight: 100 },
  ],
});

function mirror(index: number, threads: number, followed = 0) {
  const asked: string[] = [];
  const reports: number[][] = [];
  const counters = new Float64Array(THREAD_COUNTER_SLOTS);
  const routes = new Int32Array(1);
  routes[0] = followed;
  const m = new PickMirror({
    pick: { agentId: 'sc', strategy: 'swrr', pickZone: undefined, zoneMinHealthyPercent: 70, feedback: FEEDBACK_DEFAULTS, probeTrials: 1 },
    index,
    threads,
    ports: 3,
    maxRoutes: 2,
    counters,
    followed: routes,
    hosts: new HostCache(),
    follow: (a, b) => asked.push(`${a}.${b}`),
    report: (...r) => reports.push(r),
    clock: () => 1000,
  });
  return { m, asked, reports, counters };
}

const ips = (m: PickMirror, n: number): string[] => Array.from({ length: n }, () => {
  const p = m.pick(7, 1);
  return p.ok ? p.ip : p.code;
});

describe('sidecar - a UDP thread mirror of the routes', () => {
  it('mirror - a new route is asked of the main thread once and answers NO_ROUTE until its state comes', () => {
    const { m, asked, counters } = mirror(0, 2);
    expect(ips(m, 3)).to.deep.equal(['NO_ROUTE', 'NO_ROUTE', 'NO_ROUTE']);
    expect(asked).to.deep.equal(['7.1']);
    expect(m.state(7, 1, encode(state(1)))).to.equal(true);
    expect(ips(m, 4).filter((ip) => ip === '10.0.0.2')).to.have.length.at.least(2);
    expect(counters[THREAD_PICKS]).to.equal(4);
    m.state(7, 1, encode(state(2, true)));
    expect(m.pick(7, 1)).to.include({ ok: false, code: 'NO_ROUTE' });
    expect(m.state(7, 1, Uint8Array.of(1, 2, 3)), 'bytes that are not a route state').to.equal(false);
  });

  it('mirror - a probing host is picked by the route\'s trial thread only, at most probeTrials in flight; a report frees it', () => {
    const t = trialThread(7, 1, 3, 3);
    expect(t, "the thread of the route's Lars port, (7 + 1) mod 3").to.equal(2);
    const all = [0, 1, 2].map((i) => mirror(i, 3));
    for (const x of all) x.m.state(7, 1, encode(state(1)));
    const probes = all.map((x) => ips(x.m, 20).filter((ip) => ip === '10.0.0.1').length);
    expect(probes).to.deep.equal([0, 1, 2].map((i) => (i === t ? 1 : 0)));
    // the trial call's report: the thread may send the next one, and the report goes on with Lars' int address
    const x = all[t]!;
    x.m.report(7, 1, { ip: '10.0.0.1', port: 80 }, 0, 1.5);
    expect(x.reports).to.deep.equal([[7, 1, (10 << 24) | 1, 80, 0, 1500]]);
    expect(ips(x.m, 4)).to.include('10.0.0.1');
  });

  it('mirror - the route bound: a new route is refused here once the agent follows the maximum, and forgotten when the main thread refuses it', () => {
    const full = mirror(0, 2, 2);
    expect(full.m.allows(8, 1)).to.equal(false);
    expect(full.counters[THREAD_REFUSED]).to.equal(1);
    const { m, asked, counters } = mirror(0, 2, 1);
    expect(m.allows(8, 1)).to.equal(true);
    m.pick(8, 1);
    expect(asked).to.deep.equal(['8.1']);
    m.refused(8, 1);
    expect(udpStatsOf(counters.subarray(0, UDP_COUNTER_SLOTS)).bad).to.deep.equal({ too_many_routes: 1 });
    expect(m.follower.peek(8, 1), 'forgotten').to.equal(undefined);
    m.pick(8, 1);
    expect(asked, 'asked again on the next request').to.deep.equal(['8.1', '8.1']);
  });

  it('mirror - states written to the route arena are taken on the next pick; a state larger than the arena goes into a new one', () => {
    const { m } = mirror(0, 1);
    const w = new ArenaWriter();
    m.arena(7, 1, w.sab);
    expect(m.pick(7, 1)).to.include({ code: 'NO_ROUTE', message: 'route is loading' });
    w.write(ArenaStatus.unregistered);
    expect(m.pick(7, 1)).to.include({ code: 'NO_ROUTE', message: 'route is not registered' });
    w.write(ArenaStatus.state, encode(state(1)));
    expect(m.pick(7, 1).ok).to.equal(true);
    // 200 hosts: beyond the 4 KiB arena
    const big = { ...state(2), hosts: Array.from({ length: 200 }, (_, i) => ({ ip: `10.1.${i >> 8}.${i & 255}`, port: 80, weight: 100, zone: null, state: 'healthy' as const, reason: 'registered' as const, since: 0, pick_weight: 100 })) };
    const old = w.sab;
    expect(w.write(ArenaStatus.state, encode(big)), 'a new arena').to.equal(true);
    expect(w.sab).to.not.equal(old);
    expect(m.follower.peek(7, 1)!.hosts, 'not yet: the thread reads the old arena until it is given the new one').to.have.length(2);
    m.arena(7, 1, w.sab);
    expect(m.follower.peek(7, 1)!.hosts).to.have.length(200);
    const r = new ArenaReader(w.sab);
    expect(r.read()?.bytes).to.deep.equal(encode(big));
    expect(r.read(), 'nothing new').to.equal(undefined);
  });

  it('threads - the ports each thread reads: a port shared only when there are more threads than ports, every port read', () => {
    const of = (threads: number, ports: number): number[][] => Array.from({ length: threads }, (_, t) => portsOfThread(t, threads, ports));
    expect(of(2, 3)).to.deep.equal([[0, 2], [1]]);
    expect(of(3, 3)).to.deep.equal([[0], [1], [2]]);
    expect(of(4, 3)).to.deep.equal([[0], [1], [2], [0]]);
    expect(of(3, 1)).to.deep.equal([[0], [0], [0]]);
    // the trial thread of a route reads the route's Lars port
    for (const [threads, ports] of [[2, 3], [4, 3], [3, 1], [5, 2]] as const) {
      for (let m = 0; m < 12; m++) expect(portsOfThread(trialThread(m, 1, threads, ports), threads, ports)).to.include((m + 1) % ports);
    }
  });
});
