/**
 * The web console in real headless Chromium (Debian's chromium through
 * playwright-core), against a real nats-server, route node, sink and
 * clickhouse-server: the console lists the routes; a host failing in the
 * backend shows as ejected with its reason without a reload; its chart shows
 * the error spike and the ejection mark; drain from the page takes the host
 * out of an agent's picks and records who did it; an action without the
 * token is refused; a host with five quiet minutes gets zero buckets there
 * (endpoint and chart data); the acting user is named alike after every
 * action, from the page and the CLI; the audit trails fit at 1,280, 1,400
 * and 1,920 px; `lars dev` serves the console on its own embedded engine.
 * Screenshots go to LARS_CONSOLE_SCREENSHOTS=<dir> (default a temp dir;
 * docs/img holds the ones the README shows).
 */
import { expect } from 'chai';
import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { PARTITIONS, TestCluster, hosts } from '../helpers/cluster.ts';
import { prng, publishBatches, publishEvents, reportBatch, routeEvent } from '../helpers/analytics-fixtures.ts';
import type { ReportBatch, ReportTuple, RouteEvent } from '../../schemas/messages.ts';
import { useNatsAndClickHouse, randomDatabase, freePort } from '../helpers/clickhouse-server.ts';
import { startTraffic, samplePicks, type Traffic } from '../helpers/traffic.ts';
import { waitFor } from '../helpers/wait.ts';
import { openEngine, type AnalyticsEngine } from '../../src/analytics/engine.ts';
import { runMigrations } from '../../src/analytics/migrate.ts';
import { startSink, type Sink } from '../../src/analytics/sink.ts';
import { ConsoleBackend } from '../../src/console/backend.ts';
import { startConsoleServer, type ConsoleServer } from '../../src/console/server.ts';
import type { HostSeries } from '../../src/console/queries.ts';
import type { Agent } from '../../src/agent/agent.ts';
import { lars, larsLive } from '../helpers/cli.ts';

const M = 5151;
const C = 3;
const BIG = 5152;
const TOKEN = 'sesame';
const CHROMIUM = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';
/** Runs in the page: the id it drew at load (a reload draws a new one). */
const LOAD_ID = '(() => window.__lars.loadId)()';
const SHOTS = process.env['LARS_CONSOLE_SCREENSHOTS'] ?? join(tmpdir(), 'lars-console-shots');

const HISTORY_HOST = '10.52.0.5:8000';

/**
 * Runs in the page: what of the audit tables sticks out of its box or is clipped (the page wider than the
 * window, a box whose content is wider than it, a cell past the box's right edge or with hidden text).
 */
const AUDIT_OVERFLOW = `(() => {
  const out = [];
  if (document.documentElement.scrollWidth > window.innerWidth) out.push('page ' + document.documentElement.scrollWidth + ' px wide in ' + window.innerWidth);
  for (const table of document.querySelectorAll('table.audit')) {
    const box = table.parentElement;
    const right = box.getBoundingClientRect().right;
    const where = box.id || box.className;
    if (box.scrollWidth > box.clientWidth + 1) out.push(where + ': content ' + box.scrollWidth + ' px in ' + box.clientWidth);
    for (const cell of table.querySelectorAll('th, td')) {
      const r = cell.getBoundingClientRect();
      if (r.right > right + 1) out.push(where + ': "' + cell.innerText.slice(0, 30) + '" ends at ' + Math.round(r.right) + ' past ' + Math.round(right));
      if (cell.scrollWidth > cell.clientWidth + 1) out.push(where + ': "' + cell.innerText.slice(0, 30) + '" clipped (' + cell.scrollWidth + ' in ' + cell.clientWidth + ')');
    }
  }
  return out;
})()`;

/** Runs in the page: what the host's charts were given, and the time axis they show. */
const CHART = '(() => { const c = window.__lars.chart; return c && { host: c.host, traffic: c.traffic, latency: c.latency, x: c.x() }; })()';

/** A route whose one host had calls, then none for five minutes, then calls again. */
const HOLE = 5153;
const HOLE_HOST = '10.53.0.1:8000';
const BUCKET_MS = 10_000;

/**
 * HOLE_HOST's calls, aligned on the chart's 10 s buckets: 9 calls/s from 12 to 9 minutes ago, none for
 * five minutes, 3 calls/s from 4 to 2 minutes ago, none since. Latency 10 ms, then 30 ms.
 */
function callsWithAHole(now: number): { batches: ReportBatch[]; start: number; holeFrom: number; holeTo: number; end: number; total: number } {
  const start = Math.floor(now / BUCKET_MS) * BUCKET_MS - 12 * 60_000;
  const holeFrom = start + 3 * 60_000;
  const holeTo = holeFrom + 5 * 60_000;
  const end = holeTo + 2 * 60_000;
  const hs: Array<[string, number]> = [['10.53.0.1', 8000]];
  const batches: ReportBatch[] = [];
  const every10s = (from: number, to: number, perSec: number, latency: number): void => {
    for (let ts = from; ts < to; ts += BUCKET_MS) {
      const n = perSec * 10;
      const rs: ReportTuple[] = Array.from({ length: n }, (_, i) => [0, 0, latency, Math.floor((i * BUCKET_MS) / n)]);
      batches.push(reportBatch({ modid: HOLE, cmdid: 1, ts, sender: 'checkout', hosts: hs, reports: rs }));
    }
  };
  every10s(start, holeFrom, 9, 10);
  every10s(holeTo, end, 3, 30);
  return { batches, start, holeFrom, holeTo, end, total: batches.reduce((k, b) => k + b.reports.length, 0) };
}

/** The series endpoint's answer, as the console's query gives it. */
type Series = Omit<HostSeries, 'marks'>;

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
  const hole = callsWithAHole(Date.now());

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
    await publishBatches(c.nc, c.n, hole.batches, PARTITIONS);
    await publishEvents(c.nc, c.n, history.events);
    await c.startNode();
    engine = await openEngine({ url: s.ch.url, database: randomDatabase('lars_console'), requestTimeoutMs: 10_000 });
    await runMigrations(engine);
    sink = await startSink({ nc: c.nc, names: c.n, engine, batch: { maxWaitMs: 100 } });
    await c.addRoute(M, C, hosts(4, '10.51.0.'));
    const big = hosts(12, '10.52.0.');
    big[3] = { ...big[3]!, zone: 'eu-1' };
    await c.addRoute(BIG, 1, big);
    await c.addRoute(HOLE, 1, hosts(1, '10.53.0.'));
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

  it('console - a host that had no calls for five minutes: the series has zero buckets there, and the chart draws them as zero calls and no latency', async () => {
    const url = `${web.url}api/routes/${HOLE}/1/series?host=${HOLE_HOST}&minutes=60`;
    let s: Series | undefined;
    await waitFor(
      async () => {
        s = (await (await fetch(url)).json()) as Series;
        return s.calls.reduce((a, b) => a + b, 0) === hole.total;
      },
      { what: 'every call of the host stored', timeoutMs: 30_000, intervalMs: 250, explain: async () => `calls: ${s?.calls.reduce((a, b) => a + b, 0)} of ${hole.total}` },
    );
    const series = s!;
    expect(series.bucketS).to.equal(BUCKET_MS / 1000);
    expect(series.t[0]).to.equal(series.fromS);
    // dense: every bucket from the window's start to the last whole one
    series.t.forEach((t, i) => i > 0 && expect(t - series.t[i - 1]!, `bucket ${i}`).to.equal(series.bucketS));
    expect(series.t.at(-1)).to.be.at.least(Math.floor(series.toS / series.bucketS) * series.bucketS - series.bucketS);
    for (const k of ['calls', 'errors', 'p50', 'p99'] as const) expect(series[k], k).to.have.length(series.t.length);
    const at = (fromMs: number, toMs: number): number[] => series.t.flatMap((t, i) => (t * 1000 >= fromMs && t * 1000 < toMs ? [i] : []));
    const inHole = at(hole.holeFrom, hole.holeTo);
    expect(inHole, 'the five minutes without calls').to.have.length(30);
    for (const i of inHole) expect([series.calls[i], series.errors[i], series.p50[i], series.p99[i]], `bucket at ${series.t[i]}`).to.deep.equal([0, 0, null, null]);
    for (const i of at(hole.start, hole.holeFrom)) expect([series.calls[i], series.p50[i]]).to.deep.equal([90, 10]);
    for (const i of at(hole.holeTo, hole.end)) expect([series.calls[i], series.p50[i]]).to.deep.equal([30, 30]);
    const after = at(hole.end, Date.now());
    expect(after.length, 'the quiet minutes since').to.be.at.least(10);
    for (const i of after) expect([series.calls[i], series.p50[i]]).to.deep.equal([0, null]);

    // What the page hands uPlot: zero calls/s and null latency (a gap: spanGaps off) across the hole, the x axis the whole window.
    await page.goto(`${web.url}#/route/${HOLE}/1?host=${HOLE_HOST}`);
    const chart = await waitFor(
      async () => {
        const c = (await page.evaluate(CHART)) as { host: string; traffic: Array<Array<number | null>>; latency: Array<Array<number | null>>; x: number[] } | undefined;
        return c?.host === HOLE_HOST && c.traffic[0]!.length >= series.t.length ? c : undefined;
      },
      { what: "the host's chart drawn", timeoutMs: 15_000, intervalMs: 100 },
    );
    const [tx, perSec, errPct] = chart.traffic;
    const [lx, p50, p99] = chart.latency;
    expect(lx).to.deep.equal(tx);
    // the time axis spans the window (the page fetched its own series: its window may have moved on a bucket)
    expect(chart.x[0]).to.equal(tx![0]);
    expect(chart.x[1]).to.be.at.least(series.toS);
    expect(tx![0]! - series.fromS).to.be.within(0, 2 * series.bucketS);
    const idx = (t: number): number => tx!.indexOf(t);
    for (const i of inHole) {
      const j = idx(series.t[i]!);
      expect(j, `bucket ${series.t[i]} on the chart`).to.be.at.least(0);
      expect([perSec![j], errPct![j], p50![j], p99![j]]).to.deep.equal([0, null, null, null]);
    }
    for (const i of at(hole.start, hole.holeFrom)) expect(perSec![idx(series.t[i]!)]).to.equal(9);
    for (const i of at(hole.holeTo, hole.end)) expect(perSec![idx(series.t[i]!)]).to.equal(3);
    await page.screenshot({ path: join(SHOTS, 'console-hole.png'), fullPage: true });
  });

  it('console - the acting user is named as the route event names them after every action, from the page and the CLI', async () => {
    const target = '10.51.0.2:8000'; // drained by console:alice above
    await page.goto(`${web.url}#/route/${M}/${C}`);
    await page.fill('#user', 'alice');
    await page.fill('#token', TOKEN);
    await page.locator(`#hosts tr[data-host="${target}"] button[data-act="undrain"]`).click();
    await page.locator('#status.ok').filter({ hasText: `undrain ${target}: done (by console:alice)` }).waitFor({ timeout: 10_000 });
    await waitFor(() => c.events.items.some((e) => `${e.ip}:${e.port}` === target && e.reason === 'admin_undrain' && e.by === 'console:alice'), { what: 'the undrain event, by console:alice' });
    await page.locator(`#route-audit tr[data-reason="admin_undrain"]`).filter({ hasText: 'console:alice' }).first().waitFor({ timeout: 10_000 });

    const other = '10.51.0.4:8000';
    const env = { LARS_NATS_URL: servers().nats.url, LARS_PREFIX: c.prefix, LARS_PARTITIONS: String(PARTITIONS) };
    const d = await lars(['host', 'drain', String(M), String(C), other, '--by', 'carol', '--force'], env);
    expect(d.code, d.stderr).to.equal(0);
    expect(d.stdout).to.contain('drained by carol');
    await page.locator(`#hosts tr[data-host="${other}"]`).filter({ hasText: 'drained by carol' }).waitFor({ timeout: 10_000 });
    const u = await lars(['host', 'undrain', String(M), String(C), other, '--by', 'carol'], env);
    expect(u.code, u.stderr).to.equal(0);
    expect(u.stdout).to.match(/drained by carol → weight 100 \(by carol\)/);
    await waitFor(() => c.events.items.some((e) => `${e.ip}:${e.port}` === other && e.reason === 'admin_undrain' && e.by === 'carol'), { what: 'the undrain event, by carol' });
    await page.locator(`#route-audit tr[data-reason="admin_undrain"]`).filter({ hasText: 'carol' }).first().waitFor({ timeout: 10_000 });
  });

  for (const width of [1280, 1400, 1920]) {
    it(`console - at ${width} px nothing of the audit trails is cut off`, async () => {
      const p = await browser.newPage({ viewport: { width, height: 1000 } });
      p.on('pageerror', (e) => pageErrors.push(e.message));
      try {
        await p.goto(`${web.url}#/route/${BIG}/1?host=${HISTORY_HOST}`);
        await p.locator('#route-audit table.audit tr[data-to]').first().waitFor({ timeout: 10_000 });
        await p.locator('#host-audit table.audit tr[data-to]').first().waitFor({ timeout: 10_000 });
        await p.locator('#chart-caption[data-marks]').waitFor({ timeout: 30_000 });
        const overflow = (await p.evaluate(AUDIT_OVERFLOW)) as string[];
        await p.screenshot({ path: join(SHOTS, `console-layout-${width}.png`), fullPage: true });
        expect(overflow).to.deep.equal([]);
        expect(await p.locator('#route-audit table.audit th').allInnerTexts()).to.deep.equal(['time', 'host', 'from → to', 'reason', 'version', 'by', 'figures']);
      } finally {
        await p.close();
      }
    });
  }
});

describe('lars dev serves the console (npm start)', function () {
  this.timeout(120_000);
  let run: ReturnType<typeof larsLive> | undefined;
  let browser: Browser | undefined;

  after(async () => {
    await browser?.close();
    if (run && run.child.exitCode === null) {
      run.child.kill('SIGINT');
      await run.exited;
    }
  });

  it("console - during lars dev the demo's console draws the failing host's calls and ejection from the demo's embedded ClickHouse", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'lars-dev-console-'));
    const natsPort = await freePort();
    run = larsLive(['dev', '--plain', '--speed', '4', '--duration', '90', '--console', '0', '--data-dir', dir, '--nats', `nats://127.0.0.1:${natsPort}`]);
    const r = run;
    const line = await waitFor(() => r.lines.find((l) => l.startsWith('console: ')), {
      what: "the demo's console line",
      timeoutMs: 60_000,
      intervalMs: 100,
      explain: () => `stdout: ${r.lines.join('\n')}\nstderr: ${r.errLines.join('\n')}`,
    });
    const m = /^console: (http:\/\/127\.0\.0\.1:\d+\/)#\/route\/1\/1 {2}actions: token (\S+)$/.exec(line);
    expect(m, line).to.not.equal(null);
    const [, base, token] = m!;
    const routes = (await (await fetch(`${base}api/routes`)).json()) as { routes: Array<{ route: string }>; analytics: { on: boolean; engine?: string } };
    expect(routes.analytics.on, 'analytics on, on the demo engine').to.equal(true);
    expect(routes.analytics.engine).to.match(/^chdb .* at /);
    expect(routes.routes.map((x) => x.route)).to.include('1.1');
    // The failing host's picture, from the demo's engine: its calls and its ejection.
    const host = '127.0.0.1:9003';
    await waitFor(
      async () => {
        const s = (await (await fetch(`${base}api/routes/1/1/series?host=${host}`)).json()) as { calls: number[]; marks: Array<{ to: string }> };
        return s.calls.some((n) => n > 0) && s.marks.some((x) => x.to === 'overloaded');
      },
      { what: "the failing host's calls and ejection in the demo's console", timeoutMs: 60_000, intervalMs: 500 },
    );
    // `lars stats` on the demo's data directory asks the demo's console, since the demo holds the engine.
    const st = await lars(['stats', 'errors', '--route', '1.1', '--since', '10m', '--json', '--data-dir', dir]);
    expect(st.code, st.stderr).to.equal(0);
    expect(st.stderr).to.contain(`the embedded ClickHouse is held by lars dev; asking its console at ${base}`);
    const failing = (JSON.parse(st.stdout) as Array<{ host: string; port: number; errors: number }>).find((x) => x.port === 9003);
    expect(failing?.errors, 'the failing host has errors').to.be.greaterThan(0);
    // `lars console` beside the demo cannot open the engine, and says whose console has the pictures.
    const beside = larsLive(['console', '--port', '0', '--data-dir', dir, '--nats', `nats://127.0.0.1:${natsPort}`]);
    try {
      const said = await waitFor(() => beside.lines.find((l) => l.startsWith('console at ')), {
        what: "lars console's start line",
        timeoutMs: 30_000,
        intervalMs: 100,
        explain: () => `stdout: ${beside.lines.join('\n')}\nstderr: ${beside.errLines.join('\n')}`,
      });
      expect(said).to.contain(`analytics off: the embedded ClickHouse is held by lars dev, whose own console at ${base} has the pictures`);
    } finally {
      beside.child.kill('SIGINT');
      await beside.exited;
    }
    // The printed token works for actions (a dry run: the demo goes on unchanged).
    const dry = await fetch(`${base}api/routes/1/1/hosts/127.0.0.1:9001/drain`, { method: 'POST', headers: { authorization: `Bearer ${token}` }, body: JSON.stringify({ by: 'dave', dryRun: true }) });
    expect(dry.status).to.equal(200);
    expect(await dry.json()).to.include({ dryRun: true, by: 'console:dave' });
    // And in the browser, as README's picture shows it.
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    const page = await browser.newPage({ viewport: { width: 1440, height: 1000 } });
    await page.goto(`${base}#/route/1/1?host=${host}`);
    const cap = page.locator('#chart-caption');
    await waitFor(async () => ((await cap.getAttribute('data-marks')) ?? '').split(',').includes('overloaded') && Number(await cap.getAttribute('data-calls')) > 0, {
      what: "the demo host's chart",
      timeoutMs: 30_000,
      intervalMs: 250,
      explain: async () => `caption: ${await cap.textContent()}`,
    });
    await page.screenshot({ path: join(SHOTS, 'console-dev.png'), fullPage: true });
    r.child.kill('SIGINT');
    expect(await r.exited, r.errLines.join('\n')).to.equal(0);
  });
});
