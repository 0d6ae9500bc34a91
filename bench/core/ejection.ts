/**
 * Ejection of the `core` group: one report batch with 15 consecutive errors
 * for a host is published; how long until every one of the 100 agents holds
 * the host ejected, and whether any of them still picks it.
 */
import { partitionOf, type ReportBatch, type ReportTuple } from '../../src/index.ts';
import { encode } from '../../schemas/codec.ts';
import { epochMs, percentile, sleep } from '../_common.ts';
import { ms } from '../_harness.ts';
import type { Metric } from '../lib.ts';
import type { AgentPass } from './agent-pass.ts';
import { AGENTS, HOSTS_PER_ROUTE, P, PICK_SAMPLE, WARMUP_TRIALS, ejectHosts, type CoreContext } from './setup.ts';

export interface EjectionResult {
  /** Publish -> agent holds the host ejected, every (trial, agent), ms. */
  all: number[];
  /** Slowest agent of each trial, ms. */
  trialMax: number[];
  /** Publish -> node publishes the ejection, ms. */
  node: number[];
  missed: number;
  /** Picks of the ejected host after an agent saw it ejected (expected 0). */
  picked: number;
}

/** One trial per route of `routes` (a fresh route and host each, so trials are independent); the first WARMUP_TRIALS are not counted. */
export async function ejectionTrials(ctx: CoreContext, pass: AgentPass, routes: Array<[number, number]>): Promise<EjectionResult> {
  const r: EjectionResult = { all: [], trialMax: [], node: [], missed: 0, picked: 0 };
  for (let i = 0; i < routes.length; i++) {
    const counted = i >= WARMUP_TRIALS;
    const [m, c] = routes[i]!;
    const h = ejectHosts(c)[i % HOSTS_PER_ROUTE]!;
    const host: [string, number] = [h.ip, h.port];
    // 15 = contin_err_limit; with 180 virtual successes the error rate stays below 0.1, so the rule is consecutive_errors.
    const reports: ReportTuple[] = Array.from({ length: 15 }, (_, k) => [0, 503, 12.5, k]);
    const batch: ReportBatch = { v: 1, sender: 'bench-core', modid: m, cmdid: c, ts: Date.now(), hosts: [host], reports };
    const data = encode(batch);
    const subject = ctx.n.report(partitionOf(m, c, P), m, c);
    const key = `${m}.${c}.${host[0]}:${host[1]}`;
    const tPub = epochMs();
    ctx.nc.publish(subject, data);
    await ctx.nc.flush();
    await pass.when(() => (pass.ejectRecs.get(key)?.length ?? 0) >= AGENTS, 3000);
    const recs = pass.ejectRecs.get(key) ?? [];
    if (counted) {
      r.missed += AGENTS - recs.length;
      let mx = 0;
      for (const rec of recs) {
        const d = rec.t - tPub;
        r.all.push(d);
        if (d > mx) mx = d;
        r.picked += rec.picked;
      }
      if (recs.length > 0) r.trialMax.push(mx);
      const tn = pass.nodeEjectT.get(key);
      if (tn !== undefined) r.node.push(tn - tPub);
    }
    await sleep(20 + Math.random() * 30);
  }
  return r;
}

export function describeEjection(r: EjectionResult): string {
  const f = (v: number) => v.toFixed(2);
  return `ejection per-trial max p50 ${f(percentile(r.trialMax, 50))} / p99 ${f(percentile(r.trialMax, 99))} ms, node p99 ${f(percentile(r.node, 99))} ms, missed ${r.missed}, picks after ${r.picked}`;
}

/** Figures of the primary pass (every agent on its own connection). */
export function ejectionMetrics(r: EjectionResult): Metric[] {
  return [
    { name: 'ejection_p50_ms', value: ms(percentile(r.trialMax, 50)), unit: 'ms', note: 'per-trial max over agents' },
    { name: 'ejection_p99_ms', value: ms(percentile(r.trialMax, 99)), unit: 'ms', target: '<= 50', note: `report batch published -> all ${AGENTS} agents hold the host ejected; ${r.trialMax.length} trials` },
    { name: 'ejection_all_p99_ms', value: ms(percentile(r.all, 99)), unit: 'ms', note: `over ${r.all.length} (trial, agent) deliveries` },
    { name: 'ejection_node_p99_ms', value: ms(percentile(r.node, 99)), unit: 'ms', note: 'report batch published -> node publishes the ejection' },
    { name: 'ejection_missed', value: r.missed, unit: 'deliveries', note: 'expected 0' },
    { name: 'ejection_picks_after', value: r.picked, unit: 'picks', note: `ejected host picked in ${PICK_SAMPLE} sampled picks per agent after it saw the ejection; expected 0` },
  ];
}

/** Figures of the second pass (the agents of a process share one connection). */
export function ejectionSharedMetrics(r: EjectionResult): Metric[] {
  return [
    { name: 'ejection_p99_ms_shared_conn', value: ms(percentile(r.trialMax, 99)), unit: 'ms', note: 'same, shared connection' },
    { name: 'ejection_missed_shared_conn', value: r.missed, unit: 'deliveries', note: 'expected 0' },
  ];
}
