import { expect } from 'chai';
import { useCluster, hosts } from '../helpers/cluster.ts';
import { startTraffic, type Traffic } from '../helpers/traffic.ts';
import { waitFor, waitForEvent } from '../helpers/wait.ts';
import type { RouteState } from '../../schemas/messages.ts';
import { DEFAULT_PARAMS } from '../../actors/params.ts';

const FAILING = '10.0.0.1:8000';

describe('idle route - no work without traffic (real nats-server, a route node on a clock the test moves)', function () {
  this.timeout(60_000);
  // The node's clock: it stands still unless the test moves it, so virtual minutes pass in a few seconds.
  let clock = Date.now();
  const cluster = useCluster({ clock: () => clock });

  it('idle - agents report, a host goes probing, the agents close: the route publishes at most two more versions, then none for 10 minutes', async () => {
    const c = cluster();
    // probing hosts stay probing however many trials succeed: the test decides when traffic ends
    await c.addRoute(30, 1, hosts(4), 'default', { probe_succ_limit: 1_000_000 });
    await waitFor(() => c.node!.route(30, 1), { what: 'route loaded' });
    const agents = [await c.agent({ agentId: 'agent-f48a', strategy: 'swrr' }), await c.agent({ agentId: 'agent-9fb3', strategy: 'swrr' })];
    for (const a of agents) await a.getRoute(30, 1);
    let ejected = false;
    const traffic: Traffic[] = agents.map((a) => startTraffic(a, 30, 1, (k) => ({ retcode: k === FAILING && !ejected ? 1 : 0, latencyMs: 3 }), { callsPerTick: 5 }));
    const route = (): NonNullable<ReturnType<NonNullable<typeof c.node>['route']>> => c.node!.route(30, 1)!;
    /** Moves the node's clock by `ms` and waits for the node to tick the route there (after a tick, nothing is due before the clock moves again). */
    const advance = async (ms: number): Promise<void> => {
      clock += ms;
      await waitFor(() => route().nextTick() > clock, { what: `a tick at +${ms} ms`, timeoutMs: 5_000 });
    };
    try {
      await waitForEvent(c.events.subscribe, (e) => e.modid === 30 && e.ip === '10.0.0.1' && e.to === 'overloaded', { what: 'host 1 ejected' });
      // from here on host 1 answers: its trials succeed
      ejected = true;
      // the failures reported before must reach the node while host 1 is out, not count against its probe:
      // every agent sends the batch it had open and one more, and the node takes them all
      const open = agents.map((a) => a.stats().batches + 2);
      await waitFor(() => agents.every((a, i) => a.stats().batches >= open[i]!), { what: 'the agents sending on' });
      const made = agents.reduce((n, a) => n + a.stats().batches, 0);
      await waitFor(() => c.node!.stats().batches >= made, { what: 'their batches ingested' });
      await advance(DEFAULT_PARAMS.base_ejection_time * 1000);
      const probing = await waitForEvent<RouteState>(c.states.subscribe, (s) => s.modid === 30 && s.hosts[0]!.state === 'probing' && s.hosts[0]!.trial_agent !== undefined, { what: 'host 1 probing with a trial agent' });
      expect(['agent-f48a', 'agent-9fb3']).to.include(probing.hosts[0]!.trial_agent);
      for (const t of traffic) t.reset();
      await waitFor(() => traffic.some((t) => (t.picks.get(FAILING) ?? 0) > 0), { what: 'a trial call to host 1' });
    } finally {
      for (const t of traffic) t.stop();
    }
    for (const a of agents) await a.close();
    const sent = agents.reduce((n, a) => n + a.stats().batches, 0);
    await waitFor(() => c.node!.stats().batches >= sent, { what: 'every batch ingested', explain: () => `${c.node!.stats().batches} of ${sent}` });
    /** The route's version, once the collector of published states has it too. */
    const published = (): Promise<RouteState> => waitFor(() => (c.latest(30, 1)?.version === route().currentVersion ? c.latest(30, 1) : undefined), { what: 'the latest version collected' });
    const closedAt = (await published()).version;

    // probe_trial_timeout (2 s) twice over, a second at a time: the trial agent is handed over at most once, then dropped
    for (let i = 0; i < 6; i++) await advance(1_000);
    const after = (): RouteState[] => c.states.items.filter((s) => s.modid === 30 && s.cmdid === 1 && s.version > closedAt);
    await waitFor(() => after().some((s) => s.hosts[0]!.trial_agent === undefined), { what: 'the trial agent dropped' });
    const dropped = await published();
    expect(dropped.hosts[0]).to.include({ state: 'probing' });
    expect(dropped.hosts[0]).not.to.have.property('trial_agent');
    expect(dropped.version - closedAt, 'versions after the agents closed').to.be.at.most(2);
    const states = c.node!.stats().published;

    // 10 minutes of the node's time, ten seconds at a time, each step ticked: nothing new
    for (let i = 0; i < 60; i++) await advance(10_000);
    // the node publishes right after a tick that changed the route: before advance() sees the tick
    expect(route().currentVersion).to.equal(dropped.version);
    expect(c.node!.stats().published).to.equal(states);
    expect(c.latest(30, 1)!.version).to.equal(dropped.version);
    expect(route().host(FAILING)!.state).to.equal('probing');
  });
});
