/**
 * The picture of a simulation: one panel per strategy, each with the traffic
 * share per host over time (stacked, 1 s buckets), the callers' p50 and p99
 * latency over time (log scale, the timeout drawn) and the failed calls per
 * second, with the scenario's changes marked across the panel; for callers
 * under the call policy also the attempts per logical call over time (in the
 * failed panel, on its own scale) and a line of call figures. Plain SVG,
 * built by hand; hosts that change or fail in the scenario get warm colours,
 * the others cool ones, so the host to watch stands out.
 */
import type { SimResult } from './engine.ts';
import { changeMarks, type Scenario } from './scenario.ts';

const W = 1200;
const LEFT = 70;
const RIGHT = 150;
const PLOT_W = W - LEFT - RIGHT;
const SHARE_H = 170;
const LAT_H = 130;
const FAIL_H = 60;
const GAP = 26;
const PANEL_H = 44 + SHARE_H + GAP + LAT_H + GAP + FAIL_H + 40;
const HEAD_H = 70;

const WARM = ['#d62728', '#ff7f0e', '#e377c2', '#bcbd22', '#8c564b'];
const COOL = ['#1f77b4', '#6baed6', '#2ca02c', '#98df8a', '#17becf', '#9edae5', '#7f7f7f', '#c7c7c7', '#393b79', '#9467bd', '#c5b0d5', '#637939'];

function esc(s: string): string {
  return s.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;').replaceAll('"', '&quot;');
}

const f1 = (v: number) => (Number.isFinite(v) ? String(Math.round(v * 10) / 10) : '–');

/** Host colours: warm for hosts whose group has changes or errors, cool for the rest, in host order. */
function hostColours(s: Scenario): string[] {
  const out: string[] = [];
  let w = 0;
  let c = 0;
  for (const g of s.hosts) {
    const notable = (g.changes?.length ?? 0) > 0 || (g.errors?.rate ?? 0) > 0;
    for (let k = 0; k < (g.count ?? 1); k++) out.push(notable ? WARM[w++ % WARM.length]! : COOL[c++ % COOL.length]!);
  }
  return out;
}

function niceStep(span: number, target: number): number {
  const raw = span / target;
  const p = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 5, 10]) if (m * p >= raw) return m * p;
  return 10 * p;
}

/** Attempts per logical call per bucket over the failed panel (its own scale, 0 to the attempts allowed), and a line of call figures under the panel. */
function callMarks(r: SimResult, scenario: Scenario, at: { xOf: (s: number) => number; failTop: number; bottom: number }): string[] {
  const c = r.callStats!;
  const o: string[] = [];
  const bucketS = r.timeline.bucketMs / 1000;
  const top = Math.max(1, scenario.call?.max_attempts ?? 3);
  const y = (v: number) => at.failTop + FAIL_H - (Math.min(v, top) / top) * FAIL_H;
  const pts: string[] = [];
  c.logicalPerBucket.forEach((n, b) => {
    if (n > 0) pts.push(`${at.xOf((b + 0.5) * bucketS).toFixed(1)},${y((c.attemptsPerBucket[b] ?? 0) / n).toFixed(1)}`);
  });
  const right = LEFT + PLOT_W;
  if (pts.length > 0) o.push(`<polyline points="${pts.join(' ')}" fill="none" stroke="#9467bd" stroke-width="1.6"/>`);
  o.push(`<text x="${right + 4}" y="${at.failTop + 8}" fill="#9467bd">${top} attempts/call</text><text x="${right + 4}" y="${at.failTop + FAIL_H + 4}" fill="#9467bd">0</text>`);
  const attempts = c.first + c.retry + c.hedge;
  const stops = Object.entries(c.stops)
    .filter(([, n]) => n > 0)
    .map(([k, n]) => `${k} ${n}`)
    .join(', ');
  const wasted = c.hostWorkMs > 0 ? (c.wastedWorkMs * 100) / c.hostWorkMs : 0;
  o.push(
    `<text x="${LEFT}" y="${at.bottom + 30}" fill="#444">calls: ${(attempts / Math.max(1, c.logical)).toFixed(2)} attempts each (retries ${c.retry}, hedges ${c.hedge}) · stopped: ${stops === '' ? 'none' : esc(stops)} · requests p99 ${f1(c.requestLatency.p99)} ms, p99.9 ${f1(c.requestLatency.p999)} ms · the route shed up to ${c.route.maxShed}${c.policy ? '' : ' (not kept)'} · host time on aborted attempts ${wasted.toFixed(1)} %</text>`,
  );
  return o;
}

/** The picture's size in pixels with `panels` strategies: what a browser window needs to show all of it. */
export function svgSize(panels: number): { width: number; height: number } {
  return { width: W, height: HEAD_H + panels * PANEL_H };
}

/** Renders the results of one scenario (one entry per strategy) as an SVG document. */
export function renderSvg(scenario: Scenario, results: readonly SimResult[]): string {
  const colours = hostColours(scenario);
  const buckets = Math.max(1, ...results.map((r) => r.timeline.picks.length));
  const bucketMs = results[0]?.timeline.bucketMs ?? 1000;
  const totalS = (buckets * bucketMs) / 1000;
  const xOf = (s: number) => LEFT + (s / totalS) * PLOT_W;
  const marks = changeMarks(scenario, buckets * bucketMs);
  const timeout = scenario.timeout_ms ?? 1000;
  // One latency scale for every panel, so they compare at a glance.
  let lo = Infinity;
  let hi = 0;
  for (const r of results) {
    for (const v of [...r.timeline.p50, ...r.timeline.p99]) {
      if (!Number.isFinite(v)) continue;
      if (v > 0 && v < lo) lo = v;
      if (v > hi) hi = v;
    }
  }
  hi = Math.max(hi, timeout);
  const logLo = Math.floor(Math.log10(Number.isFinite(lo) ? Math.max(lo, 0.1) : 1));
  const logHi = Math.max(logLo + 1, Math.ceil(Math.log10(Math.max(hi, 1))));
  let maxFail = 1;
  for (const r of results) for (const v of r.timeline.failed) maxFail = Math.max(maxFail, (v * 1000) / bucketMs);

  const H = svgSize(results.length).height;
  const o: string[] = [];
  o.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11">`);
  o.push(`<rect width="${W}" height="${H}" fill="#fff"/>`);
  o.push(`<text x="${LEFT}" y="24" font-size="16" font-weight="bold">${esc(scenario.name)}</text>`);
  if (scenario.description) o.push(`<text x="${LEFT}" y="44" fill="#444">${esc(scenario.description.length > 190 ? `${scenario.description.slice(0, 187)}...` : scenario.description)}</text>`);
  o.push(`<text x="${LEFT}" y="62" fill="#666">seed ${results[0]?.seed ?? ''}; dashed lines: the scenario's changes; time in s of call start, 1 s buckets</text>`);

  // host legend (right margin of the first panel)
  const legendX = W - RIGHT + 16;
  const hostsRes = results[0]?.hosts ?? [];
  const maxRows = Math.floor((SHARE_H + GAP + LAT_H) / 14);
  hostsRes.slice(0, maxRows).forEach((h, i) => {
    const y = HEAD_H + 44 + i * 14;
    o.push(`<rect x="${legendX}" y="${y - 9}" width="10" height="10" fill="${colours[i]}"/>`);
    o.push(`<text x="${legendX + 14}" y="${y}">${esc(h.label)}</text>`);
  });
  if (hostsRes.length > maxRows) o.push(`<text x="${legendX}" y="${HEAD_H + 44 + maxRows * 14}" fill="#666">+${hostsRes.length - maxRows} more</text>`);

  results.forEach((r, pi) => {
    const top = HEAD_H + pi * PANEL_H;
    const shareTop = top + 44;
    const latTop = shareTop + SHARE_H + GAP;
    const failTop = latTop + LAT_H + GAP;
    const bottom = failTop + FAIL_H;
    o.push(`<line x1="10" x2="${W - 10}" y1="${top + 4}" y2="${top + 4}" stroke="#bbb"/>`);
    const l = r.latency;
    const cs = r.callStats;
    const name = cs !== undefined && !cs.policy ? `${r.strategy}, without the call policy` : r.strategy;
    o.push(
      // one text: the summary follows the strategy's name however long the name is
      `<text x="${LEFT}" y="${top + 24}"><tspan font-size="14" font-weight="bold">${esc(name)}</tspan>` +
        `<tspan dx="14" font-size="12">success ${r.successPct.toFixed(3)} % at the ${timeout} ms timeout · failed ${r.failed} (timeouts ${r.timeouts}, errors ${r.errors}, no host ${r.noHost}) · latency p50 ${f1(l.p50)} ms, p99 ${f1(l.p99)} ms, p99.9 ${f1(l.p999)} ms · state changes ${r.stateChanges.length}</tspan></text>`,
    );

    // --- share (stacked areas)
    const t = r.timeline;
    const cum = t.picks.map((row) => {
      const sum = row.reduce((a, b) => a + b, 0);
      let acc = 0;
      return row.map((v) => {
        acc += sum > 0 ? v / sum : 0;
        return acc;
      });
    });
    const yShare = (f: number) => shareTop + SHARE_H - f * SHARE_H;
    for (let h = 0; h < r.hosts.length; h++) {
      const upper: string[] = [];
      const lower: string[] = [];
      for (let b = 0; b < t.picks.length; b++) {
        const x0 = xOf((b * bucketMs) / 1000);
        const x1 = xOf(((b + 1) * bucketMs) / 1000);
        const u = cum[b]![h]!;
        const d = h === 0 ? 0 : cum[b]![h - 1]!;
        upper.push(`${x0.toFixed(1)},${yShare(u).toFixed(1)} ${x1.toFixed(1)},${yShare(u).toFixed(1)}`);
        lower.unshift(`${x1.toFixed(1)},${yShare(d).toFixed(1)} ${x0.toFixed(1)},${yShare(d).toFixed(1)}`);
      }
      o.push(`<polygon points="${upper.join(' ')} ${lower.join(' ')}" fill="${colours[h]}" stroke="none"><title>${esc(r.hosts[h]!.label)}: ${r.hosts[h]!.sharePct.toFixed(2)} % of picks</title></polygon>`);
    }
    o.push(`<rect x="${LEFT}" y="${shareTop}" width="${PLOT_W}" height="${SHARE_H}" fill="none" stroke="#333"/>`);
    for (const f of [0, 0.25, 0.5, 0.75, 1]) {
      o.push(`<line x1="${LEFT - 4}" x2="${LEFT}" y1="${yShare(f)}" y2="${yShare(f)}" stroke="#333"/><text x="${LEFT - 6}" y="${yShare(f) + 4}" text-anchor="end">${f * 100} %</text>`);
    }
    o.push(`<text transform="translate(16 ${shareTop + SHARE_H / 2}) rotate(-90)" text-anchor="middle">traffic share</text>`);

    // --- latency (log scale)
    const yLat = (v: number) => {
      const x = Math.log10(Math.max(v, 10 ** logLo));
      return latTop + LAT_H - ((x - logLo) / (logHi - logLo)) * LAT_H;
    };
    for (let e = logLo; e <= logHi; e++) {
      const y = yLat(10 ** e);
      o.push(`<line x1="${LEFT}" x2="${LEFT + PLOT_W}" y1="${y}" y2="${y}" stroke="#eee"/><text x="${LEFT - 6}" y="${y + 4}" text-anchor="end">${10 ** e >= 1000 ? `${10 ** e / 1000} s` : `${10 ** e} ms`}</text>`);
    }
    o.push(`<line x1="${LEFT}" x2="${LEFT + PLOT_W}" y1="${yLat(timeout)}" y2="${yLat(timeout)}" stroke="#d62728" stroke-dasharray="2 3"/><text x="${LEFT + PLOT_W + 4}" y="${yLat(timeout) + 4}" fill="#d62728">timeout</text>`);
    const line = (vals: number[], colour: string, width: number) => {
      const pts: string[] = [];
      vals.forEach((v, b) => {
        if (Number.isFinite(v)) pts.push(`${xOf(((b + 0.5) * bucketMs) / 1000).toFixed(1)},${yLat(v).toFixed(1)}`);
      });
      if (pts.length > 0) o.push(`<polyline points="${pts.join(' ')}" fill="none" stroke="${colour}" stroke-width="${width}"/>`);
    };
    line(t.p99, '#ff7f0e', 1.6);
    line(t.p50, '#1f77b4', 1.6);
    o.push(`<rect x="${LEFT}" y="${latTop}" width="${PLOT_W}" height="${LAT_H}" fill="none" stroke="#333"/>`);
    o.push(`<text transform="translate(16 ${latTop + LAT_H / 2}) rotate(-90)" text-anchor="middle">latency</text>`);
    o.push(`<line x1="${LEFT + PLOT_W + 6}" x2="${LEFT + PLOT_W + 22}" y1="${latTop + 12}" y2="${latTop + 12}" stroke="#ff7f0e" stroke-width="2"/><text x="${LEFT + PLOT_W + 26}" y="${latTop + 16}">p99</text>`);
    o.push(`<line x1="${LEFT + PLOT_W + 6}" x2="${LEFT + PLOT_W + 22}" y1="${latTop + 28}" y2="${latTop + 28}" stroke="#1f77b4" stroke-width="2"/><text x="${LEFT + PLOT_W + 26}" y="${latTop + 32}">p50</text>`);

    // --- failed calls per second
    const yFail = (v: number) => failTop + FAIL_H - (v / maxFail) * FAIL_H;
    t.failed.forEach((v, b) => {
      if (v === 0) return;
      const perS = (v * 1000) / bucketMs;
      const x0 = xOf((b * bucketMs) / 1000);
      const x1 = xOf(((b + 1) * bucketMs) / 1000);
      o.push(`<rect x="${x0.toFixed(1)}" y="${yFail(perS).toFixed(1)}" width="${Math.max(0.5, x1 - x0 - 0.5).toFixed(1)}" height="${(failTop + FAIL_H - yFail(perS)).toFixed(1)}" fill="#d62728"><title>${(b * bucketMs) / 1000} s: ${v} failed</title></rect>`);
    });
    o.push(`<rect x="${LEFT}" y="${failTop}" width="${PLOT_W}" height="${FAIL_H}" fill="none" stroke="#333"/>`);
    o.push(`<text x="${LEFT - 6}" y="${failTop + 8}" text-anchor="end">${Math.round(maxFail)}/s</text><text x="${LEFT - 6}" y="${failTop + FAIL_H + 4}" text-anchor="end">0</text>`);
    o.push(`<text transform="translate(16 ${failTop + FAIL_H / 2}) rotate(-90)" text-anchor="middle">failed</text>`);
    if (cs !== undefined) o.push(...callMarks(r, scenario, { xOf, failTop, bottom }));

    // --- time axis and change marks
    const step = niceStep(totalS, 12);
    for (let s = 0; s <= totalS + 1e-9; s += step) {
      const x = xOf(s);
      o.push(`<line x1="${x}" x2="${x}" y1="${bottom}" y2="${bottom + 4}" stroke="#333"/><text x="${x}" y="${bottom + 16}" text-anchor="middle">${Math.round(s * 10) / 10}</text>`);
    }
    o.push(`<text x="${LEFT + PLOT_W}" y="${bottom + 30}" text-anchor="end" fill="#444">time, s</text>`);
    marks.forEach((m, i) => {
      const x = xOf(m.t / 1000);
      o.push(`<line x1="${x}" x2="${x}" y1="${shareTop}" y2="${bottom}" stroke="#000" stroke-dasharray="5 4" stroke-width="1"/>`);
      if (marks.length <= 12) o.push(`<text x="${x + 3}" y="${shareTop - 4 - (i % 2) * 0}" font-size="10" fill="#000">${esc(m.label)}</text>`);
    });
  });
  o.push('</svg>');
  return o.join('\n') + '\n';
}
