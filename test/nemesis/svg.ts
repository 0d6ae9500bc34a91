/**
 * The timeline picture of a nemesis run (plain SVG, built by hand): one row
 * per process with its faults as bars (kill -9 red, SIGSTOP orange, graceful
 * restart blue, the full-cluster restart purple; each heal marked green),
 * partitions without an owner over time, reports acknowledged per second,
 * and every violation with a time as a red tick across the whole picture.
 */
import type { Verdict } from './checks.ts';
import { ownedIntervals, unownedSeries } from './ownership.ts';
import { ProcEventKind, type History } from './types.ts';

const W = 1200;
const LEFT = 110;
const RIGHT = 30;
const PLOT_W = W - LEFT - RIGHT;
const ROW_H = 18;
const CHART_H = 110;
const GAP = 34;

const COLOUR: Record<string, string> = { kill: '#d62728', pause: '#ff7f0e', restart: '#1f77b4', 'cluster-restart': '#9467bd' };

function esc(s: string): string {
  return s.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;').replaceAll('"', '&quot;');
}

function niceStep(span: number, target: number): number {
  const raw = span / target;
  const p = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 5, 10]) if (m * p >= raw) return m * p;
  return 10 * p;
}

export function renderTimeline(h: History, verdict: Verdict): string {
  const t0 = h.runStart;
  const spanS = Math.max(1, (h.runEnd - t0) / 1000);
  const x = (t: number): number => LEFT + (((t - t0) / 1000) / spanS) * PLOT_W;
  const procs = [...new Set(h.procEvents.map((e) => e.proc))].sort((a, b) => order(a) - order(b) || a.localeCompare(b));
  const rowsTop = 60;
  const chart1 = rowsTop + procs.length * ROW_H + GAP;
  const chart2 = chart1 + CHART_H + GAP;
  const H = chart2 + CHART_H + 70;
  const o: string[] = [];
  o.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11">`);
  o.push(`<rect width="${W}" height="${H}" fill="#fff"/>`);
  const failed = verdict.checks.filter((c) => !c.ok).map((c) => c.id);
  o.push(`<text x="${LEFT}" y="22" font-size="15" font-weight="bold">nemesis run, seed ${h.seed}: ${h.faults.length} faults over ${Math.round(spanS)} s</text>`);
  o.push(`<text x="${LEFT}" y="40" fill="${failed.length ? '#b00' : '#070'}">${esc(failed.length ? `failed: ${failed.join(', ')}` : 'every check held')}</text>`);

  // time axis (shared)
  const step = niceStep(spanS, 12);
  const axis = (y0: number, y1: number): void => {
    for (let s = 0; s <= spanS; s += step) {
      const xx = x(t0 + s * 1000);
      o.push(`<line x1="${xx.toFixed(1)}" y1="${y0}" x2="${xx.toFixed(1)}" y2="${y1}" stroke="#eee"/>`);
    }
  };
  axis(rowsTop, chart2 + CHART_H);
  for (let s = 0; s <= spanS; s += step) o.push(`<text x="${x(t0 + s * 1000).toFixed(1)}" y="${chart2 + CHART_H + 16}" text-anchor="middle">${s} s</text>`);

  // phases
  o.push(`<rect x="${x(h.nemesisStart).toFixed(1)}" y="${rowsTop - 6}" width="${Math.max(0, x(h.nemesisEnd) - x(h.nemesisStart)).toFixed(1)}" height="4" fill="#999"/>`);
  o.push(`<text x="${x(h.nemesisStart).toFixed(1)}" y="${rowsTop - 9}" fill="#666">nemesis</text>`);
  if (h.idle.end > h.idle.start) {
    o.push(`<rect x="${x(h.idle.start).toFixed(1)}" y="${rowsTop - 6}" width="${(x(h.idle.end) - x(h.idle.start)).toFixed(1)}" height="4" fill="#17becf"/>`);
    o.push(`<text x="${x(h.idle.start).toFixed(1)}" y="${rowsTop - 9}" fill="#17becf">idle routes</text>`);
  }

  // process rows: down or paused stretches as bars
  procs.forEach((p, i) => {
    const y = rowsTop + i * ROW_H;
    o.push(`<text x="${LEFT - 6}" y="${y + 12}" text-anchor="end">${esc(p)}</text>`);
    o.push(`<line x1="${LEFT}" y1="${y + ROW_H - 1}" x2="${LEFT + PLOT_W}" y2="${y + ROW_H - 1}" stroke="#f3f3f3"/>`);
    let open: { t: number; kind: string } | undefined;
    for (const e of h.procEvents.filter((ev) => ev.proc === p)) {
      const kind = e.what === ProcEventKind.kill ? 'kill' : e.what === ProcEventKind.pause ? 'pause' : e.what === ProcEventKind.stop ? 'restart' : undefined;
      if (kind && !open && e.t >= h.nemesisStart) {
        const f = h.faults.find((ff) => (ff.target === p || (ff.target === 'nats-*' && p.startsWith('nats-'))) && Math.abs(ff.start - e.t) < 2000);
        open = { t: e.t, kind: f?.kind ?? kind };
      } else if (open && (e.what === ProcEventKind.up || e.what === ProcEventKind.resume)) {
        o.push(`<rect x="${x(open.t).toFixed(1)}" y="${y + 3}" width="${Math.max(1.5, x(e.t) - x(open.t)).toFixed(1)}" height="${ROW_H - 7}" fill="${COLOUR[open.kind] ?? '#555'}" opacity="0.85"><title>${esc(`${p}: ${open.kind} ${((e.t - open.t) / 1000).toFixed(1)} s`)}</title></rect>`);
        open = undefined;
      }
    }
  });
  for (const heal of h.heals) {
    if (heal.at === undefined) continue;
    o.push(`<line x1="${x(heal.at).toFixed(1)}" y1="${rowsTop}" x2="${x(heal.at).toFixed(1)}" y2="${rowsTop + procs.length * ROW_H}" stroke="#2ca02c" stroke-dasharray="2,2"/>`);
  }
  // legend
  let lx = LEFT;
  for (const [k, c] of [...Object.entries(COLOUR), ['healed (JetStream writable)', '#2ca02c']] as Array<[string, string]>) {
    o.push(`<rect x="${lx}" y="${H - 26}" width="10" height="10" fill="${c}"/><text x="${lx + 14}" y="${H - 17}">${esc(k)}</text>`);
    lx += 30 + k.length * 6;
  }
  o.push(`<rect x="${lx}" y="${H - 26}" width="2" height="10" fill="#d00"/><text x="${lx + 6}" y="${H - 17}">violation</text>`);

  // unowned partitions
  const owned = ownedIntervals(h.leases, h.procEvents, { partitions: h.partitions, leaseMs: h.leaseMs, procOf: (n) => `node-${n}`, end: h.runEnd });
  const stepMs = Math.max(100, Math.round((h.runEnd - t0) / 1500));
  const series = unownedSeries(owned, h.nemesisStart - 5000 > t0 ? h.nemesisStart - 5000 : t0, h.runEnd, stepMs);
  line(o, series, x, chart1, CHART_H, h.partitions, '#d62728', `partitions without a live owner (of ${h.partitions})`);

  // acknowledged reports per second, summed over the agent processes
  const acked = ackRate(h);
  const maxAck = Math.max(1, ...acked.map(([, v]) => v));
  line(o, acked, x, chart2, CHART_H, maxAck, '#1f77b4', 'reports acknowledged per second');

  // violations
  for (const c of verdict.checks) {
    for (const v of c.violations) {
      if (!(v.at > 0)) continue;
      o.push(`<line x1="${x(v.at).toFixed(1)}" y1="${rowsTop}" x2="${x(v.at).toFixed(1)}" y2="${chart2 + CHART_H}" stroke="#d00" stroke-width="1" opacity="0.6"><title>${esc(`${c.id}: ${v.what}`)}</title></line>`);
    }
  }
  o.push('</svg>');
  return o.join('\n');
}

function order(p: string): number {
  return p.startsWith('nats') ? 0 : p.startsWith('node') ? 1 : 2;
}

function line(o: string[], pts: Array<[number, number]>, x: (t: number) => number, top: number, h: number, max: number, colour: string, title: string): void {
  o.push(`<text x="${LEFT}" y="${top - 6}" font-weight="bold">${esc(title)}</text>`);
  o.push(`<rect x="${LEFT}" y="${top}" width="${PLOT_W}" height="${h}" fill="none" stroke="#ccc"/>`);
  const y = (v: number): number => top + h - (v / max) * h;
  o.push(`<text x="${LEFT - 6}" y="${top + 10}" text-anchor="end">${Math.round(max)}</text><text x="${LEFT - 6}" y="${top + h}" text-anchor="end">0</text>`);
  if (pts.length === 0) return;
  const d = pts.map(([t, v], i) => `${i === 0 ? 'M' : 'L'}${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
  o.push(`<path d="${d}" fill="none" stroke="${colour}" stroke-width="1.2"/>`);
}

/** [t, acknowledged reports per second] from the agent processes' per-second totals. */
export function ackRate(h: History): Array<[number, number]> {
  const byProc = new Map<string, Array<{ t: number; acked: number }>>();
  for (const s of h.agentSamples) {
    const l = byProc.get(s.proc) ?? [];
    l.push({ t: s.t, acked: s.acked });
    byProc.set(s.proc, l);
  }
  const buckets = new Map<number, number>();
  for (const l of byProc.values()) {
    l.sort((a, b) => a.t - b.t);
    for (let i = 1; i < l.length; i++) {
      const dt = (l[i]!.t - l[i - 1]!.t) / 1000;
      if (dt <= 0) continue;
      const b = Math.round(l[i]!.t / 1000) * 1000;
      buckets.set(b, (buckets.get(b) ?? 0) + Math.max(0, l[i]!.acked - l[i - 1]!.acked) / dt);
    }
  }
  return [...buckets].sort((a, b) => a[0] - b[0]);
}
