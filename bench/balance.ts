/**
 * `npm run bench -- balance`: balancing quality on the shipped scenarios
 * (scenarios/*.json), every strategy side by side in one run, in virtual time
 * with the real route actor and strategies (src/sim/). No servers.
 *
 * Each figure is recorded for the default strategy under its plain name and
 * for every strategy as `<metric>_<strategy>`:
 * - slow_host_success_pct, slow_host_failed_calls, slow_host_p99_ms,
 *   slow_host_p999_ms: the slow-host scenario (latency as the callers see it,
 *   a timeout counted at the timeout);
 * - latency_mix_p99_ms: the latency-mix scenario;
 * - fast_fail_share_pct: the failing host's share of the picks after the
 *   first 5 s of the fast-failure scenario;
 * - capacity_max_over_mean_util: the busiest host's utilization over the
 *   mean utilization in the uneven-capacity scenario;
 * - flapping_failed_calls, flapping_state_changes: the flapping scenario
 *   (state changes of every host of the route).
 * The scenarios whose callers make calls under the call policy give the
 * figures of ./balance/calls.ts, with and without the policy.
 * Plus balance_sim_calls_per_sec (simulated calls per second of wall time)
 * and balance_sim_speedup (virtual seconds per wall second), and
 * idle_route_versions_per_min: versions a route publishes once its callers
 * are gone (./balance/idle-route.ts).
 */
import { readFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { DEFAULT_STRATEGY, StrategyName } from '../actors/strategies/index.ts';
import { simulate, type SimResult } from '../src/sim/engine.ts';
import { parseScenarioText, type Scenario } from '../src/sim/scenario.ts';
import { summaryRows } from '../src/cli/commands/simulate.ts';
import { renderTable } from '../src/cli/table.ts';
import { record, type Metric } from './lib.ts';
import { benchIdleRoute } from './balance/idle-route.ts';
import { benchCallScenarios } from './balance/calls.ts';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const STRATEGIES: StrategyName[] = [StrategyName.swrr, StrategyName.p2c, StrategyName.p2c_ewma, StrategyName.lars, StrategyName.hash];
/** fast_fail_share_pct counts picks from this time on, ms. */
const FAST_FAIL_FROM_MS = 5000;

function load(name: string): Scenario {
  const r = parseScenarioText(readFileSync(join(root, 'scenarios', `${name}.json`), 'utf8'));
  if (!r.ok) throw new Error(`scenarios/${name}.json: ${r.error}`);
  return r.scenario;
}

interface Figure {
  name: string;
  unit: string;
  target?: string;
  scenario: string;
  value(r: SimResult): number;
}

function shareFrom(r: SimResult, label: string, fromMs: number): number {
  const h = r.hosts.findIndex((x) => x.label === label);
  if (h < 0) throw new Error(`no host ${label} in ${r.scenario}`);
  let mine = 0;
  let all = 0;
  r.timeline.picks.forEach((row, b) => {
    if (b * r.timeline.bucketMs < fromMs) return;
    mine += row[h]!;
    for (const v of row) all += v;
  });
  return all > 0 ? (mine * 100) / all : 0;
}

function maxOverMeanUtil(r: SimResult): number {
  const u = r.hosts.map((h) => h.utilization ?? Number.NaN);
  const mean = u.reduce((a, b) => a + b, 0) / u.length;
  return Math.max(...u) / mean;
}

const FIGURES: Figure[] = [
  { name: 'slow_host_success_pct', unit: '%', target: '>= 99.95', scenario: 'slow-host', value: (r) => r.successPct },
  { name: 'slow_host_failed_calls', unit: 'calls', target: '<= 20', scenario: 'slow-host', value: (r) => r.failed },
  { name: 'slow_host_p99_ms', unit: 'ms', scenario: 'slow-host', value: (r) => r.latency.p99 },
  { name: 'slow_host_p999_ms', unit: 'ms', scenario: 'slow-host', value: (r) => r.latency.p999 },
  { name: 'latency_mix_p99_ms', unit: 'ms', target: '<= 100', scenario: 'latency-mix', value: (r) => r.latency.p99 },
  { name: 'fast_fail_share_pct', unit: '%', target: '<= 1', scenario: 'fast-failure', value: (r) => shareFrom(r, 'failing', FAST_FAIL_FROM_MS) },
  { name: 'capacity_max_over_mean_util', unit: 'ratio', target: '<= 1.10', scenario: 'uneven-capacity', value: maxOverMeanUtil },
  { name: 'flapping_failed_calls', unit: 'calls', scenario: 'flapping', value: (r) => r.failed },
  { name: 'flapping_state_changes', unit: 'changes', scenario: 'flapping', value: (r) => r.stateChanges.length },
];

const scenarioNames = [...new Set(FIGURES.map((f) => f.scenario))];
const results = new Map<string, Map<StrategyName, SimResult>>();
let simulatedCalls = 0;
let simulatedMs = 0;
const t0 = performance.now();
for (const name of scenarioNames) {
  const s = load(name);
  const byStrategy = new Map<StrategyName, SimResult>();
  for (const strategy of STRATEGIES) {
    const r = simulate(s, { strategy });
    simulatedCalls += r.calls;
    simulatedMs += r.endMs;
    byStrategy.set(strategy, r);
  }
  results.set(name, byStrategy);
  console.log(`\n${name} (seed ${byStrategy.get(DEFAULT_STRATEGY)?.seed ?? ''})`);
  for (const l of renderTable(['strategy', 'calls', { key: 'success_pct', align: 'right' }, 'failed', 'timeouts', 'errors', 'no_host', 'p50_ms', 'p99_ms', 'p999_ms', 'state_changes'], summaryRows([...byStrategy.values()]))) {
    console.log(l);
  }
}
const callFigures = benchCallScenarios(load);
simulatedCalls += callFigures.simulatedCalls;
simulatedMs += callFigures.simulatedMs;
const wallS = (performance.now() - t0) / 1000;

// Side by side: one row per figure, one column per strategy.
const side = FIGURES.map((f) => {
  const row: Record<string, string | number> = { metric: f.name, target: f.target ?? '' };
  for (const s of STRATEGIES) row[s] = Number(f.value(results.get(f.scenario)!.get(s)!).toFixed(3));
  return row;
});
console.log(`\nside by side (default strategy: ${DEFAULT_STRATEGY})`);
for (const l of renderTable(['metric', ...STRATEGIES, { key: 'target', align: 'left' }], side)) console.log(l);

const metrics: Metric[] = [];
for (const f of FIGURES) {
  const def = results.get(f.scenario)!.get(DEFAULT_STRATEGY)!;
  const m: Metric = { name: f.name, value: f.value(def), unit: f.unit, note: `${f.scenario}, ${DEFAULT_STRATEGY} (default)` };
  if (f.target) m.target = f.target;
  metrics.push(m);
}
for (const f of FIGURES) {
  for (const s of STRATEGIES) metrics.push({ name: `${f.name}_${s}`, value: f.value(results.get(f.scenario)!.get(s)!), unit: f.unit, note: f.scenario });
}
metrics.push(...callFigures.metrics);
metrics.push({ name: 'balance_sim_calls_per_sec', value: simulatedCalls / wallS, unit: 'calls/s', note: `${simulatedCalls} simulated calls in ${wallS.toFixed(2)} s of wall time` });
metrics.push({ name: 'balance_sim_speedup', value: simulatedMs / 1000 / wallS, unit: 'x real time', note: `${(simulatedMs / 1000).toFixed(0)} s of virtual time` });
const idle = benchIdleRoute();
console.log('\nidle route (callers stopped, 10 virtual minutes)');
for (const l of renderTable(['moment', 'stopped_at_s', 'versions_while_calling', 'versions_idle'], idle.runs.map((x) => ({ moment: x.moment, stopped_at_s: (x.stoppedAtMs / 1000).toFixed(2), versions_while_calling: x.callingVersions, versions_idle: x.versions })))) console.log(l);
metrics.push(...idle.metrics);
record('balance', metrics);
