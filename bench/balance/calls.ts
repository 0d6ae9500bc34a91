/**
 * Call-policy figures of `npm run bench -- balance`: the shipped scenarios
 * whose callers make calls (scenarios with `call`), with the default
 * strategy, each run with the route's call policy (the default) and beside it
 * without (callers that keep no budget, never hedge and never shed), in
 * virtual time with the real route actor (src/sim/calls.ts):
 * - retry-storm: every host fails every call for 30 s, 3 attempts allowed.
 *   `retry_storm_amplification`: attempts per logical call started during the
 *   outage (a call refused by shedding makes none), target ≤ 1.2;
 *   `retry_storm_recovery_s`: from the hosts' recovery to the end of the last
 *   100 ms in which more than 1 % of the calls started failed, target ≤ 2;
 * - one-bad-host-retries: `retry_logical_success_pct`, target ≥ 99.99
 *   (beside it: without the policy, and without retries, `max_attempts` 1);
 * - tail-at-scale: fan-out of 100, hedged. `tail_p999_ratio_hedged`: p99.9
 *   of the requests with the policy ÷ without, target ≤ 0.10;
 *   `hedge_extra_calls_pct`: hedges per first attempt, %, target ≤ 5;
 * - overload: the hosts' capacity drops to half the load for 20 s; a host
 *   refuses calls as overloaded beyond its queue limit.
 *   `overload_goodput_pct`: successful calls per second started during the
 *   overload ÷ the hosts' capacity then, target ≥ 90; `overload_p99_ratio`:
 *   the worst 1 s p99 of the callers during the overload ÷ the p99 of the
 *   same run without it, target ≤ 2;
 *   `overload_recovery_s`: from the end of the overload, as the storm's, target ≤ 5.
 * - overload-surge: the same hosts at their full capacity, and the offered
 *   load rising to twice it for 20 s; the same three figures (the p99 over
 *   the same run without the surge), and `overload_surge_amplification`,
 *   attempts per logical call started during the surge; and the goodput and
 *   p99 ratio again with hosts whose refusals cost them 1 ms of service time
 *   each (`refuse_ms`: a tenth of a call), `overload_surge_refusal_cost_*`;
 * - the hosts' cost of hedging on tail-at-scale: `hedge_wasted_work_pct`,
 *   the hosts' time spent on attempts nobody waited for any more (hedges
 *   that lost, attempts past their timeout) over all their time in service,
 *   with hosts that stop working on an aborted attempt (the default), and
 *   beside it with hosts that finish it (`on_cancel: finish`).
 */
import { DEFAULT_STRATEGY } from '../../actors/strategies/index.ts';
import { simulate, type SimResult } from '../../src/sim/engine.ts';
import type { Scenario } from '../../src/sim/scenario.ts';
import { amplification, changeWindow, goodputPerSec, hedgeExtraPct, logicalSuccessPct, recoverySec, type Window } from '../../src/sim/call-figures.ts';
import { renderTable } from '../../src/cli/table.ts';
import type { Metric } from '../lib.ts';

/** The hosts' time on attempts their callers had aborted, of all their time in service, %. */
function wastedPct(r: SimResult): number {
  const c = r.callStats!;
  return c.hostWorkMs > 0 ? (c.wastedWorkMs * 100) / c.hostWorkMs : 0;
}

/** The window of an open load's first change with an end (a surge). */
function surgeWindow(s: Scenario): Window {
  const c = s.load.kind === 'open' ? s.load.changes?.find((x) => x.for_s !== undefined) : undefined;
  if (c === undefined) throw new Error(`scenario ${s.name}: no load change with an end`);
  return { fromMs: c.at_s * 1000, toMs: (c.at_s + c.for_s!) * 1000 };
}

/** What a refusal costs its host in the overload-surge variant, ms of service time (a tenth of a call). */
const REFUSE_MS = 1;

interface Runs {
  policy: SimResult;
  none: SimResult;
}

function runs(s: Scenario): Runs {
  return { policy: simulate(s, { strategy: DEFAULT_STRATEGY }), none: simulate(s, { strategy: DEFAULT_STRATEGY, callPolicy: false }) };
}

/** The overload scenario's capacity during its change, calls/s: every host's capacity ÷ its mean latency. */
function capacityPerSec(s: Scenario): number {
  let cap = 0;
  for (const g of s.hosts) {
    const c = g.changes?.find((x) => x.capacity !== undefined)?.capacity ?? g.capacity;
    const l = g.latency;
    const mean = l.dist === 'normal' ? l.mean_ms : l.dist === 'fixed' ? l.ms : Number.NaN;
    if (c === undefined || !Number.isFinite(mean)) throw new Error(`scenario ${s.name}: hosts need a capacity and a fixed or normal latency`);
    cap += ((g.count ?? 1) * c * 1000) / mean;
  }
  return cap;
}

interface Row {
  name: string;
  unit: string;
  target?: string;
  policy: number;
  none: number;
  extra?: { name: string; value: number; note: string };
  note: string;
}

export function benchCallScenarios(load: (name: string) => Scenario): { metrics: Metric[]; simulatedCalls: number; simulatedMs: number } {
  const rows: Row[] = [];
  let simulatedCalls = 0;
  let simulatedMs = 0;
  const count = (r: Runs): void => {
    for (const x of [r.policy, r.none]) {
      simulatedCalls += x.callStats!.first + x.callStats!.retry + x.callStats!.hedge;
      simulatedMs += x.endMs;
    }
  };

  const storm = load('retry-storm');
  const sr = runs(storm);
  count(sr);
  const outage = changeWindow(storm);
  rows.push({ name: 'retry_storm_amplification', unit: 'attempts/call', target: '<= 1.2', policy: amplification(sr.policy, outage), none: amplification(sr.none, outage), note: 'retry-storm, attempts per logical call started during the outage' });
  rows.push({ name: 'retry_storm_recovery_s', unit: 's', target: '<= 2', policy: recoverySec(sr.policy, outage.toMs), none: recoverySec(sr.none, outage.toMs), note: 'retry-storm, hosts recovered → end of the last 100 ms with more than 1 % of calls failed' });

  const bad = load('one-bad-host-retries');
  const br = runs(bad);
  count(br);
  const single = simulate({ ...bad, call: { ...bad.call, max_attempts: 1 } }, { strategy: DEFAULT_STRATEGY });
  rows.push({
    name: 'retry_logical_success_pct',
    unit: '%',
    target: '>= 99.99',
    policy: logicalSuccessPct(br.policy),
    none: logicalSuccessPct(br.none),
    extra: { name: 'retry_logical_success_pct_no_retries', value: logicalSuccessPct(single), note: 'one attempt per call' },
    note: 'one-bad-host-retries, logical calls that succeeded',
  });

  const tail = load('tail-at-scale');
  const tr = runs(tail);
  count(tr);
  const p999 = (r: SimResult): number => r.callStats!.requestLatency.p999;
  rows.push({ name: 'tail_p999_ratio_hedged', unit: 'ratio', target: '<= 0.10', policy: p999(tr.policy) / p999(tr.none), none: 1, note: `tail-at-scale, request p99.9 ${p999(tr.policy).toFixed(1)} ms hedged ÷ ${p999(tr.none).toFixed(1)} ms without` });
  rows.push({ name: 'tail_p999_ms', unit: 'ms', policy: p999(tr.policy), none: p999(tr.none), note: 'tail-at-scale, p99.9 of the fan-out requests' });
  rows.push({ name: 'hedge_extra_calls_pct', unit: '%', target: '<= 5', policy: hedgeExtraPct(tr.policy), none: hedgeExtraPct(tr.none), note: 'tail-at-scale, hedges per first attempt' });

  const over = load('overload');
  const or = runs(over);
  count(or);
  const ow = changeWindow(over);
  const cap = capacityPerSec(over);
  rows.push({ name: 'overload_goodput_pct', unit: '%', target: '>= 90', policy: (goodputPerSec(or.policy, ow) * 100) / cap, none: (goodputPerSec(or.none, ow) * 100) / cap, note: `overload, successful calls/s during the overload ÷ capacity ${cap.toFixed(0)}/s` });
  const unloaded = simulate({ ...over, hosts: over.hosts.map((g) => ({ ...g, changes: undefined })) }, { strategy: DEFAULT_STRATEGY });
  simulatedCalls += unloaded.calls;
  simulatedMs += unloaded.endMs;
  const worstP99 = (r: SimResult): number => Math.max(...r.timeline.p99.slice(ow.fromMs / r.timeline.bucketMs, ow.toMs / r.timeline.bucketMs));
  rows.push({ name: 'overload_p99_ratio', unit: 'ratio', target: '<= 2', policy: worstP99(or.policy) / unloaded.latency.p99, none: worstP99(or.none) / unloaded.latency.p99, note: `overload, the worst 1 s p99 during the overload ÷ the p99 without it (${unloaded.latency.p99.toFixed(1)} ms)` });
  rows.push({ name: 'overload_recovery_s', unit: 's', target: '<= 5', policy: recoverySec(or.policy, ow.toMs), none: recoverySec(or.none, ow.toMs), note: 'overload, load back under capacity → end of the last 100 ms with more than 1 % of calls failed' });

  const surge = load('overload-surge');
  const ur = runs(surge);
  count(ur);
  const uw = surgeWindow(surge);
  const ucap = capacityPerSec(surge);
  rows.push({ name: 'overload_surge_goodput_pct', unit: '%', target: '>= 90', policy: (goodputPerSec(ur.policy, uw) * 100) / ucap, none: (goodputPerSec(ur.none, uw) * 100) / ucap, note: `overload-surge, successful calls/s during the surge ÷ capacity ${ucap.toFixed(0)}/s` });
  const calm = simulate({ ...surge, load: { ...surge.load, changes: undefined } as Scenario['load'] }, { strategy: DEFAULT_STRATEGY });
  simulatedCalls += calm.calls;
  simulatedMs += calm.endMs;
  const worstIn = (r: SimResult, w: Window): number => Math.max(...r.timeline.p99.slice(w.fromMs / r.timeline.bucketMs, w.toMs / r.timeline.bucketMs));
  rows.push({ name: 'overload_surge_p99_ratio', unit: 'ratio', target: '<= 2', policy: worstIn(ur.policy, uw) / calm.latency.p99, none: worstIn(ur.none, uw) / calm.latency.p99, note: `overload-surge, the worst 1 s p99 during the surge ÷ the p99 without it (${calm.latency.p99.toFixed(1)} ms)` });
  rows.push({ name: 'overload_surge_recovery_s', unit: 's', target: '<= 5', policy: recoverySec(ur.policy, uw.toMs), none: recoverySec(ur.none, uw.toMs), note: 'overload-surge, load back under capacity → end of the last 100 ms with more than 1 % of calls failed' });
  const costly: Scenario = { ...surge, hosts: surge.hosts.map((g) => ({ ...g, refuse_ms: REFUSE_MS })) };
  const cr = runs(costly);
  count(cr);
  rows.push({ name: 'overload_surge_refusal_cost_goodput_pct', unit: '%', policy: (goodputPerSec(cr.policy, uw) * 100) / ucap, none: (goodputPerSec(cr.none, uw) * 100) / ucap, note: `overload-surge with refusals costing ${REFUSE_MS} ms of service each, successful calls/s during the surge ÷ capacity ${ucap.toFixed(0)}/s` });
  rows.push({ name: 'overload_surge_refusal_cost_p99_ratio', unit: 'ratio', policy: worstIn(cr.policy, uw) / calm.latency.p99, none: worstIn(cr.none, uw) / calm.latency.p99, note: `overload-surge with refusals costing ${REFUSE_MS} ms of service each, the worst 1 s p99 during the surge ÷ the p99 without it` });
  rows.push({ name: 'overload_surge_amplification', unit: 'attempts/call', policy: amplification(ur.policy, uw), none: amplification(ur.none, uw), note: 'overload-surge, attempts per logical call started during the surge' });

  const finishing = simulate({ ...tail, hosts: tail.hosts.map((g) => ({ ...g, on_cancel: 'finish' as const })) }, { strategy: DEFAULT_STRATEGY });
  simulatedCalls += finishing.callStats!.first + finishing.callStats!.hedge;
  simulatedMs += finishing.endMs;
  rows.push({
    name: 'hedge_wasted_work_pct',
    unit: '%',
    policy: wastedPct(tr.policy),
    none: wastedPct(tr.none),
    extra: { name: 'hedge_wasted_work_pct_hosts_finish', value: wastedPct(finishing), note: 'with the call policy, hosts finishing an aborted attempt (on_cancel: finish)' },
    note: "tail-at-scale, the hosts' time on attempts nobody waited for (hedges that lost, attempts past their timeout) ÷ all their time in service, hosts stopping an aborted attempt",
  });

  console.log(`\ncalls under the call policy (${DEFAULT_STRATEGY}; without: callers keep no budget, never hedge, never shed)`);
  const table = rows.map((r) => ({ metric: r.name, policy: Number(r.policy.toFixed(4)), without: Number(r.none.toFixed(4)), target: r.target ?? '' }));
  for (const l of renderTable(['metric', 'policy', 'without', { key: 'target', align: 'left' }], table)) console.log(l);

  const metrics: Metric[] = [];
  for (const r of rows) {
    const m: Metric = { name: r.name, value: r.policy, unit: r.unit, note: `${r.note}, ${DEFAULT_STRATEGY} (default), with the call policy` };
    if (r.target !== undefined) m.target = r.target;
    metrics.push(m);
    if (r.name !== 'tail_p999_ratio_hedged') metrics.push({ name: `${r.name}_no_policy`, value: r.none, unit: r.unit, note: `${r.note}, without the call policy` });
    if (r.extra !== undefined) metrics.push({ name: r.extra.name, value: r.extra.value, unit: r.unit, note: `${r.note}, ${r.extra.note}` });
  }
  return { metrics, simulatedCalls, simulatedMs };
}
