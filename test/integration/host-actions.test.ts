/**
 * `lars host` on a real nats-server and route node: a dry run writes
 * nothing; drain takes the host out of the agents' picks and records who did
 * it in the registry and the events; undrain, eject and clear do what they
 * say; weight changes the share.
 */
import { expect } from 'chai';
import { TestCluster, useNatsServer, PARTITIONS, hosts } from '../helpers/cluster.ts';
import { lars } from '../helpers/cli.ts';
import { waitFor } from '../helpers/wait.ts';

const M = 4646;
const C = 2;

describe('lars host: operator actions (real nats-server, route node, the CLI)', function () {
  this.timeout(60_000);
  const server = useNatsServer();
  let c: TestCluster;

  beforeEach(async () => {
    c = await TestCluster.start(server());
    await c.startNode();
    await c.addRoute(M, C, hosts(3, '10.46.0.'));
  });
  afterEach(async () => {
    await c.stop(true);
  });

  it('host - dry run, drain, undrain, eject, clear and weight, each seen by an agent and recorded with who did it', async () => {
    const env = { LARS_NATS_URL: server().url, LARS_PREFIX: c.prefix, LARS_PARTITIONS: String(PARTITIONS) };
    const agent = await c.agent({ strategy: 'swrr' });
    await agent.prepare([[M, C]]);
    const target = '10.46.0.1:8000';
    const picks = (n: number): Set<string> => {
      const out = new Set<string>();
      for (let i = 0; i < n; i++) {
        const h = agent.pick(M, C);
        if (h.ok) out.add(`${h.ip}:${h.port}`);
      }
      return out;
    };
    const host = (): { state: string; reason: string; weight: number } | undefined => c.latest(M, C)?.hosts.find((h) => `${h.ip}:${h.port}` === target);
    expect(picks(30).has(target)).to.equal(true);
    const rev = (await c.registry.get(M, C))!.revision;

    const dry = await lars(['host', 'drain', String(M), String(C), target, '--dry-run', '--by', 'alice'], env);
    expect(dry.code, dry.stderr).to.equal(0);
    expect(dry.stdout).to.match(/→ weight 100, drained by alice\s+\(dry run: nothing written\)/);
    expect((await c.registry.get(M, C))!.revision, 'a dry run writes nothing').to.equal(rev);

    const d = await lars(['host', 'drain', String(M), String(C), target, '--by', 'alice'], env);
    expect(d.code, d.stderr).to.equal(0);
    expect((await c.registry.get(M, C))!.entry.hosts[0]!.admin).to.include({ state: 'drained', by: 'alice' });
    await waitFor(() => host()?.reason === 'admin_drain', { what: 'the drain published' });
    await waitFor(() => !picks(30).has(target), { what: 'the agent no longer picking the drained host' });
    expect(c.events.items.some((e) => `${e.ip}:${e.port}` === target && e.reason === 'admin_drain' && e.to === 'draining' && e.by === 'alice'), 'the event says who asked').to.equal(true);
    const again = await lars(['host', 'drain', String(M), String(C), target], env);
    expect(again.stdout).to.contain('nothing to do');

    await lars(['host', 'undrain', String(M), String(C), target], env);
    await waitFor(() => host()?.state === 'healthy' && host()?.reason === 'admin_undrain', { what: 'undrained' });
    await waitFor(() => picks(30).has(target), { what: 'picked again' });

    await lars(['host', 'eject', String(M), String(C), target, '--by', 'bob'], env);
    await waitFor(() => host()?.state === 'overloaded' && host()?.reason === 'admin_eject', { what: 'ejected' });
    await waitFor(() => !picks(30).has(target), { what: 'not picked while ejected' });
    await lars(['host', 'clear', String(M), String(C), target], env);
    await waitFor(() => host()?.reason === 'admin_clear' && host()?.state !== 'overloaded', { what: 'cleared' });

    const w = await lars(['host', 'weight', String(M), String(C), '10.46.0.2:8000', '400', '--json'], env);
    expect(JSON.parse(w.stdout)).to.include({ changed: true, action: 'weight' });
    await waitFor(() => c.latest(M, C)?.hosts.find((h) => h.port === 8000 && h.ip === '10.46.0.2')?.weight === 400, { what: 'the new weight published' });

    const bad = await lars(['host', 'drain', String(M), String(C), '10.46.0.9:8000'], env);
    expect(bad.code).to.not.equal(0);
    expect(bad.stderr).to.contain('has no host 10.46.0.9:8000');
  });
});
