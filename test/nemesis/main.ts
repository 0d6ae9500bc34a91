/**
 * `npm run chaos -- [--minutes 30] [--seed N] [--out dir] [--rate calls/s]`:
 * a long nemesis run with random fault groups (schedule.ts `randomPlan`),
 * its report written into the out dir (default bench/results/chaos/) and
 * its figures recorded in bench/results/latest.json (group `chaos`). Exits 1
 * when a check failed.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { record } from '../../bench/lib.ts';
import { codeVersion, runNemesis } from './run.ts';
import { FIGURE_UNITS, writeReport } from './report.ts';

const ROOT = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..');

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  if (i >= 0) return process.argv[i + 1];
  const eq = process.argv.find((a) => a.startsWith(`--${name}=`));
  return eq?.slice(name.length + 3);
}

function num(name: string, dflt: number): number {
  const v = arg(name);
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) {
    console.error(`--${name} takes a positive number, got ${JSON.stringify(v)}`);
    process.exit(2);
  }
  return n;
}

const minutes = num('minutes', 30);
const seed = Math.floor(num('seed', (Date.now() % 2 ** 31) + 1));
const rate = num('rate', 1500);
const out = arg('out') ?? join(ROOT, 'bench', 'results', 'chaos');
const AGENTS_PER_PROCESS = 10;
// Process logs stay out of the report's directory (which may be kept in the repository): they can be large.
const workDir = mkdtempSync(join(tmpdir(), `lars-chaos-${seed}-`));
const command = `npm run chaos -- --minutes ${minutes} --seed ${seed} --rate ${rate}${arg('out') ? ` --out ${out}` : ''}`;

console.log(`chaos: ${minutes} min of faults, seed ${seed}, ~${rate} calls/s; report in ${out}, process logs in ${join(workDir, 'logs')}`);
const t0 = Date.now();
const run = await runNemesis({
  seed,
  plan: { randomForMs: minutes * 60_000 },
  leaseMs: 2000,
  partitions: 64,
  routes: 10,
  hostsPerRoute: 4,
  agentsPerProcess: AGENTS_PER_PROCESS,
  routesPerAgent: 4,
  callsPerSec: rate,
  batchMaxDelayMs: 100,
  warmupMs: 10_000,
  idleMs: 60_000,
  reportsMaxBytes: 1024 * 2 ** 20,
  workDir,
  log: (l) => console.log(`[${((Date.now() - t0) / 1000).toFixed(0).padStart(5)} s] ${l}`),
});
const paths = writeReport(out, run.history, run.verdict, { code: codeVersion(), callsPerSec: rate, agents: 2 * AGENTS_PER_PROCESS, command, notes: run.notes });
for (const n of run.notes) console.log(`note: ${n}`);
for (const c of run.verdict.checks) {
  console.log(`${c.ok ? 'held  ' : 'FAILED'} ${c.title}`);
  for (const v of c.violations.slice(0, 5)) console.log(`         ${v.what}`);
  if (c.violations.length > 5) console.log(`         … ${c.violations.length - 5} more in ${paths.markdown}`);
}
record(
  'chaos',
  (Object.entries(run.verdict.figures) as Array<[string, number]>).map(([name, value]) => ({ name, value, unit: FIGURE_UNITS[name]?.unit ?? '', target: FIGURE_UNITS[name]?.target, note: `seed ${seed}, ${minutes} min` })),
);
console.log(`report: ${paths.markdown}\ntimeline: ${paths.svg}\nprocess logs: ${join(workDir, 'logs')}`);
process.exit(run.verdict.checks.every((c) => c.ok) ? 0 : 1);
