import { expect } from 'chai';
import { useCluster, type TestCluster } from '../helpers/cluster.ts';
import { startTraffic, samplePicks } from '../helpers/traffic.ts';
import { waitFor } from '../helpers/wait.ts';
import type { RegistryHost, RouteState } from '../../schemas/messages.ts';

const ZONED: RegistryHost[] = [
  { ip: '10.1.0.1', port: 8000, weight: 100, zone: 'a' },
  { ip: '10.1.0.2', port: 8000, weight: 100, zone: 'a' },
  { ip: '10.2.0.1', port: 8000, weight: 100, zone: 'b' },
  { ip: '10.2.0.2', port: 8000, weight: 100, zone: 'b' },
];

function zoneOf(key: string): string {
  return key.startsWith('10.1.') ? 'a' : 'b';
}

function share(picks: Map<string, number>, zone: string): number {
  let n = 0;
  let z = 0;
  for (const [k, c] of picks) {
    if (k.startsWith('!')) continue;
    n += c;
    if (zoneOf(k) === zone) z += c;
  }
  return n === 0 ? 0 : z / n;
}

function zoneStates(s: RouteState | undefined, zone: string): string[] {
  return (s?.hosts ?? []).filter((h) => h.zone === zone).map((h) => h.state);
}

describe('zones: zone-aware picking against a real route node (real nats-server)', function () {
  this.timeout(90_000);
  const cluster = useCluster();
  let c: TestCluster;
  beforeEach(() => {
    c = cluster();
  });

  it('zones - every host of the local zone fails: traffic moves to the other zone, and back after recovery', async () => {
    await c.addRoute(20, 1, ZONED, 'default', { max_ejection_percent: 100, panic_threshold: 0, base_ejection_time: 0.5, max_ejection_time: 2 });
    await waitFor(() => c.node!.route(20, 1), { what: 'route actor' });
    const a = await c.agent({ zone: 'a' });
    const other = await c.agent({ zone: 'b' });
    await a.prepare([[20, 1]]);
    await other.prepare([[20, 1]]);
    let failing = false;
    const t = startTraffic(a, 20, 1, (k) => ({ retcode: failing && zoneOf(k) === 'a' ? 1 : 0, latencyMs: 2 }), { callsPerTick: 20 });
    try {
      // healthy: every call stays in zone a; an agent of zone b stays in b
      await waitFor(() => t.calls >= 500, { what: 'calls' });
      expect(share(t.picks, 'a')).to.equal(1);
      expect(share(samplePicks(other, 20, 1, 1000), 'b')).to.equal(1);

      // zone a fails: its hosts are ejected from the reports alone, and the calls move to zone b
      failing = true;
      await waitFor(async () => zoneStates(await a.getRoute(20, 1), 'a').every((s) => s === 'overloaded'), { what: 'zone a ejected', timeoutMs: 20_000 });
      expect(share(samplePicks(a, 20, 1, 2000), 'b')).to.equal(1);
      t.reset();
      await waitFor(() => t.calls >= 2000 && [...t.picks.values()].reduce((x, y) => x + y, 0) >= 1000, { what: 'calls while zone a fails' });
      // ejections end and probes go back to zone a now and then, but most calls stay in b
      expect(share(t.picks, 'b')).to.be.greaterThan(0.8);

      // zone a recovers: probes succeed, its hosts become healthy, the calls come back
      failing = false;
      await waitFor(async () => zoneStates(await a.getRoute(20, 1), 'a').every((s) => s === 'healthy'), { what: 'zone a healthy again', timeoutMs: 30_000 });
      expect(share(samplePicks(a, 20, 1, 2000), 'a')).to.equal(1);
      t.reset();
      await waitFor(() => [...t.picks.values()].reduce((x, y) => x + y, 0) >= 500, { what: 'calls after recovery' });
      expect(share(t.picks, 'a')).to.be.greaterThan(0.95);
    } finally {
      t.stop();
    }
  });

  it('zones - one host of two down (50 % < 70 %): about 1 - 0.5/0.7 of the calls spill to the other zone', async () => {
    await c.addRoute(21, 1, ZONED, 'default', { max_ejection_percent: 100, panic_threshold: 0, base_ejection_time: 60 });
    await waitFor(() => c.node!.route(21, 1), { what: 'route actor' });
    // swrr keeps sending the failing host its share until the route node ejects it: the ejection comes fast
    const a = await c.agent({ zone: 'a', strategy: 'swrr' });
    await a.prepare([[21, 1]]);
    const t = startTraffic(a, 21, 1, (k) => ({ retcode: k === '10.1.0.1:8000' ? 1 : 0, latencyMs: 2 }), { callsPerTick: 20 });
    try {
      await waitFor(async () => (await a.getRoute(21, 1))?.hosts.find((h) => h.ip === '10.1.0.1')?.state === 'overloaded', { what: 'one host of zone a ejected', timeoutMs: 20_000 });
    } finally {
      t.stop();
    }
    const picks = samplePicks(a, 21, 1, 20_000);
    expect(picks.get('10.1.0.1:8000') ?? 0).to.equal(0);
    expect(share(picks, 'b')).to.be.closeTo(1 - 0.5 / 0.7, 0.02);
    // an agent that opts out of zone-aware picking spreads over every healthy host
    const plain = await c.agent({ zone: 'a', zoneAware: false, strategy: 'swrr' });
    await plain.prepare([[21, 1]]);
    expect(share(samplePicks(plain, 21, 1, 3000), 'b')).to.be.closeTo(2 / 3, 0.01);
  });
});
