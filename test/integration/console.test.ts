/**
 * The web console in real headless Chromium (Debian's chromium through
 * playwright-core), against a real nats-server, route node, sink and
 * clickhouse-server: the console lists the routes; a host failing in the
 * backend shows as ejected with its reason without a reload; its chart shows
 * the error spike and the ejection mark; drain from the page takes the host
 * out of an agent's picks and records who did it; an action without the
 * token is refused. With LARS_CONSOLE_SCREENSHOTS=<dir> the main views are
 * saved there (docs/img holds the ones the README shows).
 */
import { expect } from 'chai';
import { mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { PARTITIONS, TestCluster, hosts } from '../helpers/cluster.ts';
import { prng, publishBatches, publishEvents, reportBatch, routeEvent } from '../../src/analytics/fixtures.ts';
import type { ReportBatch, ReportTuple, RouteEvent } from '../../schemas/messages.ts';
import { useNatsAndClickHouse, randomDatabase } from '../helpers/clickhouse-server.ts';
import { startTraffic, samplePicks, type Traffic } from '../helpers/traffic.ts';
import { waitFor } from '../helpers/wait.ts';
import { openEngine, type AnalyticsEngine } from '../../src/analytics/engine.ts';
import { runMigrations } from '../../src/analytics/migrate.ts';
import { startSink, type Sink } from '../../src/analytics/sink.ts';
import { ConsoleBackend } from '../../src/console/backend.ts';
import { startConsoleServer, type ConsoleServer } from '../../src/console/server.ts';
import type { Agent } from '../../src/agent/agent.ts';

const M = 5151;
const C = 3;
const BIG = 5152;
const TOKEN = 'sesame';
const CHROMIUM = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';
/** Runs in the page: the id it drew at load (a reload draws a new one). */
const LOAD_ID = '(() => window.__lars.loadId)()';
const SHOTS = process.env['LARS_CONSOLE_SCREENSHOTS'] ?? join(tmpdir(), 'lars-console-shots');

const HISTORY_HOST = '10.52.0.5:8000';

/** 30 minutes of calls on the big route from two callers; one host fails for 3 minutes 20 minutes ago and is ejected, probed and healed. */
function pastIncident(now: number): { batches: ReportBatch[]; events: RouteEvent[] } {
  const rnd = prng(11);
  const hs = hosts(12, '10.52.0.').map((h): [string, number] => [h.ip, h.port]);
  const bad = 4;
  const start = now - 30 * 60_000;
  const failFrom = now - 20 * 60_000;
  const failTo = now - 17 * 60_000;
  const batches: ReportBatch[] = [];
  for (let ts = start; ts < now - 60_000; ts += 10_000) {
    for (const sender of ['checkout', 'search']) {
      const rs: ReportTuple[] = [];
      for (let i = 0; i < 48; i++) {
        const h = i % hs.length;
        const failing = h === bad && ts >= failFrom && ts < failTo;
        rs.push([h, failing && rnd() < 0.7 ? 1 : 0, failing ? 180 + rnd() * 200 : 8 + rnd() * 12 + (h === bad ? 6 : 0), i * 200]);
      }
      batches.push(reportBatch({ modid: BIG, cmdid: 1, ts, sender, hosts: hs, reports: rs }));
    }
  }
  const [ip, port] = hs[bad]!;
  const events = [
    routeEvent({ modid: BIG, cmdid: 1, ts: failFrom + 25_000, ip, port, from: 'healthy', to: 'overloaded', reason: 'error_rate', version: 40, figures: { err_rate: 0.71, calls: 120, latency_ms: 262, ejections: 1, ejection_ms: 30_000 } }),
    routeEvent({ modid: BIG, cmdid: 1, ts: failFrom + 55_000, ip, port, from: 'overloaded', to: 'probing', reason: 'timeout', version: 41, figures: { ejection_ms: 30_000 } }),
    routeEvent({ modid: BIG, cmdid: 1, ts: failFrom + 58_000, ip, port, from: 'probing', to: 'overloaded', reason: 'probe_failure', version: 42, figures: { calls: 2, ejections: 2, ejection_ms: 60_000 } }),
    routeEvent({ modid: BIG, cmdid: 1, ts: failTo + 30_000, ip, port, from: 'overloaded', to: 'probing', reason: 'timeout', version: 43, figures: { ejection_ms: 60_000 } }),
    routeEvent({ modid: BIG, cmdid: 1, ts: failTo + 36_000, ip, port, from: 'probing', to: 'healthy', reason: 'probe_success', version: 44, figures: { consecutive_successes: 5, succ_rate: 1 } }),
  ];
  return { batches, events };
}

describe('web console (headless Chromium, real nats-server, route node, sink and clickhouse-server)', function () {
  this.timeout(120_000);
  let c: TestCluster;
  let engine: AnalyticsEngine;
  let sink: Sink;
  let backend: ConsoleBackend;
  let web: ConsoleServer;
  let browser: Browser;
  let page: Page;
  let agent: Agent;
  let traffic: Traffic | undefined;
  const failing = '10.51.0.1:8000';
  const pageErrors: string[] = [];
  const history = pastIncident(Date.now());

  // Registered before the servers' hooks: mocha runs `after` hooks in order, and everything must close before the servers stop.
  after(async () => {
    traffic?.stop();
    await browser?.close();
    await web?.close();
    await backend?.close();
    await sink?.stop();
    await engine?.close();
    await c?.stop(true);
  });

  const servers = useNatsAndClickHouse();

  before(async () => {
    mkdirSync(SHOTS, { recursive: true });
    const s = servers();
    c = await TestCluster.start(s.nats);
    // A past incident on the big route, published before the route node starts (it follows the
    // subjects live, so it never judges these): the REPORTS and EVENTS streams keep them for the sink.
    await publishBatches(c.nc, c.n, history.batches, PARTITIONS);
    await publishEvents(c.nc, c.n, history.events);
    await c.startNode();
    engine = await openEngine({ url: s.ch.url, database: randomDatabase('lars_console'), requestTimeoutMs: 10_000 });
    await runMigrations(engine);
    sink = await startSink({ nc: c.nc, names: c.n, engine, batch: { maxWaitMs: 100 } });
    await c.addRoute(M, C, hosts(4, '10.51.0.'));
    const big = hosts(12, '10.52.0.');
    big[3] = { ...big[3]!, zone: 'eu-1' };
    await c.addRoute(BIG, 1, big);
    backend = await ConsoleBackend.start({ nc: c.nc, prefix: c.prefix, engine });
    web = await startConsoleServer({ backend, token: TOKEN, port: 0 });
    agent = await c.agent({ strategy: 'swrr' });
    await agent.prepare([
      [M, C],
      [BIG, 1],
    ]);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    page = await browser.newPage({ viewport: { width: 1440, height: 1000 } });
    page.on('pageerror', (e) => pageErrors.push(e.message));
  });

  afterEach(() => {
    expect(pageErrors, 'errors thrown in the page').to.deep.equal([]);
  });

  it('console - lists every route with its hosts by state', async () => {
    await page.goto(web.url);
    await page.waitForSelector(`tr[data-route="${M}.${C}"]`, { timeout: 10_000 });
    await page.waitForSelector(`tr[data-route="${BIG}.1"]`);
    expect(await page.textContent(`tr[data-route="${BIG}.1"]`)).to.contain('12 healthy');
    expect(await page.textContent('#analytics')).to.contain('analytics: clickhouse-server');
  });

  it('console - a host failing in the backend shows as ejected with its reason, live, without a reload', async () => {
    await page.goto(`${web.url}#/route/${M}/${C}`);
    await page.waitForSelector(`#hosts tr[data-host="${failing}"][data-state="healthy"]`, { timeout: 10_000 });
    const loadId = await page.evaluate(LOAD_ID);
    traffic = startTraffic(agent, M, C, (key) => (key === failing ? { retcode: 1, latencyMs: 3 } : { retcode: 0, latencyMs: 12 }), { callsPerTick: 4, tickMs: 10 });
    const row = page.locator(`#hosts tr[data-host="${failing}"][data-state="overloaded"]`);
    await row.waitFor({ timeout: 10_000 });
    const reason = await row.getAttribute('data-reason');
    expect(['consecutive_errors', 'error_rate', 'window_error_rate', 'probe_failure']).to.include(reason);
    expect(await row.locator('td').nth(2).textContent()).to.equal(reason);
    expect(await page.evaluate(LOAD_ID), 'the page was not reloaded').to.equal(loadId);
    // The figures behind the ejection come with the live transition.
    await waitFor(async () => /err_rate|consecutive_errors/.test((await row.locator('td').nth(3).textContent()) ?? ''), { what: 'the figures behind the ejection', timeoutMs: 10_000 });
  });

  it("console - the failing host's chart shows the error spike and the ejection mark (from ClickHouse)", async () => {
    await page.locator(`#hosts tr[data-host="${failing}"] td`).first().click();
    const cap = page.locator('#chart-caption');
    await waitFor(
      async () => {
        const marks = (await cap.getAttribute('data-marks')) ?? '';
        const peak = Number((await cap.getAttribute('data-peak-err-pct')) ?? '0');
        return marks.split(',').includes('overloaded') && peak >= 90;
      },
      { what: 'the chart with the error spike and the ejection mark', timeoutMs: 30_000, intervalMs: 250, explain: async () => `caption: ${await cap.textContent()}` },
    );
    expect(await page.locator('#chart-traffic canvas').count()).to.be.greaterThan(0);
    expect(await page.locator('#chart-latency canvas').count()).to.be.greaterThan(0);
    expect(await cap.textContent()).to.match(/healthy → overloaded \((consecutive_errors|error_rate|window_error_rate)\)/);
    await page.locator('#host-audit tr[data-to="overloaded"]').first().waitFor({ timeout: 10_000 });
    await page.screenshot({ path: join(SHOTS, 'console-route.png'), fullPage: true });
  });

  it("console - drain from the page takes the host out of an agent's picks and records who did it", async () => {
    traffic?.stop();
    const target = '10.51.0.2:8000';
    expect(samplePicks(agent, M, C, 40).has(target)).to.equal(true);
    await page.fill('#user', 'alice');
    await page.fill('#token', TOKEN);
    await page.locator(`#hosts tr[data-host="${target}"] button[data-act="drain"]`).click();
    await page.locator('#status.ok').filter({ hasText: `drain ${target}: done` }).waitFor({ timeout: 10_000 });
    const reg = (await c.registry.get(M, C))!.entry.hosts.find((h) => `${h.ip}:${h.port}` === target)!;
    expect(reg.admin).to.include({ state: 'drained', by: 'console:alice' });
    await page.locator(`#hosts tr[data-host="${target}"][data-state="draining"][data-reason="admin_drain"]`).waitFor({ timeout: 10_000 });
    await waitFor(() => !samplePicks(agent, M, C, 40).has(target), { what: 'the agent no longer picking the drained host' });
    await waitFor(() => c.events.items.some((e) => `${e.ip}:${e.port}` === target && e.reason === 'admin_drain' && e.by === 'console:alice'), { what: 'the drain event, saying who asked' });
    // stored by the sink with who asked, and shown in the audit trail
    await page.locator(`#route-audit tr[data-reason="admin_drain"]`).filter({ hasText: 'console:alice' }).first().waitFor({ timeout: 10_000 });
    await waitFor(
      async () => {
        const r = (await (await fetch(`${web.url}api/routes/${M}/${C}/audit?host=${target}`)).json()) as { source: string; rows: Array<{ reason: string; by: string }> };
        return r.source === 'clickhouse' && r.rows.some((x) => x.reason === 'admin_drain' && x.by === 'console:alice');
      },
      { what: 'the drain in ClickHouse with who asked', timeoutMs: 15_000, intervalMs: 200 },
    );
  });

  it('console - an action without the token is refused, from the page and over HTTP', async () => {
    const target = '10.51.0.3:8000';
    await page.fill('#token', '');
    await page.locator(`#hosts tr[data-host="${target}"] button[data-act="eject"]`).click();
    await page.locator('#status.error').filter({ hasText: '401' }).waitFor({ timeout: 10_000 });
    await page.fill('#token', 'wrong');
    await page.locator(`#hosts tr[data-host="${target}"] button[data-act="eject"]`).click();
    await page.locator('#status.error').filter({ hasText: 'eject 10.51.0.3:8000 refused: 401' }).waitFor({ timeout: 10_000 });
    const r = await fetch(`${web.url}api/routes/${M}/${C}/hosts/${target}/eject`, { method: 'POST', headers: { authorization: 'Bearer nope' }, body: '{}' });
    expect(r.status).to.equal(401);
    const host = (await c.registry.get(M, C))!.entry.hosts.find((h) => `${h.ip}:${h.port}` === target)!;
    expect(host.admin, 'nothing written').to.equal(undefined);
    expect(c.latest(M, C)!.hosts.find((h) => `${h.ip}:${h.port}` === target)!.state).to.equal('healthy');
  });

  it('console - screenshots of the route list and a route of 12 hosts', async () => {
    await c.registry.update(BIG, 1, (cur) => ({ ...cur!, hosts: cur!.hosts.map((h, i) => (i === 5 ? { ...h, admin: { state: 'drained' as const, by: 'console:alice', ts: Date.now() } } : h)) }));
    await page.goto(web.url);
    await page.waitForSelector(`tr[data-route="${M}.${C}"][data-unhealthy]`);
    await waitFor(async () => ((await page.textContent(`tr[data-route="${BIG}.1"]`)) ?? '').includes('1 draining'), { what: 'the drained host in the list' });
    await page.screenshot({ path: join(SHOTS, 'console-routes.png'), clip: { x: 0, y: 0, width: 1440, height: 240 } });
    await page.goto(`${web.url}#/route/${BIG}/1?host=${HISTORY_HOST}`);
    await page.locator('#hosts tr[data-state="draining"]').waitFor({ timeout: 10_000 });
    expect(await page.locator('#hosts tr[data-host]').count()).to.equal(12);
    expect(await page.locator('#hosts tr[data-host]').first().getAttribute('data-state'), 'unhealthy hosts first').to.equal('draining');
    // The past incident, from ClickHouse: the spike and every transition on the time axis.
    const cap = page.locator('#chart-caption');
    await waitFor(async () => ((await cap.getAttribute('data-marks')) ?? '') === 'overloaded,probing,overloaded,probing,healthy' && Number(await cap.getAttribute('data-peak-err-pct')) >= 50, {
      what: 'the past incident on the chart',
      timeoutMs: 30_000,
      intervalMs: 250,
      explain: async () => `caption: ${await cap.textContent()}`,
    });
    await page.screenshot({ path: join(SHOTS, 'console-host.png'), fullPage: true });
  });
});
