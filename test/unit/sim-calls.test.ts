import { expect } from 'chai';
import { simulate, type SimResult } from '../../src/sim/engine.ts';
import { shipped, scenario } from '../helpers/sim-scenarios.ts';
import { parseScenario, type Scenario } from '../../src/sim/scenario.ts';
import { amplification, changeWindow, goodputPerSec, hedgeExtraPct, recoverySec } from '../../src/sim/call-figures.ts';
import { expandHosts, type HostCall } from '../../src/sim/hosts.ts';


function stats(r: SimResult): NonNullable<SimResult['callStats']> {
  expect(r.callStats).to.not.equal(undefined);
  return r.callStats!;
}

describe('sim - calls under the call policy', () => {
  it('sim calls - a failed attempt is retried on another host within the budget; with one attempt per call every error is a failed call', () => {
    const s = scenario({
      duration_s: 5,
      load: { kind: 'open', rate_per_s: 100, arrivals: 'fixed' },
      hosts: [
        { name: 'bad', latency: { dist: 'fixed', ms: 10 }, errors: { rate: 1, latency_ms: 1 } },
        { name: 'good', latency: { dist: 'fixed', ms: 10 } },
      ],
      call: { max_attempts: 2 },
    });
    const r = simulate(s, { strategy: 'swrr' });
    const c = stats(r);
    expect(r.errors).to.be.greaterThan(0);
    // each error was retried on the good host (the bad one was tried already) and succeeded, unless the budget stopped it
    expect(c.retry + c.stops.budget).to.equal(r.errors);
    expect(c.retry).to.be.greaterThan(0);
    expect(r.failed).to.equal(c.stops.budget);
    expect(r.hosts[0]!.picks).to.equal(r.errors);
    expect(r.hosts[1]!.picks).to.equal(c.first - r.errors + c.retry);
    // with one attempt per call, every error is a failed call
    const single = simulate({ ...s, call: { max_attempts: 1 } }, { strategy: 'swrr' });
    expect(stats(single).retry).to.equal(0);
    expect(single.failed).to.be.at.least(single.errors);
    // the same host ejected after its errors (the retries' picks shift the rotation by at most one call)
    expect(single.errors).to.be.closeTo(r.errors, 1);
    expect(single.failed).to.be.greaterThan(r.failed);
    // one host of two failing is no reason to shed (the route accepts half its calls): nothing refused
    expect(stats(single).stops.shed).to.equal(0);
    expect(single.failed).to.equal(single.errors);
  });

  // The retry storm, shortened: the outage lasts to 15 s and the run to 20 s.
  const storm: Scenario = { ...shipped('retry-storm'), duration_s: 20, hosts: [{ ...shipped('retry-storm').hosts[0]!, changes: [{ at_s: 5, for_s: 10, errors: { rate: 1, latency_ms: 5 } }] }] };

  it('sim calls - a retry storm: the budget and shedding keep attempts near one per call; without them every call makes three', () => {
    const w = changeWindow(storm);
    const withPolicy = simulate(storm, { strategy: 'p2c_ewma' });
    const without = simulate(storm, { strategy: 'p2c_ewma', callPolicy: false });
    expect(amplification(without, w)).to.be.closeTo(3, 0.01);
    expect(amplification(withPolicy, w)).to.be.lessThan(1.2);
    expect(stats(withPolicy).stops.budget).to.be.greaterThan(0);
    expect(stats(withPolicy).stops.shed).to.be.greaterThan(0);
    // the route saw the attempt marks: its accept ratio fell and it shed
    expect(stats(withPolicy).route.maxShed).to.be.greaterThan(0.5);
    // ... and after the hosts recover, calls succeed again within 2 s
    expect(recoverySec(withPolicy, w.toMs)).to.be.at.most(2);
    expect(stats(withPolicy).route.last.shed).to.equal(0);
  });

  it('sim calls - callers that keep no budget: the route counts their retries from the marks and shrinks every agent’s share', () => {
    const without = simulate(storm, { strategy: 'p2c_ewma', callPolicy: false });
    const c = stats(without);
    expect(c.retry).to.be.greaterThan(c.first);
    // 10 % of first attempts is the default; retries far past it shrink the published share
    expect(c.route.minRetryBudget).to.be.lessThan(0.05);
  });

  it('sim calls - hedged fan-out: the request tail shrinks for a few percent more calls, and the loser of each race is cancelled', () => {
    const tail: Scenario = { ...shipped('tail-at-scale'), duration_s: 20, hosts: [{ ...shipped('tail-at-scale').hosts[0]!, count: 20, stalls: { rate: 0.002, latency: { dist: 'fixed', ms: 500 } } }], call: { max_attempts: 2, idempotent: true, fanout: 20 } };
    const hedged = simulate(tail, { strategy: 'p2c_ewma' });
    const plain = simulate(tail, { strategy: 'p2c_ewma', callPolicy: false });
    const h = stats(hedged);
    expect(h.requests).to.equal(stats(plain).requests);
    expect(h.logical).to.equal(h.requests * 20);
    expect(h.hedge).to.be.greaterThan(0);
    expect(hedgeExtraPct(hedged)).to.be.at.most(5);
    expect(stats(plain).hedge).to.equal(0);
    // every answered race cancels the other attempt; no call is lost
    expect(h.cancelled).to.be.greaterThan(0);
    expect(h.cancelled).to.be.at.most(h.hedge);
    expect(hedged.failed).to.equal(0);
    expect(plain.callStats!.requestLatency.p99).to.be.at.least(500);
    expect(h.requestLatency.p99).to.be.lessThan(100);
  });

  it('sim calls - a hedge that lost is aborted at its host: a host that stops frees the slot at once, one that finishes spends its time on nobody', () => {
    // 4 hosts serving 2 calls at once; 1 call in 200 stalls 400 ms: its hedge wins, and the stalled attempt is the loser
    const base = {
      duration_s: 10,
      load: { kind: 'open' as const, rate_per_s: 400, arrivals: 'fixed' as const },
      hosts: [{ count: 4, latency: { dist: 'fixed' as const, ms: 5 }, capacity: 2, stalls: { rate: 0.005, latency: { dist: 'fixed' as const, ms: 400 } } }],
      call: { max_attempts: 2, idempotent: true },
    };
    const stop = simulate(scenario(base), { strategy: 'p2c_ewma' });
    const finish = simulate(scenario({ ...base, hosts: [{ ...base.hosts[0]!, on_cancel: 'finish' }] }), { strategy: 'p2c_ewma' });
    const s = stats(stop);
    const f = stats(finish);
    expect(s.hedge).to.be.greaterThan(10);
    expect(s.cancelled).to.equal(s.hedge);
    // a loser stopped at once costs its host the time until the winner answered; finished, up to its 400 ms
    expect(s.wastedWorkMs).to.be.lessThan(f.wastedWorkMs / 2);
    // finished losers keep their hosts busy: calls queue behind them, more of them wait past the hedge delay and are hedged in turn
    expect(f.hedge).to.be.greaterThan(2 * s.hedge);
    expect(s.hostWorkMs).to.be.lessThan(f.hostWorkMs);
    expect(stop.failed).to.equal(0);
  });

  it('sim calls - a host aborting a queued call takes it out of the queue; one in service frees its slot for the next', () => {
    const h = expandHosts<HostCall>([{ latency: { dist: 'fixed', ms: 10 }, capacity: 1 }], () => () => 0.5)[0]!;
    const a: HostCall = { hostDone: 0, ok: true };
    const b: HostCall = { hostDone: 0, ok: true };
    const c: HostCall = { hostDone: 0, ok: true };
    expect(h.arrive(a, 0)).to.equal(10);
    expect(h.arrive(b, 1)).to.equal(undefined);
    expect(h.arrive(c, 2)).to.equal(undefined);
    expect(h.queued).to.equal(2);
    // b leaves the queue: nothing started, no work spent
    expect(h.cancel(b, 3)).to.deep.equal({ workMs: 0, started: [] });
    expect(h.queued).to.equal(1);
    // a stops after 4 ms of work: c starts at once, not at 10
    const r = h.cancel(a, 4);
    expect(r.workMs).to.equal(4);
    expect(r.started).to.deep.equal([c]);
    expect(c.hostDone).to.equal(14);
    expect(h.busy).to.equal(1);
    expect(h.queued).to.equal(0);
    // cancelling again, or a call that never reached the host, changes nothing
    expect(h.cancel(a, 5)).to.deep.equal({ workMs: 0, started: [] });
    expect(h.cancel({ hostDone: 0, ok: true }, 5)).to.deep.equal({ workMs: 0, started: [] });
    expect(h.finish(14)).to.deep.equal([]);
    expect(h.busy).to.equal(0);
  });

  it('sim calls - a refusal that costs its host service time delays the next call it starts', () => {
    const h = expandHosts<HostCall>([{ latency: { dist: 'fixed', ms: 10 }, capacity: 1, queue_limit: 0, refuse_ms: 2 }], () => () => 0.5)[0]!;
    const a: HostCall = { hostDone: 0, ok: true };
    expect(h.arrive(a, 0)).to.equal(10);
    expect(h.refuses(1)).to.equal(true);
    h.refuse();
    h.refuse();
    expect(h.refused).to.equal(2);
    expect(h.finish(10)).to.deep.equal([]);
    // two refusals, 4 ms of the host's time: the next call takes 14 ms, the one after 10
    const b: HostCall = { hostDone: 0, ok: true };
    expect(h.arrive(b, 10)).to.equal(24);
    h.finish(24);
    expect(h.arrive({ hostDone: 0, ok: true }, 24)).to.equal(34);
  });

  it('sim calls - offered load twice the capacity on hosts whose refusals cost them: without a budget the retries of refusals eat the capacity, with the policy the hosts keep serving', () => {
    const base = shipped('overload-surge');
    const surge: Scenario = { ...base, duration_s: 8, load: { kind: 'open', rate_per_s: 2000, changes: [{ at_s: 2, for_s: 4, rate_per_s: 8000 }] }, hosts: base.hosts.map((g) => ({ ...g, refuse_ms: 1 })) };
    const w = { fromMs: 2000, toMs: 6000 };
    const withPolicy = simulate(surge, { strategy: 'p2c_ewma' });
    const without = simulate(surge, { strategy: 'p2c_ewma', callPolicy: false });
    expect(goodputPerSec(withPolicy, w)).to.be.greaterThan(1.4 * goodputPerSec(without, w));
  });

  it('sim calls - an open load rises for a while: calls arrive at the changed rate from its start to its end', () => {
    const s = scenario({
      duration_s: 6,
      load: { kind: 'open', rate_per_s: 100, arrivals: 'fixed', changes: [{ at_s: 2, for_s: 2, rate_per_s: 300 }] },
      hosts: [{ count: 2, latency: { dist: 'fixed', ms: 1 } }],
      call: { max_attempts: 1 },
    });
    const r = simulate(s, { strategy: 'swrr' });
    const perSecond = stats(r).logicalPerBucket;
    expect(perSecond.map((n) => Math.round(n / 10) * 10)).to.deep.equal([100, 100, 300, 300, 100, 100]);
  });

  it('sim calls - offered load twice the capacity: the policy makes about one attempt a call where callers without it make more than two, for the same goodput', () => {
    const surge: Scenario = { ...shipped('overload-surge'), duration_s: 8, load: { kind: 'open', rate_per_s: 2000, changes: [{ at_s: 2, for_s: 4, rate_per_s: 8000 }] } };
    const w = { fromMs: 2000, toMs: 6000 };
    const withPolicy = simulate(surge, { strategy: 'p2c_ewma' });
    const without = simulate(surge, { strategy: 'p2c_ewma', callPolicy: false });
    expect(amplification(withPolicy, w)).to.be.lessThan(1.2);
    expect(amplification(without, w)).to.be.greaterThan(2);
    // the hosts serve at their capacity (4,000 calls/s) either way
    expect(goodputPerSec(withPolicy, w)).to.be.at.least(3600);
    expect(goodputPerSec(without, w)).to.be.at.least(3600);
    expect(stats(withPolicy).stops.budget).to.be.greaterThan(0);
  });

  it('sim calls - a host at its queue limit refuses a call as overloaded: retried elsewhere, and the host is not ejected for it', () => {
    const s = scenario({
      duration_s: 5,
      load: { kind: 'open', rate_per_s: 200, arrivals: 'fixed' },
      hosts: [
        { name: 'small', latency: { dist: 'fixed', ms: 12 }, capacity: 1, queue_limit: 0 },
        { name: 'big', latency: { dist: 'fixed', ms: 12 } },
      ],
      call: { max_attempts: 2 },
    });
    const r = simulate(s, { strategy: 'swrr' });
    const c = stats(r);
    expect(r.errors).to.be.greaterThan(0);
    expect(r.hosts[0]!.maxQueue).to.equal(0);
    expect(c.retry + c.stops.budget).to.equal(r.errors);
    expect(r.failed).to.equal(c.stops.budget);
    expect(r.stateChanges.filter((x) => x.host === 'small')).to.deep.equal([]);
  });

  it('sim calls - the same seed gives the same figures', () => {
    const a = simulate(storm, { strategy: 'p2c', seed: 3 });
    const b = simulate(storm, { strategy: 'p2c', seed: 3 });
    expect(a.callStats).to.deep.equal(b.callStats);
    expect(a.latency).to.deep.equal(b.latency);
  });

  it('sim calls - a scenario without `call` makes single picks and gives no call figures', () => {
    const r = simulate({ ...storm, call: undefined, duration_s: 2 }, { strategy: 'p2c' });
    expect(r.callStats).to.equal(undefined);
    expect(r.calls).to.be.greaterThan(500);
  });

  it('sim calls - a host stalls a call with its stalls rate', () => {
    const s = scenario({
      calls: 200,
      load: { kind: 'closed', callers: 1 },
      hosts: [{ latency: { dist: 'fixed', ms: 1 }, stalls: { rate: 1, latency: { dist: 'fixed', ms: 40 } } }],
    });
    expect(simulate(s, { strategy: 'swrr' }).latency.max).to.equal(40);
  });

  it('sim calls - a wrong `call` is a scenario error naming the field', () => {
    const r = parseScenario({ name: 't', duration_s: 1, load: { kind: 'open', rate_per_s: 1 }, hosts: [{ latency: { dist: 'fixed', ms: 1 } }], call: { max_attempts: 0 } });
    expect(r.ok).to.equal(false);
    expect(r.ok ? '' : r.error).to.match(/call\.max_attempts/);
  });
});
