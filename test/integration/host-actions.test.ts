/**
 * `lars host` on a real nats-server and route node: a dry run writes
 * nothing; drain takes the host out of the agents' picks and records who did
 * it in the registry and the events; undrain, eject and clear do what they
 * say; weight changes the share. Taking the last healthy host out is
 * refused without --force (the console: without confirming), and a sick
 * host drained and undrained comes back out, not healthy.
 */
import { expect } from 'chai';
import { TestCluster, useNatsServer, PARTITIONS, hosts } from '../helpers/cluster.ts';
import { lars } from '../helpers/cli.ts';
import { waitFor } from '../helpers/wait.ts';
import { existsSync } from 'node:fs';
import { chromium } from 'playwright-core';
import { ConsoleBackend } from '../../src/console/backend.ts';
import { startConsoleServer } from '../../src/console/server.ts';

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

  it('host - draining or ejecting the last healthy host is refused with what would happen, from the CLI and the console, until forced', async () => {
    const env = { LARS_NATS_URL: server().url, LARS_PREFIX: c.prefix, LARS_PARTITIONS: String(PARTITIONS) };
    const [m, cc] = [String(M), String(C)];
    // two of three out by hand: neither is the last, nor puts the route into panic (2 of 3, then 1 of 2 healthy)
    for (const [a, h] of [['eject', '10.46.0.2:8000'], ['drain', '10.46.0.3:8000']] as const) {
      const r = await lars(['host', a, m, cc, h, '--by', 'alice'], env);
      expect(r.code, r.stderr).to.equal(0);
    }
    await waitFor(() => c.latest(M, C)?.hosts.filter((h) => h.state === 'healthy').length === 1, { what: 'one healthy host left' });
    const rev = (await c.registry.get(M, C))!.revision;
    const consequence = '10.46.0.1:8000 is the last healthy host of route 4646.2 (the others: 10.46.0.2:8000 ejected, 10.46.0.3:8000 drained): callers get no host (NO_HOST)';
    for (const a of ['drain', 'eject']) {
      const r = await lars(['host', a, m, cc, '10.46.0.1:8000', '--by', 'bob'], env);
      expect(r.code, `${a}: ${r.stdout}`).to.equal(1);
      expect(r.stderr.trim()).to.equal(`lars host ${a}: ${a} of 10.46.0.1:8000 refused: ${consequence}; to do it anyway: --force`);
    }
    // a dry run says what a real one would need
    const dry = await lars(['host', 'drain', m, cc, '10.46.0.1:8000', '--dry-run'], env);
    expect(dry.code, dry.stderr).to.equal(0);
    expect(dry.stderr).to.contain(`would need --force: ${consequence}`);
    expect((await c.registry.get(M, C))!.revision, 'nothing written').to.equal(rev);

    // the console: 409 with the consequence, then done when the user confirmed (force)
    const backend = await ConsoleBackend.start({ nc: c.nc, prefix: c.prefix });
    const web = await startConsoleServer({ backend, token: 'tok', port: 0 });
    try {
      const post = (body: object): Promise<Response> =>
        fetch(`${web.url}api/routes/${M}/${C}/hosts/10.46.0.1:8000/drain`, { method: 'POST', headers: { authorization: 'Bearer tok', 'content-type': 'application/json' }, body: JSON.stringify(body) });
      const refused = await post({ by: 'carol' });
      expect(refused.status).to.equal(409);
      expect(await refused.json()).to.include({ code: 'LARS_CONFIRMATION_REQUIRED', consequence });
      expect((await c.registry.get(M, C))!.revision, 'nothing written').to.equal(rev);
      const forced = await post({ by: 'carol', force: true });
      expect(forced.status).to.equal(200);
      expect(await forced.json()).to.include({ changed: true, warning: consequence });
    } finally {
      await web.close();
      await backend.close();
    }
    await waitFor(() => c.latest(M, C)?.hosts.find((h) => h.ip === '10.46.0.1')?.reason === 'admin_drain', { what: 'the forced drain published' });
    // undrained, the CLI's --force on the other one
    expect((await lars(['host', 'undrain', m, cc, '10.46.0.1:8000'], env)).code).to.equal(0);
    await waitFor(() => c.latest(M, C)?.hosts.find((h) => h.ip === '10.46.0.1')?.state === 'healthy', { what: 'undrained' });
    const forced = await lars(['host', 'eject', m, cc, '10.46.0.1:8000', '--force'], env);
    expect(forced.code, forced.stderr).to.equal(0);
    expect(forced.stderr).to.contain(`done with --force: ${consequence}`);
    await waitFor(() => c.latest(M, C)?.hosts.find((h) => h.ip === '10.46.0.1')?.reason === 'admin_eject', { what: 'the forced eject published' });
  });

  it('host - a host ejected for its errors, drained and undrained, comes back ejected (then probing), not healthy', async () => {
    const env = { LARS_NATS_URL: server().url, LARS_PREFIX: c.prefix, LARS_PARTITIONS: String(PARTITIONS) };
    // a long ejection: the undrain comes well before it ends
    await c.addRoute(M, C + 1, hosts(3, '10.47.0.'), 'default', { base_ejection_time: 30 });
    const agent = await c.agent({ strategy: 'swrr' });
    await agent.prepare([[M, C + 1]]);
    const target = '10.47.0.1:8000';
    const host = () => c.latest(M, C + 1)?.hosts.find((h) => `${h.ip}:${h.port}` === target);
    await waitFor(() => host() !== undefined, { what: 'route published' });
    for (let i = 0; i < 20; i++) agent.report(M, C + 1, { ip: '10.47.0.1', port: 8000 }, 1, 5);
    await waitFor(() => host()?.state === 'overloaded', { what: 'ejected for its errors' });
    expect((await lars(['host', 'drain', String(M), String(C + 1), target], env)).code).to.equal(0);
    await waitFor(() => host()?.state === 'draining', { what: 'drained' });
    expect((await lars(['host', 'undrain', String(M), String(C + 1), target], env)).code).to.equal(0);
    await waitFor(() => host()?.reason === 'admin_undrain', { what: 'undrained' });
    expect(host()).to.include({ state: 'overloaded', pick_weight: 0 });
    expect(c.events.items.some((e) => `${e.ip}:${e.port}` === target && e.from === 'draining' && e.to === 'overloaded' && e.reason === 'admin_undrain')).to.equal(true);
  });

  it("host - the console's page asks before draining the last healthy host, saying what would happen; no: nothing done, yes: drained", async function () {
    const CHROMIUM = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';
    if (!existsSync(CHROMIUM)) this.skip();
    const env = { LARS_NATS_URL: server().url, LARS_PREFIX: c.prefix, LARS_PARTITIONS: String(PARTITIONS) };
    for (const h of ['10.46.0.2:8000', '10.46.0.3:8000']) expect((await lars(['host', 'drain', String(M), String(C), h], env)).code).to.equal(0);
    await waitFor(() => c.latest(M, C)?.hosts.filter((h) => h.state === 'healthy').length === 1, { what: 'one healthy host left' });
    const backend = await ConsoleBackend.start({ nc: c.nc, prefix: c.prefix });
    const web = await startConsoleServer({ backend, token: 'tok', port: 0 });
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    try {
      const page = await browser.newPage();
      const asked: string[] = [];
      let answer = false;
      page.on('dialog', (d) => {
        asked.push(d.message());
        void (answer ? d.accept() : d.dismiss());
      });
      await page.goto(`${web.url}#/route/${M}/${C}`);
      await page.fill('#user', 'dora');
      await page.fill('#token', 'tok');
      const drain = page.locator('#hosts tr[data-host="10.46.0.1:8000"] button[data-act="drain"]');
      await drain.click();
      await page.locator('#status.error').filter({ hasText: 'drain 10.46.0.1:8000: not done' }).waitFor({ timeout: 10_000 });
      expect(asked).to.have.length(1);
      expect(asked[0]).to.contain('10.46.0.1:8000 is the last healthy host of route 4646.2').and.contain('callers get no host (NO_HOST)').and.contain('drain anyway?');
      expect((await c.registry.get(M, C))!.entry.hosts[0]!.admin, 'nothing written').to.equal(undefined);
      answer = true;
      await drain.click();
      await page.locator('#status.ok').filter({ hasText: 'drain 10.46.0.1:8000: done' }).waitFor({ timeout: 10_000 });
      expect(asked).to.have.length(2);
      expect((await c.registry.get(M, C))!.entry.hosts[0]!.admin).to.include({ state: 'drained', by: 'console:dora' });
    } finally {
      await browser.close();
      await web.close();
      await backend.close();
    }
  });
});
