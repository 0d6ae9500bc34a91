import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { startNatsServer, type NatsServer } from '../../src/nats/natsd.ts';
import { parsePrometheusText, sampleValue } from '../helpers/metrics-parse.ts';
import { larsLive } from '../helpers/cli.ts';
import { waitFor } from '../helpers/wait.ts';
import { freePort } from '../helpers/clickhouse-server.ts';


async function status(url: string): Promise<number> {
  try {
    return (await fetch(url)).status;
  } catch {
    return 0;
  }
}

describe('metrics - lars node --http (real nats-server, the lars command)', function () {
  this.timeout(60_000);
  let server: NatsServer;
  before(async () => {
    server = await startNatsServer();
  });
  after(async () => {
    await server.stop();
  });

  it('metrics - lars node --http <port> serves health and metrics until stopped', async () => {
    const port = await freePort();
    const prefix = `t${randomBytes(4).toString('hex')}`;
    const p = larsLive(['node', '--http', String(port), '--own', '0-7', '--partitions', '8'], { LARS_NATS_URL: server.url, LARS_PREFIX: prefix, LARS_NODE_ID: 'cli-node' });
    try {
      await waitFor(async () => (await status(`http://127.0.0.1:${port}/readyz`)) === 200, { what: 'lars node ready', timeoutMs: 30_000 });
      const m = parsePrometheusText(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text());
      expect(sampleValue(m, 'lars_partitions_owned', { node: 'cli-node' })).to.equal(8);
      expect(sampleValue(m, 'lars_nats_connected')).to.equal(1);
      expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).to.equal(200);
    } finally {
      p.child.kill('SIGTERM');
    }
    expect(await p.exited, p.errLines.join('\n')).to.equal(0);
    expect(p.errLines.join('\n')).to.include('stopping HTTP server');
    expect(await status(`http://127.0.0.1:${port}/healthz`)).to.equal(0);
  });

  it('console - lars node --http serves the web console on the same port; actions need the token', async () => {
    const port = await freePort();
    const prefix = `t${randomBytes(4).toString('hex')}`;
    const env = { LARS_NATS_URL: server.url, LARS_PREFIX: prefix, LARS_NODE_ID: 'cli-node', LARS_PARTITIONS: '8' };
    const p = larsLive(['node', '--http', String(port), '--own', '0-7'], { ...env, LARS_CONSOLE_TOKEN: 'open-sesame' });
    const base = `http://127.0.0.1:${port}`;
    try {
      await waitFor(async () => (await status(`${base}/readyz`)) === 200, { what: 'lars node ready', timeoutMs: 30_000 });
      const add = larsLive(['route', 'add', '61', '2', '10.61.0.1:80', '10.61.0.2:80'], env);
      expect(await add.exited, add.errLines.join('\n')).to.equal(0);
      const page = await fetch(`${base}/`);
      expect(page.status).to.equal(200);
      expect(await page.text()).to.contain('<title>Lars console</title>');
      const list = await waitFor(
        async () => {
          const r = (await (await fetch(`${base}/api/routes`)).json()) as { routes: Array<{ route: string; published: boolean }>; analytics: { on: boolean } };
          return r.routes.some((x) => x.route === '61.2' && x.published) ? r : undefined;
        },
        { what: 'the route in the console', timeoutMs: 15_000 },
      );
      expect(list.analytics.on, 'no ClickHouse server configured').to.equal(false);
      const act = (auth?: string) => fetch(`${base}/api/routes/61/2/hosts/10.61.0.1:80/drain`, { method: 'POST', headers: auth ? { authorization: `Bearer ${auth}` } : {}, body: '{"by":"bob"}' });
      expect((await act()).status).to.equal(401);
      const ok = await act('open-sesame');
      expect(ok.status).to.equal(200);
      expect(((await ok.json()) as { after: { admin: { by: string } } }).after.admin.by).to.equal('console:bob');
      expect((await fetch(`${base}/metrics`)).status, 'metrics still served').to.equal(200);
    } finally {
      p.child.kill('SIGTERM');
    }
    expect(await p.exited, p.errLines.join('\n')).to.equal(0);
  });
});
