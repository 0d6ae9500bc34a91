/**
 * Benchmark plumbing: prints a table and merges figures into
 * bench/results/latest.json (a flat object: metric name → number), with the
 * machine description beside them in bench/results/machine.json.
 */
import { readFileSync, writeFileSync, mkdirSync, existsSync } from 'node:fs';
import { cpus, totalmem, platform, release } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const resultsDir = join(dirname(fileURLToPath(import.meta.url)), 'results');

export interface Metric {
  name: string;
  value: number;
  unit: string;
  /** Target, for the table: e.g. '>= 5000000' or '<= 20'. */
  target?: string;
  note?: string;
}

export function machineDescription(): Record<string, string | number> {
  const c = cpus();
  return {
    cpu: c[0]?.model ?? 'unknown',
    cores: c.length,
    memory_gib: Math.round(totalmem() / 2 ** 30),
    os: `${platform()} ${release()}`,
    node: process.version,
    date: new Date().toISOString(),
  };
}

function meets(value: number, target?: string): string {
  if (!target) return '';
  const m = /^(>=|<=)\s*([\d.]+)$/.exec(target.trim());
  if (!m) return '';
  const t = Number(m[2]);
  const ok = m[1] === '>=' ? value >= t : value <= t;
  return ok ? 'ok' : 'MISSED';
}

export function record(group: string, metrics: Metric[]): void {
  mkdirSync(resultsDir, { recursive: true });
  const latestPath = join(resultsDir, 'latest.json');
  const latest: Record<string, number> = existsSync(latestPath) ? (JSON.parse(readFileSync(latestPath, 'utf8')) as Record<string, number>) : {};
  for (const m of metrics) latest[m.name] = Number.isInteger(m.value) ? m.value : Number(m.value.toFixed(3));
  writeFileSync(latestPath, JSON.stringify(latest, null, 2) + '\n');
  const machinePath = join(resultsDir, 'machine.json');
  const machines: Record<string, unknown> = existsSync(machinePath) ? (JSON.parse(readFileSync(machinePath, 'utf8')) as Record<string, unknown>) : {};
  machines[group] = machineDescription();
  writeFileSync(machinePath, JSON.stringify(machines, null, 2) + '\n');
  const rows = metrics.map((m) => [m.name, formatNumber(m.value), m.unit, m.target ?? '', meets(m.value, m.target), m.note ?? '']);
  const head = ['metric', 'value', 'unit', 'target', '', 'note'];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => r.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ');
  console.log(`\nbench group: ${group}  (${JSON.stringify(machineDescription())})`);
  console.log(line(head));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows) console.log(line(r));
  console.log(`\nmerged into ${latestPath}`);
}

function formatNumber(v: number): string {
  if (Math.abs(v) >= 1000) return Math.round(v).toLocaleString('en-US');
  return String(Number(v.toFixed(3)));
}
