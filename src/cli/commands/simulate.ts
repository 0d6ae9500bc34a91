/**
 * `lars simulate <scenario-file>`: runs a scenario in virtual time with each
 * strategy and prints what the callers got (success at their timeout,
 * latency percentiles, failures by cause, state changes) and each host's
 * share and utilization, and for a scenario whose callers make calls under
 * the call policy what those did (attempts, stops, the requests' latency, the
 * route's shedding, the hosts' time on aborted attempts), with the policy and
 * with `--without-policy` also without it; `--svg` writes the picture,
 * `--json` prints every figure instead of the tables. docs/simulate.md
 * describes the scenario format and the model.
 */
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { basename } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UsageError } from '../../lib/errors.ts';
import { StrategyName } from '../../../actors/strategies/index.ts';
import type { Command, FlagValue } from '../command.ts';
import { parseParamFlags } from '../params.ts';
import { renderTable, type Row } from '../table.ts';
import { simulate, type SimResult } from '../../sim/engine.ts';
import { DEFAULT_SIM_STRATEGIES, isStrategyName, parseScenarioText, scenarioFormatOf, type Scenario } from '../../sim/scenario.ts';
import { renderSvg, svgSize } from '../../sim/svg.ts';

/** State changes listed per strategy in the text output. */
const MAX_CHANGES_SHOWN = 12;

export interface SimulateArgs {
  /** Path of the scenario file (JSON, or YAML: .yaml / .yml). */
  file: string;
  /** Comma-separated strategy names; default the scenario's list, else DEFAULT_SIM_STRATEGIES. */
  strategy?: string | undefined;
  /** `--param name=value` (one or more): route parameters over the scenario's `route.params`. */
  param?: FlagValue;
  seed?: string | number | undefined;
  /** Where to write the picture. */
  svg?: string | undefined;
  json?: boolean | undefined;
  /** With a scenario's `call`: each strategy also runs without the call policy, shown beside. */
  withoutPolicy?: boolean | undefined;
  out(line: string): void;
  note?(line: string): void;
}

/** The scenarios the package ships (scenarios/ beside src/ in a checkout, beside dist/ when installed). */
function shippedScenarios(): string | undefined {
  for (const up of ['../../../scenarios/', '../../../../scenarios/']) {
    const dir = fileURLToPath(new URL(up, import.meta.url));
    if (existsSync(dir)) return dir;
  }
  return undefined;
}

/**
 * Reads and validates a scenario file (YAML when it ends in .yaml or .yml,
 * else JSON); a missing or bad file is a UsageError
 * naming it. A file that is not there is looked for among the shipped
 * scenarios by its name (`scenarios/slow-host.json`, or `slow-host`), so the
 * examples work from any directory.
 */
export function loadScenario(file: string): Scenario {
  let path = file;
  const shipped = shippedScenarios();
  if (!existsSync(path) && shipped) {
    const name = basename(file).replace(/\.json$/, '');
    if (existsSync(`${shipped}${name}.json`)) path = `${shipped}${name}.json`;
  }
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const known = shipped ? readdirSync(shipped).filter((f) => f.endsWith('.json')).map((f) => f.replace(/\.json$/, '')) : [];
    const why = code === 'ENOENT' ? `there is no such file${known.length ? `; the shipped ones: ${known.join(', ')}` : ''}` : (code ?? (err as Error).message);
    throw new UsageError(`cannot read scenario ${file}: ${why}`);
  }
  const r = parseScenarioText(text, scenarioFormatOf(path));
  if (!r.ok) throw new UsageError(`scenario ${file}: ${r.error}`);
  return r.scenario;
}

function strategiesOf(arg: string | undefined, s: Scenario): StrategyName[] {
  if (arg === undefined || arg === '') return (s.strategies as StrategyName[] | undefined) ?? [...DEFAULT_SIM_STRATEGIES];
  const names = arg.split(',').map((x) => x.trim()).filter((x) => x !== '');
  for (const n of names) if (!isStrategyName(n)) throw new UsageError(`--strategy: unknown strategy ${JSON.stringify(n)}; use ${Object.values(StrategyName).join(', ')}`);
  if (names.length === 0) throw new UsageError('--strategy needs at least one strategy name');
  return names as StrategyName[];
}

/** The scenario with `--param` overrides over its own `route.params`, and the overrides (a UsageError names a bad one). */
function withParams(s: Scenario, raw: FlagValue): { scenario: Scenario; over: Record<string, number> } {
  const over = parseParamFlags(raw, s.route?.profile ?? 'default', s.route?.params);
  if (Object.keys(over).length === 0) return { scenario: s, over };
  return { scenario: { ...s, route: { ...s.route, params: { ...s.route?.params, ...over } } }, over };
}

function seedOf(v: string | number | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new UsageError(`--seed must be an integer in 0..4294967295, got ${String(v)}`);
  return n;
}

/** The per-strategy summary rows. */
export function summaryRows(results: readonly SimResult[]): Row[] {
  return results.map((r) => ({
    strategy: r.strategy,
    calls: r.calls,
    success_pct: r.successPct.toFixed(3),
    failed: r.failed,
    timeouts: r.timeouts,
    errors: r.errors,
    no_host: r.noHost,
    p50_ms: r.latency.p50,
    p99_ms: r.latency.p99,
    p999_ms: r.latency.p999,
    state_changes: r.stateChanges.length,
  }));
}

/** The per-run rows of the call figures (runs whose callers make calls under the call policy). */
export function callRows(results: readonly SimResult[]): Row[] {
  const rows: Row[] = [];
  for (const r of results) {
    const c = r.callStats;
    if (c === undefined) continue;
    const attempts = c.first + c.retry + c.hedge;
    const stops = Object.entries(c.stops)
      .filter(([, n]) => n > 0)
      .map(([k, n]) => `${k} ${n}`)
      .join(', ');
    rows.push({
      strategy: r.strategy,
      policy: c.policy ? 'on' : 'off',
      requests: c.requests,
      calls: c.logical,
      attempts_per_call: c.logical > 0 ? Number((attempts / c.logical).toFixed(3)) : 0,
      retries: c.retry,
      hedges: c.hedge,
      cancelled: c.cancelled,
      stops: stops === '' ? '-' : stops,
      req_p99_ms: c.requestLatency.p99,
      req_p999_ms: c.requestLatency.p999,
      max_shed: c.route.maxShed,
      wasted_work_pct: c.hostWorkMs > 0 ? Number(((c.wastedWorkMs * 100) / c.hostWorkMs).toFixed(2)) : 0,
    });
  }
  return rows;
}

/** A command line that turns the picture into a PNG with headless Chromium, its window the picture's size (else the last panel is cut off). */
export function pngCommand(svg: string, panels: number): string {
  const { width, height } = svgSize(panels);
  const png = /\.svg$/i.test(svg) ? svg.replace(/\.svg$/i, '.png') : `${svg}.png`;
  return `chromium --headless --no-sandbox --disable-gpu --screenshot=${png} --window-size=${width},${height} ${svg}`;
}

/** Runs the command; returns the exit code. */
export async function runSimulate(args: SimulateArgs): Promise<number> {
  const { scenario, over } = withParams(loadScenario(args.file), args.param);
  const strategies = strategiesOf(args.strategy, scenario);
  const seed = seedOf(args.seed);
  const results: SimResult[] = [];
  for (const strategy of strategies) {
    args.note?.(`simulating ${scenario.name} with ${strategy}...`);
    results.push(simulate(scenario, seed === undefined ? { strategy } : { strategy, seed }));
    // Let a pending signal or output through between runs.
    await new Promise((r) => setImmediate(r));
  }
  if (args.withoutPolicy === true && scenario.call === undefined) throw new UsageError('--without-policy needs a scenario whose callers make calls (`call`)');
  const without: SimResult[] = [];
  for (const strategy of args.withoutPolicy === true ? strategies : []) {
    args.note?.(`simulating ${scenario.name} with ${strategy}, without the call policy...`);
    without.push(simulate(scenario, { strategy, callPolicy: false, ...(seed === undefined ? {} : { seed }) }));
    await new Promise((r) => setImmediate(r));
  }
  if (args.svg !== undefined) {
    const panels = [...results, ...without];
    writeFileSync(args.svg, renderSvg(scenario, panels));
    const { width, height } = svgSize(panels.length);
    args.note?.(`picture written to ${args.svg} (${width}x${height} px); as PNG: ${pngCommand(args.svg, panels.length)}`);
  }
  if (args.json === true) {
    args.out(JSON.stringify({ scenario: scenario.name, seed: results[0]?.seed, params: over, results, ...(without.length > 0 ? { withoutPolicy: without } : {}) }));
    return 0;
  }
  const timeout = scenario.timeout_ms ?? 1000;
  const given = Object.entries(over).map(([k, v]) => `, ${k}=${v}`);
  args.out(`${scenario.name} (seed ${results[0]?.seed ?? ''}, timeout ${timeout} ms${given.join('')})`);
  for (const l of renderTable(['strategy', 'calls', { key: 'success_pct', align: 'right' }, 'failed', 'timeouts', 'errors', 'no_host', 'p50_ms', 'p99_ms', 'p999_ms', 'state_changes'], summaryRows(results))) args.out(l);
  args.out('');
  args.out('per host: share of picks % [utilization where the host has a capacity] [state changes]');
  const hostRows: Row[] = (results[0]?.hosts ?? []).map((h, i) => {
    const row: Row = { host: h.label };
    for (const r of results) {
      const x = r.hosts[i]!;
      const util = x.utilization === null ? '' : `, util ${(x.utilization * 100).toFixed(0)} %`;
      const changes = x.stateChanges === 0 ? '' : `, ${x.stateChanges} change${x.stateChanges === 1 ? '' : 's'}`;
      row[r.strategy] = `${x.sharePct.toFixed(2)}${util}${changes}`;
    }
    return row;
  });
  for (const l of renderTable(['host', ...results.map((r) => ({ key: r.strategy, align: 'right' as const }))], hostRows)) args.out(l);
  const calls = callRows(results.flatMap((r, i) => (without[i] === undefined ? [r] : [r, without[i]!])));
  if (calls.length > 0) {
    args.out('');
    args.out('calls under the call policy (policy off: no budget, no hedges, no shedding): attempts per logical call, why calls stopped, the requests\' latency, the largest share the route shed, the hosts\' time on aborted attempts %');
    const cols = ['strategy', { key: 'policy', align: 'left' as const }, 'requests', 'calls', 'attempts_per_call', 'retries', 'hedges', 'cancelled', { key: 'stops', align: 'left' as const }, 'req_p99_ms', 'req_p999_ms', 'max_shed', 'wasted_work_pct'];
    for (const l of renderTable(cols, calls)) args.out(l);
  }
  for (const r of results) {
    if (r.stateChanges.length === 0) continue;
    args.out('');
    args.out(`state changes with ${r.strategy}${r.stateChanges.length > MAX_CHANGES_SHOWN ? ` (first ${MAX_CHANGES_SHOWN} of ${r.stateChanges.length}; all with --json)` : ''}`);
    for (const c of r.stateChanges.slice(0, MAX_CHANGES_SHOWN)) args.out(`  ${(c.t / 1000).toFixed(3).padStart(8)} s  ${c.host}  ${c.from} -> ${c.to}  (${c.reason})`);
  }
  return 0;
}

export const simulateCommand: Command = {
  name: 'simulate',
  summary: 'run a balancing scenario in virtual time with the real route actor and strategies',
  usage: 'lars simulate <scenario-file> [--strategy s1,s2] [--seed n] [--param name=value]... [--svg out.svg] [--json] [--without-policy]',
  args: [{ name: 'scenario-file', help: 'a scenario (JSON, or YAML: .yaml/.yml), e.g. scenarios/slow-host.json; the shipped ones also by name (slow-host)' }],
  flags: {
    strategy: { help: 'strategies to compare, comma-separated', placeholder: 's1,s2', defaultText: `the scenario's, else ${DEFAULT_SIM_STRATEGIES.join(',')}` },
    seed: { help: 'random seed (same seed, same result)', placeholder: 'n', defaultText: "the scenario's, else 1" },
    param: { help: "override a route parameter over the scenario's, name=value (repeatable)", multiple: true, placeholder: 'name=value' },
    svg: { help: 'write a picture of share and latency over time', placeholder: 'file' },
    json: { help: 'print every figure as JSON instead of tables', boolean: true },
    'without-policy': { help: 'for a scenario whose callers make calls (`call`): also run each strategy without the call policy, shown beside', boolean: true },
  },
  examples: [
    ['lars simulate scenarios/slow-host.json', `compare ${DEFAULT_SIM_STRATEGIES.join(', ')} on a host turning slow`],
    ['lars simulate slow-host --strategy p2c_ewma --param probe_failure_multiplier=1', 'the same with one parameter changed'],
    ['lars simulate scenarios/flapping.json --strategy p2c --svg flapping.svg', 'one strategy, with a picture'],
    ['lars simulate retry-storm --strategy p2c_ewma --without-policy', 'calls with retries, with the call policy and without'],
  ],
  async run(args, flags, ctx) {
    const str = (v: unknown) => (typeof v === 'string' ? v : undefined);
    const a: SimulateArgs = {
      file: args[0]!,
      strategy: str(flags['strategy']),
      seed: str(flags['seed']),
      param: flags['param'],
      svg: str(flags['svg']),
      json: flags['json'] === true,
      withoutPolicy: flags['without-policy'] === true,
      out: (l) => ctx.out(l),
    };
    if (ctx.note) a.note = (l) => ctx.note!(l);
    return runSimulate(a);
  },
};
