import { expect } from 'chai';
import { useCluster, hosts, type TestCluster } from '../helpers/cluster.ts';
import { waitFor, waitForEvent } from '../helpers/wait.ts';
import { CallError, CallStop } from '../../src/agent/agent.ts';
import type { RouteState } from '../../schemas/messages.ts';

const refused = (): Error => Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });

describe('agent call (real nats-server and route node)', function () {
  this.timeout(60_000);
  const cluster = useCluster();
  let c: TestCluster;
  beforeEach(() => {
    c = cluster();
  });

  it("call - a failing host's calls are retried on other hosts, and the route node publishes the budgets it computed from the marked reports", async () => {
    // 1 host of 10 fails: a tenth of the first attempts, within the 10 % retry budget
    await c.addRoute(13, 1, hosts(10));
    await c.published(13, 1);
    const a = await c.agent({ strategy: 'swrr' });
    const served = new Map<string, number>();
    let failedOnBad = 0;
    for (let i = 0; i < 60; i++) {
      const v = await a.call(13, 1, async (h) => {
        if (h.ip === '10.0.0.1') {
          failedOnBad++;
          throw refused();
        }
        served.set(h.ip, (served.get(h.ip) ?? 0) + 1);
        return h.ip;
      });
      expect(v).to.not.equal('10.0.0.1');
    }
    expect(failedOnBad, 'the bad host was tried').to.be.at.least(1);
    expect([...served.values()].reduce((x, y) => x + y, 0)).to.equal(60);
    const s = await waitForEvent<RouteState>(c.states.subscribe, (x) => x.modid === 13 && x.cmdid === 1 && x.retry_budget !== undefined, {
      what: 'a route state with the call policy',
      timeoutMs: 10_000,
    });
    expect(s.retry_budget).to.equal(0.1);
    expect(s.hedge_delay_ms).to.be.a('number');
    await a.close();
  });

  it('call - when every host of the route fails, the retry budget holds two agents together to about one attempt per call, not three', async () => {
    await c.addRoute(13, 2, hosts(3));
    await c.published(13, 2);
    const a = await c.agent();
    const b = await c.agent();
    let attempts = 0;
    const reasons = new Map<string, number>();
    const perAgent = 200;
    const start = Date.now();
    const storm = async (agent: typeof a): Promise<void> => {
      for (let i = 0; i < perAgent; i++) {
        try {
          await agent.call(13, 2, async () => {
            attempts++;
            throw refused();
          });
        } catch (err) {
          expect(err).to.be.instanceOf(CallError);
          const r = (err as CallError).reason;
          reasons.set(r, (reasons.get(r) ?? 0) + 1);
        }
        // a few hundred calls a second: the route node sees the outage within the window
        if (i % 10 === 9) await new Promise((r) => setImmediate(r));
      }
    };
    await Promise.all([storm(a), storm(b)]);
    const calls = 2 * perAgent;
    const seconds = Math.max(1, (Date.now() - start) / 1000);
    // budget: 10 % of first attempts, plus the floor: 3 a second for the route, each agent's own 3 until the route's share reached it
    expect(attempts, `attempts ${attempts} for ${calls} calls in ${seconds.toFixed(1)} s; stops ${JSON.stringify([...reasons])}`).to.be.at.most(calls * 1.1 + 2 * 3 * Math.ceil(seconds) + 2);
    // stopped by the budget, or refused at once once the node says the route sheds
    expect((reasons.get(CallStop.budget) ?? 0) + (reasons.get(CallStop.shed) ?? 0)).to.be.greaterThan(calls / 2);
    await b.close();
    // the node sees every caller's failures and says the route sheds; the agent then fails calls fast
    await waitForEvent<RouteState>(c.states.subscribe, (x) => x.modid === 13 && x.cmdid === 2 && (x.shed ?? 0) > 0, { what: 'the route shedding', timeoutMs: 10_000 });
    const shed = await waitFor(
      async () => {
        try {
          await a.call(13, 2, () => Promise.reject(refused()));
        } catch (err) {
          if ((err as CallError).reason === CallStop.shed) return err as CallError;
        }
        return undefined;
      },
      { what: 'a call refused while the route sheds', timeoutMs: 5_000, intervalMs: 1 },
    );
    expect(shed.attempts).to.have.length(0);
    await a.close();
  });
});
