import { expect } from 'chai';
import { AgentRoute, type MakeStrategy } from '../../actors/agent-route.ts';
import { createStrategy, seededRandom, StrategyName, type PickView, type Strategy } from '../../actors/strategies/index.ts';
import type { RouteHost, RouteState } from '../../schemas/messages.ts';

function host(i: number, over: Partial<RouteHost> = {}): RouteHost {
  return { ip: `10.0.0.${i}`, port: 8000, weight: 100, zone: null, state: 'healthy', reason: 'registered', since: 0, pick_weight: 100, ...over };
}

let version = 0;
function state(hosts: RouteHost[], over: Partial<RouteState> = {}): RouteState {
  return { v: 1, sender: 'n1', modid: 1, cmdid: 1, version: ++version, ts: 0, profile: 'default', panic: false, removed: false, probe_num: 10, hosts, ...over };
}

/** A maker that records the strategies it made and the views they were given. */
function recording(): { make: MakeStrategy; made: StrategyName[]; views: PickView[] } {
  const made: StrategyName[] = [];
  const views: PickView[] = [];
  const make: MakeStrategy = (name) => {
    made.push(name);
    const s = createStrategy(name, { random: seededRandom(1) });
    return {
      name: s.name,
      update: (v) => {
        views.push(v);
        s.update(v);
      },
      pick: (k) => s.pick(k),
    } satisfies Strategy;
  };
  return { make, made, views };
}

describe('agent route - the host table an agent picks from (SDK and simulator)', () => {
  it('agent route - builds its hosts from a state, found by ip:port and by their pick result', () => {
    const r = new AgentRoute('a1', StrategyName.swrr, recording().make);
    r.apply(state([host(1), host(2, { zone: 'z1', weight: 50, pick_weight: 50 })]));
    expect(r.hosts.map((h) => [h.ip, h.port, h.pickWeight, h.weight, h.zone])).to.deep.equal([
      ['10.0.0.1', 8000, 100, 100, null],
      ['10.0.0.2', 8000, 50, 50, 'z1'],
    ]);
    const h2 = r.hosts[1]!;
    expect(r.byKey.get('10.0.0.2:8000')).to.equal(h2);
    expect(r.byResult.get(h2.result)).to.equal(h2);
    expect(h2.result).to.deep.equal({ ok: true, ip: '10.0.0.2', port: 8000 });
    expect(Object.isFrozen(h2.result)).to.equal(true);
  });

  it('agent route - the same hosts with new states keep their objects, feedback and maps; the strategy sees each state', () => {
    const rec = recording();
    const r = new AgentRoute('a1', StrategyName.p2c, rec.make);
    r.apply(state([host(1), host(2)]));
    const [h1, h2] = r.hosts;
    const maps = [r.byKey, r.byResult];
    h1!.latencyMs = 42;
    h1!.inflight = 3;
    r.apply(state([host(1, { state: 'probing', reason: 'error_rate', pick_weight: 10 }), host(2, { state: 'overloaded', reason: 'latency_outlier', pick_weight: 0 })], { panic: true, probe_num: 4 }));
    expect(r.hosts[0]).to.equal(h1);
    expect(r.hosts[1]).to.equal(h2);
    expect(r.byKey).to.equal(maps[0]);
    expect(r.byResult).to.equal(maps[1]);
    expect([h1!.latencyMs, h1!.inflight]).to.deep.equal([42, 3]);
    expect([h1!.state, h1!.reason, h1!.probing, h1!.pickWeight]).to.deep.equal(['probing', 'error_rate', true, 10]);
    expect([h2!.state, h2!.reason, h2!.probing, h2!.pickWeight]).to.deep.equal(['overloaded', 'latency_outlier', false, 0]);
    const last = rec.views[rec.views.length - 1]!;
    expect([last.hosts, last.panic, last.probeNum]).to.deep.equal([r.hosts, true, 4]);
    expect(rec.views).to.have.length(2);
  });

  it('agent route - a changed host list keeps the hosts still named (with their feedback) and drops the others', () => {
    const r = new AgentRoute('a1', undefined, recording().make);
    r.apply(state([host(1), host(2), host(3)]));
    const [h1, h2] = r.hosts;
    h2!.latencyMs = 7;
    r.apply(state([host(4), host(2), host(1)]));
    expect(r.hosts.map((h) => h.ip)).to.deep.equal(['10.0.0.4', '10.0.0.2', '10.0.0.1']);
    expect(r.hosts[1]).to.equal(h2);
    expect(r.hosts[2]).to.equal(h1);
    expect(r.hosts[1]!.latencyMs).to.equal(7);
    expect(r.byKey.has('10.0.0.3:8000')).to.equal(false);
    expect([...r.byResult.values()]).to.deep.equal(r.hosts);
  });

  it("agent route - a probing host whose trials are another agent's is picked with weight 0; its own trial agent keeps its weight", () => {
    const probing = host(1, { state: 'probing', reason: 'error_rate', pick_weight: 10, trial_agent: 'a2' });
    const mine = new AgentRoute('a2', undefined, recording().make);
    const other = new AgentRoute('a1', undefined, recording().make);
    for (const r of [mine, other]) r.apply(state([probing, host(2)]));
    expect(mine.hosts[0]!.pickWeight).to.equal(10);
    expect(other.hosts[0]!.pickWeight).to.equal(0);
  });

  it("agent route - the agent's strategy over the route's, the route's over the default; a change makes a new strategy and weighs load by the table", () => {
    const rec = recording();
    const r = new AgentRoute('a1', undefined, rec.make);
    expect([r.strategy.name, r.weighsLoad]).to.deep.equal([StrategyName.p2c_ewma, true]);
    r.apply(state([host(1)], { strategy: StrategyName.lars }));
    expect([r.strategy.name, r.weighsLoad]).to.deep.equal([StrategyName.lars, false]);
    r.apply(state([host(1)], { strategy: StrategyName.lars }));
    r.apply(state([host(1)]));
    expect(rec.made).to.deep.equal([StrategyName.p2c_ewma, StrategyName.lars, StrategyName.p2c_ewma]);

    const fixed = recording();
    const o = new AgentRoute('a1', StrategyName.hash, fixed.make);
    o.apply(state([host(1)], { strategy: StrategyName.lars }));
    expect([o.strategy.name, o.weighsLoad]).to.deep.equal([StrategyName.hash, false]);
    expect(fixed.made).to.deep.equal([StrategyName.hash]);
  });
});
