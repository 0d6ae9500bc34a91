/**
 * `lars console --console-auth all`: nothing of the routes without the
 * token, over HTTP and on the page; the token typed in the page's header
 * opens the list and the live stream (the real binary, a real nats-server,
 * headless Chromium).
 */
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { chromium, type Browser } from 'playwright-core';
import { startNatsServer, type NatsServer } from '../../src/nats/natsd.ts';
import { lars, larsLive } from '../helpers/cli.ts';
import { freePort } from '../helpers/clickhouse-server.ts';
import { waitFor } from '../helpers/wait.ts';

const CHROMIUM = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';
const TOKEN = 'read-sesame';

describe('console - reading guarded by the token (lars console --console-auth all, Chromium)', function () {
  this.timeout(120_000);
  let server: NatsServer;
  let browser: Browser | undefined;
  before(async () => {
    server = await startNatsServer();
  });
  after(async () => {
    await browser?.close();
    await server.stop();
  });

  it('console - without the token the API answers 401 and the page shows nothing; typed in the header, the routes and the live route appear', async () => {
    const env = { LARS_NATS_URL: server.url, LARS_PREFIX: `t${randomBytes(4).toString('hex')}`, LARS_PARTITIONS: '8' };
    const add = await lars(['route', 'add', '41', '7', '10.41.0.1:80', '10.41.0.2:80'], env);
    expect(add.code, add.stderr).to.equal(0);
    const refused = await lars(['console', '--port', '0', '--console-auth', 'all'], env);
    expect(refused.code, 'all without a token is a configuration error').to.equal(2);
    expect(refused.stderr).to.match(/console-auth.*all.*LARS_CONSOLE_TOKEN/);

    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const p = larsLive(['console', '--port', String(port), '--analytics', 'off', '--console-auth', 'all'], { ...env, LARS_CONSOLE_TOKEN: TOKEN });
    try {
      await waitFor(async () => (await fetch(`${base}/readyz`).catch(() => undefined))?.status === 200, { what: 'console ready', timeoutMs: 30_000, explain: () => p.errLines.join('\n') });
      expect((await fetch(`${base}/api/routes`)).status).to.equal(401);
      expect((await fetch(`${base}/api/routes/41/7`)).status).to.equal(401);
      const withToken = await fetch(`${base}/api/routes`, { headers: { authorization: `Bearer ${TOKEN}` } });
      expect(((await withToken.json()) as { routes: Array<{ route: string }> }).routes.map((r) => r.route)).to.include('41.7');

      browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
      const page = await browser.newPage();
      await page.goto(base);
      await page.locator('#status').filter({ hasText: '401' }).waitFor({ timeout: 10_000 });
      expect(await page.locator('#routes tr[data-route]').count(), 'no route shown without the token').to.equal(0);
      await page.fill('#token', TOKEN);
      await page.dispatchEvent('#token', 'change');
      await page.locator('#routes tr[data-route="41.7"]').waitFor({ timeout: 10_000 });
      expect(await page.locator('#status').innerText()).to.not.include('401');
      // the live stream is an EventSource: it has the cookie, never a header
      await page.goto(`${base}#/route/41/7`);
      await page.locator('#live.live').waitFor({ timeout: 10_000 });
    } finally {
      p.child.kill('SIGTERM');
    }
    expect(await p.exited, p.errLines.join('\n')).to.equal(0);
  });
});
