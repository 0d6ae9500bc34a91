/**
 * Route propagation of the `core` group: the registry changes a host weight
 * of the propagation route; the node publishes a new version; how long until
 * each of the 100 agents holds it.
 */
import { epochMs, percentile, sleep } from '../_common.ts';
import { ms } from '../_harness.ts';
import type { Metric } from '../lib.ts';
import type { AgentPass } from './agent-pass.ts';
import { AGENTS, AGENT_PROCS, PROP_ROUTE, TRIALS, WARMUP_TRIALS, type CoreContext } from './setup.ts';

export interface PropagationResult {
  /** Node publishes version -> agent holds it, every (trial, agent), ms. */
  all: number[];
  /** Slowest agent of each trial, ms. */
  trialMax: number[];
  /** Registry write -> last agent, per trial, ms. */
  registry: number[];
  missed: number;
  /** CPU of the agent processes per (update, agent), µs. */
  cpuUs: number;
}

/** WARMUP_TRIALS + TRIALS registry weight edits on PROP_ROUTE, 20-50 ms apart. */
export async function propagationTrials(ctx: CoreContext, pass: AgentPass): Promise<PropagationResult> {
  const r: PropagationResult = { all: [], trialMax: [], registry: [], missed: 0, cpuUs: 0 };
  let cpu0 = 0;
  for (let i = 0; i < WARMUP_TRIALS + TRIALS; i++) {
    if (i === WARMUP_TRIALS) cpu0 = await pass.cpuUs();
    const counted = i >= WARMUP_TRIALS;
    const before = pass.propVersion();
    const tReg = epochMs();
    // the first host's weight toggles from whatever it is now (a pass may start on either value)
    await ctx.registry.update(PROP_ROUTE[0], PROP_ROUTE[1], (cur) => {
      if (!cur) throw new Error('propagation route vanished');
      return { ...cur, hosts: cur.hosts.map((h, j) => (j === 0 ? { ...h, weight: h.weight === 150 ? 100 : 150 } : h)), updated_by: 'bench-core', ts: Date.now() };
    });
    if (!(await pass.when(() => pass.propVersion() > before, 3000))) throw new Error(`node published no new version of the propagation route in trial ${i}`);
    const key = `${PROP_ROUTE[0]}.${PROP_ROUTE[1]}.${pass.propVersion()}`;
    await pass.when(() => (pass.versionRecs.get(key)?.length ?? 0) >= AGENTS, 3000);
    const tNode = pass.nodeVersionT.get(key)!;
    const recs = pass.versionRecs.get(key) ?? [];
    if (counted) {
      r.missed += AGENTS - recs.length;
      let mx = 0;
      for (const rec of recs) {
        const d = rec.t - tNode;
        r.all.push(d);
        if (d > mx) mx = d;
      }
      r.trialMax.push(mx);
      if (recs.length > 0) r.registry.push(Math.max(...recs.map((x) => x.t)) - tReg);
    }
    await sleep(20 + Math.random() * 30);
  }
  r.cpuUs = ((await pass.cpuUs()) - cpu0) / (TRIALS * AGENTS);
  return r;
}

export function describePropagation(r: PropagationResult): string {
  const f = (v: number) => v.toFixed(2);
  return (
    `propagation p50 ${f(percentile(r.all, 50))} / p99 ${f(percentile(r.all, 99))} ms, ` +
    `per-trial max p50 ${f(percentile(r.trialMax, 50))} / p99 ${f(percentile(r.trialMax, 99))} ms, agent CPU ${Math.round(r.cpuUs)} us/update, missed ${r.missed}`
  );
}

/** Figures of the primary pass (every agent on its own connection). */
export function propagationMetrics(r: PropagationResult): Metric[] {
  const setup = `${AGENTS} agents in ${AGENT_PROCS} processes, own NATS connection each`;
  return [
    { name: 'route_propagation_p50_ms', value: ms(percentile(r.all, 50)), unit: 'ms', note: `over ${r.all.length} (trial, agent) deliveries` },
    { name: 'route_propagation_p99_ms', value: ms(percentile(r.all, 99)), unit: 'ms', target: '<= 20', note: `node publishes version -> agent holds it; ${TRIALS} trials; ${setup}` },
    { name: 'route_propagation_trial_max_p99_ms', value: ms(percentile(r.trialMax, 99)), unit: 'ms', note: 'p99 over trials of the slowest agent' },
    { name: 'route_propagation_registry_p99_ms', value: ms(percentile(r.registry, 99)), unit: 'ms', note: 'registry KV update -> last agent (KV write + watch + node + fan-out)' },
    { name: 'route_propagation_missed', value: r.missed, unit: 'deliveries', note: 'expected 0' },
    { name: 'route_update_agent_cpu_us', value: r.cpuUs, unit: 'us', note: 'CPU of the agent processes per (update, agent)' },
  ];
}

/** Figures of the second pass (the agents of a process share one connection). */
export function propagationSharedMetrics(r: PropagationResult): Metric[] {
  return [
    { name: 'route_propagation_p50_ms_shared_conn', value: ms(percentile(r.all, 50)), unit: 'ms', note: 'same, the agents of a process share one connection' },
    { name: 'route_propagation_p99_ms_shared_conn', value: ms(percentile(r.all, 99)), unit: 'ms', note: 'same, shared connection' },
    { name: 'route_propagation_trial_max_p99_ms_shared_conn', value: ms(percentile(r.trialMax, 99)), unit: 'ms', note: 'same, shared connection' },
    { name: 'route_update_agent_cpu_us_shared_conn', value: r.cpuUs, unit: 'us', note: 'same, shared connection' },
  ];
}
