/**
 * The web console in headless Chromium (Debian's chromium through
 * playwright-core), against a real nats-server and route node in this
 * process, the console server beside them (analytics off: the figures are
 * about NATS → page, and the page draws no chart until a host is chosen).
 *
 * - `console_route_page_ms`: a route of 1,000 hosts; from navigation start
 *   to the host table drawn with all 1,000 rows (the page's own
 *   `performance.now()` at the end of its first draw, which counts from
 *   navigation start). A fresh page per trial; the worst trial is the figure.
 * - `console_update_lag_p99_ms`: a host transition in the backend (an
 *   operator drain or undrain carried out by the route node, which stamps the
 *   route state it publishes) → the new version drawn on an open page
 *   (Date.now() in the page when the table is drawn minus the state's `ts`;
 *   one clock, one machine). Measured on the 1,000-host route (every update
 *   redraws 1,000 rows) and on a 10-host route.
 */
import { chromium, type Page } from 'playwright-core';
import type { NatsConnection } from '@nats-io/transport-node';
import { percentile } from '../_common.ts';
import { QUICK, logger, onTeardown } from '../_harness.ts';
import type { Metric } from '../lib.ts';
import { benchServer, freshPrefix } from '../cluster/_nodes.ts';
import { RouteNode } from '../../src/node/route-node.ts';
import { Registry } from '../../src/registry/registry.ts';
import { ConsoleBackend } from '../../src/console/backend.ts';
import { startConsoleServer } from '../../src/console/server.ts';
import { actOnHost } from '../../src/admin/host-actions.ts';
import { tryDecode } from '../../schemas/codec.ts';
import { validateRouteState, type RegistryHost } from '../../schemas/messages.ts';
import type { Names } from '../../schemas/subjects.ts';

const log = logger('console');
const CHROMIUM = process.env['CHROMIUM_PATH'] ?? '/usr/bin/chromium';
const BIG = { modid: 7100, cmdid: 1 };
const SMALL = { modid: 7101, cmdid: 1 };

function manyHosts(n: number): RegistryHost[] {
  return Array.from({ length: n }, (_, i) => ({ ip: `10.71.${Math.floor(i / 250)}.${(i % 250) + 1}`, port: 8000, weight: 100 }));
}

/** Route state `ts` per version as the node publishes them. */
function recordStates(nc: NatsConnection, n: Names, route: { modid: number; cmdid: number }): Map<number, number> {
  const ts = new Map<number, number>();
  nc.subscribe(n.route(route.modid, route.cmdid), {
    callback: (_e, m) => {
      const d = tryDecode(m.data);
      const v = d.ok ? validateRouteState(d.value) : undefined;
      if (v?.ok) ts.set(v.value.version, v.value.ts);
    },
  });
  return ts;
}

/** In the page (expressions, evaluated there): `window.__lars` holds `rendered` (epoch ms per drawn version) and `drawnAt` (performance.now() at the first draw). */
const rows = (count: number): string => `document.querySelectorAll('#hosts tr[data-host]').length === ${count}`;

async function lagRun(page: Page, reg: Registry, route: { modid: number; cmdid: number }, stamps: Map<number, number>, hostsIn: RegistryHost[], transitions: number): Promise<number[]> {
  const lags: number[] = [];
  const h = hostsIn[Math.floor(hostsIn.length / 2)]!;
  for (let i = 0; i < transitions; i++) {
    const before = Math.max(0, ...stamps.keys());
    await actOnHost(reg, { route, addr: { ip: h.ip, port: h.port }, action: i % 2 === 0 ? 'drain' : 'undrain', by: 'bench' });
    const v = await page.waitForFunction(`Object.keys(window.__lars.rendered).map(Number).find((x) => x > ${before})`, undefined, { timeout: 10_000, polling: 50 });
    const version = (await v.jsonValue()) as number;
    const drawn = (await page.evaluate(`window.__lars.rendered[${version}]`)) as number;
    const ts = stamps.get(version);
    if (ts !== undefined) lags.push(drawn - ts);
  }
  return lags;
}

export async function benchConsolePage(): Promise<Metric[]> {
  const { server, nc } = await benchServer('bench-console');
  const n = await freshPrefix(nc, 'bc');
  const reg = await Registry.open(nc, n);
  const big = manyHosts(1000);
  await reg.addHosts(BIG.modid, BIG.cmdid, big, 'bench');
  const small = manyHosts(10);
  await reg.addHosts(SMALL.modid, SMALL.cmdid, small, 'bench');
  const bigStamps = recordStates(nc, n, BIG);
  const smallStamps = recordStates(nc, n, SMALL);
  const node = await RouteNode.start({ nc, nodeId: 'bench-console-node', prefix: n.prefix, partitions: 64 });
  onTeardown(() => node.close());
  const backend = await ConsoleBackend.start({ nc, prefix: n.prefix });
  onTeardown(() => backend.close());
  const web = await startConsoleServer({ backend, port: 0 });
  onTeardown(() => web.close());
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  onTeardown(() => browser.close());
  log(`console: ${server.url}, page ${web.url}, Chromium ${browser.version()}`);

  const TRIALS = QUICK ? 3 : 10;
  const pageMs: number[] = [];
  // one warm-up navigation: Chromium's first page pays for its own start
  for (let i = 0; i <= TRIALS; i++) {
    const page = await browser.newPage({ viewport: { width: 1440, height: 1000 } });
    await page.goto(`${web.url}#/route/${BIG.modid}/${BIG.cmdid}`);
    await page.waitForFunction(`window.__lars.drawnAt > 0 && ${rows(1000)}`, undefined, { timeout: 30_000, polling: 20 });
    const drawnAt = (await page.evaluate('window.__lars.drawnAt')) as number;
    if (i > 0) pageMs.push(drawnAt);
    await page.close();
  }
  log(`route page, 1000 hosts: ${pageMs.map((x) => x.toFixed(0)).join(', ')} ms`);

  const page = await browser.newPage({ viewport: { width: 1440, height: 1000 } });
  const N = QUICK ? 20 : 100;
  await page.goto(`${web.url}#/route/${BIG.modid}/${BIG.cmdid}`);
  await page.waitForFunction(rows(1000), undefined, { timeout: 30_000 });
  const bigLags = await lagRun(page, reg, BIG, bigStamps, big, N);
  await page.goto(`${web.url}#/route/${SMALL.modid}/${SMALL.cmdid}`);
  await page.waitForFunction(rows(10), undefined, { timeout: 30_000 });
  const smallLags = await lagRun(page, reg, SMALL, smallStamps, small, N);
  await page.close();
  const p = (xs: number[], q: number): number => percentile(xs, q);
  log(`update lag, 1000 hosts: p50 ${p(bigLags, 50)} p99 ${p(bigLags, 99)} ms; 10 hosts: p50 ${p(smallLags, 50)} p99 ${p(smallLags, 99)} ms`);
  return [
    { name: 'console_route_page_ms', value: Math.max(...pageMs), unit: 'ms', target: '<= 1000', note: `route of 1,000 hosts, navigation start → table drawn, worst of ${TRIALS} fresh pages (median ${p(pageMs, 50).toFixed(0)}); headless Chromium ${browser.version()}` },
    { name: 'console_update_lag_p99_ms', value: p(bigLags, 99), unit: 'ms', target: '<= 500', note: `${bigLags.length} drains/undrains on the 1,000-host route: route state ts → drawn on the open page (p50 ${p(bigLags, 50)})` },
    { name: 'console_update_lag_small_p99_ms', value: p(smallLags, 99), unit: 'ms', note: `the same on a 10-host route (p50 ${p(smallLags, 50)})` },
  ];
}
