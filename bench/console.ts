/**
 * Benchmark group `console`: `npm run bench -- console [--quick]`.
 *
 * - `metrics_overhead_pct`: report ingest throughput lost by turning a route
 *   node's Prometheus metrics on (`lars node --http <port>`, metrics on by
 *   default), while a scraper reads /metrics every second (Prometheus
 *   usually scrapes every 15 s: this is the harder case). One route node in
 *   this process, publishers in their own processes (the `core` group's
 *   ingest run, bench/core/ingest.ts); runs alternate off, on, off, on, ...
 *   so that a drift of the machine falls on both sides; the figure compares
 *   the medians.
 * - `console_route_page_ms` and `console_update_lag_p99_ms`: the web console
 *   in headless Chromium (bench/console/page.ts).
 *
 * `BENCH_CONSOLE_ONLY=page|metrics` runs one part.
 */
import { cpus, loadavg } from 'node:os';
import { epochMs, percentile } from './_common.ts';
import { QUICK, logger, runGroup } from './_harness.ts';
import { record, type Metric } from './lib.ts';
import { setupCore } from './core/setup.ts';
import { ingestRun } from './core/ingest.ts';
import { serveNodeHttp } from '../src/cli/metrics.ts';
import { silentLogger } from '../src/lib/log.ts';
import { benchConsolePage } from './console/page.ts';

const log = logger('console');


const ONLY = process.env['BENCH_CONSOLE_ONLY'];

await runGroup('console', async () => {
  const tStart = epochMs();
  const loadStart = loadavg()[0]!;
  const metrics: Metric[] = [{ name: 'console_load_1m_start', value: loadStart, unit: 'load', note: `1-min load average at start (${cpus().length} cores)` }];
  if (ONLY !== 'metrics') metrics.push(...(await benchConsolePage()));
  if (ONLY !== 'page') metrics.push(...(await benchMetricsOverhead()));
  metrics.push({ name: 'console_bench_seconds', value: Math.round((epochMs() - tStart) / 1000), unit: 's', note: 'whole group' });
  record('console', metrics);
});

async function benchMetricsOverhead(): Promise<Metric[]> {
  const ctx = await setupCore();
  const PAIRS = QUICK ? 1 : 3;
  const off: number[] = [];
  const on: number[] = [];
  let scrapes = 0;
  let sampleLines = 0;
  // warm-up: the first run of a process is slower
  await ingestRun(ctx, 'core', 1);
  for (let i = 0; i < PAIRS; i++) {
    const a = await ingestRun(ctx, 'core', 1);
    off.push(a.ingest);
    log(`metrics off: ${Math.round(a.ingest).toLocaleString('en-US')} reports/s`);
    const web = await serveNodeHttp({ settings: { port: 0, metrics: true }, nc: ctx.nc, log: silentLogger(), labels: { node: 'bench' } });
    await web.attach(ctx.node);
    let stop = false;
    const scraper = (async () => {
      while (!stop) {
        const r = await fetch(`http://127.0.0.1:${web.port}/metrics`);
        const text = await r.text();
        scrapes++;
        sampleLines = text.split('\n').filter((l) => l.length > 0 && !l.startsWith('#')).length;
        await new Promise((res) => setTimeout(res, 1000));
      }
    })();
    try {
      const b = await ingestRun(ctx, 'core', 1);
      on.push(b.ingest);
      log(`metrics on (scraped every 1 s): ${Math.round(b.ingest).toLocaleString('en-US')} reports/s`);
    } finally {
      stop = true;
      await scraper;
      await web.close();
    }
  }
  await ctx.node.close();
  const mOff = percentile(off, 50);
  const mOn = percentile(on, 50);
  const pct = ((mOff - mOn) / mOff) * 100;
  log(`metrics overhead: ${pct.toFixed(2)} % (median off ${Math.round(mOff).toLocaleString('en-US')}, on ${Math.round(mOn).toLocaleString('en-US')} reports/s; ${scrapes} scrapes of ${sampleLines} samples)`);
  return [
    { name: 'metrics_overhead_pct', value: pct, unit: '%', target: '<= 5', note: `report ingest lost with a route node's metrics on and /metrics scraped every 1 s; median of ${PAIRS} runs each, alternating; negative = within noise` },
    { name: 'metrics_overhead_ingest_off_per_sec', value: mOff, unit: 'reports/s', note: `runs: ${off.map((x) => Math.round(x)).join(', ')}` },
    { name: 'metrics_overhead_ingest_on_per_sec', value: mOn, unit: 'reports/s', note: `runs: ${on.map((x) => Math.round(x)).join(', ')}; ${sampleLines} samples per scrape` },
  ];
}
