import { expect } from 'chai';
import { useCluster, hosts, type TestCluster } from '../helpers/cluster.ts';
import { startTraffic } from '../helpers/traffic.ts';
import { waitForEvent } from '../helpers/wait.ts';
import type { RouteState } from '../../schemas/messages.ts';

describe('weights from reported load (real nats-server)', function () {
  this.timeout(60_000);
  const cluster = useCluster();
  let c: TestCluster;
  beforeEach(() => {
    c = cluster();
  });

  it('load weights - utilization reported through the agent reaches the route node, whose pick weights follow it', async () => {
    // no blackout and short periods: the first weights come within a second
    await c.addRoute(12, 1, hosts(3), 'default', { weight_blackout_period: 0, weight_update_period: 0.2 });
    await c.published(12, 1);
    // swrr splits the calls evenly while the weights are equal: the three hosts serve the same rate at utilizations 0.8, 0.4 and 0.2
    const a = await c.agent({ strategy: 'swrr' });
    await a.prepare([[12, 1]]);
    const util: Record<string, number> = { '10.0.0.1:8000': 0.8, '10.0.0.2:8000': 0.4, '10.0.0.3:8000': 0.2 };
    const t = startTraffic(a, 12, 1, (k) => ({ retcode: 0, latencyMs: 2, utilization: util[k] }), { callsPerTick: 10 });
    try {
      const s = await waitForEvent<RouteState>(c.states.subscribe, (x) => x.modid === 12 && x.cmdid === 1 && x.hosts.some((h) => h.pick_weight !== 100), {
        what: 'load-driven pick weights',
        timeoutMs: 15_000,
      });
      const [w1, w2, w3] = s.hosts.map((h) => h.pick_weight) as [number, number, number];
      // qps / utilization at equal rates: 1 : 2 : 4, scaled to the mean registry weight 100 (43, 86, 171)
      expect(w2 / w1).to.be.within(1.8, 2.2);
      expect(w3 / w1).to.be.within(3.6, 4.4);
      expect((w1 + w2 + w3) / 3).to.be.within(99, 101);
    } finally {
      t.stop();
    }
  });
});
